/**
 * Hub models through Inference Providers: the provider mapping read from the
 * Hub decides the path — a `text-generation` provider takes the gateway's own
 * prompt at `{router}/{provider}/v1/completions`, a `conversational` one takes
 * messages at the router's `/v1/chat/completions` — and everything the gateway
 * adds still applies on the pass-through (stops, shapes, usage, errors, cancel).
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import OpenAI from 'openai'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startFakeHub, type FakeHub, type FakeInferenceProviderMapping } from '../fakes/fake-hub.js'
import { startFakeRouter, type FakeRouter } from '../fakes/fake-router.js'
import { startFakeVllm, type FakeVllm } from '../fakes/fake-vllm.js'
import { FakeTokenizer, startsWithDoubledBos } from '../fakes/fake-tokenizer.js'
import { MISTRAL_STYLE, postJson, readSse, tokenizerConfigOf, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'

const TOKEN = 'hf_gatewaytoken123456'
const GLM = 'zai-org/GLM-5.2'
const FEATHERLESS_ID = 'mistral-style-featherless'
const TOKENIZER = { specialTokens: ['[INST]', '[/INST]'] }

interface World { url: string, openai: OpenAI, router: FakeRouter, hub: FakeHub, featherless: FakeVllm }

async function startWorld (t: TestContext, options: { modelsFile?: string, mappings?: Record<string, FakeInferenceProviderMapping[]>, legacyProviderMapping?: boolean, outOfCredits?: boolean } = {}): Promise<World> {
  // featherless-ai maps models as text-generation and runs vLLM behind the router.
  const featherless = await startFakeVllm({ servedModelName: FEATHERLESS_ID, modelPath: MISTRAL_STYLE, tokenizer: TOKENIZER })
  const router = await startFakeRouter({
    tokens: [TOKEN],
    chatModels: { [GLM]: { providers: ['together', 'novita'] }, [ZEPHYR]: { providers: ['together'] } },
    textProviders: { 'featherless-ai': { engine: { url: featherless.url } } },
    outOfCredits: options.outOfCredits
  })
  const mappings = options.mappings ?? {}
  const hub = await startFakeHub({
    legacyProviderMapping: options.legacyProviderMapping,
    repos: {
      [GLM]: { tokenizerConfig: await tokenizerConfigOf(ZEPHYR), inferenceProviderMapping: mappings[GLM] ?? [{ provider: 'together', task: 'conversational' }, { provider: 'novita', task: 'conversational' }] },
      [MISTRAL_STYLE]: { tokenizerConfig: await tokenizerConfigOf(MISTRAL_STYLE), inferenceProviderMapping: mappings[MISTRAL_STYLE] ?? [{ provider: 'together', task: 'conversational' }, { provider: 'featherless-ai', task: 'text-generation', providerId: FEATHERLESS_ID }] }
    }
  })
  const directory = await mkdtemp(join(tmpdir(), 'gateway-providers-'))
  t.after(async () => {
    await Promise.all([featherless.close(), router.close(), hub.close()])
    await rm(directory, { recursive: true, force: true })
  })
  const env: Record<string, string> = { HF_ENDPOINT: hub.url, HF_INFERENCE_ENDPOINT: router.url, HF_HOME: directory, HF_TOKEN: TOKEN, LOG_LEVEL: 'silent' }
  if (options.modelsFile !== undefined) {
    const path = join(directory, 'models.yaml')
    await writeFile(path, options.modelsFile)
    env.GATEWAY_CONFIG = path
  }
  const app = await buildApp(await loadConfig(env), { logger: false })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : ''
  return { url, openai: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 }), router, hub, featherless }
}

test('zero-config, a conversational model: the README example answers through the router, which renders the template', async (t) => {
  const world = await startWorld(t)
  const raw = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES }).withResponse()
  assert.equal(raw.response.headers.get('x-gateway-template'), 'provider')
  const completion = raw.data
  assertMatchesOpenAI('CreateChatCompletionResponse', completion)
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(completion.model, GLM)
  assert.ok(completion.usage !== undefined && completion.usage.prompt_tokens > 0)
  const [call] = world.router.chatCalls
  // provider auto: the router picks (its :fastest default); the messages go as given.
  assert.equal(call!.body.model, GLM)
  assert.deepEqual(call!.body.messages, ZEPHYR_MESSAGES)
  assert.equal(call!.headers.authorization, `Bearer ${TOKEN}`)
  assert.ok(world.hub.requests.some((request) => request.url.startsWith(`/api/models/${GLM}?expand`)))

  const stream = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES, stream: true, stream_options: { include_usage: true } }).withResponse()
  assert.equal(stream.response.headers.get('x-gateway-template'), 'provider')
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  const finishes: string[] = []
  for await (const chunk of stream.data) {
    assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
    text += chunk.choices[0]?.delta.content ?? ''
    if (chunk.choices[0]?.finish_reason != null) finishes.push(chunk.choices[0].finish_reason)
    usage = chunk.usage ?? usage
  }
  assert.equal(text, 'Hello! How can I help?')
  assert.deepEqual(finishes, ['stop'])
  assert.equal(usage?.prompt_tokens, completion.usage!.prompt_tokens)
  // One mapping read serves both requests (cached).
  assert.equal(world.hub.requests.filter((request) => request.url.startsWith('/api/models/')).length, 1)

  const render = await (await postJson(`${world.url}/v1/chat/render`, { model: GLM, messages: ZEPHYR_MESSAGES })).json()
  assert.equal(render.sent_as, 'messages')
  assert.match(render.prompt, /<\|assistant\|>\n$/)
  const models = await (await fetch(`${world.url}/v1/models`)).json()
  assert.equal(models.data.find((model: { id: string }) => model.id === GLM).template, 'provider')
})

test('a text-generation provider (featherless-ai) takes the gateway\'s own prompt, token-exact, at {router}/{provider}/v1/completions', async (t) => {
  const world = await startWorld(t, { modelsFile: `models:\n  - { id: m, backend: hub, model: ${MISTRAL_STYLE} }\n` })
  const raw = await world.openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 20 }).withResponse()
  assert.equal(raw.response.headers.get('x-gateway-template'), 'gateway')
  assert.equal(raw.data.choices[0]!.message.content, 'Hello! How can I help?')
  assert.ok(world.router.requests.some((request) => request.path === '/featherless-ai/v1/completions'))
  const [call] = world.featherless.calls
  assert.equal(call!.body.model, FEATHERLESS_ID)
  assert.equal(call!.body.max_tokens, 20)
  // The provider's vLLM adds BOS to a string prompt: the template's own is not sent twice.
  assert.equal(call!.body.prompt, '[INST] Hi there [/INST]')
  assert.equal(startsWithDoubledBos(call!.promptTokens), false)
  assert.deepEqual(call!.promptTokens.map((token) => token.id), new FakeTokenizer(TOKENIZER).encode('<s>[INST] Hi there [/INST]', false).map((token) => token.id))
  assert.equal(world.router.chatCalls.length, 0)
  const stream = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 20, stream: true })
  assert.equal(stream.headers.get('x-gateway-template'), 'gateway')
  const events = await readSse(stream)
  assert.equal(events.at(-1), '[DONE]')
  const render = await (await postJson(`${world.url}/v1/chat/render`, { model: 'm', messages: [{ role: 'user', content: 'Hi there' }] })).json()
  assert.equal(render.sent_as, 'prompt')
  assert.equal(render.sent_prompt, '[INST] Hi there [/INST]')
})

test('a named provider: "{repo}:{provider}" through the router; one that does not serve the model is a 400 naming provider and listing those that do', async (t) => {
  const world = await startWorld(t, { modelsFile: `models:\n  - { id: glm, backend: hub, model: ${GLM}, provider: novita }\n  - { id: wrong, backend: hub, model: ${GLM}, provider: featherless-ai }\n` })
  const completion = await world.openai.chat.completions.create({ model: 'glm', messages: ZEPHYR_MESSAGES })
  assert.equal(completion.model, 'glm')
  assert.equal(world.router.chatCalls[0]!.body.model, `${GLM}:novita`)
  const refused = await postJson(`${world.url}/v1/chat/completions`, { model: 'wrong', messages: ZEPHYR_MESSAGES })
  assert.equal(refused.status, 400)
  const error = (await refused.json()).error
  assert.equal(error.param, 'provider')
  assert.match(error.message, /featherless-ai.*does not serve.*together, novita/)
})

test('honest errors: unknown repo 404, no live provider 404, out of credits 402 with the router\'s message', async (t) => {
  const world = await startWorld(t, { mappings: { [GLM]: [{ provider: 'together', task: 'conversational', status: 'staging' }] } })
  const unknown = await postJson(`${world.url}/v1/chat/completions`, { model: 'nobody/nothing', messages: ZEPHYR_MESSAGES })
  assert.equal(unknown.status, 404)
  assert.equal((await unknown.json()).error.code, 'model_not_found')
  const unserved = await postJson(`${world.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES })
  assert.equal(unserved.status, 404)
  assert.match((await unserved.json()).error.message, /no Inference Provider serves it/)

  const broke = await startWorld(t, { outOfCredits: true })
  const payment = await postJson(`${broke.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES })
  assert.equal(payment.status, 402)
  const body = await payment.json()
  assert.match(body.error.message, /credits/)
  assert.doesNotMatch(JSON.stringify(body), new RegExp(TOKEN))
})

test('pass-through: stops beyond the provider\'s four are the gateway\'s, trimmed, in JSON and streams; parameters that need the gateway\'s render are refused', async (t) => {
  const world = await startWorld(t)
  const stops = ['zzz1', 'zzz2', 'zzz3', 'zzz4', ' can']
  const completion = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES, stop: stops })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How')
  assert.equal(completion.choices[0]!.finish_reason, 'stop')
  assert.deepEqual(world.router.chatCalls[0]!.body.stop, stops.slice(0, 4))
  const events = await readSse(await postJson(`${world.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES, stop: stops, stream: true }))
  const chunks = events.slice(0, -1).map((event) => JSON.parse(event))
  assert.equal(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join(''), 'Hello! How')
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop')
  assert.equal(events.at(-1), '[DONE]')

  const refused = await postJson(`${world.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES, continue_final_message: true, add_generation_prompt: false })
  assert.equal(refused.status, 400)
  assert.match((await refused.json()).error.param, /add_generation_prompt|continue_final_message/)
})

test('pass-through: tool calls and reasoning come back in OpenAI\'s shape, JSON and streamed', async (t) => {
  const world = await startWorld(t)
  const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
  world.router.chatReplyOnce({ kind: 'message', content: null, reasoning: 'They want weather.', toolCalls: [{ name: 'get_weather', arguments: '{"city": "Paris"}' }], finishReason: 'tool_calls' })
  const completion = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES, tools })
  assertMatchesOpenAI('CreateChatCompletionResponse', completion)
  const call = completion.choices[0]!.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall
  assert.equal(call.function.name, 'get_weather')
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' })
  assert.equal(completion.choices[0]!.finish_reason, 'tool_calls')
  assert.equal((completion.choices[0]!.message as unknown as { reasoning_content: string }).reasoning_content, 'They want weather.')
  assert.deepEqual(world.router.chatCalls[0]!.body.tools, tools)

  world.router.chatReplyOnce({ kind: 'message', content: null, toolCalls: [{ name: 'get_weather', arguments: '{"city": "Paris"}' }], finishReason: 'tool_calls' })
  const stream = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES, tools, stream: true })
  let name = ''
  let args = ''
  let finish: string | null = null
  for await (const chunk of stream) {
    assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
    for (const delta of chunk.choices[0]?.delta.tool_calls ?? []) {
      name += delta.function?.name ?? ''
      args += delta.function?.arguments ?? ''
    }
    finish = chunk.choices[0]?.finish_reason ?? finish
  }
  assert.equal(name, 'get_weather')
  assert.deepEqual(JSON.parse(args), { city: 'Paris' })
  assert.equal(finish, 'tool_calls')
})

test('pass-through: a client that leaves cancels the router request; an in-stream error is an SSE error event, then [DONE]', async (t) => {
  const world = await startWorld(t)
  world.router.chatReplyOnce({ kind: 'message', content: Array.from({ length: 200 }, (_, index) => `w${index}`).join(' '), delayMs: 20 })
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES, stream: true })
  const reader = response.body!.getReader()
  await reader.read()
  await reader.cancel()
  await world.router.waitForChatAbort(0)

  world.router.chatReplyOnce({ kind: 'stream-error', afterChunks: 2, message: 'provider crashed' })
  const events = await readSse(await postJson(`${world.url}/v1/chat/completions`, { model: GLM, messages: ZEPHYR_MESSAGES, stream: true }))
  assert.equal(events.at(-1), '[DONE]')
  const error = JSON.parse(events.at(-2)!).error
  assert.match(error.message, /provider crashed/)
})

test('the older Hub answers the mapping as an object keyed by provider: read the same', async (t) => {
  const world = await startWorld(t, { legacyProviderMapping: true })
  const completion = await world.openai.chat.completions.create({ model: GLM, messages: ZEPHYR_MESSAGES })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(world.router.chatCalls[0]!.body.model, GLM)
})
