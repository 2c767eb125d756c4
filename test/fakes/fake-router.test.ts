import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeTgi } from './fake-tgi.js'
import type { FakeTgi } from './fake-tgi.js'
import { startFakeVllm } from './fake-vllm.js'
import type { FakeVllm } from './fake-vllm.js'
import { startFakeRouter } from './fake-router.js'
import type { FakeRouter } from './fake-router.js'

const REPO = 'acme/tiny-chat'
const TOKEN = 'hf_router_secret'

describe('fake router (hf-inference)', () => {
  let tgi: FakeTgi
  let router: FakeRouter

  async function complete (body: unknown, init: { token?: string | null, repo?: string, signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    const token = init.token === undefined ? TOKEN : init.token
    if (token !== null) headers.authorization = `Bearer ${token}`
    return await fetch(`${router.url}/hf-inference/models/${init.repo ?? REPO}/v1/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: init.signal
    })
  }

  before(async () => {
    tgi = await startFakeTgi({ modelId: REPO })
    router = await startFakeRouter({ models: { [REPO]: { tgi } }, tokens: [TOKEN] })
  })
  after(async () => {
    await router.close()
    await tgi.close()
  })
  beforeEach(() => {
    tgi.reply({ kind: 'tokens', tokens: ['Hello', '!', ' How', ' can', ' I', ' help', '?'] })
  })

  test('loading, then the completion from the model\'s TGI, without the caller\'s token', async () => {
    router.script(REPO, { kind: 'loading', estimatedTime: 20 })
    const tgiCalls = tgi.calls.length
    const requestIndex = router.requests.length
    const loading = await complete({ model: REPO, prompt: 'Hi there', max_tokens: 3 })
    assert.equal(loading.status, 503)
    assert.equal(loading.headers.get('content-type'), 'application/json')
    assert.equal(await loading.text(), '{"error":"Model acme/tiny-chat is currently loading","estimated_time":20.0}')
    assert.equal(tgi.calls.length, tgiCalls, 'a loading model is not reached')

    const ok = await complete({ model: REPO, prompt: 'Hi there', max_tokens: 3 })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers.get('x-prompt-tokens'), '2', 'TGI headers pass through')
    assert.ok(ok.headers.get('x-request-id'))
    const body = await ok.json() as any
    assert.equal(body.object, 'text_completion')
    assert.equal(body.choices[0].text, 'Hello! How')

    const call = tgi.calls[tgiCalls]!
    assert.equal(call.path, '/v1/completions')
    assert.deepEqual(call.body, { model: REPO, prompt: 'Hi there', max_tokens: 3 })
    assert.equal(call.headers.authorization, undefined, 'the HF token stays at the router')
    const recorded = router.requests.slice(requestIndex)
    assert.equal(recorded.length, 2)
    assert.deepEqual(recorded.map((request) => [request.method, request.path, request.headers.authorization]), [
      ['POST', `/hf-inference/models/${REPO}/v1/completions`, `Bearer ${TOKEN}`],
      ['POST', `/hf-inference/models/${REPO}/v1/completions`, `Bearer ${TOKEN}`]
    ])
    assert.equal(recorded[0]?.body.prompt, 'Hi there')
  })

  test('401 without a valid token, before anything else', async () => {
    for (const token of ['hf_wrong', null]) {
      const response = await complete({ prompt: 'x' }, { token })
      assert.equal(response.status, 401)
      assert.deepEqual(await response.json(), { error: 'Invalid credentials in Authorization header' })
    }
    const unknown = await complete({ prompt: 'x' }, { token: 'hf_wrong', repo: 'nobody/nothing' })
    assert.equal(unknown.status, 401)
    assert.equal(router.requests.at(-1)?.headers.authorization, 'Bearer hf_wrong')
  })

  test('404 text/plain Not Found for a model hf-inference does not serve', async () => {
    const response = await complete({ prompt: 'x' }, { repo: 'nobody/nothing' })
    assert.equal(response.status, 404)
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
    assert.equal(await response.text(), 'Not Found')
  })

  test('429 with retry-after, then through again', async () => {
    router.script(REPO, { kind: 'rate-limit', retryAfter: 30 }, { kind: 'rate-limit' })
    const limited = await complete({ prompt: 'x' })
    assert.equal(limited.status, 429)
    assert.equal(limited.headers.get('retry-after'), '30')
    assert.match((await limited.json() as any).error, /^Rate limit reached/)
    const again = await complete({ prompt: 'x' })
    assert.equal(again.status, 429)
    assert.equal(again.headers.get('retry-after'), null)
    await again.text()
    assert.equal((await complete({ prompt: 'x' })).status, 200)
  })

  test('reset drops the connection before any byte; status sends anything', async () => {
    router.script(REPO, { kind: 'reset' }, { kind: 'status', status: 502, body: { error: 'Bad Gateway' } })
    const tgiCalls = tgi.calls.length
    await assert.rejects(complete({ prompt: 'x' }))
    const status = await complete({ prompt: 'x' })
    assert.equal(status.status, 502)
    assert.deepEqual(await status.json(), { error: 'Bad Gateway' })
    assert.equal(tgi.calls.length, tgiCalls)
  })

  test('streams pass through byte for byte, as they come', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['a', 'b', 'c'], delayMs: 30, endWithEos: false })
    const response = await complete({ prompt: 'x', stream: true })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    const first = await reader.read()
    assert.match(decoder.decode(first.value), /^data: \{"object":"text_completion",.*"text":"a"/)
    let text = decoder.decode(first.value, { stream: true })
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      text += decoder.decode(chunk.value, { stream: true })
    }
    const blocks = text.split('\n\n').filter((block) => block !== '')
    assert.equal(blocks.length, 4)
    assert.match(blocks[2] ?? '', /"text":"c","logprobs":null,"finish_reason":"length"\}\],"usage":/)
    assert.equal(blocks[3], 'data: [DONE]')
  })

  test('TGI errors pass through with their status', async () => {
    const response = await complete({ prompt: 'x', temperature: -1 })
    assert.equal(response.status, 422)
    assert.deepEqual(await response.json(), { error: 'Input validation error: `temperature` must be strictly positive', error_type: 'validation' })
  })

  test('a client abort mid-stream reaches the model\'s TGI', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 40 })
    const index = tgi.calls.length
    const controller = new AbortController()
    const response = await complete({ prompt: 'x', stream: true }, { signal: controller.signal })
    const reader = response.body!.getReader()
    const first = await reader.read()
    assert.match(new TextDecoder().decode(first.value), /"text":"a"/)
    controller.abort()
    await tgi.waitForAbort(index, 2000)
    assert.equal(tgi.calls[index]?.aborted, true)
    assert.ok((tgi.calls[index]?.tokensSent ?? 0) < 7)
    assert.equal(tgi.activeGenerations(), 0)
  })

  test('a client abort while TGI has not answered yet reaches it too', async () => {
    tgi.replyOnce({ kind: 'hang' })
    const index = tgi.calls.length
    const controller = new AbortController()
    const pending = complete({ prompt: 'x' }, { signal: controller.signal })
    while (tgi.calls.length <= index) await new Promise((resolve) => setTimeout(resolve, 5))
    controller.abort()
    await assert.rejects(pending)
    await tgi.waitForAbort(index, 2000)
    assert.equal(tgi.activeGenerations(), 0)
  })

  test('a TGI that drops mid-stream drops the client too', async () => {
    tgi.reply({ kind: 'drop', afterTokens: 2 })
    const response = await complete({ prompt: 'x', stream: true })
    assert.equal(response.status, 200)
    await assert.rejects(response.text())
  })
})

test('fake router without tokens lets anyone through', async () => {
  const tgi = await startFakeTgi()
  const router = await startFakeRouter({ models: { 'fake-org/fake-model': { tgi } } })
  try {
    const response = await fetch(`${router.url}/hf-inference/models/fake-org/fake-model/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x', max_tokens: 1 })
    })
    assert.equal(response.status, 200)
    assert.equal((await response.json() as any).choices[0].text, 'Hello')
  } finally {
    await router.close()
    await tgi.close()
  }
})

describe('fake router (Inference Providers)', () => {
  const CHAT = 'acme/chat-model'
  const TEXT = 'acme/text-model'
  let vllm: FakeVllm
  let router: FakeRouter

  async function chat (body: Record<string, unknown>, init: { token?: string | null, signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    const token = init.token === undefined ? TOKEN : init.token
    if (token !== null) headers.authorization = `Bearer ${token}`
    return await fetch(`${router.url}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: CHAT, messages: [{ role: 'user', content: 'Say hello to me' }], ...body }),
      signal: init.signal
    })
  }

  async function events (response: Response): Promise<any[]> {
    const text = await response.text()
    const blocks = text.split('\n\n').filter((block) => block !== '')
    for (const block of blocks) assert.match(block, /^data: /)
    return blocks.map((block) => block.slice('data: '.length)).map((data) => data === '[DONE]' ? data : JSON.parse(data))
  }

  before(async () => {
    vllm = await startFakeVllm({ servedModelName: TEXT, modelPath: TEXT })
    router = await startFakeRouter({
      tokens: [TOKEN],
      chatModels: {
        [CHAT]: { providers: ['together', 'novita', 'featherless-ai'], providerIds: { together: 'acme/chat-model-turbo' } },
        'acme/other': { providers: ['groq'] }
      },
      textProviders: { 'featherless-ai': { engine: vllm, models: [TEXT] } }
    })
  })
  after(async () => {
    await router.close()
    await vllm.close()
  })
  beforeEach(() => {
    router.chatReply({ kind: 'message' })
  })

  test('a chat completion from the :fastest provider by default, as providers answer it', async () => {
    const index = router.chatCalls.length
    const response = await chat({})
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/json')
    assert.ok(response.headers.get('x-request-id'))
    const body = await response.json() as any
    assert.match(body.id, /^chatcmpl-/)
    assert.equal(body.object, 'chat.completion')
    assert.equal(typeof body.created, 'number')
    assert.equal(body.model, 'acme/chat-model-turbo', "the provider's model id")
    assert.deepEqual(body.choices, [{ index: 0, message: { role: 'assistant', content: 'Hello! How can I help?' }, logprobs: null, finish_reason: 'stop' }])
    assert.deepEqual(body.usage, { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 })
    const call = router.chatCalls[index]!
    assert.equal(call.provider, 'together')
    assert.equal(call.repo, CHAT)
    assert.equal(call.body.messages[0].content, 'Say hello to me')
    assert.equal(call.headers.authorization, `Bearer ${TOKEN}`)
    assert.equal(call.aborted, false)
    assert.equal(router.requests.at(-1)?.path, '/v1/chat/completions')
  })

  test('model suffixes: :provider, :fastest, :preferred, :cheapest', async () => {
    for (const [suffix, provider, model] of [[':novita', 'novita', CHAT], [':fastest', 'together', 'acme/chat-model-turbo'], [':preferred', 'together', 'acme/chat-model-turbo'], [':cheapest', 'featherless-ai', CHAT]] as const) {
      const index = router.chatCalls.length
      const response = await chat({ model: `${CHAT}${suffix}` })
      assert.equal(response.status, 200)
      assert.equal((await response.json() as any).model, model)
      assert.equal(router.chatCalls[index]?.provider, provider, suffix)
    }
  })

  test('unknown model and unsupported provider: the router\'s 400 model_not_supported', async () => {
    const calls = router.chatCalls.length
    const unknown = await chat({ model: 'nobody/nothing' })
    assert.equal(unknown.status, 400)
    assert.deepEqual(await unknown.json(), { error: { message: "The requested model 'nobody/nothing' is not supported by any provider you have enabled.", type: 'invalid_request_error', param: 'model', code: 'model_not_supported' } })
    const wrongProvider = await chat({ model: `${CHAT}:groq` })
    assert.equal(wrongProvider.status, 400)
    assert.deepEqual(await wrongProvider.json(), { error: { message: `The requested model '${CHAT}' is not supported by provider 'groq'.`, type: 'invalid_request_error', param: 'model', code: 'model_not_supported' } })
    const noModel = await chat({ model: undefined })
    assert.equal(noModel.status, 400)
    assert.equal((await noModel.json() as any).error.type, 'invalid_request_error')
    assert.equal(router.chatCalls.length, calls, 'no provider was reached')
  })

  test('401 before anything else; 402 when out of credits, on every inference route', async () => {
    const bad = await chat({ model: 'nobody/nothing' }, { token: 'hf_wrong' })
    assert.equal(bad.status, 401)
    assert.deepEqual(await bad.json(), { error: 'Invalid credentials in Authorization header' })
    assert.equal((await chat({}, { token: null })).status, 401)

    router.setOutOfCredits(true)
    try {
      const broke = await chat({})
      assert.equal(broke.status, 402)
      assert.deepEqual(await broke.json(), { error: 'You have depleted your monthly included credits. Purchase pre-paid credits to continue using Inference Providers. Alternatively, subscribe to PRO to get 20x more included credits.' })
      const text = await fetch(`${router.url}/featherless-ai/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: TEXT, prompt: 'x' }) })
      assert.equal(text.status, 402)
      await text.text()
      assert.equal((await fetch(`${router.url}/v1/models`)).status, 200, 'listing models costs nothing')
    } finally {
      router.setOutOfCredits(false)
    }
    assert.equal((await chat({})).status, 200)
  })

  test('stop (not included) and max_tokens (words, finish length); more than 4 stops is a 400', async () => {
    const stopped = await (await chat({ stop: ['help', 'How'] })).json() as any
    assert.equal(stopped.choices[0].message.content, 'Hello! ')
    assert.equal(stopped.choices[0].finish_reason, 'stop')
    const single = await (await chat({ stop: '!' })).json() as any
    assert.equal(single.choices[0].message.content, 'Hello')
    const cut = await (await chat({ max_tokens: 2 })).json() as any
    assert.equal(cut.choices[0].message.content, 'Hello! How')
    assert.equal(cut.choices[0].finish_reason, 'length')
    assert.equal(cut.usage.completion_tokens, 2)
    const enough = await (await chat({ max_tokens: 5 })).json() as any
    assert.equal(enough.choices[0].finish_reason, 'stop')
    const tooMany = await chat({ stop: ['a', 'b', 'c', 'd', 'e'] })
    assert.equal(tooMany.status, 400)
    assert.deepEqual(await tooMany.json(), { error: { message: "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length 5 instead.", type: 'invalid_request_error', param: 'stop', code: 'array_above_max_length' } })
  })

  test('tool calls, reasoning and a scripted reply function; chatReplyOnce goes first', async () => {
    router.chatReply((call) => ({ kind: 'message', content: null, reasoning: 'Think first', toolCalls: [{ name: 'lookup', arguments: JSON.stringify({ q: call.body.messages[0].content }) }] }))
    router.chatReplyOnce({ kind: 'message', content: 'Once only' })
    const once = await (await chat({})).json() as any
    assert.equal(once.choices[0].message.content, 'Once only')
    const body = await (await chat({})).json() as any
    const message = body.choices[0].message
    assert.equal(message.content, null)
    assert.equal(message.reasoning_content, 'Think first')
    assert.equal(message.tool_calls.length, 1)
    assert.match(message.tool_calls[0].id, /^call_/)
    assert.equal(message.tool_calls[0].type, 'function')
    assert.deepEqual(message.tool_calls[0].function, { name: 'lookup', arguments: '{"q":"Say hello to me"}' })
    assert.equal(body.choices[0].finish_reason, 'tool_calls')
  })

  test('a stream: role chunk, content pieces, finish chunk, usage chunk, [DONE]', async () => {
    const response = await chat({ stream: true, stream_options: { include_usage: true } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    const all = await events(response)
    assert.equal(all.at(-1), '[DONE]')
    const chunks = all.slice(0, -1)
    for (const chunk of chunks) {
      assert.equal(chunk.object, 'chat.completion.chunk')
      assert.equal(chunk.model, 'acme/chat-model-turbo')
    }
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' })
    assert.deepEqual(chunks.slice(1, 6).map((chunk) => chunk.choices[0].delta.content), ['Hello!', ' How', ' can', ' I', ' help?'])
    assert.deepEqual(chunks[6].choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' })
    assert.equal(chunks[6].usage, null)
    assert.deepEqual(chunks[7].choices, [])
    assert.deepEqual(chunks[7].usage, { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 })
    assert.equal(chunks.length, 8)

    router.chatReplyOnce({ kind: 'message', content: 'one two three four', chunks: 2 })
    const paired = (await events(await chat({ stream: true }))).slice(1, -2).map((chunk) => chunk.choices[0].delta.content)
    assert.deepEqual(paired, ['one two', ' three four'])
  })

  test('a stream of tool calls in OpenAI\'s delta shape, reasoning first', async () => {
    router.chatReplyOnce({ kind: 'message', content: null, reasoning: 'Hmm ok', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] })
    const chunks = (await events(await chat({ stream: true }))).slice(0, -1)
    assert.deepEqual(chunks.slice(1, 3).map((chunk) => chunk.choices[0].delta), [{ reasoning_content: 'Hmm' }, { reasoning_content: ' ok' }])
    const first = chunks[3].choices[0].delta.tool_calls[0]
    assert.equal(first.index, 0)
    assert.match(first.id, /^call_/)
    assert.equal(first.type, 'function')
    assert.deepEqual(first.function, { name: 'get_weather', arguments: '' })
    const pieces = chunks.slice(4, -1).map((chunk) => chunk.choices[0].delta.tool_calls[0])
    assert.ok(pieces.length > 1)
    for (const piece of pieces) assert.deepEqual(Object.keys(piece), ['index', 'function'])
    assert.equal(pieces.map((piece) => piece.function.arguments).join(''), '{"city":"Paris"}')
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls')
  })

  test('status, stream-error and drop replies', async () => {
    router.chatReplyOnce({ kind: 'status', status: 503, body: { error: 'busy' }, headers: { 'retry-after': '3' } })
    const status = await chat({})
    assert.equal(status.status, 503)
    assert.equal(status.headers.get('retry-after'), '3')
    assert.deepEqual(await status.json(), { error: 'busy' })

    router.chatReplyOnce({ kind: 'stream-error', afterChunks: 2, message: 'upstream broke' })
    const broken = (await events(await chat({ stream: true })))
    assert.equal(broken.length, 4, 'role chunk, two pieces, the error')
    assert.deepEqual(broken[3], { error: { message: 'upstream broke', type: 'server_error', param: null, code: null } })
    router.chatReplyOnce({ kind: 'stream-error', afterChunks: 2, message: 'upstream broke' })
    assert.equal((await chat({})).status, 500)

    router.chatReplyOnce({ kind: 'drop', afterChunks: 1 })
    const dropped = await chat({ stream: true })
    assert.equal(dropped.status, 200)
    await assert.rejects(dropped.text())
    assert.equal(router.chatCalls.at(-1)?.aborted, false, 'the provider dropped, the client did not')
    router.chatReplyOnce({ kind: 'drop', afterChunks: 1 })
    await assert.rejects(chat({}))
  })

  test('a client disconnect mid-stream and during a hang reaches the router', async () => {
    router.chatReplyOnce({ kind: 'message', content: 'a b c d e f g h', delayMs: 40 })
    const index = router.chatCalls.length
    const controller = new AbortController()
    const response = await chat({ stream: true }, { signal: controller.signal })
    const reader = response.body!.getReader()
    await reader.read()
    controller.abort()
    await router.waitForChatAbort(index, 2000)
    assert.equal(router.chatCalls[index]?.aborted, true)

    router.chatReplyOnce({ kind: 'hang' })
    const hangIndex = router.chatCalls.length
    const hangController = new AbortController()
    const pending = chat({}, { signal: hangController.signal })
    while (router.chatCalls.length <= hangIndex) await new Promise((resolve) => setTimeout(resolve, 5))
    hangController.abort()
    await assert.rejects(pending)
    await router.waitForChatAbort(hangIndex, 2000)

    const done = router.chatCalls.length
    await (await chat({})).text()
    await assert.rejects(router.waitForChatAbort(done, 200), /completed without an abort/)
  })

  test('GET /v1/models lists the chat models with their providers', async () => {
    const response = await fetch(`${router.url}/v1/models`)
    assert.equal(response.status, 200)
    const body = await response.json() as any
    assert.equal(body.object, 'list')
    assert.deepEqual(body.data.map((model: any) => model.id), [CHAT, 'acme/other'])
    const model = body.data[0]
    assert.equal(model.object, 'model')
    assert.equal(typeof model.created, 'number')
    assert.equal(model.owned_by, 'acme')
    assert.deepEqual(model.providers.map((provider: any) => provider.provider), ['together', 'novita', 'featherless-ai'])
    for (const provider of model.providers) {
      assert.equal(provider.status, 'live')
      assert.equal(typeof provider.context_length, 'number')
      assert.equal(typeof provider.pricing.input, 'number')
      assert.equal(typeof provider.pricing.output, 'number')
      assert.equal(provider.supports_tools, true)
      assert.equal(provider.supports_structured_output, true)
    }
    const outputs = model.providers.map((provider: any) => provider.pricing.output)
    assert.equal(Math.min(...outputs), outputs.at(-1), 'the last provider is the cheapest')
    assert.equal((await fetch(`${router.url}/v1/models`, { headers: { authorization: 'Bearer hf_wrong' } })).status, 401)
  })

  test('POST /{provider}/v1/completions is proxied to its engine without the token, streams included', async () => {
    vllm.reply({ kind: 'tokens', tokens: ['Hi', ' there'] })
    const index = vllm.calls.length
    const complete = async (body: unknown, signal?: AbortSignal): Promise<Response> => await fetch(`${router.url}/featherless-ai/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal
    })
    const response = await complete({ model: TEXT, prompt: 'Hello', max_tokens: 5 })
    assert.equal(response.status, 200)
    const body = await response.json() as any
    assert.equal(body.object, 'text_completion')
    assert.equal(body.choices[0].text, 'Hi there')
    assert.equal(vllm.calls[index]?.headers.authorization, undefined)
    assert.equal(vllm.calls[index]?.body.prompt, 'Hello')

    const stream = await complete({ model: TEXT, prompt: 'Hello', stream: true })
    assert.equal(stream.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    assert.match(await stream.text(), /data: \[DONE\]/)

    const other = await complete({ model: 'acme/elsewhere', prompt: 'x' })
    assert.equal(other.status, 400)
    assert.deepEqual(await other.json(), { error: 'Model not supported by provider featherless-ai' })
    const unknown = await fetch(`${router.url}/nobody-ai/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' })
    assert.equal(unknown.status, 404)
    await unknown.text()
    const unauthorized = await fetch(`${router.url}/featherless-ai/v1/completions`, { method: 'POST', body: '{}' })
    assert.equal(unauthorized.status, 401)
    await unauthorized.text()

    vllm.replyOnce({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 40 })
    const abortIndex = vllm.calls.length
    const controller = new AbortController()
    const streaming = await complete({ model: TEXT, prompt: 'x', stream: true, max_tokens: 6 }, controller.signal)
    await streaming.body!.getReader().read()
    controller.abort()
    await vllm.waitForAbort(abortIndex, 2000)
  })
})
