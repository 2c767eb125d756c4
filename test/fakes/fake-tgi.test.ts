import { test, describe, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeTgi } from './fake-tgi.js'
import type { FakeTgi } from './fake-tgi.js'

async function post (tgi: FakeTgi, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return await fetch(tgi.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init
  })
}

function events (text: string): unknown[] {
  // every TGI event is one `data: <json>` line followed by a blank line
  return text.split('\n\n').filter((block) => block !== '').map((block) => {
    assert.ok(block.startsWith('data: '), `unexpected event framing: ${JSON.stringify(block)}`)
    return JSON.parse(block.slice('data: '.length))
  })
}

describe('fake TGI', () => {
  let tgi: FakeTgi

  before(async () => {
    tgi = await startFakeTgi({ modelId: 'acme/tiny-chat', maxInputTokens: 50, maxTotalTokens: 60 })
  })
  after(async () => {
    await tgi.close()
  })
  beforeEach(() => {
    tgi.reply({ kind: 'tokens', tokens: ['Hello', '!', ' How', ' can', ' I', ' help', '?'] })
  })

  test('/info and /health', async () => {
    const info = await (await fetch(tgi.url + '/info')).json() as Record<string, unknown>
    assert.equal(info.model_id, 'acme/tiny-chat')
    assert.equal(info.max_stop_sequences, 4)
    assert.equal(info.max_input_tokens, 50)
    assert.equal(info.max_total_tokens, 60)
    for (const key of ['max_concurrent_requests', 'max_best_of', 'validation_workers', 'max_client_batch_size']) {
      assert.equal(typeof info[key], 'number', key)
    }
    assert.equal(info.router, 'text-generation-router')
    assert.equal(typeof info.version, 'string')
    const health = await fetch(tgi.url + '/health')
    assert.equal(health.status, 200)
    assert.equal(await health.text(), '')
  })

  test('/generate ends on eos, which stays out of generated_text; counts in headers', async () => {
    const response = await post(tgi, '/generate', { inputs: 'Say hello to me', parameters: { details: true } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('x-prompt-tokens'), '4')
    assert.equal(response.headers.get('x-generated-tokens'), '8')
    assert.equal(response.headers.get('x-compute-type'), 'gpu+optimized')
    const body = await response.json() as any
    assert.equal(body.generated_text, 'Hello! How can I help?')
    assert.equal(body.details.finish_reason, 'eos_token')
    assert.equal(body.details.generated_tokens, 8)
    assert.deepEqual(body.details.prefill, [])
    assert.equal(body.details.seed, null, 'no sampling, no seed')
    const last = body.details.tokens.at(-1)
    assert.deepEqual({ text: last.text, special: last.special }, { text: '</s>', special: true })
    assert.deepEqual(Object.keys(body.details.tokens[0]), ['id', 'text', 'logprob', 'special'])
  })

  test('/generate without details has no details key; seed echoed when sampling', async () => {
    const plain = await (await post(tgi, '/generate', { inputs: 'Hi', parameters: {} })).json()
    assert.deepEqual(plain, { generated_text: 'Hello! How can I help?' })
    const sampled = await (await post(tgi, '/generate', { inputs: 'Hi', parameters: { details: true, do_sample: true, seed: 42 } })).json() as any
    assert.equal(sampled.details.seed, 42)
  })

  test('a stop sequence is kept in generated_text and finishes with stop_sequence', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['I', ' think', '.', ' Done', ' now'] })
    const body = await (await post(tgi, '/generate', { inputs: 'x', parameters: { stop: [' Done'], details: true } })).json() as any
    assert.equal(body.generated_text, 'I think. Done')
    assert.equal(body.details.finish_reason, 'stop_sequence')
    assert.equal(body.details.generated_tokens, 4)
  })

  test('a stop split across tokens matches once the text ends with it', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['Action', ': search', '\n', 'Observ', 'ation', ':', ' result'] })
    const body = await (await post(tgi, '/generate', { inputs: 'x', parameters: { stop: ['\nObservation'], details: true } })).json() as any
    assert.equal(body.generated_text, 'Action: search\nObservation')
    assert.equal(body.details.finish_reason, 'stop_sequence')
  })

  test('Python `$` semantics: a stop also matches before one trailing newline', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['Final', ' Answer', '\n', 'more'] })
    const body = await (await post(tgi, '/generate', { inputs: 'x', parameters: { stop: ['Answer'], details: true } })).json() as any
    // " Answer" ends the text and stops there; the newline case is checked next
    assert.equal(body.generated_text, 'Final Answer')
    tgi.reply({ kind: 'tokens', tokens: ['Final', ' Answer\n', 'more'] })
    const split = await (await post(tgi, '/generate', { inputs: 'x', parameters: { stop: ['Answer'], details: true } })).json() as any
    assert.equal(split.generated_text, 'Final Answer\n')
    assert.equal(split.details.finish_reason, 'stop_sequence')
  })

  test('max_new_tokens cuts with finish_reason length, checked before eos', async () => {
    const cut = await (await post(tgi, '/generate', { inputs: 'x', parameters: { max_new_tokens: 3, details: true } })).json() as any
    assert.equal(cut.generated_text, 'Hello! How')
    assert.equal(cut.details.finish_reason, 'length')
    assert.equal(cut.details.generated_tokens, 3)
    // 7 scripted tokens + eos = 8: TGI tests the length limit first, so eos at the limit is 'length'
    const edge = await (await post(tgi, '/generate', { inputs: 'x', parameters: { max_new_tokens: 8, details: true } })).json() as any
    assert.equal(edge.details.finish_reason, 'length')
    assert.equal(edge.generated_text, 'Hello! How can I help?')
  })

  test('endWithEos: false ends with length when the script runs out', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['a', 'b'], endWithEos: false })
    const body = await (await post(tgi, '/generate', { inputs: 'x', parameters: { details: true } })).json() as any
    assert.equal(body.generated_text, 'ab')
    assert.equal(body.details.finish_reason, 'length')
    assert.equal(body.details.generated_tokens, 2)
  })

  test('five stop sequences: 422 on /generate, 200 plus an error event on /generate_stream', async () => {
    const parameters = { stop: ['a', 'b', 'c', 'd', 'e'] }
    const response = await post(tgi, '/generate', { inputs: 'x', parameters })
    assert.equal(response.status, 422)
    assert.deepEqual(await response.json(), {
      error: 'Input validation error: `stop` supports up to 4 stop sequences. Given: 5',
      error_type: 'validation'
    })
    const stream = await post(tgi, '/generate_stream', { inputs: 'x', parameters })
    assert.equal(stream.status, 200)
    assert.equal(stream.headers.get('content-type'), 'text/event-stream')
    const text = await stream.text()
    assert.equal(text, 'data: {"error":"Input validation error: `stop` supports up to 4 stop sequences. Given: 5","error_type":"validation"}\n\n')
  })

  test('other validation errors carry TGI messages', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ temperature: 0 }, '`temperature` must be strictly positive'],
      [{ top_p: 1.0 }, '`top_p` must be > 0.0 and < 1.0'],
      [{ top_k: 0 }, '`top_k` must be strictly positive'],
      [{ typical_p: 0 }, '`typical_p` must be > 0.0 and < 1.0'],
      [{ repetition_penalty: 0 }, '`repetition_penalty` must be strictly positive'],
      [{ max_new_tokens: 0 }, '`max_new_tokens` must be strictly positive'],
      [{ max_new_tokens: 59 }, '`inputs` tokens + `max_new_tokens` must be <= 60. Given: 2 `inputs` tokens and 59 `max_new_tokens`']
    ]
    for (const [parameters, message] of cases) {
      const response = await post(tgi, '/generate', { inputs: 'two words', parameters })
      assert.equal(response.status, 422, JSON.stringify(parameters))
      assert.deepEqual(await response.json(), { error: `Input validation error: ${message}`, error_type: 'validation' })
    }
    const long = await post(tgi, '/generate', { inputs: 'w '.repeat(51), parameters: { max_new_tokens: 1 } })
    assert.equal((await long.json() as any).error, 'Input validation error: `inputs` must have less than 50 tokens. Given: 51')
    const empty = await post(tgi, '/generate', { inputs: '' })
    assert.equal((await empty.json() as any).error, 'Input validation error: `inputs` cannot be empty')
  })

  test('bodies serde rejects are plain-text 422 (400 for bad JSON, 415 without JSON content type), streams included', async () => {
    const missing = await post(tgi, '/generate_stream', { parameters: {} })
    assert.equal(missing.status, 422)
    assert.match(missing.headers.get('content-type') ?? '', /^text\/plain/)
    assert.equal(await missing.text(), 'Failed to deserialize the JSON body into the target type: missing field `inputs`')
    const negative = await post(tgi, '/generate', { inputs: 'x', parameters: { max_new_tokens: -1 } })
    assert.equal(await negative.text(), 'Failed to deserialize the JSON body into the target type: parameters.max_new_tokens: invalid value: integer `-1`, expected u32')
    const broken = await fetch(tgi.url + '/generate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })
    assert.equal(broken.status, 400)
    const untyped = await fetch(tgi.url + '/generate', { method: 'POST', body: '{"inputs":"x"}' })
    assert.equal(untyped.status, 415)
  })

  test('stream events: data: framing, index from 1, final event with generated_text and details, no [DONE]', async () => {
    const response = await post(tgi, '/generate_stream', { inputs: 'one two three', parameters: { details: true, max_new_tokens: 20 } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    assert.equal(response.headers.get('cache-control'), 'no-cache')
    assert.equal(response.headers.get('x-accel-buffering'), 'no')
    assert.equal(response.headers.get('x-prompt-tokens'), null, 'streams send headers before counting')
    const text = await response.text()
    assert.ok(!text.includes('[DONE]'))
    assert.match(text, /^data: \{"index":1,"token":\{"id":\d+,"text":"Hello","logprob":-[\d.]+,"special":false\},"generated_text":null,"details":null\}\n\n/)
    const parsed = events(text) as any[]
    assert.equal(parsed.length, 8)
    assert.deepEqual(parsed.map((event) => event.index), [1, 2, 3, 4, 5, 6, 7, 8])
    assert.deepEqual(parsed.slice(0, 7).map((event) => event.token.text), ['Hello', '!', ' How', ' can', ' I', ' help', '?'])
    const last = parsed[7]
    assert.deepEqual({ text: last.token.text, special: last.token.special }, { text: '</s>', special: true })
    assert.equal(last.generated_text, 'Hello! How can I help?')
    assert.deepEqual(last.details, { finish_reason: 'eos_token', generated_tokens: 8, seed: null, input_length: 3 })
    assert.ok(!('top_tokens' in last), 'top_tokens is left out when empty')
  })

  test('stream without details: the last event has details null', async () => {
    const text = await (await post(tgi, '/generate_stream', { inputs: 'x', parameters: { stop: ['can'] } })).text()
    const parsed = events(text) as any[]
    const last = parsed.at(-1)
    assert.equal(last.generated_text, 'Hello! How can')
    assert.equal(last.details, null)
  })

  test('legacy framing writes data: with no space', async () => {
    const legacy = await startFakeTgi({ legacySseFraming: true })
    try {
      const text = await (await post(legacy, '/generate_stream', { inputs: 'x', parameters: { max_new_tokens: 1 } })).text()
      assert.match(text, /^data:\{"index":1,/)
    } finally {
      await legacy.close()
    }
  })

  test('stream-error: some tokens, then the error event, all in a 200', async () => {
    tgi.reply({ kind: 'stream-error', afterTokens: 2, message: 'Request failed during generation: CUDA out of memory' })
    const response = await post(tgi, '/generate_stream', { inputs: 'x' })
    assert.equal(response.status, 200)
    const parsed = events(await response.text()) as any[]
    assert.equal(parsed.length, 3)
    assert.deepEqual(parsed[2], { error: 'Request failed during generation: CUDA out of memory', error_type: 'generation' })
    const plain = await post(tgi, '/generate', { inputs: 'x' })
    assert.equal(plain.status, 424)
  })

  test('drop: tokens, then the socket is destroyed', async () => {
    tgi.reply({ kind: 'drop', afterTokens: 2 })
    const index = tgi.calls.length
    const response = await post(tgi, '/generate_stream', { inputs: 'x' })
    assert.equal(response.status, 200)
    await assert.rejects(response.text())
    assert.equal(tgi.calls[index]?.tokensSent, 2)
    assert.equal(tgi.calls[index]?.aborted, false)
    assert.equal(tgi.activeGenerations(), 0)
  })

  test('a client abort mid-stream stops generation and is recorded', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 40 })
    const index = tgi.calls.length
    const controller = new AbortController()
    const response = await post(tgi, '/generate_stream', { inputs: 'x' }, { signal: controller.signal })
    const reader = response.body!.getReader()
    const first = await reader.read()
    assert.match(new TextDecoder().decode(first.value), /"text":"a"/)
    assert.equal(tgi.activeGenerations(), 1)
    controller.abort()
    await tgi.waitForAbort(index, 2000)
    const call = tgi.calls[index]!
    assert.equal(call.aborted, true)
    assert.ok(call.tokensSent < 7, `sent ${call.tokensSent}`)
    assert.equal(tgi.activeGenerations(), 0)
    const sent = call.tokensSent
    await new Promise((resolve) => setTimeout(resolve, 120))
    assert.equal(call.tokensSent, sent, 'nothing generated after the abort')
  })

  test('hang, replyOnce and status replies', async () => {
    tgi.replyOnce({ kind: 'status', status: 429, body: { error: 'Model is overloaded', error_type: 'overloaded' } })
    tgi.replyOnce({ kind: 'hang' })
    const overloaded = await post(tgi, '/generate', { inputs: 'x' })
    assert.equal(overloaded.status, 429)
    assert.equal((await overloaded.json() as any).error_type, 'overloaded')

    const index = tgi.calls.length
    const controller = new AbortController()
    const hanging = post(tgi, '/generate', { inputs: 'x' }, { signal: controller.signal })
    while (tgi.calls.length <= index) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(tgi.activeGenerations(), 1)
    controller.abort()
    await assert.rejects(hanging)
    await tgi.waitForAbort(index, 2000)
    assert.equal(tgi.activeGenerations(), 0)

    // the queue is spent: back to the default reply
    assert.equal((await post(tgi, '/generate', { inputs: 'x' })).status, 200)
  })

  test('waitForAbort rejects for a call that completed', async () => {
    const index = tgi.calls.length
    await (await post(tgi, '/generate', { inputs: 'x' })).text()
    await assert.rejects(tgi.waitForAbort(index, 500), /completed without an abort/)
  })

  test('the compat route / returns an array with the prompt prepended', async () => {
    const body = await post(tgi, '/', { inputs: 'Q: ', parameters: { max_new_tokens: 1 } })
    assert.deepEqual(await body.json(), [{ generated_text: 'Q: Hello' }])
  })

  test('over max_concurrent_requests: 429 Model is overloaded', async () => {
    const small = await startFakeTgi({ maxConcurrentRequests: 1 })
    try {
      small.reply({ kind: 'hang' })
      const controller = new AbortController()
      const first = post(small, '/generate', { inputs: 'x' }, { signal: controller.signal }).catch(() => undefined)
      while (small.activeGenerations() < 1) await new Promise((resolve) => setTimeout(resolve, 5))
      small.reply({ kind: 'tokens', tokens: ['a'] })
      const second = await post(small, '/generate', { inputs: 'x' })
      assert.equal(second.status, 429)
      assert.deepEqual(await second.json(), { error: 'Model is overloaded', error_type: 'overloaded' })
      controller.abort()
      await first
    } finally {
      await small.close()
    }
  })

  test('requiredToken: 401 without the bearer token', async () => {
    const guarded = await startFakeTgi({ requiredToken: 'hf_secret' })
    try {
      assert.equal((await post(guarded, '/generate', { inputs: 'x' })).status, 401)
      assert.equal((await fetch(guarded.url + '/info')).status, 401)
      const ok = await post(guarded, '/generate', { inputs: 'x' }, { headers: { 'content-type': 'application/json', authorization: 'Bearer hf_secret' } })
      assert.equal(ok.status, 200)
    } finally {
      await guarded.close()
    }
  })
})
