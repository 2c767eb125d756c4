import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeSglang } from './fake-sglang.js'
import type { FakeSglang } from './fake-sglang.js'
import { startsWithDoubledBos } from './fake-tokenizer.js'

async function post (engine: FakeSglang, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return await fetch(engine.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init
  })
}

/** SGLang's framing: `data: <json>\n\n` per event, `data: [DONE]\n\n` last. */
function events (text: string): Array<Record<string, any> | '[DONE]'> {
  assert.ok(text.endsWith('\n\n'), `stream does not end with a blank line: ${JSON.stringify(text)}`)
  return text.slice(0, -2).split('\n\n').map((block) => {
    assert.ok(block.startsWith('data: '), `unexpected event framing: ${JSON.stringify(block)}`)
    const data = block.slice('data: '.length)
    return data === '[DONE]' ? '[DONE]' : JSON.parse(data)
  })
}

describe('fake SGLang', () => {
  let sglang: FakeSglang

  before(async () => {
    sglang = await startFakeSglang({ modelPath: 'acme/tiny-chat', servedModelName: 'tiny', maxModelLen: 64 })
  })
  after(async () => {
    await sglang.close()
  })
  beforeEach(() => {
    sglang.reply({ kind: 'tokens', tokens: ['Hello', '!', ' How', ' can', ' I', ' help', '?'] })
  })

  test('/get_model_info, /v1/models, /health and the request log', async () => {
    const before = sglang.requests.length
    const info = await (await fetch(sglang.url + '/get_model_info')).json() as Record<string, unknown>
    assert.deepEqual(Object.keys(info), ['model_path', 'tokenizer_path', 'is_generation', 'preferred_sampling_params', 'weight_version', 'has_image_understanding', 'has_audio_understanding', 'model_type', 'architectures'])
    assert.equal(info.model_path, 'acme/tiny-chat')
    assert.equal(info.is_generation, true)
    assert.equal(info.weight_version, 'default')

    const models = await (await fetch(sglang.url + '/v1/models')).json() as any
    assert.equal(models.object, 'list')
    assert.equal(models.data.length, 1)
    assert.deepEqual({ ...models.data[0], created: 0 }, { id: 'tiny', object: 'model', created: 0, owned_by: 'sglang', root: 'tiny', parent: null, max_model_len: 64 })
    const one = await fetch(sglang.url + '/v1/models/other')
    assert.equal(one.status, 404)
    assert.deepEqual(await one.json(), { error: { message: "The model 'other' does not exist", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } })

    const health = await fetch(sglang.url + '/health')
    assert.equal(health.status, 200)
    assert.equal(await health.text(), '')
    assert.deepEqual(sglang.requests.slice(before), ['GET /get_model_info', 'GET /v1/models', 'GET /v1/models/other', 'GET /health'])
  })

  test('/tokenize: tokens, count, max_model_len; add_special_tokens decides the BOS', async () => {
    const withBos = await (await post(sglang, '/tokenize', { prompt: 'Hello world' })).json() as any
    assert.deepEqual(Object.keys(withBos), ['tokens', 'count', 'max_model_len'])
    assert.equal(withBos.tokens[0], 1)
    assert.equal(withBos.count, 3)
    assert.equal(withBos.max_model_len, 64)
    const without = await (await post(sglang, '/v1/tokenize', { prompt: 'Hello world', add_special_tokens: false })).json() as any
    assert.deepEqual(without.tokens, withBos.tokens.slice(1))
    const batch = await (await post(sglang, '/tokenize', { prompt: ['a', 'b c'] })).json() as any
    assert.deepEqual(batch.count, [2, 3])
    const neither = await post(sglang, '/tokenize', { model: 'tiny' })
    assert.equal(neither.status, 400)
    assert.match((await neither.json() as any).message, /Exactly one of 'prompt' or 'messages' must be provided/)
  })

  test('non-stream: text, EOS as matched_stop (its id), usage, metadata', async () => {
    const response = await post(sglang, '/v1/completions', { model: 'whatever', prompt: 'Say hello', max_tokens: 32 })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/json')
    const body = await response.json() as any
    assert.deepEqual(Object.keys(body), ['id', 'object', 'created', 'model', 'choices', 'usage', 'metadata'])
    assert.match(body.id, /^[0-9a-f]{32}$/)
    assert.equal(body.object, 'text_completion')
    // SGLang echoes the request's model, whatever it is
    assert.equal(body.model, 'whatever')
    assert.deepEqual(body.choices, [{ index: 0, text: 'Hello! How can I help?', logprobs: null, finish_reason: 'stop', matched_stop: 2 }])
    const call = sglang.calls.at(-1)!
    assert.deepEqual(body.usage, { prompt_tokens: call.promptTokens.length, total_tokens: call.promptTokens.length + 8, completion_tokens: 8, prompt_tokens_details: null, reasoning_tokens: 0 })
    assert.deepEqual(body.metadata, { weight_version: 'default' })
    assert.equal(call.samplingParams?.max_new_tokens, 32)
    assert.equal(call.tokensSent, 8)
  })

  test('max_tokens defaults to 16 and cuts with finish_reason length, matched_stop null', async () => {
    sglang.replyOnce({ kind: 'tokens', tokens: Array.from({ length: 20 }, (_, index) => ` w${index}`) })
    const body = await (await post(sglang, '/v1/completions', { prompt: 'Count' })).json() as any
    assert.equal(body.choices[0].finish_reason, 'length')
    assert.equal(body.choices[0].matched_stop, null)
    assert.equal(body.usage.completion_tokens, 16)
    assert.equal(body.choices[0].text, Array.from({ length: 16 }, (_, index) => ` w${index}`).join(''))
    assert.equal(body.model, 'default')
  })

  test('stop strings: matched_stop is the string, trimmed from the text unless no_stop_trim', async () => {
    const trimmed = await (await post(sglang, '/v1/completions', { prompt: 'Hi', stop: [' can', '!'] })).json() as any
    assert.equal(trimmed.choices[0].text, 'Hello')
    assert.equal(trimmed.choices[0].finish_reason, 'stop')
    assert.equal(trimmed.choices[0].matched_stop, '!')
    assert.equal(trimmed.usage.completion_tokens, 2)
    const kept = await (await post(sglang, '/v1/completions', { prompt: 'Hi', stop: ' can', no_stop_trim: true })).json() as any
    assert.equal(kept.choices[0].text, 'Hello! How can')
    assert.equal(kept.choices[0].matched_stop, ' can')
  })

  test('stop_token_ids: matched_stop is the token id (an int), the token trimmed', async () => {
    const tokenized = await (await post(sglang, '/tokenize', { prompt: ' there', add_special_tokens: false })).json() as any
    const thereId = tokenized.tokens[0] as number
    sglang.replyOnce({ kind: 'tokens', tokens: ['Hi', ' there', ' more'] })
    const body = await (await post(sglang, '/v1/completions', { prompt: 'x', stop_token_ids: [thereId] })).json() as any
    assert.equal(body.choices[0].text, 'Hi')
    assert.equal(body.choices[0].finish_reason, 'stop')
    assert.equal(body.choices[0].matched_stop, thereId)
    assert.equal(body.usage.completion_tokens, 2)
  })

  test('special tokens are skipped by default; the EOS is trimmed even when they are not', async () => {
    sglang.reply({ kind: 'tokens', tokens: ['A', { text: '<|tag|>', special: true }, 'B'] })
    const skipped = await (await post(sglang, '/v1/completions', { prompt: 'x' })).json() as any
    assert.equal(skipped.choices[0].text, 'AB')
    const shown = await (await post(sglang, '/v1/completions', { prompt: 'x', skip_special_tokens: false })).json() as any
    assert.equal(shown.choices[0].text, 'A<|tag|>B')
    const withEos = await (await post(sglang, '/v1/completions', { prompt: 'x', skip_special_tokens: false, no_stop_trim: true })).json() as any
    assert.equal(withEos.choices[0].text, 'A<|tag|>B</s>')
    assert.equal(withEos.choices[0].matched_stop, 2)
  })

  test('a string prompt is encoded with the BOS added: a <s>-prefixed prompt doubles it', async () => {
    await post(sglang, '/v1/completions', { prompt: '<s>[INST] Hi [/INST]' })
    const doubled = sglang.calls.at(-1)!
    assert.ok(startsWithDoubledBos(doubled.promptTokens))
    await post(sglang, '/v1/completions', { prompt: '[INST] Hi [/INST]' })
    const single = sglang.calls.at(-1)!
    assert.equal(single.promptTokens[0]!.id, 1)
    assert.ok(!startsWithDoubledBos(single.promptTokens))
    const body = await (await post(sglang, '/v1/completions', { prompt: '<s>[INST] Hi [/INST]' })).json() as any
    assert.equal(body.usage.prompt_tokens, doubled.promptTokens.length)
    // token-id prompts go in untouched
    await post(sglang, '/v1/completions', { prompt: [1, 1000, 1001] })
    assert.deepEqual(sglang.calls.at(-1)!.promptTokens.map((token) => token.id), [1, 1000, 1001])
  })

  test('a Qwen-like tokenizer without BOS adds nothing', async () => {
    const qwen = await startFakeSglang({ tokenizer: { bosToken: null, eosToken: '<|im_end|>', specialTokens: ['<|im_start|>'] } })
    try {
      await post(qwen, '/v1/completions', { prompt: '<|im_start|>user\nHi<|im_end|>' })
      assert.equal(qwen.calls[0]!.promptTokens[0]!.text, '<|im_start|>')
    } finally {
      await qwen.close()
    }
  })

  test('stream: SGLang framing, one chunk per token, the finish on the last, [DONE]', async () => {
    const response = await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const list = events(await response.text())
    assert.equal(list.at(-1), '[DONE]')
    const chunks = list.slice(0, -1) as Array<Record<string, any>>
    assert.equal(chunks.length, 8)
    for (const chunk of chunks) {
      assert.deepEqual(Object.keys(chunk), ['id', 'object', 'created', 'model', 'choices', 'usage'])
      assert.equal(chunk.object, 'text_completion')
      assert.equal(chunk.usage, null)
      assert.equal(chunk.id, chunks[0]!.id)
      assert.deepEqual(Object.keys(chunk.choices[0]), ['index', 'text', 'logprobs', 'finish_reason', 'matched_stop'])
    }
    assert.equal(chunks.map((chunk) => chunk.choices[0].text).join(''), 'Hello! How can I help?')
    assert.deepEqual(chunks.slice(0, -1).map((chunk) => chunk.choices[0].finish_reason), Array(7).fill(null))
    assert.deepEqual(chunks.at(-1)!.choices[0], { index: 0, text: '', logprobs: null, finish_reason: 'stop', matched_stop: 2 })
    assert.equal(sglang.calls.at(-1)!.tokensSent, 8)
  })

  test('stream: include_usage adds a choices-less usage chunk (no null fields) before [DONE]', async () => {
    const text = await (await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true, stream_options: { include_usage: true }, stop: '!' })).text()
    const list = events(text)
    assert.equal(list.at(-1), '[DONE]')
    const usage = list.at(-2) as Record<string, any>
    assert.deepEqual(usage.choices, [])
    const prompt = sglang.calls.at(-1)!.promptTokens.length
    assert.deepEqual(usage.usage, { prompt_tokens: prompt, total_tokens: prompt + 2, completion_tokens: 2, reasoning_tokens: 0 })
    const chunks = list.slice(0, -2) as Array<Record<string, any>>
    // the stop string's token finishes with an empty delta: the trimmed text is no longer than what was sent
    assert.deepEqual(chunks.map((chunk) => chunk.choices[0].text), ['Hello', ''])
    assert.equal(chunks.at(-1)!.choices[0].matched_stop, '!')
  })

  test('stream-error: the tokens, then SGLang\'s error event (json.dumps spacing), then [DONE]', async () => {
    sglang.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'CUDA out of memory', status: 503 })
    const text = await (await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true })).text()
    const blocks = text.split('\n\n')
    assert.equal(blocks[2], 'data: {"error": {"object": "error", "message": "CUDA out of memory", "type": "SERVICE_UNAVAILABLE", "param": null, "code": 503}}')
    const list = events(text)
    assert.equal(list.length, 4)
    assert.equal(list[3], '[DONE]')
    assert.equal(sglang.calls.at(-1)!.tokensSent, 2)

    sglang.replyOnce({ kind: 'stream-error', afterTokens: 0, message: 'boom' })
    const early = await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true })
    assert.equal(early.status, 200)
    assert.deepEqual(events(await early.text()), [{ error: { object: 'error', message: 'boom', type: 'INTERNAL_SERVER_ERROR', param: null, code: 500 } }, '[DONE]'])

    sglang.replyOnce({ kind: 'stream-error', afterTokens: 0, message: 'bad grammar', status: 400 })
    const unstreamed = await post(sglang, '/v1/completions', { prompt: 'Hi' })
    assert.equal(unstreamed.status, 400)
    assert.deepEqual(await unstreamed.json(), { object: 'error', message: 'bad grammar', type: 'BadRequestError', param: null, code: 400 })
  })

  test('a client disconnect aborts the generation', async () => {
    sglang.replyOnce({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 100 })
    const controller = new AbortController()
    const response = await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true }, { signal: controller.signal })
    const reader = response.body!.getReader()
    await reader.read()
    assert.equal(sglang.activeGenerations(), 1)
    controller.abort()
    await sglang.waitForAbort(sglang.calls.length - 1)
    assert.equal(sglang.calls.at(-1)!.aborted, true)
    assert.equal(sglang.activeGenerations(), 0)
  })

  test('drop destroys the socket; hang never answers', async () => {
    sglang.replyOnce({ kind: 'drop', afterTokens: 1 })
    const response = await post(sglang, '/v1/completions', { prompt: 'Hi', stream: true })
    await assert.rejects(response.text())

    sglang.replyOnce({ kind: 'hang' })
    const controller = new AbortController()
    const pending = post(sglang, '/v1/completions', { prompt: 'Hi' }, { signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(sglang.activeGenerations(), 1)
    controller.abort()
    await assert.rejects(pending)
    await sglang.waitForAbort(sglang.calls.length - 1)
    assert.equal(sglang.activeGenerations(), 0)
  })

  test('validation: pydantic errors are 400 with the flat ErrorResponse; json_schema must be a string', async () => {
    const response = await post(sglang, '/v1/completions', { prompt: 'Hi', json_schema: { type: 'object' } })
    assert.equal(response.status, 400)
    const body = await response.json() as any
    assert.deepEqual(Object.keys(body), ['object', 'message', 'type', 'param', 'code'])
    assert.equal(body.object, 'error')
    assert.equal(body.type, 'Bad Request')
    assert.equal(body.param, null)
    assert.equal(body.code, 400)
    assert.match(body.message, /^1 validation error:\n {2}\{'type': 'string_type', 'loc': \('body', 'json_schema'\), 'msg': 'Input should be a valid string', 'input': \{'type': 'object'\}\}/)

    const ok = await post(sglang, '/v1/completions', { prompt: 'Hi', json_schema: '{"type": "object"}' })
    assert.equal(ok.status, 200)
    assert.equal(sglang.calls.at(-1)!.samplingParams?.json_schema, '{"type": "object"}')

    const missing = await (await post(sglang, '/v1/completions', { model: 'x' })).json() as any
    assert.match(missing.message, /'type': 'missing', 'loc': \('body', 'prompt'\), 'msg': 'Field required'/)
    const zero = await (await post(sglang, '/v1/completions', { prompt: 'Hi', max_tokens: 0 })).json() as any
    assert.match(zero.message, /Value error, max_tokens must be positive/)
    const two = await (await post(sglang, '/v1/completions', { prompt: 'Hi', stream: 'maybe', top_k: 1.5 })).json() as any
    assert.match(two.message, /^2 validation errors:/)

    const notJson = await fetch(sglang.url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"prompt":"Hi"}' })
    assert.equal(notJson.status, 400)
    assert.match((await notJson.json() as any).message, /Unsupported Media Type: Only 'application\/json' is allowed/)
    const broken = await fetch(sglang.url + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":' })
    assert.equal(broken.status, 400)
    assert.match((await broken.json() as any).message, /json_invalid/)
  })

  test('serving errors: empty prompt, prompt too long, sampling checks', async () => {
    const empty = await post(sglang, '/v1/completions', { prompt: '' })
    assert.equal(empty.status, 400)
    assert.deepEqual(await empty.json(), { object: 'error', message: 'Prompt cannot be empty', type: 'BadRequestError', param: null, code: 400 })

    const long = await (await post(sglang, '/v1/completions', { prompt: Array(70).fill('w').join(' ') })).json() as any
    assert.equal(long.message, "The input (71 tokens) is longer than the model's context length (64 tokens).")
    const total = await (await post(sglang, '/v1/completions', { prompt: 'one two three', max_tokens: 62 })).json() as any
    assert.match(total.message, /^Requested token count exceeds the model's maximum context length of 64 tokens\. You requested a total of 66 tokens: 4 tokens from the input messages and 62 tokens for the completion\./)

    const topK = await (await post(sglang, '/v1/completions', { prompt: 'Hi', top_k: 0 })).json() as any
    assert.equal(topK.message, 'top_k must be -1 (disable) or at least 1, got 0.')
    const repetition = await (await post(sglang, '/v1/completions', { prompt: 'Hi', repetition_penalty: 3 })).json() as any
    assert.equal(repetition.message, 'repetition_penalty must be in (0, 2] (1.0 = no penalty), got 3.0.')
    const minP = await (await post(sglang, '/v1/completions', { prompt: 'Hi', min_p: 1.5 })).json() as any
    assert.equal(minP.message, 'min_p must be in [0, 1], got 1.5.')
    const grammars = await (await post(sglang, '/v1/completions', { prompt: 'Hi', regex: 'a+', json_schema: '{}' })).json() as any
    assert.equal(grammars.message, 'Only one of regex, json_schema, or ebnf can be set.')
    const noSchema = await (await post(sglang, '/v1/completions', { prompt: 'Hi', response_format: { type: 'json_schema' } })).json() as any
    assert.equal(noSchema.message, 'schema_ is required for json_schema response format request.')
    await post(sglang, '/v1/completions', { prompt: 'Hi', response_format: { type: 'json_object' } })
    assert.equal(sglang.calls.at(-1)!.samplingParams?.json_schema, '{"type": "object"}')
    // temperature 0 is greedy (top_k 1), seed is passed on as sampling_seed
    const greedy = await post(sglang, '/v1/completions', { prompt: 'Hi', temperature: 0, top_k: 5, min_p: 0.1, repetition_penalty: 1.1, seed: 7 })
    assert.equal(greedy.status, 200)
    assert.equal(sglang.calls.at(-1)!.samplingParams?.sampling_seed, 7)
  })

  test('unknown routes 404 and wrong methods 405, as FastAPI answers', async () => {
    const missing = await fetch(sglang.url + '/v1/chat/nothing')
    assert.equal(missing.status, 404)
    assert.deepEqual(await missing.json(), { detail: 'Not Found' })
    const method = await fetch(sglang.url + '/v1/completions')
    assert.equal(method.status, 405)
    assert.deepEqual(await method.json(), { detail: 'Method Not Allowed' })
  })
})

describe('fake SGLang error variants', () => {
  test('wrappedErrors: the OpenAI envelope for validation and serving errors', async () => {
    const sglang = await startFakeSglang({ wrappedErrors: true })
    try {
      const invalid = await post(sglang, '/v1/completions', { prompt: 'Hi', json_schema: {} })
      assert.equal(invalid.status, 400)
      const body = await invalid.json() as any
      assert.deepEqual(Object.keys(body), ['error'])
      assert.deepEqual(Object.keys(body.error), ['message', 'type', 'param', 'code'])
      assert.equal(body.error.code, 400)
      assert.match(body.error.message, /json_schema/)
      const empty = await (await post(sglang, '/v1/completions', { prompt: [] })).json()
      assert.deepEqual(empty, { error: { message: 'Prompt cannot be empty', type: 'BadRequestError', param: null, code: 400 } })
    } finally {
      await sglang.close()
    }
  })

  test('legacyErrors: FastAPI\'s own 422 detail list for validation, flat serving errors', async () => {
    const sglang = await startFakeSglang({ legacyErrors: true })
    try {
      const invalid = await post(sglang, '/v1/completions', { prompt: 'Hi', json_schema: { a: 1 } })
      assert.equal(invalid.status, 422)
      assert.deepEqual(await invalid.json(), { detail: [{ type: 'string_type', loc: ['body', 'json_schema'], msg: 'Input should be a valid string', input: { a: 1 } }] })
      const empty = await post(sglang, '/v1/completions', { prompt: '' })
      assert.equal(empty.status, 400)
      assert.equal((await empty.json() as any).object, 'error')
    } finally {
      await sglang.close()
    }
  })
})

describe('fake SGLang --api-key', () => {
  test('every route but /health* needs the key; 401 {"error":"Unauthorized"}', async () => {
    const sglang = await startFakeSglang({ requiredToken: 'sekret' })
    try {
      for (const path of ['/v1/models', '/get_model_info', '/nope']) {
        const response = await fetch(sglang.url + path)
        assert.equal(response.status, 401, path)
        assert.deepEqual(await response.json(), { error: 'Unauthorized' })
      }
      const completion = await post(sglang, '/v1/completions', { prompt: 'Hi' })
      assert.equal(completion.status, 401)
      assert.equal(sglang.calls.length, 0)
      assert.equal((await fetch(sglang.url + '/health')).status, 200)
      assert.equal((await fetch(sglang.url + '/health_generate')).status, 200)
      assert.equal((await fetch(sglang.url + '/v1/models', { headers: { authorization: 'Bearer sekret' } })).status, 200)
      assert.equal((await fetch(sglang.url + '/v1/models', { headers: { authorization: 'bearer sekret' } })).status, 200)
      assert.equal((await fetch(sglang.url + '/v1/models', { headers: { 'x-api-key': 'sekret' } })).status, 200)
      assert.equal((await fetch(sglang.url + '/v1/models', { headers: { authorization: 'Bearer wrong' } })).status, 401)
    } finally {
      await sglang.close()
    }
  })

  test('guardAllRoutes (an Inference Endpoint): /health needs it too', async () => {
    const sglang = await startFakeSglang({ requiredToken: 'hf_x', guardAllRoutes: true })
    try {
      assert.equal((await fetch(sglang.url + '/health')).status, 401)
      assert.equal((await fetch(sglang.url + '/health', { headers: { authorization: 'Bearer hf_x' } })).status, 200)
    } finally {
      await sglang.close()
    }
  })
})
