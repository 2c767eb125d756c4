import test from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import type OpenAI from 'openai'
import { startGateway, postJson, readSse, SHARED, ZEPHYR } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'
import { skipWithoutCorpus } from '../helpers/corpus.js'

const QWEN = 'Qwen/Qwen2.5-7B-Instruct'
const LLAMA = 'meta-llama/Llama-3.1-8B-Instruct'
const MISTRAL = 'mistralai/Mistral-7B-Instruct-v0.3'
const QWEN3 = 'Qwen/Qwen3-8B'
const R1 = 'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B'

const WEATHER: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
  }
}
const TIME: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_time', description: 'Local time in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } }
}
const ASK = [{ role: 'user' as const, content: 'Weather and time in Paris?' }]

function modelsFile (...repos: string[]): string {
  return `models:\n${repos.map((repo) => `  - { id: "${repo}", backend: tgi, url: "{{TGI_URL}}", model: ${repo} }`).join('\n')}\n`
}

/** Splits a reply into small tokens, the way a tokenizer would: every 3 characters. */
function tokens (text: string): string[] {
  return text.match(/[\s\S]{1,3}/g) ?? []
}

const HERMES_REPLY = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"city": "Paris"}}\n</tool_call>'

test('Qwen2.5 (Hermes markup): tool_calls with ids and JSON-string arguments, finish_reason tool_calls', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi } = await startGateway(t, { repos: [QWEN], modelsFile: modelsFile(QWEN) })
  tgi.reply({ kind: 'tokens', tokens: tokens(HERMES_REPLY) })
  const completion = await openai.chat.completions.create({ model: QWEN, messages: ASK, tools: [WEATHER, TIME] })
  assertMatchesOpenAI('CreateChatCompletionResponse', completion)
  const choice = completion.choices[0]!
  assert.equal(choice.finish_reason, 'tool_calls')
  assert.equal(choice.message.content, null)
  const calls = choice.message.tool_calls!.map((call) => call.type === 'function' ? [call.function.name, JSON.parse(call.function.arguments)] : [])
  assert.deepEqual(calls, [['get_weather', { city: 'Paris' }], ['get_time', { city: 'Paris' }]])
  assert.match(choice.message.tool_calls![0]!.id, /^call_[A-Za-z0-9]{24}$/)
  // The tools reached the prompt through the model's own template.
  assert.match(tgi.calls[0]!.body.inputs, /<tools>\n\{"type": "function", "function": \{"name": "get_weather"/)

  // parallel_tool_calls: false keeps the first call only.
  const single = await openai.chat.completions.create({ model: QWEN, messages: ASK, tools: [WEATHER, TIME], parallel_tool_calls: false })
  assert.equal(single.choices[0]!.message.tool_calls!.length, 1)
})

test('Qwen2.5 streaming: content deltas, then tool_calls deltas the OpenAI SDK stream helper assembles', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi, url } = await startGateway(t, { repos: [QWEN], modelsFile: modelsFile(QWEN) })
  tgi.reply({ kind: 'tokens', tokens: tokens(`Let me check.\n${HERMES_REPLY}`) })
  const runner = openai.chat.completions.stream({ model: QWEN, messages: ASK, tools: [WEATHER, TIME] })
  const final = await runner.finalChatCompletion()
  const message = final.choices[0]!.message
  assert.equal(message.content, 'Let me check.')
  assert.deepEqual(message.tool_calls!.map((call) => call.type === 'function' ? call.function.name : ''), ['get_weather', 'get_time'])
  assert.deepEqual(message.tool_calls!.map((call) => call.type === 'function' ? JSON.parse(call.function.arguments) : null), [{ city: 'Paris' }, { city: 'Paris' }])
  assert.equal(final.choices[0]!.finish_reason, 'tool_calls')

  const response = await postJson(`${url}/v1/chat/completions`, { model: QWEN, messages: ASK, tools: [WEATHER, TIME], stream: true })
  const chunks = (await readSse(response)).slice(0, -1).map((event) => JSON.parse(event))
  for (const chunk of chunks) assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
  const content = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')
  assert.equal(content, 'Let me check.')
  assert.doesNotMatch(content, /tool_call/)
  const toolDeltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? [])
  assert.equal(toolDeltas[0].index, 0)
  assert.match(toolDeltas[0].id, /^call_/)
  assert.equal(toolDeltas[0].function.name, 'get_weather')
  assert.equal(toolDeltas.filter((delta: { id?: string }) => delta.id !== undefined).length, 2)
})

test('Llama 3.1 JSON calls and Mistral [TOOL_CALLS] (its special token skipped, as TGI decodes it)', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi } = await startGateway(t, { repos: [LLAMA, MISTRAL], modelsFile: modelsFile(LLAMA, MISTRAL) })
  tgi.replyOnce({ kind: 'tokens', tokens: tokens('{"name": "get_weather", "parameters": {"city": "Paris"}}') })
  const llama = await openai.chat.completions.create({ model: LLAMA, messages: ASK, tools: [WEATHER] })
  assert.equal(llama.choices[0]!.finish_reason, 'tool_calls')
  assert.deepEqual(JSON.parse((llama.choices[0]!.message.tool_calls![0] as { function: { arguments: string } }).function.arguments), { city: 'Paris' })
  assert.equal(llama.choices[0]!.message.content, null)

  tgi.replyOnce({ kind: 'tokens', tokens: [{ text: '[TOOL_CALLS]', special: true }, ...tokens(' [{"name": "get_weather", "arguments": {"city": "Paris"}}]')] })
  const stream = await openai.chat.completions.create({ model: MISTRAL, messages: ASK, tools: [WEATHER], stream: true })
  const names: string[] = []
  let content = ''
  let finish: string | null = null
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta.content ?? ''
    for (const call of chunk.choices[0]?.delta.tool_calls ?? []) if (call.function?.name !== undefined) names.push(call.function.name)
    finish = chunk.choices[0]?.finish_reason ?? finish
  }
  assert.deepEqual(names, ['get_weather'])
  assert.equal(content, '')
  assert.equal(finish, 'tool_calls')

  // A plain answer passes through untouched.
  tgi.replyOnce({ kind: 'tokens', tokens: tokens('It is sunny in Paris.') })
  const plain = await openai.chat.completions.create({ model: LLAMA, messages: ASK, tools: [WEATHER] })
  assert.equal(plain.choices[0]!.message.content, 'It is sunny in Paris.')
  assert.equal(plain.choices[0]!.finish_reason, 'stop')
})

test('the tool-result round trip renders exactly as the reference renderer does', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const cases = JSON.parse(await readFile(new URL('chat-templates/cases.json', SHARED), 'utf8'))
  const golden = JSON.parse(await readFile(new URL('chat-templates/golden.json', SHARED), 'utf8'))
  const roundTrip = cases.cases.find((entry: { id: string }) => entry.id === 'tool_call_roundtrip')
  const { openai, tgi } = await startGateway(t, { repos: [QWEN, LLAMA], modelsFile: modelsFile(QWEN, LLAMA) })
  for (const model of [QWEN, LLAMA]) {
    // OpenAI clients send arguments as JSON strings; the gateway parses them as the template expects.
    const messages = roundTrip.messages.map((message: Record<string, unknown>) => message.role !== 'assistant'
      ? message
      : { ...message, tool_calls: (message.tool_calls as Array<{ id: string, type: string, function: { name: string, arguments: unknown } }>).map((call) => ({ ...call, function: { ...call.function, arguments: JSON.stringify(call.function.arguments) } })) })
    await openai.chat.completions.create({ model, messages, tools: roundTrip.tools })
    assert.equal(tgi.calls.at(-1)!.body.inputs, golden.results[model].tool_call_roundtrip.output, model)
  }
})

test('tool_choice required or named: TGI\'s JSON grammar constrains the answer to a valid call', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi, url } = await startGateway(t, { repos: [QWEN], modelsFile: modelsFile(QWEN) })
  tgi.reply({ kind: 'tokens', tokens: tokens('{"name": "get_time", "arguments": {"city": "Paris"}}') })
  const named = await openai.chat.completions.create({ model: QWEN, messages: ASK, tools: [WEATHER, TIME], tool_choice: { type: 'function', function: { name: 'get_time' } } })
  const grammar = tgi.calls[0]!.body.parameters.grammar
  assert.equal(grammar.type, 'json')
  assert.deepEqual(grammar.value.properties.name, { type: 'string', enum: ['get_time'] })
  assert.deepEqual(grammar.value.required, ['name', 'arguments'])
  assert.equal(named.choices[0]!.finish_reason, 'tool_calls')
  assert.equal((named.choices[0]!.message.tool_calls![0] as { function: { name: string } }).function.name, 'get_time')

  await openai.chat.completions.create({ model: QWEN, messages: ASK, tools: [WEATHER, TIME], tool_choice: 'required' })
  // Several tools: one object schema TGI accepts (root properties), any allowed name, any allowed arguments.
  const required = tgi.calls[1]!.body.parameters.grammar.value
  assert.deepEqual(required.properties.name.enum, ['get_weather', 'get_time'])
  assert.equal(required.properties.arguments.anyOf.length, 2)

  const unknown = await postJson(`${url}/v1/chat/completions`, { model: QWEN, messages: ASK, tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'nope' } } })
  assert.equal(unknown.status, 400)
  assert.equal((await unknown.json()).error.param, 'tool_choice')

  // none: no tools in the prompt, no parsing.
  tgi.reply({ kind: 'tokens', tokens: tokens(HERMES_REPLY) })
  const none = await openai.chat.completions.create({ model: QWEN, messages: ASK, tools: [WEATHER], tool_choice: 'none' })
  assert.doesNotMatch(tgi.calls.at(-1)!.body.inputs, /get_weather/)
  assert.equal(none.choices[0]!.finish_reason, 'stop')
})

test('response_format json_schema / json_object become TGI grammars', async (t) => {
  const { openai, tgi, url } = await startGateway(t)
  const schema = { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'] }
  tgi.reply({ kind: 'tokens', tokens: tokens('{"answer": 42}') })
  const completion = await openai.chat.completions.create({
    model: ZEPHYR, messages: ASK, response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } }
  })
  assert.deepEqual(tgi.calls[0]!.body.parameters.grammar, { type: 'json', value: schema })
  assert.deepEqual(JSON.parse(completion.choices[0]!.message.content!), { answer: 42 })
  // json_object: TGI refuses a json grammar without root `properties` (the fake checks as validation.rs does), so a regex grammar for a JSON object.
  tgi.reply({ kind: 'tokens', tokens: tokens('{"items": [{"a": 1, "b": "x"}], "ok": true}') })
  const object = await openai.chat.completions.create({ model: ZEPHYR, messages: ASK, response_format: { type: 'json_object' } })
  const grammar = tgi.calls[1]!.body.parameters.grammar
  assert.equal(grammar.type, 'regex')
  const objectPattern = new RegExp(`^(?:${grammar.value as string})$`)
  assert.ok(objectPattern.test(object.choices[0]!.message.content!))
  for (const valid of ['{}', '{"a": 1}', '{"a": "q\\"uote", "b": [true, null, -1.5e3]}', '{"a": {"b": [1]}}']) assert.ok(objectPattern.test(valid), valid)
  for (const invalid of ['[]', '"s"', '{a: 1}', '{"a": 1,}', '{"a": }', '{"a": {"b": [[1]]}}']) assert.ok(!objectPattern.test(invalid), invalid)
  // A schema without root properties cannot become a TGI grammar: 400 naming response_format, nothing sent.
  const calls = tgi.calls.length
  const arraySchema = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ASK, response_format: { type: 'json_schema', json_schema: { name: 'list', schema: { type: 'array', items: { type: 'integer' } } } } })
  assert.equal(arraySchema.status, 400)
  const error = (await arraySchema.json()).error
  assert.equal(error.param, 'response_format')
  assert.match(error.message, /properties/)
  assert.equal(tgi.calls.length, calls)
})

test('the fake TGI refuses a json grammar without root properties, as validation.rs does', async (t) => {
  const { tgi } = await startGateway(t)
  for (const grammar of [{ type: 'json', value: { type: 'object' } }, { type: 'json', value: '{"type": "object"}' }, { type: 'json', value: { oneOf: [{ type: 'object', properties: {} }] } }]) {
    const response = await postJson(`${tgi.url}/generate`, { inputs: 'Hi', parameters: { grammar } })
    assert.equal(response.status, 422)
    assert.deepEqual(await response.json(), { error: "Input validation error: grammar is not valid: Grammar must have a 'properties' field", error_type: 'validation' })
  }
  const ok = await postJson(`${tgi.url}/generate`, { inputs: 'Hi', parameters: { grammar: { type: 'json', value: { type: 'object', properties: {} } } } })
  assert.equal(ok.status, 200)
})

test('a template without tool support gets the documented generic tool prompt, answers parsed as Hermes', async (t) => {
  const { openai, tgi } = await startGateway(t)
  tgi.reply({ kind: 'tokens', tokens: tokens('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>') })
  const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ASK, tools: [WEATHER] })
  assert.equal(completion.choices[0]!.finish_reason, 'tool_calls')
  const prompt: string = tgi.calls[0]!.body.inputs
  assert.match(prompt, /^<\|system\|>\nYou can call functions\./)
  assert.match(prompt, /"name":"get_weather"/)
})

test('reasoning models: <think> goes to reasoning_content (Qwen3 both tags, R1 distill opening in the prompt)', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi } = await startGateway(t, { repos: [QWEN3, R1], modelsFile: modelsFile(QWEN3, R1) })
  tgi.replyOnce({ kind: 'tokens', tokens: tokens('<think>\nThe user greets me.\n</think>\n\nHello!') })
  const qwen3 = await openai.chat.completions.create({ model: QWEN3, messages: [{ role: 'user', content: 'Hi' }] })
  const message = qwen3.choices[0]!.message as typeof qwen3.choices[0]['message'] & { reasoning_content?: string }
  assert.equal(message.reasoning_content, 'The user greets me.')
  assert.equal(message.content, 'Hello!')
  assertMatchesOpenAI('CreateChatCompletionResponse', qwen3)

  tgi.replyOnce({ kind: 'tokens', tokens: tokens('Two plus two.\n</think>\n\n4') })
  const stream = await openai.chat.completions.create({ model: R1, messages: [{ role: 'user', content: '2+2?' }], stream: true })
  let reasoning = ''
  let content = ''
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta as { content?: string | null, reasoning_content?: string } | undefined
    reasoning += delta?.reasoning_content ?? ''
    content += delta?.content ?? ''
  }
  assert.match(tgi.calls.at(-1)!.body.inputs, /<think>\n$/)
  assert.equal(reasoning, 'Two plus two.')
  assert.equal(content, '4')
})
