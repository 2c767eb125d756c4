/**
 * The calls as each family's own chat template writes them back into the prompt
 * (shared/chat-templates/golden.json, cases tool_call_roundtrip and
 * tool_call_string_arguments) are what the models were trained to produce: the
 * detected parser must read them back as the original calls.
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { detectToolCallParser } from '../../src/chat/tool-calls/index.js'
import { SHARED, hasCorpus, skipWithoutCorpus } from '../helpers/corpus.js'
import { assertStreamsLikeParse, calls } from './helpers.js'

interface Case { id: string, messages: Array<{ role: string, tool_calls?: Array<{ function: { name: string, arguments: unknown } }> }> }
const HAS_CORPUS = hasCorpus('chat-templates/cases.json', 'chat-templates/golden.json', 'chat-templates/models/')
const CORPUS_SKIP = skipWithoutCorpus('chat-templates/cases.json', 'chat-templates/golden.json', 'chat-templates/models/')
const cases = !HAS_CORPUS ? [] : (JSON.parse(readFileSync(new URL('chat-templates/cases.json', SHARED), 'utf8')) as { cases: Case[] }).cases
const golden = !HAS_CORPUS ? {} : (JSON.parse(readFileSync(new URL('chat-templates/golden.json', SHARED), 'utf8')) as { results: Record<string, Record<string, { output?: string }>> }).results

// The assistant turn that holds the calls, cut out of the render.
const ASSISTANT_TURNS: Record<string, RegExp> = {
  'Qwen/Qwen2.5-7B-Instruct': /<\|im_start\|>assistant\n(<tool_call>[\s\S]*?)<\|im_end\|>/,
  'Qwen/Qwen3-8B': /<\|im_start\|>assistant\n(<tool_call>[\s\S]*?)<\|im_end\|>/,
  'NousResearch/Hermes-3-Llama-3.1-8B': /<\|im_start\|>assistant\n(<tool_call>[\s\S]*?)<\|im_end\|>/,
  'meta-llama/Llama-3.1-8B-Instruct': /assistant<\|end_header_id\|>\n\n(\{[\s\S]*?)<\|eot_id\|>/,
  'meta-llama/Llama-3.3-70B-Instruct': /assistant<\|end_header_id\|>\n\n(\{[\s\S]*?)<\|eot_id\|>/,
  'mistralai/Mistral-7B-Instruct-v0.3': /\[\/INST\] (\[TOOL_CALLS\][\s\S]*?) ?<\/s>/,
  'mistralai/Mistral-Nemo-Instruct-2407': /\[\/INST\](\[TOOL_CALLS\][\s\S]*?)<\/s>/,
  'mistralai/Mistral-Small-3.2-24B-Instruct-2506': /\[\/INST\](\[TOOL_CALLS\][\s\S]*?)<\/s>/,
  'deepseek-ai/DeepSeek-V3': /<｜Assistant｜>(<｜tool▁calls▁begin｜>[\s\S]*?)<｜tool▁outputs▁begin｜>/,
  'deepseek-ai/DeepSeek-V3.1': /<｜Assistant｜><\/think>(<｜tool▁calls▁begin｜>[\s\S]*?)<｜end▁of▁sentence｜>/
}

function modelTemplate (model: string): string | Array<{ name: string, template: string }> {
  return (JSON.parse(readFileSync(new URL(`chat-templates/models/${model.replace('/', '__')}.json`, SHARED), 'utf8')) as { chat_template: string | Array<{ name: string, template: string }> }).chat_template
}

for (const [model, turn] of Object.entries(ASSISTANT_TURNS)) {
  test(`${model}: the calls its template writes parse back`, { skip: CORPUS_SKIP }, () => {
    const parserName = detectToolCallParser(modelTemplate(model))
    assert.ok(parserName !== undefined)
    let checked = 0
    for (const testCase of cases.filter((candidate) => candidate.id.startsWith('tool_call_'))) {
      const render = golden[model]?.[testCase.id]?.output
      // Some templates cannot render object (or string) arguments at all.
      if (render === undefined) continue
      const text = turn.exec(render)?.[1]
      // DeepSeek-V3's template writes calls only when the message's content is None, not ''.
      if (text === undefined && model === 'deepseek-ai/DeepSeek-V3' && !render.includes('<｜tool▁calls▁begin｜>')) continue
      assert.ok(text !== undefined, `${testCase.id}: assistant turn found`)
      const expected = testCase.messages.flatMap((message) => message.tool_calls ?? []).map(({ function: call }) => ({
        name: call.name,
        arguments: JSON.stringify(typeof call.arguments === 'string' ? JSON.parse(call.arguments) : call.arguments)
      }))
      const output = assertStreamsLikeParse(parserName, text)
      assert.deepEqual({ content: output.content, calls: calls(output) }, { content: null, calls: expected }, `${testCase.id}: ${text}`)
      checked++
    }
    assert.ok(checked > 0)
  })
}
