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

describe('fake TGI /v1/completions (server.rs completions)', () => {
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

  test('non-stream: text_completion JSON in serde order, eos reported as "stop", usage, summed headers', async () => {
    const index = tgi.calls.length
    const before = Math.floor(Date.now() / 1000)
    const response = await post(tgi, '/v1/completions', { model: 'acme/tiny-chat', prompt: 'Say hello to me', max_tokens: 20, temperature: 0.7, top_p: 0.9, seed: 7 })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/json')
    assert.equal(response.headers.get('x-prompt-tokens'), '4')
    assert.equal(response.headers.get('x-generated-tokens'), '8')
    assert.equal(response.headers.get('x-compute-type'), 'gpu+optimized')
    assert.equal(response.headers.get('x-compute-characters'), '15')
    assert.equal(response.headers.get('x-compute-time'), null, 'a float that server.rs fails to parse as u32')
    const text = await response.text()
    assert.match(text, /^\{"object":"text_completion","id":"","created":\d+,"model":"acme\/tiny-chat","system_fingerprint":"3\.3\.6-dev0-native","choices":\[\{"index":0,"text":"Hello! How can I help\?","logprobs":null,"finish_reason":"stop"\}\],"usage":\{"prompt_tokens":4,"completion_tokens":8,"total_tokens":12\}\}$/)
    const body = JSON.parse(text)
    assert.ok(body.created >= before && body.created <= before + 2)
    const call = tgi.calls[index]!
    assert.equal(call.path, '/v1/completions')
    assert.equal(call.body.prompt, 'Say hello to me')
    assert.equal(call.tokensSent, 8)
    assert.equal(call.aborted, false)
  })

  test('stop sequences stay in the text (finish_reason stop_sequence); max_tokens cuts with length', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['I', ' think', '.', ' Done', ' now'] })
    const stopped = await (await post(tgi, '/v1/completions', { prompt: 'x', stop: [' Done'] })).json() as any
    assert.deepEqual(stopped.choices, [{ index: 0, text: 'I think. Done', logprobs: null, finish_reason: 'stop_sequence' }])
    assert.equal(stopped.usage.completion_tokens, 4)
    const cut = await (await post(tgi, '/v1/completions', { prompt: 'x', max_tokens: 2 })).json() as any
    assert.equal(cut.choices[0].text, 'I think')
    assert.equal(cut.choices[0].finish_reason, 'length')
  })

  test('several prompts: one choice each, index in prompt order, usage summed', async () => {
    const body = await (await post(tgi, '/v1/completions', { prompt: ['one', 'two words'], max_tokens: 2, temperature: 0 })).json() as any
    assert.deepEqual(body.choices.map((choice: any) => [choice.index, choice.text, choice.finish_reason]), [[0, 'Hello!', 'length'], [1, 'Hello!', 'length']])
    assert.deepEqual(body.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 })
    const tooMany = await post(tgi, '/v1/completions', { prompt: ['a', 'b', 'c', 'd', 'e'] })
    assert.equal(tooMany.status, 422)
    assert.deepEqual(await tooMany.json(), { error: 'Number of prompts exceeds the maximum allowed batch size of 4', error_type: 'batch size exceeded' })
  })

  test('validation errors are TGI JSON 422s; serde rejections are plain text; suffix is refused', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ temperature: -1 }, '`temperature` must be strictly positive'],
      [{ top_p: 1 }, '`top_p` must be > 0.0 and < 1.0'],
      [{ max_tokens: 0 }, '`max_new_tokens` must be strictly positive'],
      [{ stop: ['a', 'b', 'c', 'd', 'e'] }, '`stop` supports up to 4 stop sequences. Given: 5'],
      [{ frequency_penalty: 3 }, '`frequency_penalty` must be >= -2.0 and <= 2.0']
    ]
    for (const [fields, message] of cases) {
      const response = await post(tgi, '/v1/completions', { prompt: 'two words', ...fields })
      assert.equal(response.status, 422, JSON.stringify(fields))
      assert.deepEqual(await response.json(), { error: `Input validation error: ${message}`, error_type: 'validation' })
    }
    const empty = await post(tgi, '/v1/completions', { prompt: '' })
    assert.equal((await empty.json() as any).error, 'Input validation error: `inputs` cannot be empty')

    const rejections: Array<[unknown, string]> = [
      [{ max_tokens: 5 }, 'missing field `prompt`'],
      [{ prompt: 5 }, 'prompt: data did not match any variant of untagged enum PromptDeserializer'],
      [{ prompt: [] }, 'prompt: Empty array detected. Do not use an empty array for the prompt.'],
      [{ prompt: 'x', max_tokens: -1 }, 'max_tokens: invalid value: integer `-1`, expected u32'],
      [{ prompt: 'x', stop: 'END' }, 'stop: invalid type: string "END", expected a sequence'],
      [{ prompt: 'x', stream: null }, 'stream: invalid type: null, expected a boolean']
    ]
    for (const [body, message] of rejections) {
      const response = await post(tgi, '/v1/completions', body)
      assert.equal(response.status, 422, JSON.stringify(body))
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
      assert.equal(await response.text(), `Failed to deserialize the JSON body into the target type: ${message}`)
    }
    // Option fields take null, and unknown fields are ignored (no deny_unknown_fields)
    assert.equal((await post(tgi, '/v1/completions', { prompt: 'x', max_tokens: null, stop: null, return_full_text: true })).status, 200)

    const suffix = await post(tgi, '/v1/completions', { prompt: 'x', suffix: 'y', stream: true })
    assert.equal(suffix.status, 422)
    assert.deepEqual(await suffix.json(), { error: 'Suffix is not supported and can be achieved by preprocessing the prompt.', error_type: 'suffix not supported' })
    assert.equal((await fetch(tgi.url + '/v1/completions')).status, 405)
  })

  test('stream: Chunk events (object first, finish_reason ""), a final CompletionFinal with usage, then [DONE]', async () => {
    const index = tgi.calls.length
    const response = await post(tgi, '/v1/completions', { prompt: 'one two three', max_tokens: 20, stream: true })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'text/event-stream')
    assert.equal(response.headers.get('cache-control'), 'no-cache')
    assert.equal(response.headers.get('x-accel-buffering'), 'no')
    assert.equal(response.headers.get('x-compute-characters'), '13')
    const text = await response.text()
    assert.match(text, /^data: \{"object":"text_completion","id":"","created":\d+,"choices":\[\{"index":0,"text":"Hello","logprobs":null,"finish_reason":""\}\],"model":"acme\/tiny-chat","system_fingerprint":"3\.3\.6-dev0-native"\}\n\n/)
    assert.ok(text.endsWith('\n\ndata: [DONE]\n\n'), 'ends with [DONE]')
    const parsed = events(text.slice(0, -'data: [DONE]\n\n'.length)) as any[]
    assert.equal(parsed.length, 8)
    assert.deepEqual(parsed.slice(0, 7).map((event) => event.choices[0].text), ['Hello', '!', ' How', ' can', ' I', ' help', '?'])
    const last = parsed[7]
    assert.deepEqual(Object.keys(last), ['object', 'id', 'created', 'model', 'system_fingerprint', 'choices', 'usage'])
    // the last token is eos and comes through as its text; Display, not "stop"
    assert.deepEqual(last.choices, [{ index: 0, text: '</s>', logprobs: null, finish_reason: 'eos_token' }])
    assert.deepEqual(last.usage, { prompt_tokens: 3, completion_tokens: 8, total_tokens: 11 })
    assert.equal(tgi.calls[index]?.tokensSent, 8)
  })

  test('stream: a stop sequence ends on the token that completes it, finish_reason stop_sequence', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['I', ' think', '.', ' Done', ' now'] })
    const text = await (await post(tgi, '/v1/completions', { prompt: 'x', stop: [' Done'], stream: true })).text()
    const parsed = events(text.replace(/data: \[DONE\]\n\n$/, '')) as any[]
    assert.deepEqual(parsed.map((event) => event.choices[0].text), ['I', ' think', '.', ' Done'])
    assert.equal(parsed[3].choices[0].finish_reason, 'stop_sequence')
  })

  test('stream: validation and generation errors are OpenAI-style events (always 422) followed by [DONE]', async () => {
    const invalid = await post(tgi, '/v1/completions', { prompt: 'x', temperature: -1, stream: true })
    assert.equal(invalid.status, 200)
    assert.equal(await invalid.text(),
      'data: {"error":{"message":"Input validation error: `temperature` must be strictly positive","http_status_code":422}}\n\ndata: [DONE]\n\n')

    tgi.reply({ kind: 'stream-error', afterTokens: 2, message: 'Request failed during generation: CUDA out of memory' })
    const index = tgi.calls.length
    const failed = await (await post(tgi, '/v1/completions', { prompt: 'x', stream: true })).text()
    const blocks = failed.split('\n\n').filter((block) => block !== '')
    assert.equal(blocks.length, 4)
    assert.equal(blocks[2], 'data: {"error":{"message":"Request failed during generation: CUDA out of memory","http_status_code":422}}')
    assert.equal(blocks[3], 'data: [DONE]')
    assert.equal(tgi.calls[index]?.tokensSent, 2)
    const plain = await post(tgi, '/v1/completions', { prompt: 'x' })
    assert.equal(plain.status, 424)
    assert.deepEqual(await plain.json(), { error: 'Request failed during generation: CUDA out of memory', error_type: 'generation' })
  })

  test('stream: several prompts interleave one event each per round', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['a', 'b'], endWithEos: false })
    const text = await (await post(tgi, '/v1/completions', { prompt: ['p', 'q'], stream: true })).text()
    const parsed = events(text.replace(/data: \[DONE\]\n\n$/, '')) as any[]
    assert.deepEqual(parsed.map((event) => [event.choices[0].index, event.choices[0].text, event.choices[0].finish_reason]),
      [[0, 'a', ''], [1, 'a', ''], [0, 'b', 'length'], [1, 'b', 'length']])
  })

  test('stream: drop destroys the socket without [DONE]; a client abort stops generation', async () => {
    tgi.reply({ kind: 'drop', afterTokens: 2 })
    const dropped = await post(tgi, '/v1/completions', { prompt: 'x', stream: true })
    await assert.rejects(dropped.text())

    tgi.reply({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f'], delayMs: 40 })
    const index = tgi.calls.length
    const controller = new AbortController()
    const response = await post(tgi, '/v1/completions', { prompt: 'x', stream: true }, { signal: controller.signal })
    const reader = response.body!.getReader()
    const first = await reader.read()
    assert.match(new TextDecoder().decode(first.value), /"text":"a"/)
    assert.equal(tgi.activeGenerations(), 1)
    controller.abort()
    await tgi.waitForAbort(index, 2000)
    assert.equal(tgi.calls[index]?.aborted, true)
    assert.equal(tgi.activeGenerations(), 0)
  })

  test('replies status and hang work on /v1/completions; requiredToken guards it', async () => {
    tgi.replyOnce({ kind: 'status', status: 503, body: 'upstream down' })
    const status = await post(tgi, '/v1/completions', { prompt: 'x' })
    assert.equal(status.status, 503)
    assert.equal(await status.text(), 'upstream down')

    const guarded = await startFakeTgi({ requiredToken: 'hf_secret' })
    try {
      const denied = await post(guarded, '/v1/completions', { prompt: 'x' })
      assert.equal(denied.status, 401)
      const ok = await post(guarded, '/v1/completions', { prompt: 'x' }, { headers: { 'content-type': 'application/json', authorization: 'Bearer hf_secret' } })
      assert.equal(ok.status, 200)
    } finally {
      await guarded.close()
    }
  })
})
