import test from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import OpenAI from 'openai'
import pino from 'pino'
import { Writable } from 'node:stream'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startFakeTgi, type FakeTgi } from '../fakes/fake-tgi.js'
import { startFakeHub, type FakeHub } from '../fakes/fake-hub.js'
import { startFakeRouter, type FakeRouter } from '../fakes/fake-router.js'
import { postJson, readSse, tokenizerConfigOf, ZEPHYR, ZEPHYR_MESSAGES, ZEPHYR_PROMPT } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'

interface World {
  url: string
  openai: OpenAI
  local: FakeTgi
  endpoint: FakeTgi
  serverless: FakeTgi
  router: FakeRouter
  hub: FakeHub
}

const ENDPOINT_TOKEN = 'hf_endpoint_secret'
const GATEWAY_TOKEN = 'hf_gateway_token'
const CLIENT_TOKEN = 'hf_client_token'

/**
 * A local TGI, an Inference Endpoint (TGI that rejects requests without its
 * token) and the serverless router (in front of a third TGI), one gateway.
 */
async function startWorld (t: TestContext, options: { modelsFile?: (world: Omit<World, 'url' | 'openai'>) => string, env?: Record<string, string>, routerTokens?: string[], logger?: pino.Logger } = {}): Promise<World> {
  const local = await startFakeTgi({ modelId: ZEPHYR })
  const endpoint = await startFakeTgi({ modelId: ZEPHYR, requiredToken: ENDPOINT_TOKEN })
  const serverless = await startFakeTgi({ modelId: ZEPHYR })
  const router = await startFakeRouter({ models: { [ZEPHYR]: { tgi: serverless } }, tokens: options.routerTokens ?? [GATEWAY_TOKEN, CLIENT_TOKEN] })
  const hub = await startFakeHub({ repos: { [ZEPHYR]: { tokenizerConfig: await tokenizerConfigOf(ZEPHYR) } } })
  const directory = await mkdtemp(join(tmpdir(), 'gateway-backends-'))
  t.after(async () => {
    await Promise.all([local.close(), endpoint.close(), serverless.close(), router.close(), hub.close()])
    await rm(directory, { recursive: true, force: true })
  })
  const env: Record<string, string> = {
    HF_ENDPOINT: hub.url, HF_INFERENCE_ENDPOINT: router.url, HF_HOME: directory, HF_TOKEN: GATEWAY_TOKEN, LOG_LEVEL: 'silent', ...options.env
  }
  if (options.modelsFile !== undefined) {
    const path = join(directory, 'models.yaml')
    await writeFile(path, options.modelsFile({ local, endpoint, serverless, router, hub }))
    env.GATEWAY_CONFIG = path
  }
  const app = await buildApp(await loadConfig(env), options.logger !== undefined ? { loggerInstance: options.logger } : { logger: false })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : ''
  return { url, openai: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }), local, endpoint, serverless, router, hub }
}

const MIXED = (world: Omit<World, 'url' | 'openai'>): string => `models:
  - { id: local, backend: tgi, url: "${world.local.url}", model: ${ZEPHYR} }
  - { id: dedicated, backend: endpoint, url: "${world.endpoint.url}", model: ${ZEPHYR}, token: ${ENDPOINT_TOKEN} }
  - { id: serverless, backend: hub, model: ${ZEPHYR} }
`

test('one models file mixing tgi, endpoint and hub: same prompt upstream, same OpenAI answer', async (t) => {
  const world = await startWorld(t, { modelsFile: MIXED })
  const answers = []
  for (const model of ['local', 'dedicated', 'serverless']) {
    const completion = await world.openai.chat.completions.create({ model, messages: ZEPHYR_MESSAGES, max_tokens: 20, stop: ['\nObservation'] })
    assertMatchesOpenAI('CreateChatCompletionResponse', completion)
    answers.push({ content: completion.choices[0]!.message.content, finish: completion.choices[0]!.finish_reason, usage: completion.usage })
  }
  assert.equal(world.local.calls[0]!.body.inputs, ZEPHYR_PROMPT)
  // The Endpoint runs TGI (detected by /info): its native route, with grammar and TGI's parameters.
  assert.equal(world.endpoint.calls[0]!.path, '/generate')
  assert.equal(world.endpoint.calls[0]!.body.inputs, ZEPHYR_PROMPT)
  assert.equal(world.endpoint.calls[0]!.headers.authorization, `Bearer ${ENDPOINT_TOKEN}`)
  assert.equal(world.serverless.calls[0]!.body.prompt, ZEPHYR_PROMPT)
  assert.deepEqual(world.router.requests.map((request) => [request.path, request.headers.authorization]), [
    [`/hf-inference/models/${ZEPHYR}/v1/completions`, `Bearer ${GATEWAY_TOKEN}`]
  ])
  // Parameters arrive under TGI's names.
  assert.equal(world.endpoint.calls[0]!.body.parameters.max_new_tokens, 20)
  assert.deepEqual(world.endpoint.calls[0]!.body.parameters.stop, ['\nObservation'])
  assert.deepEqual(answers[1], answers[0])
  assert.deepEqual(answers[2], answers[0])
  assert.equal(answers[0]!.content, 'Hello! How can I help?')

  // Streams: same text, one finish reason, no eos text, usage from the final event.
  const streamed = []
  for (const model of ['local', 'dedicated', 'serverless']) {
    const stream = await world.openai.chat.completions.create({ model, messages: ZEPHYR_MESSAGES, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let finish: string | null = null
    let usage: unknown
    for await (const chunk of stream) {
      assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
      text += chunk.choices[0]?.delta.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
      usage = chunk.usage ?? usage
    }
    streamed.push({ text, finish, usage })
  }
  assert.deepEqual(streamed[1], streamed[0])
  assert.deepEqual(streamed[2], streamed[0])
  assert.deepEqual(streamed[0], { text: 'Hello! How can I help?', finish: 'stop', usage: answers[0]!.usage })
})

test('the README zero-config example works as written against the fake router', async (t) => {
  const world = await startWorld(t)
  const completion = await world.openai.chat.completions.create({
    model: 'HuggingFaceH4/zephyr-7b-beta',
    messages: [
      { role: 'system', content: "You're a helpful assistant" },
      { role: 'user', content: 'What happens when an unstoppable force meets an immovable object?' }
    ]
  })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(completion.model, ZEPHYR)
  assert.equal(world.serverless.calls[0]!.body.prompt, ZEPHYR_PROMPT)
  assert.equal(world.router.requests[0]!.headers.authorization, `Bearer ${GATEWAY_TOKEN}`)
  const models = await world.openai.models.list()
  assert.deepEqual(models.data.map((model) => model.id), [ZEPHYR])
  // Ids that are not Hub repo ids never reach a URL.
  const hostile = await postJson(`${world.url}/v1/chat/completions`, { model: '../../admin', messages: ZEPHYR_MESSAGES })
  assert.equal(hostile.status, 404)
  assert.equal(world.router.requests.length, 1)
})

test('a client\'s own hf_ token is used upstream when GATEWAY_API_KEYS is unset; its 401 is passed on', async (t) => {
  const world = await startWorld(t, { routerTokens: [CLIENT_TOKEN] })
  const client = new OpenAI({ baseURL: `${world.url}/v1`, apiKey: CLIENT_TOKEN, maxRetries: 0 })
  await client.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(world.router.requests[0]!.headers.authorization, `Bearer ${CLIENT_TOKEN}`)
  const stranger = new OpenAI({ baseURL: `${world.url}/v1`, apiKey: 'hf_not_valid', maxRetries: 0 })
  await assert.rejects(stranger.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES }), OpenAI.AuthenticationError)
  // Without a client token, the gateway's own (here rejected) token is a gateway problem: 502.
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(response.status, 502)
  const body = await response.text()
  assert.match(body, /rejected the gateway's credentials for model HuggingFaceH4\/zephyr-7b-beta/)
  assert.doesNotMatch(body, /hf_gateway_token|hf_client_token|hf_not_valid/)
})

test('an Endpoint that rejects the gateway\'s token gives 502, not the client a 401', async (t) => {
  const world = await startWorld(t, {
    modelsFile: (w) => `models:\n  - { id: dedicated, backend: endpoint, url: "${w.endpoint.url}", model: ${ZEPHYR}, token: hf_wrong }\n`
  })
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'dedicated', messages: ZEPHYR_MESSAGES })
  assert.equal(response.status, 502)
  assert.equal((await response.json()).error.code, 'upstream_auth_failed')
})

test('cold starts: 503 loading is waited out (honouring estimated_time), then answered', async (t) => {
  const world = await startWorld(t)
  world.router.script(ZEPHYR, { kind: 'loading', estimatedTime: 0.05 }, { kind: 'reset' }, { kind: 'loading', estimatedTime: 0.05 })
  const completion = await world.openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(world.router.requests.length, 4)
  world.router.script(ZEPHYR, { kind: 'loading', estimatedTime: 0.05 })
  const stream = await world.openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
  assert.equal(text, 'Hello! How can I help?')
})

test('cold starts beyond the first-token budget answer 503 "model is loading"', async (t) => {
  const world = await startWorld(t, { env: { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: '1500' } })
  world.router.script(ZEPHYR, ...Array.from({ length: 20 }, () => ({ kind: 'loading' as const, estimatedTime: 20 })))
  for (const stream of [false, true]) {
    const started = Date.now()
    const response = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream })
    assert.equal(response.status, 503)
    const error = (await response.json()).error
    assert.equal(error.code, 'model_loading')
    assert.match(error.message, /is loading/)
    assert.ok(response.headers.get('retry-after') !== null)
    assert.ok(Date.now() - started < 3000, 'gave up within the budget')
  }
  assert.equal(world.serverless.calls.length, 0)
})

test('serverless 404, 429 and unsupported parameters', async (t) => {
  const world = await startWorld(t)
  world.router.script(ZEPHYR, { kind: 'rate-limit', retryAfter: 7 })
  const limited = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(limited.status, 429)
  assert.equal(limited.headers.get('retry-after'), '7')
  world.router.script(ZEPHYR, { kind: 'status', status: 404, body: 'Not Found' })
  const missing = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(missing.status, 404)
  assert.equal((await missing.json()).error.code, 'model_not_found')
  // Not on the Hub at all: the template lookup answers 404 before any inference call.
  const before = world.router.requests.length
  const unknown = await postJson(`${world.url}/v1/chat/completions`, { model: 'nobody/nothing', messages: ZEPHYR_MESSAGES })
  assert.equal(unknown.status, 404)
  assert.equal(world.router.requests.length, before)
  const topK = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, top_k: 5 })
  assert.equal(topK.status, 400)
  assert.equal((await topK.json()).error.param, 'top_k')
  // No grammar on the OpenAI-style route: constrained answers are refused up front.
  const json = await postJson(`${world.url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, response_format: { type: 'json_object' } })
  assert.equal(json.status, 400)
  assert.equal((await json.json()).error.param, 'response_format')
  assert.equal(world.router.requests.length, before)
})

test('hosted backends: stops applied by the gateway, client abort cancels upstream, stream errors mapped', async (t) => {
  const world = await startWorld(t, { modelsFile: MIXED })
  world.endpoint.reply({ kind: 'tokens', tokens: ['Thought', ':', ' x', '\n', 'Observation', ':', ' y'] })
  const cut = await world.openai.chat.completions.create({ model: 'dedicated', messages: ZEPHYR_MESSAGES, stop: ['\nObservation'] })
  assert.equal(cut.choices[0]!.message.content, 'Thought: x')

  world.serverless.reply({ kind: 'tokens', tokens: Array.from({ length: 200 }, () => ' tick'), delayMs: 20 })
  const controller = new AbortController()
  const stream = await world.openai.chat.completions.create({ model: 'serverless', messages: ZEPHYR_MESSAGES, stream: true }, { signal: controller.signal })
  let chunks = 0
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) chunks++
      if (chunks === 3) controller.abort()
    }
  } catch {}
  await world.serverless.waitForAbort(world.serverless.calls.length - 1, 1000)

  world.endpoint.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'Request failed during generation: boom', errorType: 'generation' })
  const broken = await postJson(`${world.url}/v1/chat/completions`, { model: 'dedicated', messages: ZEPHYR_MESSAGES, stream: true })
  const events = await readSse(broken)
  assert.equal(events.at(-1), '[DONE]')
  assert.match(JSON.parse(events.at(-2)!).error.message, /boom/)
})

test('/ready probes the Endpoint with its token', async (t) => {
  const world = await startWorld(t, { modelsFile: MIXED })
  const response = await fetch(`${world.url}/ready`)
  const body = await response.json()
  assert.equal(response.status, 200, JSON.stringify(body))
  assert.deepEqual(body.models.map((model: { id: string, ready: boolean }) => model.ready), [true, true, true])
})

test('endpoint and hub error bodies quoting the configured or the client token reach neither the client nor the logs', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter((line) => line !== '')); done() } }))
  const world = await startWorld(t, { modelsFile: MIXED, logger })
  const secrets = [ENDPOINT_TOKEN, GATEWAY_TOKEN, CLIENT_TOKEN]
  const quoting = `invalid token ${ENDPOINT_TOKEN} or ${GATEWAY_TOKEN}`
  // The client's token is a secret only where the client sent it: only that case quotes it.
  const quotingClient = `${quoting} or ${CLIENT_TOKEN}`
  const cases: Array<{ name: string, model: string, stream: boolean, headers?: Record<string, string>, arrange: () => void }> = [
    { name: 'endpoint 500', model: 'dedicated', stream: false, arrange: () => world.endpoint.replyOnce({ kind: 'status', status: 500, body: { error: quoting } }) },
    { name: 'endpoint 400 plain text, stream', model: 'dedicated', stream: true, arrange: () => world.endpoint.replyOnce({ kind: 'status', status: 400, body: quoting }) },
    { name: 'endpoint in-stream error', model: 'dedicated', stream: true, arrange: () => world.endpoint.replyOnce({ kind: 'stream-error', afterTokens: 0, message: quoting }) },
    { name: 'hub 500', model: 'serverless', stream: false, arrange: () => world.router.script(ZEPHYR, { kind: 'status', status: 500, body: { error: { message: quoting } } }) },
    { name: 'hub 429 with the client token', model: 'serverless', stream: true, headers: { authorization: `Bearer ${CLIENT_TOKEN}` }, arrange: () => world.router.script(ZEPHYR, { kind: 'status', status: 429, body: { error: quotingClient } }) }
  ]
  for (const item of cases) {
    item.arrange()
    const response = await postJson(`${world.url}/v1/chat/completions`, { model: item.model, messages: ZEPHYR_MESSAGES, stream: item.stream }, item.headers)
    const text = await response.text()
    assert.ok(response.status >= 400 || text.includes('"error"'), `${item.name}: ${response.status} ${text}`)
    assert.ok(text.includes('hf_***'), `${item.name}: the redacted message is kept: ${text}`)
    for (const secret of secrets) assert.ok(!text.includes(secret), `${item.name}: the response holds ${secret}: ${text}`)
  }
  for (const line of lines) for (const secret of secrets) assert.ok(!line.includes(secret), `a log line holds ${secret}: ${line}`)
})

test('a 10 MiB endpoint error body becomes a short response', async (t) => {
  const world = await startWorld(t, { modelsFile: MIXED })
  world.endpoint.replyOnce({ kind: 'status', status: 500, body: { error: 'x'.repeat(10 * 1024 * 1024) } })
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'dedicated', messages: ZEPHYR_MESSAGES })
  const text = await response.text()
  assert.equal(response.status, 502)
  assert.ok(text.length < 2048, `response of ${text.length} bytes`)
})

test('an Endpoint\'s 413 is a 413 to the client', async (t) => {
  const world = await startWorld(t, { modelsFile: MIXED })
  world.endpoint.replyOnce({ kind: 'status', status: 413, body: 'Failed to buffer the request body: length limit exceeded' })
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'dedicated', messages: ZEPHYR_MESSAGES })
  assert.equal(response.status, 413)
  const body = await response.json()
  assert.equal(body.error.code, 'upstream_payload_too_large')
  assert.match(body.error.message, /length limit exceeded/)
})
