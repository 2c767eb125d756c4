import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ReasoningStream, createToolCallParser, detectReasoning, splitReasoning } from '../../src/chat/tool-calls/index.js'
import type { ReasoningSplit } from '../../src/chat/tool-calls/index.js'
import { SHARED, hasCorpus, skipWithoutCorpus } from '../helpers/corpus.js'
import { collect, sequentialIds, tokenize } from './helpers.js'

function streamed (tokens: readonly string[], startsInside: boolean): { steps: ReasoningSplit[], total: ReasoningSplit } {
  const stream = new ReasoningStream({ startsInside })
  const steps = tokens.map((token) => stream.push(token))
  steps.push(stream.finish())
  return { steps, total: { reasoning: steps.map((step) => step.reasoning).join(''), content: steps.map((step) => step.content).join('') } }
}

/** splitReasoning, checked against the stream split at every position, token by token and character by character. */
function split (text: string, startsInside: boolean): ReasoningSplit {
  const expected = splitReasoning(text, { startsInside })
  for (let at = 0; at <= text.length; at++) {
    assert.deepEqual(streamed([text.slice(0, at), text.slice(at)], startsInside).total, expected, `split at ${at}`)
  }
  for (const tokens of [tokenize(text, ['<think>', '</think>']), Array.from(text)]) assert.deepEqual(streamed(tokens, startsInside).total, expected)
  return expected
}

test('DeepSeek-R1 / QwQ: the prompt opened the block, only </think> appears', () => {
  assert.deepEqual(split('Okay, the user asks for 6 × 7.\nThat is 42.\n</think>\n\nThe answer is **42**.', true), {
    reasoning: 'Okay, the user asks for 6 × 7.\nThat is 42.',
    content: 'The answer is **42**.'
  })
  // Some R1 builds write the <think> again.
  assert.deepEqual(split('<think>\nHmm.\n</think>\nHi!', true), { reasoning: 'Hmm.', content: 'Hi!' })
})

test('Qwen3 with thinking: both tags in the output', () => {
  assert.deepEqual(split('<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help you today?', false), {
    reasoning: 'The user greets me. I should greet back.',
    content: 'Hello! How can I help you today?'
  })
  assert.deepEqual(split('<think>\n\n</think>\n\nHello!', false), { reasoning: '', content: 'Hello!' })
})

test('no think block: everything is content, unchanged', () => {
  for (const text of ['Hello! How can I help?', '\n\nIndented answer\n', 'Use <b>bold</b> and <think> tags like this.', 'a </think> b']) {
    assert.deepEqual(split(text, false), { reasoning: '', content: text })
  }
})

test('a block never closed (generation cut off) is all reasoning', () => {
  assert.deepEqual(split('Let me think about this carefully.\nFirst, ', true), { reasoning: 'Let me think about this carefully.\nFirst,', content: '' })
  assert.deepEqual(split('<think>\nStill thinking </thi', false), { reasoning: 'Still thinking </thi', content: '' })
})

test('streaming holds back only what could be a tag', () => {
  const { steps } = streamed(['Step', ' one', '.', ' </', 'think', '>', '\n\n', 'Done', '.'], true)
  assert.deepEqual(steps.map((step) => step.reasoning), ['Step', ' one', '.', '', '', '', '', '', '', ''])
  assert.deepEqual(steps.map((step) => step.content), ['', '', '', '', '', '', '', 'Done', '.', ''])
  const plain = streamed(['Hello', ' there', '!'], false)
  assert.deepEqual(plain.steps.map((step) => step.content), ['Hello', ' there', '!', ''])
  const opening = streamed(['<', 'th', 'ink', '>', 'x', '</think>', 'y'], false)
  assert.deepEqual(opening.steps.map((step) => [step.reasoning, step.content]), [['', ''], ['', ''], ['', ''], ['', ''], ['x', ''], ['', ''], ['', 'y'], ['', '']])
})

test('Qwen3 thinking, then a tool call: reasoning first, then the tool parser on the content', () => {
  const output = '<think>\nThe user wants the weather in Paris. I should call get_weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
  const reasoning = new ReasoningStream({ startsInside: false })
  const tools = createToolCallParser('hermes', { newId: sequentialIds() }).stream()
  let thought = ''
  const events = []
  for (const token of tokenize(output, ['<think>', '</think>', '<tool_call>', '</tool_call>'])) {
    const part = reasoning.push(token)
    thought += part.reasoning
    events.push(...tools.push(part.content))
  }
  const last = reasoning.finish()
  thought += last.reasoning
  events.push(...tools.push(last.content), ...tools.finish())
  assert.equal(thought, 'The user wants the weather in Paris. I should call get_weather.')
  assert.deepEqual(collect(events), { content: null, toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_weather', arguments: '{"city":"Paris"}' }] })
})

interface ModelFile { chat_template: string | Array<{ name: string, template: string }> }
const CORPUS_SKIP = skipWithoutCorpus('chat-templates/golden.json', 'chat-templates/models/')
const golden = !hasCorpus('chat-templates/golden.json', 'chat-templates/models/') ? { results: {} } : JSON.parse(readFileSync(new URL('chat-templates/golden.json', SHARED), 'utf8')) as { results: Record<string, Record<string, { output?: string }>> }

function reasoningFor (model: string, caseId = 'user_only'): { enabled: boolean, startsInside: boolean } {
  const file = JSON.parse(readFileSync(new URL(`chat-templates/models/${model.replace('/', '__')}.json`, SHARED), 'utf8')) as ModelFile
  const prompt = golden.results[model]?.[caseId]?.output
  assert.ok(prompt !== undefined, `${model} ${caseId} has a golden render`)
  return detectReasoning(file.chat_template, prompt)
}

test('detectReasoning over real templates and their rendered prompts', { skip: CORPUS_SKIP }, () => {
  assert.deepEqual(reasoningFor('Qwen/QwQ-32B'), { enabled: true, startsInside: true })
  assert.deepEqual(reasoningFor('deepseek-ai/DeepSeek-R1-Distill-Qwen-32B'), { enabled: true, startsInside: true })
  // This R1 revision leaves '<think>\n' to the model.
  assert.deepEqual(reasoningFor('deepseek-ai/DeepSeek-R1'), { enabled: true, startsInside: false })
  assert.deepEqual(reasoningFor('Qwen/Qwen3-8B'), { enabled: true, startsInside: false })
  assert.deepEqual(reasoningFor('Qwen/Qwen3-8B', 'kwargs_enable_thinking_false'), { enabled: true, startsInside: false })
  // V3.1 without the thinking kwarg closes the block in the prompt.
  assert.deepEqual(reasoningFor('deepseek-ai/DeepSeek-V3.1'), { enabled: true, startsInside: false })
  assert.deepEqual(detectReasoning('x', '<｜User｜>Hi<｜Assistant｜><think>'), { enabled: true, startsInside: true })
  assert.deepEqual(reasoningFor('HuggingFaceH4/zephyr-7b-beta'), { enabled: false, startsInside: false })
  assert.deepEqual(reasoningFor('meta-llama/Llama-3.1-8B-Instruct'), { enabled: false, startsInside: false })
  assert.deepEqual(reasoningFor('deepseek-ai/DeepSeek-V3'), { enabled: false, startsInside: false })
})
