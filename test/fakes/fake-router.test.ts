import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeTgi } from './fake-tgi.js'
import type { FakeTgi } from './fake-tgi.js'
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
