/**
 * vLLM, SGLang and llama.cpp behind the gateway, each a protocol-faithful fake
 * (test/fakes): chat completions stream and not, stops, usage, tools, JSON
 * output, errors, cancel, extras, engine detection, and token-exact prompts —
 * the tokens each engine feeds its model never start with two BOS tokens and
 * equal what apply_chat_template(tokenize=True) gives (the template's text
 * tokenised with add_special_tokens=False).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import OpenAI from 'openai'
import { buildApp, type AppOverrides } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startFakeHub } from '../fakes/fake-hub.js'
import { startFakeVllm } from '../fakes/fake-vllm.js'
import { startFakeSglang } from '../fakes/fake-sglang.js'
import { startFakeLlamacpp } from '../fakes/fake-llamacpp.js'
import { startFakeTgi } from '../fakes/fake-tgi.js'
import type { FakeEngine, FakeEngineOptions } from '../fakes/fake-engine.js'
import { FakeTokenizer, startsWithDoubledBos } from '../fakes/fake-tokenizer.js'
import { MISTRAL_STYLE, postJson, tokenizerConfigOf, ZEPHYR } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'

type Engine = 'vllm' | 'sglang' | 'llamacpp'
/** The shared fake options, and llama.cpp's loading time. */
type EngineOptions = FakeEngineOptions & { loadingMs?: number }
const ENGINES: Engine[] = ['vllm', 'sglang', 'llamacpp']
const MESSAGES = [{ role: 'user' as const, content: 'Hi there' }]
/** MISTRAL_STYLE's render of MESSAGES: the template writes `<s>` itself. */
const RENDERED = '<s>[INST] Hi there [/INST]'
const TOKENIZER = { specialTokens: ['[INST]', '[/INST]'] }

async function startEngine (engine: Engine, options: EngineOptions = {}): Promise<FakeEngine> {
  const common: FakeEngineOptions = { tokenizer: TOKENIZER, ...options }
  switch (engine) {
    case 'vllm': return await startFakeVllm({ modelPath: MISTRAL_STYLE, ...common })
    case 'sglang': return await startFakeSglang({ modelPath: MISTRAL_STYLE, ...common })
    case 'llamacpp': return await startFakeLlamacpp(common)
  }
}

interface World { url: string, engine: FakeEngine, openai: OpenAI, hub: Awaited<ReturnType<typeof startFakeHub>> }

/** A fake engine, a fake Hub and a gateway; `modelsFile` gets `{{URL}}` replaced by the engine's URL. */
async function startWorld (t: TestContext, engineKind: Engine, options: { modelsFile?: string, env?: Record<string, string>, engine?: EngineOptions, overrides?: AppOverrides } = {}): Promise<World> {
  const engine = await startEngine(engineKind, options.engine)
  t.after(() => engine.close())
  const hub = await startFakeHub({ repos: { [MISTRAL_STYLE]: { tokenizerConfig: await tokenizerConfigOf(MISTRAL_STYLE) }, [ZEPHYR]: { tokenizerConfig: await tokenizerConfigOf(ZEPHYR) } } })
  t.after(() => hub.close())
  const cacheDir = await mkdtemp(join(tmpdir(), 'gateway-engines-'))
  t.after(() => rm(cacheDir, { recursive: true, force: true }))
  const env: Record<string, string> = { HF_ENDPOINT: hub.url, HF_HOME: cacheDir, LOG_LEVEL: 'silent', ...options.env }
  const modelsFile = options.modelsFile ?? `models:\n  - { id: m, backend: ${engineKind}, url: "{{URL}}", model: ${MISTRAL_STYLE} }\n`
  if (options.env?.INFERENCE_SERVER_URL === undefined) {
    const path = join(cacheDir, 'models.yaml')
    await writeFile(path, modelsFile.replaceAll('{{URL}}', engine.url))
    env.GATEWAY_CONFIG = path
  } else {
    env.INFERENCE_SERVER_URL = engine.url
  }
  const app = await buildApp(await loadConfig(env), { logger: false, ...options.overrides })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : ''
  return { url, engine, hub, openai: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 }) }
}

/** What transformers' apply_chat_template(tokenize=True) feeds the model: the render, add_special_tokens=False. */
function transformersTokens (prompt: string): number[] {
  return new FakeTokenizer(TOKENIZER).encode(prompt, false).map((token) => token.id)
}

function completionCalls (engine: FakeEngine): FakeEngine['calls'] {
  return engine.calls.filter((call) => call.path === '/v1/completions')
}

for (const engineKind of ENGINES) {
  test(`${engineKind}: chat completion, token-exact prompt (one BOS, as apply_chat_template), usage from the engine`, async (t) => {
    const world = await startWorld(t, engineKind)
    const completion = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 20 })
    assertMatchesOpenAI('CreateChatCompletionResponse', completion)
    assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
    assert.equal(completion.choices[0]!.finish_reason, 'stop')
    const [call] = completionCalls(world.engine)
    assert.ok(call !== undefined)
    assert.equal(startsWithDoubledBos(call.promptTokens), false)
    assert.deepEqual(call.promptTokens.map((token) => token.id), transformersTokens(RENDERED))
    assert.equal(completion.usage?.prompt_tokens, call.promptTokens.length)
    assert.equal(call.body.max_tokens, 20)
    if (engineKind === 'vllm') {
      assert.equal(call.body.add_special_tokens, false)
      assert.equal(call.body.prompt, RENDERED)
    } else {
      // No switch: the template's own <s> is left out and the engine's takes its place.
      assert.equal(call.body.prompt, RENDERED.slice('<s>'.length))
    }
    const render = await (await postJson(`${world.url}/v1/chat/render`, { model: 'm', messages: MESSAGES })).json()
    assert.equal(render.prompt, RENDERED)
    assert.equal(render.sent_prompt, call.body.prompt)
    assert.equal(render.prompt_tokens.engine, engineKind)
    assert.equal(render.prompt_tokens.sent_as, engineKind === 'vllm' ? 'as_rendered' : 'leading_bos_removed')
    assert.equal(render.prompt_tokens.learned_from, engineKind === 'vllm' ? 'add_special_tokens_false' : 'engine_tokenize')
  })

  test(`${engineKind}: streams with the engine's usage, stops applied, one finish`, async (t) => {
    const world = await startWorld(t, engineKind)
    const stream = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, stream: true, stream_options: { include_usage: true }, max_tokens: 20 })
    let text = ''
    const finishes: string[] = []
    let usage: OpenAI.CompletionUsage | undefined
    for await (const chunk of stream) {
      assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.choices[0]?.finish_reason != null) finishes.push(chunk.choices[0].finish_reason)
      usage = chunk.usage ?? usage
    }
    assert.equal(text, 'Hello! How can I help?')
    assert.deepEqual(finishes, ['stop'])
    const [call] = completionCalls(world.engine)
    assert.equal(usage?.prompt_tokens, call!.promptTokens.length)
    assert.equal(call!.body.stream, true)
    assert.equal(startsWithDoubledBos(call!.promptTokens), false)

    const stopped = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, stop: [' can'], max_tokens: 20 })
    assert.equal(stopped.choices[0]!.message.content, 'Hello! How')
    assert.equal(stopped.choices[0]!.finish_reason, 'stop')
  })

  test(`${engineKind}: JSON output and forced tool calls use the engine's structured-output field`, async (t) => {
    const world = await startWorld(t, engineKind)
    world.engine.replyOnce({ kind: 'tokens', tokens: ['{"answer"', ': 42}'] })
    const json = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, response_format: { type: 'json_object' }, max_tokens: 20 })
    assert.deepEqual(JSON.parse(json.choices[0]!.message.content!), { answer: 42 })
    const jsonCall = completionCalls(world.engine)[0]!
    if (engineKind === 'vllm') assert.deepEqual(jsonCall.body.structured_outputs, { json_object: true })
    if (engineKind === 'sglang') assert.deepEqual(JSON.parse(jsonCall.body.json_schema), { type: 'object' })
    if (engineKind === 'llamacpp') assert.deepEqual(jsonCall.body.json_schema, { type: 'object' })

    world.engine.replyOnce({ kind: 'tokens', tokens: ['{"name": "get_weather", ', '"arguments": {"city": "Paris"}}'] })
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }]
    const called = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, tools, tool_choice: 'required', max_tokens: 50 })
    assert.equal(called.choices[0]!.finish_reason, 'tool_calls')
    const call = called.choices[0]!.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall
    assert.equal(call.function.name, 'get_weather')
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' })
    const toolCall = completionCalls(world.engine)[1]!
    const schema = engineKind === 'vllm' ? toolCall.body.structured_outputs.json : engineKind === 'sglang' ? JSON.parse(toolCall.body.json_schema) : toolCall.body.json_schema
    assert.deepEqual(schema.properties.name, { type: 'string', enum: ['get_weather'] })
    // A schema without `properties` is fine on these engines (TGI alone needs them).
    world.engine.replyOnce({ kind: 'tokens', tokens: ['[1, 2]'] })
    const array = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 20, response_format: { type: 'json_schema', json_schema: { name: 'list', schema: { type: 'array', items: { type: 'integer' } } } } })
    assert.equal(array.choices[0]!.message.content, '[1, 2]')
  })

  test(`${engineKind}: extras pass through under the engine's names; one it lacks is a 400 naming it`, async (t) => {
    const world = await startWorld(t, engineKind)
    const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES, max_tokens: 5, top_k: 20, min_p: 0.05, repetition_penalty: 1.1, seed: 7 })
    assert.equal(response.status, 200, await response.clone().text())
    const body = completionCalls(world.engine)[0]!.body
    assert.equal(body.top_k, 20)
    assert.equal(body.min_p, 0.05)
    assert.equal(body.seed, 7)
    assert.equal(engineKind === 'llamacpp' ? body.repeat_penalty : body.repetition_penalty, 1.1)
    const lacking = engineKind === 'llamacpp' ? 'truncate' : 'typical_p'
    const refused = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES, [lacking]: lacking === 'truncate' ? 100 : 0.5 })
    assert.equal(refused.status, 400)
    const error = (await refused.json()).error
    assert.equal(error.param, lacking)
    assert.equal(error.code, 'unsupported_parameter')
  })

  test(`${engineKind}: engine errors map to honest statuses; an in-stream error is an SSE error event, then [DONE]`, async (t) => {
    const world = await startWorld(t, engineKind)
    // A prompt over the context: the engine's own 400, with its message.
    const tooLong = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'word '.repeat(5000) }], max_tokens: 10 })
    assert.equal(tooLong.status, 400)
    assert.equal((await tooLong.json()).error.code, 'upstream_validation_error')
    world.engine.replyOnce({ kind: 'status', status: 500, body: { error: { message: 'CUDA out of memory', type: 'InternalServerError', param: null, code: 500 } } })
    const failed = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES, max_tokens: 10 })
    assert.equal(failed.status, 502)
    assert.match((await failed.json()).error.message, /CUDA out of memory/)

    world.engine.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'engine died', status: 500 })
    const streamed = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES, stream: true, max_tokens: 20 })
    assert.equal(streamed.status, 200)
    const events = (await streamed.text()).split('\n\n').filter((event) => event.startsWith('data: ')).map((event) => event.slice(6))
    assert.equal(events.at(-1), '[DONE]')
    const error = JSON.parse(events.at(-2)!)
    assert.equal(error.error.code, 'upstream_generation_error')
    assert.match(error.error.message, /engine died/)
    assert.equal(events.slice(0, -2).map((event) => JSON.parse(event).choices[0].delta.content ?? '').join(''), 'Hello!')
  })

  test(`${engineKind}: a client that leaves cancels the engine's generation`, async (t) => {
    const world = await startWorld(t, engineKind)
    world.engine.replyOnce({ kind: 'tokens', tokens: Array.from({ length: 200 }, (_, index) => ` w${index}`), delayMs: 20 })
    const controller = new AbortController()
    const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES, stream: true, max_tokens: 500 }).catch(() => undefined)
    void controller
    assert.ok(response !== undefined)
    const reader = response.body!.getReader()
    await reader.read()
    await reader.cancel()
    const index = world.engine.calls.findIndex((call) => call.path === '/v1/completions')
    await world.engine.waitForAbort(index)
    assert.equal(world.engine.activeGenerations(), 0)
  })

  test(`${engineKind}: without max_tokens the gateway still sends one (${engineKind === 'llamacpp' ? 'llama.cpp has no default cut' : 'the engine would stop at 16'})`, async (t) => {
    const world = await startWorld(t, engineKind)
    const many = Array.from({ length: 40 }, (_, index) => ` w${index}`)
    world.engine.replyOnce({ kind: 'tokens', tokens: many })
    const completion = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES })
    assert.equal(completion.choices[0]!.message.content, many.join(''))
    const body = completionCalls(world.engine)[0]!.body
    if (engineKind === 'llamacpp') assert.equal(body.max_tokens, undefined)
    else assert.ok(body.max_tokens > 40 && body.max_tokens <= 4096, String(body.max_tokens))
  })

  for (const backend of ['completions', 'endpoint'] as const) {
    test(`${engineKind}: backend ${backend} detects the engine${backend === 'endpoint' ? ' behind the Endpoint\'s token on every route' : ''}; /v1/models and /ready name it`, async (t) => {
      const token = 'hf_endpointtoken12345'
      const world = await startWorld(t, engineKind, {
        modelsFile: `models:\n  - { id: m, backend: ${backend}, url: "{{URL}}", model: ${MISTRAL_STYLE} }\n`,
        ...(backend === 'endpoint' ? { engine: { requiredToken: token, guardAllRoutes: true }, env: { HF_TOKEN: token } } : {})
      })
      const completion = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 20 })
      assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
      const call = completionCalls(world.engine)[0]!
      assert.equal(startsWithDoubledBos(call.promptTokens), false)
      if (backend === 'endpoint') assert.equal(call.headers.authorization, `Bearer ${token}`)
      const stream = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 20, stream: true })
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      assert.equal(text, 'Hello! How can I help?')
      const models = await (await fetch(`${world.url}/v1/models`)).json()
      assert.equal(models.data[0].engine, engineKind)
      const ready = await (await fetch(`${world.url}/ready`)).json()
      assert.equal(ready.models[0].engine, engineKind)
      assert.equal(ready.status, 'ready')
    })
  }
}

test('an Endpoint guards every route with its token, detection included; HF_TOKEN is its default token', async (t) => {
  const world = await startWorld(t, 'vllm', {
    engine: { requiredToken: 'hf_endpointsecret1234', guardAllRoutes: true },
    env: { HF_TOKEN: 'hf_endpointsecret1234' },
    modelsFile: `models:\n  - { id: m, backend: endpoint, url: "{{URL}}", model: ${MISTRAL_STYLE} }\n`
  })
  const completion = await world.openai.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 20 })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.ok(world.engine.requests.includes('GET /version'))
  assert.equal(completionCalls(world.engine)[0]!.headers.authorization, 'Bearer hf_endpointsecret1234')
})

test('an engine that refuses the token: 502 upstream_auth_failed, and the token never shows', async (t) => {
  const world = await startWorld(t, 'vllm', {
    engine: { requiredToken: 'right-token', guardAllRoutes: true },
    modelsFile: `models:\n  - { id: m, backend: completions, url: "{{URL}}", model: ${MISTRAL_STYLE}, token: wrong-token }\n`
  })
  const response = await postJson(`${world.url}/v1/chat/completions`, { model: 'm', messages: MESSAGES })
  assert.equal(response.status, 502)
  const text = await response.text()
  assert.equal(JSON.parse(text).error.code, 'upstream_auth_failed')
  assert.doesNotMatch(text, /wrong-token|right-token/)
})

test('INFERENCE_SERVER_URL: the engine is detected and names the model (vLLM /v1/models root)', async (t) => {
  const world = await startWorld(t, 'vllm', { env: { INFERENCE_SERVER_URL: 'set by startWorld' }, engine: { servedModelName: 'mistral' } })
  const models = await (await fetch(`${world.url}/v1/models`)).json()
  assert.equal(models.data[0].id, MISTRAL_STYLE)
  assert.equal(models.data[0].engine, 'vllm')
  const completion = await world.openai.chat.completions.create({ model: 'anything', messages: MESSAGES, max_tokens: 20 })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(completionCalls(world.engine)[0]!.body.model, 'mistral')
})

test('llama.cpp serving a GGUF: template and special tokens from /props; loading is waited out within the first-token budget', async (t) => {
  const world = await startWorld(t, 'llamacpp', {
    engine: { chatTemplate: (await tokenizerConfigOf(MISTRAL_STYLE)).chat_template as string, loadingMs: 600 },
    env: { INFERENCE_SERVER_URL: 'set by startWorld' },
    overrides: { readinessCacheMs: 0 }
  })
  const notReady = await fetch(`${world.url}/ready`)
  assert.equal(notReady.status, 503)
  const completion = await world.openai.chat.completions.create({ model: 'x', messages: MESSAGES, max_tokens: 20 })
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  const call = completionCalls(world.engine)[0]!
  assert.equal(startsWithDoubledBos(call.promptTokens), false)
  assert.deepEqual(call.promptTokens.map((token) => token.id), transformersTokens(RENDERED))
  assert.equal(world.hub.requests.length, 0)
  const ready = await (await fetch(`${world.url}/ready`)).json()
  assert.match(ready.models[0].template, /engine llamacpp/)
})

test('TGI: the template\'s own BOS is not sent twice (TGI always adds special tokens)', async (t) => {
  const tgi = await startFakeTgi({ modelId: MISTRAL_STYLE, tokenizer: TOKENIZER })
  t.after(() => tgi.close())
  const hub = await startFakeHub({ repos: { [MISTRAL_STYLE]: { tokenizerConfig: await tokenizerConfigOf(MISTRAL_STYLE) } } })
  t.after(() => hub.close())
  const cacheDir = await mkdtemp(join(tmpdir(), 'gateway-engines-'))
  t.after(() => rm(cacheDir, { recursive: true, force: true }))
  const app = await buildApp(await loadConfig({ HF_ENDPOINT: hub.url, HF_HOME: cacheDir, TGI_URL: tgi.url, LOG_LEVEL: 'silent' }), { logger: false })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : ''
  const response = await postJson(`${url}/v1/chat/completions`, { model: 'tgi', messages: MESSAGES, max_tokens: 10 })
  assert.equal(response.status, 200)
  const stream = await postJson(`${url}/v1/chat/completions`, { model: 'tgi', messages: MESSAGES, max_tokens: 10, stream: true })
  await stream.text()
  const generations = tgi.calls.filter((call) => call.path === '/generate' || call.path === '/generate_stream')
  assert.equal(generations.length, 2)
  for (const call of generations) {
    assert.equal(startsWithDoubledBos(call.promptTokens), false)
    assert.deepEqual(call.promptTokens.map((token) => token.id), transformersTokens(RENDERED))
  }
})
