import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeLlamacpp } from './fake-llamacpp.js'
import type { FakeLlamacpp } from './fake-llamacpp.js'
import { BOS_ID, startsWithDoubledBos } from './fake-tokenizer.js'

const MODEL = '/models/llama-3.2-1b-instruct-q4_k_m.gguf'

async function post (engine: FakeLlamacpp, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(engine.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

/** Splits an SSE body into its events, checking each is `<field>: <value>` ended by a blank line. */
function sse (text: string): string[] {
  assert.ok(text.endsWith('\n\n'), `stream does not end with a blank line: ${JSON.stringify(text.slice(-40))}`)
  return text.slice(0, -2).split('\n\n')
}

function data (event: string): any {
  assert.ok(event.startsWith('data: '), `unexpected framing: ${JSON.stringify(event)}`)
  return JSON.parse(event.slice('data: '.length))
}

describe('fake llama.cpp server', () => {
  let engine: FakeLlamacpp

  before(async () => {
    engine = await startFakeLlamacpp({ chatTemplate: '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}', maxModelLen: 64 })
  })
  after(async () => {
    await engine.close()
  })
  beforeEach(() => {
    engine.reply({ kind: 'tokens', tokens: ['Hello', '!', ' How', ' can', ' I', ' help', '?'] })
  })

  test('/health, /props and /v1/models', async () => {
    const health = await fetch(engine.url + '/health')
    assert.equal(health.status, 200)
    assert.equal(health.headers.get('server'), 'llama.cpp')
    assert.deepEqual(await health.json(), { status: 'ok' })

    const props = await (await fetch(engine.url + '/props')).json() as any
    assert.equal(props.model_path, MODEL)
    assert.equal(props.model_alias, MODEL)
    assert.equal(props.bos_token, '<s>')
    assert.equal(props.eos_token, '</s>')
    assert.equal(props.total_slots, 4)
    assert.equal(props.chat_template, '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}')
    assert.equal(props.default_generation_settings.n_ctx, 64)
    assert.equal(props.default_generation_settings.params.n_predict, -1)
    assert.equal(props.default_generation_settings.params.repeat_penalty, 1)

    for (const path of ['/v1/models', '/models']) {
      const models = await (await fetch(engine.url + path)).json() as any
      assert.equal(models.object, 'list')
      assert.equal(models.data.length, 1)
      assert.equal(models.data[0].id, MODEL)
      assert.equal(models.data[0].owned_by, 'llamacpp')
      assert.equal(models.data[0].meta.n_ctx, 64)
      assert.equal(models.models[0].model, MODEL)
    }
    assert.ok(engine.requests.includes('GET /props'))
    assert.ok(engine.requests.includes('GET /v1/models'))
  })

  test('/tokenize does not add BOS by default, parses special tokens, and /detokenize renders them', async () => {
    const plain = await (await post(engine, '/tokenize', { content: '<s>Hello world' })).json() as any
    assert.equal(plain.tokens[0], BOS_ID, 'the <s> text is parsed as the special BOS token')
    assert.equal(plain.tokens.length, 3)
    const withBos = await (await post(engine, '/tokenize', { content: 'Hello world', add_special: true })).json() as any
    assert.deepEqual(withBos.tokens.slice(0, 1), [BOS_ID])
    assert.equal(withBos.tokens.length, 3)
    const pieces = await (await post(engine, '/tokenize', { content: 'Hello world', with_pieces: true })).json() as any
    assert.deepEqual(pieces.tokens.map((token: any) => token.piece), ['Hello', ' world'])
    assert.equal(typeof pieces.tokens[0].id, 'number')
    const detok = await (await post(engine, '/detokenize', { tokens: withBos.tokens })).json() as any
    assert.deepEqual(detok, { content: '<s>Hello world' })
    assert.equal(engine.calls.length, 0, '/tokenize is not a completion call')
  })

  test('non-streamed /v1/completions: shape, usage, finish_reason and no default token limit', async () => {
    const response = await post(engine, '/v1/completions', { prompt: 'Hi there', model: 'whatever' })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8')
    const body = await response.json() as any
    assert.deepEqual(Object.keys(body), ['choices', 'created', 'model', 'system_fingerprint', 'object', 'usage', 'id', 'timings'])
    assert.deepEqual(body.choices, [{ text: 'Hello! How can I help?', index: 0, logprobs: null, finish_reason: 'stop' }])
    assert.equal(body.object, 'text_completion')
    assert.equal(body.model, MODEL)
    assert.match(body.id, /^chatcmpl-[0-9A-Za-z]{24}$/)
    // BOS + 2 words; 7 tokens + EOS (counted by n_decoded)
    assert.deepEqual(body.usage.prompt_tokens, 3)
    assert.equal(body.usage.completion_tokens, 8)
    assert.equal(body.usage.total_tokens, 11)
    assert.equal(typeof body.usage.prompt_tokens_details.cached_tokens, 'number')
    assert.equal(body.stop_type, undefined, 'the OAI route carries no stop_type/stopping_word')

    const call = engine.calls.at(-1)!
    assert.equal(call.path, '/v1/completions')
    assert.equal(call.promptTokens.length, 3)
    assert.equal(call.tokensSent, 8)

    // many tokens and no max_tokens: nothing cuts them (n_predict -1)
    engine.replyOnce({ kind: 'tokens', tokens: Array.from({ length: 40 }, (_, index) => ` w${index}`) })
    const long = await (await post(engine, '/v1/completions', { prompt: 'Go' })).json() as any
    assert.equal(long.choices[0].finish_reason, 'stop')
    assert.equal(long.choices[0].text.split(' ').length - 1, 40)

    const cut = await (await post(engine, '/v1/completions', { prompt: 'Go', max_tokens: 3 })).json() as any
    assert.equal(cut.choices[0].text, 'Hello! How')
    assert.equal(cut.choices[0].finish_reason, 'length')
    assert.equal(cut.usage.completion_tokens, 3)
  })

  test('the native /completion route reports stop_type and stopping_word', async () => {
    const body = await (await post(engine, '/completion', { prompt: 'Hi', stop: [' can'], n_predict: 50 })).json() as any
    assert.equal(body.content, 'Hello! How')
    assert.equal(body.stop, true)
    assert.equal(body.stop_type, 'word')
    assert.equal(body.stopping_word, ' can')
    assert.equal(body.tokens_evaluated, 2)
    assert.equal(body.prompt, '<s>Hi')
    const eos = await (await post(engine, '/completion', { prompt: 'Hi' })).json() as any
    assert.equal(eos.stop_type, 'eos')
    assert.equal(eos.stopping_word, '')
  })

  test('a stop word is removed from the text; a string stop works too', async () => {
    const body = await (await post(engine, '/v1/completions', { prompt: 'Hi', stop: ['help'] })).json() as any
    assert.equal(body.choices[0].text, 'Hello! How can I ')
    assert.equal(body.choices[0].finish_reason, 'stop')
    const single = await (await post(engine, '/v1/completions', { prompt: 'Hi', stop: '!' })).json() as any
    assert.equal(single.choices[0].text, 'Hello')
  })

  test('a prompt that already starts with <s> is fed with a doubled BOS', async () => {
    await (await post(engine, '/v1/completions', { prompt: '<s>[INST] Hi [/INST]' })).json()
    const tokens = engine.calls.at(-1)!.promptTokens
    assert.ok(startsWithDoubledBos(tokens))
    assert.equal(tokens[0]!.id, BOS_ID)
    await (await post(engine, '/v1/completions', { prompt: '[INST] Hi [/INST]' })).json()
    assert.ok(!startsWithDoubledBos(engine.calls.at(-1)!.promptTokens))
    assert.equal(engine.calls.at(-1)!.promptTokens[0]!.id, BOS_ID)
  })

  test('stream framing: one data event per token, a final chunk with usage, then [DONE]', async () => {
    const response = await post(engine, '/v1/completions', { prompt: 'Hi', stream: true, stop: [' can I'] })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    assert.equal(response.headers.get('x-accel-buffering'), 'no')
    const events = sse(await response.text())
    assert.equal(events.at(-1), 'data: [DONE]')
    const chunks = events.slice(0, -1).map(data)
    const final = chunks.at(-1)
    assert.deepEqual(final.choices, [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }])
    assert.equal(final.usage.completion_tokens, 5)
    const texts = chunks.slice(0, -1).map((chunk) => {
      assert.deepEqual(Object.keys(chunk), ['choices', 'created', 'model', 'system_fingerprint', 'object', 'id'])
      assert.equal(chunk.choices[0].finish_reason, null)
      return chunk.choices[0].text
    })
    // ' can' is held back as a possible start of ' can I', then dropped with it
    assert.deepEqual(texts, ['Hello', '!', ' How', '', ''])
    assert.equal(texts.join(''), 'Hello! How')
  })

  test('the end-of-sequence token streams an empty chunk; special tokens render empty', async () => {
    engine.replyOnce({ kind: 'tokens', tokens: ['A', { text: '<|eot_id|>', special: true }, 'B'] })
    const events = sse(await (await post(engine, '/v1/completions', { prompt: 'Hi', stream: true })).text())
    const texts = events.slice(0, -2).map((event) => data(event).choices[0].text)
    assert.deepEqual(texts, ['A', '', 'B', ''])
  })

  test('an in-stream error is a data event with an error object, and the stream ends without [DONE]', async () => {
    engine.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'failed to decode the batch' })
    const events = sse(await (await post(engine, '/v1/completions', { prompt: 'Hi', stream: true })).text())
    assert.equal(events.length, 3)
    assert.equal(events[2], 'data: {"error":{"code":500,"message":"failed to decode the batch","type":"server_error"}}')
    assert.equal(engine.calls.at(-1)!.tokensSent, 2)

    engine.replyOnce({ kind: 'stream-error', afterTokens: 1, message: 'boom' })
    const plain = await post(engine, '/v1/completions', { prompt: 'Hi' })
    assert.equal(plain.status, 500)
    assert.deepEqual(await plain.json(), { error: { code: 500, message: 'boom', type: 'server_error' } })
  })

  test('legacy builds frame the in-stream error as an `error:` line, then [DONE]', async () => {
    const legacy = await startFakeLlamacpp({ legacyStreamErrors: true })
    try {
      legacy.replyOnce({ kind: 'stream-error', afterTokens: 1, message: 'boom' })
      const text = await (await post(legacy, '/v1/completions', { prompt: 'Hi', stream: true })).text()
      const events = sse(text)
      assert.equal(events.length, 3)
      assert.equal(events[1], 'error: {"code":500,"message":"boom","type":"server_error"}')
      assert.equal(events[2], 'data: [DONE]')
    } finally {
      await legacy.close()
    }
  })

  test('a client that disconnects mid-stream aborts the call', async () => {
    engine.replyOnce({ kind: 'tokens', tokens: Array.from({ length: 50 }, () => ' x'), delayMs: 20 })
    const controller = new AbortController()
    const response = await fetch(engine.url + '/v1/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Hi', stream: true }),
      signal: controller.signal
    })
    const reader = response.body!.getReader()
    await reader.read()
    const index = engine.calls.length - 1
    assert.equal(engine.activeGenerations(), 1)
    controller.abort()
    await engine.waitForAbort(index)
    assert.equal(engine.calls[index]!.aborted, true)
    assert.ok(engine.calls[index]!.tokensSent < 50)
    assert.equal(engine.activeGenerations(), 0)
  })

  test('drop destroys the socket; hang never answers', async () => {
    engine.replyOnce({ kind: 'drop', afterTokens: 2 })
    const response = await post(engine, '/v1/completions', { prompt: 'Hi', stream: true })
    await assert.rejects(response.text())

    engine.replyOnce({ kind: 'hang' })
    const controller = new AbortController()
    const pending = fetch(engine.url + '/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'Hi' }), signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const index = engine.calls.length - 1
    assert.equal(engine.activeGenerations(), 1)
    controller.abort()
    await assert.rejects(pending)
    await engine.waitForAbort(index)
  })

  test('errors: status and {error: {code, message, type}}', async () => {
    const overflow = await post(engine, '/v1/completions', { prompt: Array.from({ length: 70 }, () => 'w').join(' ') })
    assert.equal(overflow.status, 400)
    assert.deepEqual(await overflow.json(), {
      error: {
        code: 400,
        message: 'request (71 tokens) exceeds the available context size (64 tokens), try increasing it',
        type: 'exceed_context_size_error',
        n_prompt_tokens: 71,
        n_ctx: 64
      }
    })
    // the first error of a stream is still a plain HTTP error
    const streamed = await post(engine, '/v1/completions', { prompt: Array.from({ length: 70 }, () => 'w').join(' '), stream: true })
    assert.equal(streamed.status, 400)
    assert.equal(streamed.headers.get('content-type'), 'application/json; charset=utf-8')

    const missing = await post(engine, '/v1/completions', { max_tokens: 5 })
    assert.equal(missing.status, 400)
    assert.deepEqual(await missing.json(), { error: { code: 400, message: "[json.exception.out_of_range.403] key 'prompt' not found", type: 'invalid_request_error' } })

    const badPrompt = await (await post(engine, '/v1/completions', { prompt: { text: 'x' } })).json() as any
    assert.equal(badPrompt.error.message, '"prompt" must be a string, a list of tokens, a list of mixed strings & tokens, or a list of prompts')

    const negative = await post(engine, '/v1/completions', { prompt: 'Hi', max_tokens: -5 })
    assert.equal(negative.status, 400)
    assert.equal((await negative.json() as any).error.message, "Field 'max_tokens': Value must be between -1 <= value <= 2147483647, but got -5")

    const wrongType = await (await post(engine, '/v1/completions', { prompt: 'Hi', n_predict: 'ten' })).json() as any
    assert.equal(wrongType.error.message, "Field 'n_predict': [json.exception.type_error.302] type must be number, but is string")

    const badJson = await post(engine, '/v1/completions', '{not json')
    assert.equal(badJson.status, 500)
    const badJsonBody = await badJson.json() as any
    assert.equal(badJsonBody.error.type, 'server_error')
    assert.match(badJsonBody.error.message, /^\[json\.exception\.parse_error\.101\]/)

    const notFound = await fetch(engine.url + '/v1/chat/nothing')
    assert.equal(notFound.status, 404)
    assert.deepEqual(await notFound.json(), { error: { message: 'File Not Found', type: 'not_found_error', code: 404 } })
  })

  test('json_schema is accepted and recorded; response_format and OpenAI-only fields are ignored', async () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } }
    const response = await post(engine, '/v1/completions', {
      prompt: 'Hi',
      json_schema: schema,
      response_format: { type: 'json_object' },
      top_k: 20,
      min_p: 0.1,
      repeat_penalty: 1.1,
      repetition_penalty: 1.3,
      seed: 42
    })
    assert.equal(response.status, 200)
    const call = engine.calls.at(-1)!
    assert.deepEqual(call.body.json_schema, schema)
    assert.equal(call.body.seed, 42)
  })
})

describe('fake llama.cpp server: loading and the API key', () => {
  test('answers the Loading model 503 on every route while loading, then serves', async () => {
    const engine = await startFakeLlamacpp({ loadingMs: 150 })
    try {
      for (const path of ['/health', '/v1/models', '/props']) {
        const response = await fetch(engine.url + path)
        assert.equal(response.status, 503)
        assert.deepEqual(await response.json(), { error: { message: 'Loading model', type: 'unavailable_error', code: 503 } })
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal((await fetch(engine.url + '/health')).status, 200)
      engine.setLoading(true)
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' })).status, 503)
      assert.equal(engine.calls.length, 0)
      engine.setLoading(false)
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' })).status, 200)
    } finally {
      await engine.close()
    }
  })

  test('--api-key guards everything but /health and /models; the loading check comes first', async () => {
    const engine = await startFakeLlamacpp({ requiredToken: 'sekret' })
    try {
      assert.equal((await fetch(engine.url + '/health')).status, 200)
      assert.equal((await fetch(engine.url + '/v1/models')).status, 200)
      const props = await fetch(engine.url + '/props')
      assert.equal(props.status, 401)
      assert.deepEqual(await props.json(), { error: { message: 'Invalid API Key', type: 'authentication_error', code: 401 } })
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' })).status, 401)
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' }, { authorization: 'Bearer wrong' })).status, 401)
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' }, { authorization: 'Bearer sekret' })).status, 200)
      assert.equal((await post(engine, '/v1/completions', { prompt: 'Hi' }, { 'x-api-key': 'sekret' })).status, 200)
      engine.setLoading(true)
      assert.equal((await fetch(engine.url + '/props')).status, 503)
    } finally {
      await engine.close()
    }
  })

  test('guardAllRoutes: an Inference Endpoint guards /health too', async () => {
    const engine = await startFakeLlamacpp({ requiredToken: 'hf_x', guardAllRoutes: true })
    try {
      assert.equal((await fetch(engine.url + '/health')).status, 401)
      assert.equal((await fetch(engine.url + '/health', { headers: { authorization: 'Bearer hf_x' } })).status, 200)
    } finally {
      await engine.close()
    }
  })

  test('serves the alias as the model id, and a tokenizer without BOS', async () => {
    const engine = await startFakeLlamacpp({ servedModelName: 'qwen', tokenizer: { bosToken: null, eosToken: '<|im_end|>' } })
    try {
      const models = await (await fetch(engine.url + '/v1/models')).json() as any
      assert.equal(models.data[0].id, 'qwen')
      const props = await (await fetch(engine.url + '/props')).json() as any
      assert.equal(props.bos_token, '')
      assert.equal(props.model_path, MODEL)
      const body = await (await post(engine, '/v1/completions', { prompt: 'Hi' })).json() as any
      assert.equal(body.model, 'qwen')
      assert.equal(engine.calls[0]!.promptTokens.length, 1)
    } finally {
      await engine.close()
    }
  })
})
