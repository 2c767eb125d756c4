import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeVllm } from './fake-vllm.js'
import type { FakeVllm } from './fake-vllm.js'
import { BOS_ID, EOS_ID, startsWithDoubledBos } from './fake-tokenizer.js'
import { DEFAULT_FAKE_ENGINE_TOKENS } from './fake-engine.js'

async function post (vllm: FakeVllm, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return await fetch(vllm.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init
  })
}

async function complete (vllm: FakeVllm, body: Record<string, unknown>): Promise<any> {
  const response = await post(vllm, '/v1/completions', body)
  assert.equal(response.status, 200, await response.clone().text())
  return await response.json()
}

/** Splits an SSE body into its `data:` payloads, checking vLLM's framing on the way. */
function frames (text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'the stream ends with a blank line')
  return text.slice(0, -2).split('\n\n').map((block) => {
    assert.ok(block.startsWith('data: '), `unexpected framing: ${JSON.stringify(block)}`)
    assert.ok(!block.includes('\n'), 'one line per event')
    return block.slice('data: '.length)
  })
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

describe('fake vLLM', () => {
  let vllm: FakeVllm

  before(async () => {
    vllm = await startFakeVllm({ modelPath: 'acme/tiny-llama', servedModelName: 'tiny', maxModelLen: 64 })
  })
  after(async () => {
    await vllm.close()
  })
  beforeEach(() => {
    vllm.reply({ kind: 'tokens', tokens: [...DEFAULT_FAKE_ENGINE_TOKENS] })
  })

  test('/health, /version, /v1/models', async () => {
    const health = await fetch(vllm.url + '/health')
    assert.equal(health.status, 200)
    assert.equal(await health.text(), '')
    assert.deepEqual(await (await fetch(vllm.url + '/version')).json(), { version: '0.12.0' })
    const models = await (await fetch(vllm.url + '/v1/models')).json() as any
    assert.equal(models.object, 'list')
    assert.equal(models.data.length, 1)
    const card = models.data[0]
    assert.deepEqual(Object.keys(card), ['id', 'object', 'created', 'owned_by', 'root', 'parent', 'max_model_len', 'permission'])
    assert.equal(card.id, 'tiny')
    assert.equal(card.object, 'model')
    assert.equal(card.owned_by, 'vllm')
    assert.equal(card.root, 'acme/tiny-llama')
    assert.equal(card.parent, null)
    assert.equal(card.max_model_len, 64)
    assert.equal(card.permission[0].object, 'model_permission')
    assert.match(card.permission[0].id, /^modelperm-[0-9a-f]{32}$/)
    assert.ok(vllm.requests.includes('GET /version'))
    assert.ok(vllm.requests.includes('GET /v1/models'))
  })

  test('unknown routes are FastAPI 404s; wrong methods 405', async () => {
    const missing = await fetch(vllm.url + '/v1/chat/nothing')
    assert.equal(missing.status, 404)
    assert.deepEqual(await missing.json(), { detail: 'Not Found' })
    const wrong = await fetch(vllm.url + '/v1/completions')
    assert.equal(wrong.status, 405)
    assert.deepEqual(await wrong.json(), { detail: 'Method Not Allowed' })
  })

  test('/tokenize and /detokenize', async () => {
    const response = await post(vllm, '/tokenize', { prompt: 'Hello big world' })
    assert.equal(response.status, 200)
    const body = await response.json() as any
    assert.deepEqual(Object.keys(body), ['count', 'max_model_len', 'tokens', 'token_strs'])
    assert.equal(body.count, 4)
    assert.equal(body.max_model_len, 64)
    assert.equal(body.tokens[0], BOS_ID)
    assert.equal(body.token_strs, null)
    const plain = await (await post(vllm, '/tokenize', { prompt: 'Hello big world', add_special_tokens: false, return_token_strs: true })).json() as any
    assert.equal(plain.count, 3)
    assert.deepEqual(plain.token_strs, ['Hello', ' big', ' world'])
    const decoded = await (await post(vllm, '/detokenize', { tokens: body.tokens })).json() as any
    assert.deepEqual(decoded, { prompt: '<s>Hello big world' })
    const wrongModel = await post(vllm, '/tokenize', { model: 'other', prompt: 'x' })
    assert.equal(wrongModel.status, 404)
    const missing = await post(vllm, '/tokenize', {})
    assert.equal(missing.status, 400)
    assert.equal((await missing.json() as any).error.type, 'Bad Request')
  })

  test('non-streaming reply: shape, usage, EOS gives stop with stop_reason null', async () => {
    const body = await complete(vllm, { model: 'tiny', prompt: 'Say hello', max_tokens: 32 })
    assert.deepEqual(Object.keys(body), ['id', 'object', 'created', 'model', 'choices', 'service_tier', 'system_fingerprint', 'usage', 'kv_transfer_params'])
    assert.match(body.id, /^cmpl-[0-9a-f]{32}$/)
    assert.equal(body.object, 'text_completion')
    assert.equal(body.model, 'tiny')
    assert.equal(typeof body.created, 'number')
    assert.deepEqual(body.choices, [{
      index: 0,
      text: 'Hello! How can I help?',
      logprobs: null,
      finish_reason: 'stop',
      stop_reason: null,
      token_ids: null,
      prompt_logprobs: null,
      prompt_token_ids: null
    }])
    // 7 scripted tokens + EOS; the prompt is <s> Say hello
    assert.deepEqual(body.usage, { prompt_tokens: 3, total_tokens: 11, completion_tokens: 8, prompt_tokens_details: null })
    const call = vllm.calls[vllm.calls.length - 1]!
    assert.equal(call.promptTokens.length, body.usage.prompt_tokens)
    assert.equal(call.tokensSent, 8)
    assert.equal(call.body.prompt, 'Say hello')
  })

  test('max_tokens defaults to 16', async () => {
    vllm.reply({ kind: 'tokens', tokens: Array.from({ length: 30 }, (_, index) => ` w${index}`) })
    const body = await complete(vllm, { prompt: 'Count' })
    assert.equal(body.choices[0].finish_reason, 'length')
    assert.equal(body.choices[0].stop_reason, null)
    assert.equal(body.usage.completion_tokens, 16)
    assert.equal(body.choices[0].text, Array.from({ length: 16 }, (_, index) => ` w${index}`).join(''))
  })

  test('a stop string is removed from the text and becomes stop_reason', async () => {
    const body = await complete(vllm, { prompt: 'Hi', stop: [' can'] })
    assert.equal(body.choices[0].text, 'Hello! How')
    assert.equal(body.choices[0].finish_reason, 'stop')
    assert.equal(body.choices[0].stop_reason, ' can')
    assert.equal(body.usage.completion_tokens, 4)
    const kept = await complete(vllm, { prompt: 'Hi', stop: 'can', include_stop_str_in_output: true })
    assert.equal(kept.choices[0].text, 'Hello! How can')
    assert.equal(kept.choices[0].stop_reason, 'can')
    // a stop inside one token cuts the token's text
    const inside = await complete(vllm, { prompt: 'Hi', stop: ['ow'] })
    assert.equal(inside.choices[0].text, 'Hello! H')
  })

  test('stop_token_ids stop with the integer id as stop_reason; the token stays out of the text', async () => {
    const id = vllm.tokenizer.idOf(' help')
    const body = await complete(vllm, { prompt: 'Hi', stop_token_ids: [id] })
    assert.equal(body.choices[0].text, 'Hello! How can I')
    assert.equal(body.choices[0].finish_reason, 'stop')
    assert.equal(body.choices[0].stop_reason, id)
    assert.equal(body.usage.completion_tokens, 6)
    const ignored = await complete(vllm, { prompt: 'Hi', ignore_eos: true, max_tokens: 30 })
    assert.equal(ignored.choices[0].finish_reason, 'length')
  })

  test('special tokens vanish with skip_special_tokens (default) and show without it', async () => {
    vllm.reply({ kind: 'tokens', tokens: [{ text: '<|tool|>', special: true }, 'Hi', { text: '<|end|>', special: true }, ' there'] })
    const skipped = await complete(vllm, { prompt: 'x' })
    assert.equal(skipped.choices[0].text, 'Hi there')
    vllm.reply({ kind: 'tokens', tokens: ['Hi', { text: '<|end|>', special: true }, ' there'] })
    const shown = await complete(vllm, { prompt: 'x', skip_special_tokens: false })
    // EOS ends the generation; as the stop-terminating token it is not decoded either way
    assert.equal(shown.choices[0].text, 'Hi<|end|> there')
    assert.equal(shown.choices[0].finish_reason, 'stop')
  })

  test('add_special_tokens defaults to true: a <s>-prefixed prompt gets a doubled BOS', async () => {
    await complete(vllm, { prompt: '<s>[INST] Hi [/INST]' })
    const doubled = vllm.calls[vllm.calls.length - 1]!.promptTokens
    assert.ok(startsWithDoubledBos(doubled))
    await complete(vllm, { prompt: '<s>[INST] Hi [/INST]', add_special_tokens: false })
    const single = vllm.calls[vllm.calls.length - 1]!.promptTokens
    assert.equal(single[0]!.id, BOS_ID)
    assert.ok(!startsWithDoubledBos(single))
    assert.equal(single.length, doubled.length - 1)
  })

  test('streaming: chunk shapes, framing, finish chunk, [DONE]', async () => {
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const payloads = frames(await response.text())
    assert.equal(payloads.at(-1), '[DONE]')
    const chunks = payloads.slice(0, -1).map((payload) => JSON.parse(payload))
    // one chunk per token, EOS included (its text is empty)
    assert.equal(chunks.length, 8)
    for (const chunk of chunks) {
      assert.deepEqual(Object.keys(chunk), ['id', 'object', 'created', 'model', 'choices', 'usage'])
      assert.equal(chunk.object, 'text_completion')
      assert.equal(chunk.usage, null)
      assert.equal(chunk.id, chunks[0].id)
      assert.deepEqual(Object.keys(chunk.choices[0]), ['index', 'text', 'logprobs', 'finish_reason', 'stop_reason', 'prompt_token_ids', 'token_ids'])
    }
    assert.equal(chunks.map((chunk) => chunk.choices[0].text).join(''), 'Hello! How can I help?')
    assert.deepEqual(chunks.slice(0, -1).map((chunk) => chunk.choices[0].finish_reason), Array(7).fill(null))
    const last = chunks.at(-1).choices[0]
    assert.equal(last.text, '')
    assert.equal(last.finish_reason, 'stop')
    assert.equal(last.stop_reason, null)
  })

  test('streaming holds back stop-string prefixes and flushes the rest at the end', async () => {
    vllm.reply({ kind: 'tokens', tokens: ['Hello', ' wor', 'ld', ' Obs', 'ervation', ' more'] })
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true, stop: ['Observation'] })
    const chunks = frames(await response.text()).slice(0, -1).map((payload) => JSON.parse(payload))
    assert.equal(chunks.map((chunk) => chunk.choices[0].text).join(''), 'Hello world ')
    assert.equal(chunks.at(-1).choices[0].stop_reason, 'Observation')
    // max(len(stop)) - 1 = 10 characters stay back until the stop (or the end) settles them
    assert.deepEqual(chunks.map((chunk) => chunk.choices[0].text), ['', '', 'H', 'ello', ' world '])
  })

  test('stream_options.include_usage adds a choices: [] usage chunk before [DONE]; continuous_usage_stats per chunk', async () => {
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true, stream_options: { include_usage: true } })
    const payloads = frames(await response.text())
    assert.equal(payloads.at(-1), '[DONE]')
    const usageChunk = JSON.parse(payloads.at(-2)!)
    assert.deepEqual(Object.keys(usageChunk), ['id', 'object', 'created', 'model', 'choices', 'usage'])
    assert.deepEqual(usageChunk.choices, [])
    assert.deepEqual(usageChunk.usage, { prompt_tokens: 2, total_tokens: 10, completion_tokens: 8 })
    const continuous = frames(await (await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } })).text())
    const first = JSON.parse(continuous[0]!)
    assert.deepEqual(first.usage, { prompt_tokens: 2, total_tokens: 3, completion_tokens: 1, prompt_tokens_details: null })
    // an empty stream_options is truthy in pydantic: include_usage defaults to true
    const empty = frames(await (await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true, stream_options: {} })).text())
    assert.deepEqual(JSON.parse(empty.at(-2)!).choices, [])
  })

  test('stream-error: tokens, then the error event in json.dumps format, then [DONE]', async () => {
    vllm.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'KV cache load failed' })
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true })
    assert.equal(response.status, 200)
    const payloads = frames(await response.text())
    assert.equal(payloads.length, 4)
    assert.equal(JSON.parse(payloads[0]!).choices[0].text, 'Hello')
    assert.equal(payloads[2], '{"error": {"message": "KV cache load failed", "type": "InternalServerError", "param": null, "code": 500}}')
    assert.equal(payloads[3], '[DONE]')
    vllm.replyOnce({ kind: 'stream-error', afterTokens: 0, message: 'bad', status: 400 })
    const plain = await post(vllm, '/v1/completions', { prompt: 'Hi' })
    assert.equal(plain.status, 400)
    assert.deepEqual(await plain.json(), { error: { message: 'bad', type: 'BadRequestError', param: null, code: 400 } })
  })

  test('a client disconnect marks the call aborted and ends the generation', async () => {
    vllm.replyOnce({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 50, firstTokenDelayMs: 10 })
    const controller = new AbortController()
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true }, { signal: controller.signal })
    const index = vllm.calls.length - 1
    const reader = response.body!.getReader()
    await reader.read()
    assert.equal(vllm.activeGenerations(), 1)
    controller.abort()
    await vllm.waitForAbort(index)
    assert.equal(vllm.calls[index]!.aborted, true)
    assert.ok(vllm.calls[index]!.tokensSent < 7)
    assert.equal(vllm.activeGenerations(), 0)
  })

  test('drop destroys the socket mid-stream; hang never answers', async () => {
    vllm.replyOnce({ kind: 'drop', afterTokens: 2 })
    const response = await post(vllm, '/v1/completions', { prompt: 'Hi', stream: true })
    await assert.rejects(response.text())
    vllm.replyOnce({ kind: 'hang' })
    const controller = new AbortController()
    const pending = post(vllm, '/v1/completions', { prompt: 'Hi' }, { signal: controller.signal })
    await delay(30)
    assert.equal(vllm.activeGenerations(), 1)
    controller.abort()
    await assert.rejects(pending)
    await vllm.waitForAbort(vllm.calls.length - 1)
    assert.equal(vllm.activeGenerations(), 0)
  })

  test('validation errors: pydantic 400 "Bad Request", wrong model 404, context overflow 400', async () => {
    const typeError = await post(vllm, '/v1/completions', { prompt: 'Hi', max_tokens: 'many' })
    assert.equal(typeError.status, 400)
    const typeBody = await typeError.json() as any
    assert.deepEqual(Object.keys(typeBody.error), ['message', 'type', 'param', 'code'])
    assert.equal(typeBody.error.type, 'Bad Request')
    assert.equal(typeBody.error.code, 400)
    assert.equal(typeBody.error.param, null)
    assert.equal(typeBody.error.message, "[{'type': 'int_parsing', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'many'}]")
    // pydantic's lax mode takes a numeric string
    assert.equal((await complete(vllm, { prompt: 'Hi', max_tokens: '3' })).usage.completion_tokens, 3)

    const wrongModel = await post(vllm, '/v1/completions', { model: 'gpt-4', prompt: 'Hi' })
    assert.equal(wrongModel.status, 404)
    assert.deepEqual(await wrongModel.json(), { error: { message: 'The model `gpt-4` does not exist.', type: 'NotFoundError', param: null, code: 404 } })

    // <s>, 50 words and the trailing space: 52 tokens > 64 - 20
    const long = await post(vllm, '/v1/completions', { prompt: 'word '.repeat(50), max_tokens: 20 })
    assert.equal(long.status, 400)
    assert.deepEqual(await long.json(), { error: { message: "This model's maximum context length is 44 tokens. However, your request has 52 input tokens. Please reduce the length of the input messages.", type: 'BadRequestError', param: null, code: 400 } })

    const sampling = await post(vllm, '/v1/completions', { prompt: 'Hi', top_k: -2 })
    assert.equal(sampling.status, 400)
    assert.equal((await sampling.json() as any).error.message, 'top_k must be 0 (disable), or at least 1, got -2.')

    const noPrompt = await post(vllm, '/v1/completions', { max_tokens: 3 })
    assert.equal(noPrompt.status, 400)
    assert.match((await noPrompt.json() as any).error.message, /Value error, Either prompt or prompt_embeds must be provided and non-empty\./)

    const options = await post(vllm, '/v1/completions', { prompt: 'Hi', stream_options: { include_usage: true } })
    assert.equal(options.status, 400)
    assert.match((await options.json() as any).error.message, /Stream options can only be defined when `stream=True`\./)

    const badJson = await post(vllm, '/v1/completions', '{"prompt": ')
    assert.equal(badJson.status, 400)
    assert.match((await badJson.json() as any).error.message, /'type': 'json_invalid'/)
    // unknown fields (guided_json is gone in 0.12) are ignored
    assert.equal((await complete(vllm, { prompt: 'Hi', guided_json: { type: 'object' } })).choices[0].finish_reason, 'stop')
  })

  test('structured_outputs is accepted and recorded; more than one kind is a 400', async () => {
    const body = await complete(vllm, { prompt: 'Hi', structured_outputs: { choice: ['yes', 'no'] } })
    assert.equal(body.choices[0].finish_reason, 'stop')
    assert.deepEqual(vllm.calls[vllm.calls.length - 1]!.body.structured_outputs, { choice: ['yes', 'no'] })
    const both = await post(vllm, '/v1/completions', { prompt: 'Hi', structured_outputs: { json: { type: 'object' }, regex: 'a+' } })
    assert.equal(both.status, 400)
    const error = (await both.json() as any).error
    assert.equal(error.type, 'Bad Request')
    assert.match(error.message, /Value error, You can only use one kind of constraints for structured outputs \('json', 'regex' or 'choice'\)\./)
    const grammar = await post(vllm, '/v1/completions', { prompt: 'Hi', structured_outputs: { json: { type: 'object' }, grammar: 'root ::= "a"' } })
    assert.equal(grammar.status, 400)
    assert.match((await grammar.json() as any).error.message, /You can only use one kind of structured outputs constraint but multiple are specified/)
  })

  test('several prompts and n give one choice each; usage sums prompts once', async () => {
    const body = await complete(vllm, { prompt: ['Hi', 'Hello there'], n: 2, max_tokens: 3 })
    assert.deepEqual(body.choices.map((choice: any) => choice.index), [0, 1, 2, 3])
    assert.ok(body.choices.every((choice: any) => choice.text === 'Hello! How' && choice.finish_reason === 'length'))
    assert.deepEqual(body.usage, { prompt_tokens: 5, total_tokens: 17, completion_tokens: 12, prompt_tokens_details: null })
    const ids = await complete(vllm, { prompt: [BOS_ID, 1234], max_tokens: 2, return_token_ids: true })
    assert.deepEqual(ids.choices[0].prompt_token_ids, [BOS_ID, 1234])
    assert.equal(ids.choices[0].token_ids.length, 2)
    assert.notEqual(ids.choices[0].token_ids[1], EOS_ID)
  })
})

describe('fake vLLM --api-key', () => {
  let vllm: FakeVllm
  let endpoint: FakeVllm

  before(async () => {
    vllm = await startFakeVllm({ requiredToken: 'sekrit' })
    endpoint = await startFakeVllm({ requiredToken: 'sekrit', guardAllRoutes: true })
  })
  after(async () => {
    await vllm.close()
    await endpoint.close()
  })

  test('guards /v1 paths only, with {"error":"Unauthorized"}', async () => {
    const denied = await post(vllm, '/v1/completions', { prompt: 'Hi' })
    assert.equal(denied.status, 401)
    assert.deepEqual(await denied.json(), { error: 'Unauthorized' })
    const models = await fetch(vllm.url + '/v1/models', { headers: { authorization: 'Bearer wrong' } })
    assert.equal(models.status, 401)
    assert.equal((await fetch(vllm.url + '/health')).status, 200)
    assert.equal((await fetch(vllm.url + '/version')).status, 200)
    assert.equal((await post(vllm, '/tokenize', { prompt: 'Hi' })).status, 200)
    // the scheme is case-insensitive
    const allowed = await post(vllm, '/v1/completions', { prompt: 'Hi' }, { headers: { 'content-type': 'application/json', authorization: 'bearer sekrit' } })
    assert.equal(allowed.status, 200)
    assert.equal(vllm.calls.length, 1)
  })

  test('guardAllRoutes (an Inference Endpoint) guards every route', async () => {
    assert.equal((await fetch(endpoint.url + '/health')).status, 401)
    assert.equal((await post(endpoint, '/tokenize', { prompt: 'Hi' })).status, 401)
    const ok = await fetch(endpoint.url + '/health', { headers: { authorization: 'Bearer sekrit' } })
    assert.equal(ok.status, 200)
  })
})

