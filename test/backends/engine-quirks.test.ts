/**
 * Engine quirks the completions adapter must read right, each against the
 * fake that reproduces it (or, where no fake can produce it, a loopback server
 * writing the engine's exact bytes): SGLang's three error shapes, llama.cpp's
 * older in-stream `error:` field, vLLM's `abort` finish and integer stop
 * reasons, and the render note when an engine adds a BOS the template did
 * not write.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import { startFakeSglang } from '../fakes/fake-sglang.js'
import { startFakeLlamacpp } from '../fakes/fake-llamacpp.js'
import { CompletionsBackend } from '../../src/backends/completions.js'
import type { TokenDelta } from '../../src/backends/backend.js'
import { ServiceError } from '../../src/errors.js'
import { postJson, readSse, startGateway, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'

const PARAMETERS = { maxNewTokens: 5, stop: [] }

async function collect (stream: AsyncIterable<TokenDelta>): Promise<TokenDelta[]> {
  const deltas: TokenDelta[] = []
  for await (const delta of stream) deltas.push(delta)
  return deltas
}

for (const variant of ['flat', 'wrapped', 'legacy'] as const) {
  test(`SGLang's ${variant} error body: the engine's message, as a 400`, async (t) => {
    const sglang = await startFakeSglang({ modelPath: 'org/model', wrappedErrors: variant === 'wrapped', legacyErrors: variant === 'legacy' })
    t.after(() => sglang.close())
    const backend = new CompletionsBackend({ baseUrl: sglang.url, engine: 'sglang' })
    // max_tokens 0: SGLang's own validation error ("max_tokens must be positive").
    await assert.rejects(backend.generate({ prompt: 'Hello', parameters: { ...PARAMETERS, maxNewTokens: 0 } }, AbortSignal.timeout(5000)), (error: ServiceError) => {
      assert.equal(error.statusCode, 400)
      assert.equal(error.code, 'upstream_validation_error')
      assert.match(error.message, /max_tokens/)
      return true
    })
  })
}

test("llama.cpp's older in-stream error (an `error:` field line, then data: [DONE]) is an error, not a clean end", async (t) => {
  const llamacpp = await startFakeLlamacpp({ legacyStreamErrors: true })
  t.after(() => llamacpp.close())
  llamacpp.replyOnce({ kind: 'stream-error', afterTokens: 2, message: 'slot failed', status: 500 })
  const backend = new CompletionsBackend({ baseUrl: llamacpp.url, engine: 'llamacpp' })
  const stream = await backend.stream({ prompt: 'Hello', parameters: PARAMETERS }, AbortSignal.timeout(5000))
  const seen: string[] = []
  await assert.rejects((async () => { for await (const delta of stream) seen.push(delta.text) })(), (error: ServiceError) => {
    assert.equal(error.code, 'upstream_generation_error')
    assert.match(error.message, /slot failed/)
    return true
  })
  assert.equal(seen.join(''), 'Hello!')
})

/** A loopback server answering /v1/completions with fixed bytes (vLLM framing). */
async function rawEngine (t: TestContext, reply: { json?: unknown, events?: unknown[] }): Promise<string> {
  const server = createServer((request, response) => {
    request.resume()
    if (reply.events !== undefined) {
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' })
      for (const event of reply.events) response.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`)
      response.end()
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify(reply.json))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const chunk = (text: string, finish: string | null, stopReason: unknown = null): unknown => ({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: stopReason }], usage: null })

test("vLLM: finish_reason abort ends the generation in failure; an integer stop_reason is the end of the sequence, a string one a stop sequence", async (t) => {
  const aborted = await rawEngine(t, { events: [chunk('Hi', null), chunk('', 'abort'), '[DONE]'] })
  const stream = await new CompletionsBackend({ baseUrl: aborted, engine: 'vllm', servedModel: 'm' }).stream({ prompt: 'x', parameters: PARAMETERS }, AbortSignal.timeout(5000))
  await assert.rejects(collect(stream), (error: ServiceError) => error.code === 'upstream_generation_error' && /abort/.test(error.message))

  const eosById = await rawEngine(t, { events: [chunk('Hi', null), chunk('', 'stop', 2), { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }, '[DONE]'] })
  const deltas = await collect(await new CompletionsBackend({ baseUrl: eosById, engine: 'vllm', servedModel: 'm' }).stream({ prompt: 'x', parameters: PARAMETERS }, AbortSignal.timeout(5000)))
  assert.deepEqual(deltas.map((delta) => delta.text), ['Hi', ''])
  assert.deepEqual(deltas.at(-1)!.end, { finishReason: 'eos_token', promptTokens: 3, generatedTokens: 2 })

  const byString = await rawEngine(t, { json: { id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text: 'Hi', finish_reason: 'stop', stop_reason: '\nUser:' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } } })
  const result = await new CompletionsBackend({ baseUrl: byString, engine: 'vllm', servedModel: 'm' }).generate({ prompt: 'x', parameters: PARAMETERS }, AbortSignal.timeout(5000))
  assert.deepEqual(result, { text: 'Hi', finishReason: 'stop_sequence', promptTokens: 3, generatedTokens: 2 })
})

test('an engine that adds a BOS the template did not write: /v1/chat/render says so', async (t) => {
  // Zephyr's format writes no <s>; a tokenizer that adds one to every string prompt.
  const { url } = await startGateway(t, { tgi: { tokenizer: { specialTokens: ['<|system|>', '<|user|>', '<|assistant|>'] } } })
  const body = await (await postJson(`${url}/v1/chat/render`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES })).json()
  assert.equal(body.prompt_tokens.engine, 'tgi')
  assert.equal(body.prompt_tokens.engine_adds_bos, true)
  assert.equal(body.prompt_tokens.learned_from, 'engine_tokenize')
  assert.equal(body.prompt_tokens.template_writes_bos, false)
  assert.equal(body.sent_prompt, body.prompt)
  assert.match(body.prompt_tokens.note, /adds <s> in front of this prompt, which the template did not write/)
})

test('a stream cut by the engine after its first bytes ends with an SSE error event and [DONE]', async (t) => {
  const { url, tgi } = await startGateway(t)
  tgi.replyOnce({ kind: 'drop', afterTokens: 2 })
  const events = await readSse(await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true }))
  assert.equal(events.at(-1), '[DONE]')
  assert.equal(JSON.parse(events.at(-2)!).error.code, 'upstream_stream_broken')
})
