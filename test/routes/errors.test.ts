import test from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, postJson, readSse, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'

function nested (depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = {}
  for (let level = 0; level < depth; level++) value = { a: value }
  return value
}

async function errorOf (response: Response): Promise<{ message: string, type: string, param: string | null, code: string | null }> {
  const body = await response.json()
  assertMatchesOpenAI('ErrorResponse', body)
  return body.error
}

test('bad request bodies get 400 naming the param, and nothing goes upstream', async (t) => {
  const { url, tgi } = await startGateway(t)
  const endpoint = `${url}/v1/chat/completions`
  const invalidJson = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": "x", "messages": [' })
  assert.equal(invalidJson.status, 400)
  assert.equal((await errorOf(invalidJson)).code, 'invalid_json')

  const cases: Array<[unknown, string]> = [
    [{ model: ZEPHYR }, 'messages'],
    [{ messages: ZEPHYR_MESSAGES }, 'model'],
    [{ model: ZEPHYR, messages: [] }, 'messages'],
    [{ model: ZEPHYR, messages: 'hi' }, 'messages'],
    [{ model: ZEPHYR, messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ model: ZEPHYR, messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, temperature: 3 }, 'temperature'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, temperature: 'hot' }, 'temperature'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, top_p: 0 }, 'top_p'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_tokens: 0 }, 'max_tokens'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_tokens: 1.5 }, 'max_tokens'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, n: 2 }, 'n'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: [''] }, 'stop[0]'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: 5 }, 'stop'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, frequency_penalty: -3 }, 'frequency_penalty'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: 'yes' }, 'stream'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, seed: -1 }, 'seed'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, logprobs: true }, 'logprobs'],
    [{ model: ZEPHYR, messages: [{ role: 'assistant', content: 'x', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }, 'messages[0].tool_calls[0].function.arguments'],
    // Built as text: JSON.stringify itself cannot nest 100 000 levels.
    [`{"model":"${ZEPHYR}","messages":${JSON.stringify(ZEPHYR_MESSAGES)},"chat_template_kwargs":${'{"a":'.repeat(100_000)}{}${'}'.repeat(100_000)}}`, 'chat_template_kwargs'],
    [{ model: ZEPHYR, messages: ZEPHYR_MESSAGES, tools: [{ type: 'function', function: { name: 'f', parameters: nested(100) } }] }, 'tools[0].function.parameters'],
    [{ model: 'm'.repeat(300), messages: ZEPHYR_MESSAGES }, 'model'],
    [{ model: ZEPHYR, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }] }, 'messages[0].content[0].type']
  ]
  for (const [body, param] of cases) {
    const response = typeof body === 'string'
      ? await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      : await postJson(endpoint, body)
    assert.equal(response.status, 400, JSON.stringify(body).slice(0, 200))
    const error = await errorOf(response)
    assert.equal(error.type, 'invalid_request_error')
    assert.equal(error.param, param, `${JSON.stringify(body).slice(0, 200)} → ${error.message}`)
  }
  assert.equal(tgi.calls.length, 0)
})

test('the OpenAI SDK raises its typed errors', async (t) => {
  const { openai, tgi } = await startGateway(t, {
    modelsFile: `models:\n  - { id: zephyr, backend: tgi, url: "{{TGI_URL}}", model: ${ZEPHYR} }\n`
  })
  await assert.rejects(openai.chat.completions.create({ model: 'nope', messages: ZEPHYR_MESSAGES }), OpenAI.NotFoundError)
  await assert.rejects(openai.chat.completions.create({ model: 'zephyr', messages: ZEPHYR_MESSAGES, temperature: 5 }), OpenAI.BadRequestError)
  tgi.replyOnce({ kind: 'status', status: 429, body: { error: 'Model is overloaded', error_type: 'overloaded' }, headers: { 'retry-after': '3' } })
  await assert.rejects(openai.chat.completions.create({ model: 'zephyr', messages: ZEPHYR_MESSAGES }), (error: unknown) => {
    assert.ok(error instanceof OpenAI.RateLimitError)
    assert.equal(error.headers?.get('retry-after'), '3')
    return true
  })
  tgi.replyOnce({ kind: 'status', status: 500, body: { error: 'CUDA out of memory', error_type: 'generation' } })
  await assert.rejects(openai.chat.completions.create({ model: 'zephyr', messages: ZEPHYR_MESSAGES }), (error: unknown) => error instanceof OpenAI.APIError && error.status === 502)
})

test('a template that raises answers 400 with its message, and nothing goes upstream', async (t) => {
  // Mistral's way of refusing two user turns in a row, in a template of our own.
  const template = "{%- for m in messages -%}{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}[INST] {{ m.content }} [/INST]{%- endfor -%}"
  const { url, tgi } = await startGateway(t, {
    modelsFile: `models:\n  - id: mistral\n    backend: tgi\n    url: "{{TGI_URL}}"\n    chat_template: ${JSON.stringify(template)}\n    special_tokens: { bos_token: "<s>", eos_token: "</s>" }\n`
  })
  const response = await postJson(`${url}/v1/chat/completions`, { model: 'mistral', messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] })
  assert.equal(response.status, 400)
  const error = await errorOf(response)
  assert.match(error.message, /Conversation roles must alternate user\/assistant\/user\/assistant\/\.\.\./)
  assert.equal(error.code, 'chat_template_error')
  assert.equal(tgi.calls.length, 0)
})

test('TGI validation errors become 400 with TGI\'s message, on /generate and in the stream\'s first event', async (t) => {
  const { url, tgi } = await startGateway(t, { tgi: { maxTotalTokens: 30 } })
  // 17 prompt words + 100 new tokens > 30: TGI rejects it (422 on /generate, an error event on the stream).
  const plain = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_tokens: 100 })
  assert.equal(plain.status, 400)
  assert.match((await errorOf(plain)).message, /must be <= 30/)
  const streamed = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_tokens: 100, stream: true })
  assert.equal(streamed.status, 400)
  assert.match((await errorOf(streamed)).message, /must be <= 30/)
  assert.equal(tgi.calls[1]!.path, '/generate_stream')
})

test('upstream failures map to 429, 502 and 504', async (t) => {
  const { url, tgi } = await startGateway(t, { env: { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '300', UPSTREAM_TIMEOUT_MS: '400' } })
  const endpoint = `${url}/v1/chat/completions`
  const ask = async (extra: Record<string, unknown> = {}): Promise<Response> => await postJson(endpoint, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, ...extra })

  tgi.replyOnce({ kind: 'status', status: 503, body: { error: 'no', error_type: 'x' } })
  assert.equal((await ask()).status, 502)
  tgi.replyOnce({ kind: 'stream-error', afterTokens: 0, message: 'Model is overloaded', errorType: 'overloaded' })
  assert.equal((await ask({ stream: true })).status, 429)
  tgi.replyOnce({ kind: 'hang' })
  const hung = await ask()
  assert.equal(hung.status, 504)
  assert.equal((await errorOf(hung)).type, 'timeout_error')
  tgi.replyOnce({ kind: 'hang' })
  const hungStream = await ask({ stream: true })
  assert.equal(hungStream.status, 504)
  assert.match((await errorOf(hungStream)).message, /first token/)
  tgi.replyOnce({ kind: 'drop', afterTokens: 0 })
  assert.equal((await ask()).status, 502)
})

test('connection refused answers 502 without leaking anything', async (t) => {
  const { url } = await startGateway(t, {
    modelsFile: `models:\n  - { id: gone, backend: tgi, url: "http://127.0.0.1:9", model: ${ZEPHYR}, token: hf_secret_upstream_token }\n`
  })
  const response = await postJson(`${url}/v1/chat/completions`, { model: 'gone', messages: ZEPHYR_MESSAGES })
  assert.equal(response.status, 502)
  const text = await response.text()
  assert.match(text, /unreachable/)
  assert.doesNotMatch(text, /hf_secret/)
})

test('errors after the first byte become an error event, then [DONE]', async (t) => {
  const { url, tgi } = await startGateway(t, { env: { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '1000', UPSTREAM_TIMEOUT_MS: '500' } })
  const endpoint = `${url}/v1/chat/completions`
  const cases: Array<[Parameters<typeof tgi.replyOnce>[0], RegExp]> = [
    [{ kind: 'stream-error', afterTokens: 2, message: 'Request failed during generation: CUDA error', errorType: 'generation' }, /CUDA error/],
    [{ kind: 'drop', afterTokens: 2 }, /broke|ended/],
    [{ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], delayMs: 150 }, /timed out/]
  ]
  for (const [reply, message] of cases) {
    tgi.replyOnce(reply)
    const response = await postJson(endpoint, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true })
    assert.equal(response.status, 200)
    const events = await readSse(response)
    assert.equal(events.at(-1), '[DONE]')
    const error = JSON.parse(events.at(-2)!)
    assertMatchesOpenAI('ErrorResponse', error)
    assert.match(error.error.message, message)
    assert.ok(events.length >= 4, 'some content came before the error')
  }
})

test('bodies over BODY_LIMIT_BYTES get 413 and nothing goes upstream', async (t) => {
  const { url, tgi } = await startGateway(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const response = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: [{ role: 'user', content: 'x'.repeat(4096) }] })
  assert.equal(response.status, 413)
  assert.equal((await errorOf(response)).code, 'request_too_large')
  assert.equal(tgi.calls.length, 0)
})

test('unknown routes answer an OpenAI-shaped 404', async (t) => {
  const { url } = await startGateway(t)
  const response = await fetch(`${url}/v1/embeddings`, { method: 'POST' })
  assert.equal(response.status, 404)
  await errorOf(response)
})
