import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { TOOL_CALL_PARSER_NAMES, createToolCallParser, detectToolCallParser } from '../../src/chat/tool-calls/index.js'
import { SHARED, hasCorpus, skipWithoutCorpus } from '../helpers/corpus.js'

interface ModelFile { model_id: string, chat_template: string | Array<{ name: string, template: string }> }

const MODELS = new URL('chat-templates/models/', SHARED)
const CORPUS_SKIP = skipWithoutCorpus('chat-templates/models/')
const models: ModelFile[] = !hasCorpus('chat-templates/models/') ? [] : readdirSync(MODELS).filter((file) => file.endsWith('.json')).sort()
  .map((file) => JSON.parse(readFileSync(new URL(file, MODELS), 'utf8')) as ModelFile)

// Every shared template; the ones not named here have no tool-call format we parse
// (no tools at all, or Command R's Action: blocks, GLM-4, Functionary's >>>,
// gpt-oss' harmony channels).
const EXPECTED: Record<string, string> = {
  'NousResearch/Hermes-2-Pro-Llama-3-8B': 'hermes',
  'NousResearch/Hermes-3-Llama-3.1-8B': 'hermes',
  'Qwen/QwQ-32B': 'hermes',
  'Qwen/Qwen2.5-7B-Instruct': 'hermes',
  'Qwen/Qwen2.5-Coder-7B-Instruct': 'hermes',
  'Qwen/Qwen3-0.6B': 'hermes',
  'Qwen/Qwen3-8B': 'hermes',
  'HuggingFaceTB/SmolLM3-3B': 'hermes',
  'meta-llama/Llama-3.1-8B-Instruct': 'llama3_json',
  'meta-llama/Llama-3.2-3B-Instruct': 'llama3_json',
  'meta-llama/Llama-3.3-70B-Instruct': 'llama3_json',
  'nvidia/Llama-3.1-Nemotron-70B-Instruct-HF': 'llama3_json',
  'mistralai/Mistral-7B-Instruct-v0.3': 'mistral',
  'mistralai/Mistral-Nemo-Instruct-2407': 'mistral',
  'mistralai/Mistral-Small-3.2-24B-Instruct-2506': 'mistral',
  'ibm-granite/granite-3.0-8b-instruct': 'granite',
  'ibm-granite/granite-3.3-2b-instruct': 'granite',
  'deepseek-ai/DeepSeek-V3': 'deepseek_v3',
  'deepseek-ai/DeepSeek-V3.1': 'deepseek_v3',
  'deepseek-ai/DeepSeek-R1': 'deepseek_v3',
  'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B': 'deepseek_v3'
}

test('the shared folder has the 50 templates', { skip: CORPUS_SKIP }, () => {
  assert.equal(models.length, 50)
  for (const id of Object.keys(EXPECTED)) assert.ok(models.some((model) => model.model_id === id), id)
})

test('detectToolCallParser over every shared template', { skip: CORPUS_SKIP }, () => {
  const detected = Object.fromEntries(models.map((model) => [model.model_id, detectToolCallParser(model.chat_template)]))
  const expected = Object.fromEntries(models.map((model) => [model.model_id, EXPECTED[model.model_id]]))
  assert.deepEqual(detected, expected)
  for (const id of ['HuggingFaceH4/zephyr-7b-beta', 'google/gemma-2-9b-it', 'google/gemma-2b-it', 'google/gemma-3-4b-it']) assert.equal(detected[id], undefined, id)
})

test('named templates: the tool_use one decides (Hermes 3\'s default has no tools)', { skip: CORPUS_SKIP }, () => {
  const hermes3 = models.find((model) => model.model_id === 'NousResearch/Hermes-3-Llama-3.1-8B')!
  assert.ok(Array.isArray(hermes3.chat_template))
  const [defaultTemplate] = hermes3.chat_template as Array<{ name: string, template: string }>
  assert.equal(detectToolCallParser(defaultTemplate!.template), undefined)
  assert.equal(detectToolCallParser(hermes3.chat_template), 'hermes')
})

test('every detected name makes a parser; unknown names are refused', () => {
  assert.deepEqual([...TOOL_CALL_PARSER_NAMES], ['hermes', 'llama3_json', 'mistral', 'granite', 'deepseek_v3'])
  for (const name of TOOL_CALL_PARSER_NAMES) assert.equal(createToolCallParser(name).name, name)
  assert.throws(() => createToolCallParser('pythonic'), RangeError)
})

test('default ids look like OpenAI\'s', () => {
  const ids = new Set(Array.from({ length: 50 }, () => createToolCallParser('hermes').parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>').toolCalls[0]!.id))
  assert.equal(ids.size, 50)
  for (const id of ids) assert.match(id, /^call_[A-Za-z0-9]{24}$/)
})
