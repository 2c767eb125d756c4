import test from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startGateway, postJson, readSse, ZEPHYR, ZEPHYR_MESSAGES, ZEPHYR_PROMPT } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'

test('the seed zephyr prompt goes upstream exactly, and the answer is an OpenAI completion (OpenAI SDK)', async (t) => {
  const { openai, tgi } = await startGateway(t)
  const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(tgi.calls.length, 1)
  assert.equal(tgi.calls[0]!.path, '/generate')
  assert.equal(tgi.calls[0]!.body.inputs, ZEPHYR_PROMPT)
  assert.equal(completion.choices[0]!.message.content, 'Hello! How can I help?')
  assert.equal(completion.choices[0]!.finish_reason, 'stop')
  assert.equal(completion.model, ZEPHYR)
  // 17 whitespace-separated words in the prompt (the fake's tokenizer); 7 tokens + eos.
  assert.deepEqual(completion.usage, { prompt_tokens: 17, completion_tokens: 8, total_tokens: 25 })
  assertMatchesOpenAI('CreateChatCompletionResponse', completion)
})

test('streaming through the OpenAI SDK: role first, one finish_reason, text equal to the non-stream answer', async (t) => {
  const { openai, tgi } = await startGateway(t)
  const nonStream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, seed: 7 })
  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, seed: 7, stream: true })
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  assert.equal(tgi.calls[1]!.path, '/generate_stream')
  assert.equal(tgi.calls[1]!.body.inputs, ZEPHYR_PROMPT)
  assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: 'assistant', content: '' })
  for (const chunk of chunks) assertMatchesOpenAI('CreateChatCompletionStreamResponse', chunk)
  const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')
  assert.equal(text, nonStream.choices[0]!.message.content)
  const finishes = chunks.filter((chunk) => chunk.choices[0]?.finish_reason !== null)
  assert.equal(finishes.length, 1)
  assert.equal(finishes[0]!.choices[0]!.finish_reason, 'stop')
  assert.equal(new Set(chunks.map((chunk) => chunk.id)).size, 1)
})

test('the raw stream is `data: {...}` events ending with data: [DONE]', async (t) => {
  const { url } = await startGateway(t)
  const response = await postJson(`${url}/v1/chat/completions`, { model: 'x', messages: ZEPHYR_MESSAGES, stream: true })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/)
  const events = await readSse(response)
  assert.equal(events.at(-1), '[DONE]')
  assert.equal(events.filter((event) => event === '[DONE]').length, 1)
  for (const event of events.slice(0, -1)) assertMatchesOpenAI('CreateChatCompletionStreamResponse', JSON.parse(event))
})

test('stream_options.include_usage adds a last chunk with no choices and the non-stream counts', async (t) => {
  const { openai } = await startGateway(t)
  const nonStream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true, stream_options: { include_usage: true } })
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  const last = chunks.at(-1)!
  assert.deepEqual(last.choices, [])
  assert.deepEqual(last.usage, nonStream.usage)
  assertMatchesOpenAI('CreateChatCompletionStreamResponse', last)
})

const REACT_TOKENS = ['Thought', ':', ' I', ' should', ' search', '\n', 'Action', ':', ' search', '\n', 'Observation', ':', ' she', ' is', ' 25', '\n']

test('a stop split across tokens ("\\n" + "Observation") is removed, non-stream and stream alike', async (t) => {
  const { openai, tgi } = await startGateway(t)
  // The fake model runs on past the stop unless the stop is honoured.
  tgi.reply({ kind: 'tokens', tokens: REACT_TOKENS })
  const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: ['\nObservation'] })
  assert.equal(completion.choices[0]!.message.content, 'Thought: I should search\nAction: search')
  assert.equal(completion.choices[0]!.finish_reason, 'stop')
  assert.deepEqual(tgi.calls[0]!.body.parameters.stop, ['\nObservation'])

  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: '\nObservation', stream: true })
  const contents: string[] = []
  for await (const chunk of stream) if (chunk.choices[0]?.delta.content) contents.push(chunk.choices[0].delta.content)
  assert.equal(contents.join(''), 'Thought: I should search\nAction: search')
  // Only text that could begin the stop was held back: "Action" left as soon as it could not be a stop.
  assert.ok(contents.includes(' search'), `the first " search" was released at once: ${JSON.stringify(contents)}`)
})

test('stream: text is held back only while it could still begin a stop', async (t) => {
  const { url, tgi } = await startGateway(t)
  tgi.reply({ kind: 'tokens', tokens: ['a', '\n', 'b', '\nObs', 'erve', '\nObservation', 'zzz'] })
  const response = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: ['\nObservation'], stream: true })
  const contents = (await readSse(response)).slice(0, -1).map((event) => JSON.parse(event).choices[0]?.delta.content).filter((text) => typeof text === 'string' && text !== '')
  // "\n" is held until "b" shows it is not a stop; "\nObs" until "erve" does.
  assert.deepEqual(contents, ['a', '\nb', '\nObserve'])
})

test('more stops than TGI takes: the gateway applies the rest and cancels the upstream generation', async (t) => {
  const { openai, tgi } = await startGateway(t, { tgi: { maxStopSequences: 2 } })
  await t.test('stream', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['one', ' two', ' three', ' four', ' five', ' six'], delayMs: 30 })
    const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: ['x', 'y', ' three'], stream: true })
    let text = ''
    let finish: string | null = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    assert.equal(text, 'one two')
    assert.equal(finish, 'stop')
    const callIndex = tgi.calls.length - 1
    assert.deepEqual(tgi.calls[callIndex]!.body.parameters.stop, ['x', 'y'])
    await tgi.waitForAbort(callIndex, 1000)
  })
  await t.test('non-stream', async () => {
    tgi.reply({ kind: 'tokens', tokens: ['one', ' two', ' three', ' four', ' five', ' six'], delayMs: 30 })
    const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stop: ['x', 'y', ' three'] })
    assert.equal(completion.choices[0]!.message.content, 'one two')
    const callIndex = tgi.calls.length - 1
    assert.equal(tgi.calls[callIndex]!.path, '/generate_stream')
    await tgi.waitForAbort(callIndex, 1000)
    // The final event never came, so the prompt was counted with /tokenize.
    assert.equal(completion.usage?.prompt_tokens, 17)
    assert.ok(tgi.tokenizeCalls() > 0)
    assert.equal(completion.usage?.completion_tokens, 3)
  })
  assert.equal(tgi.activeGenerations(), 0)
})

test('max_tokens maps to max_new_tokens and a cut generation finishes with length', async (t) => {
  const { openai, tgi } = await startGateway(t)
  const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_tokens: 3 })
  assert.equal(tgi.calls[0]!.body.parameters.max_new_tokens, 3)
  assert.equal(completion.choices[0]!.message.content, 'Hello! How')
  assert.equal(completion.choices[0]!.finish_reason, 'length')
  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, max_completion_tokens: 2, stream: true })
  let finish: string | null = null
  for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish
  assert.equal(tgi.calls[1]!.body.parameters.max_new_tokens, 2)
  assert.equal(finish, 'length')
})

test('sampling parameters: temperature 0 is greedy, top_p 1 is omitted, extensions pass through', async (t) => {
  const { url, tgi } = await startGateway(t)
  await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, temperature: 0, top_p: 1, seed: 42 })
  const greedy = tgi.calls[0]!.body.parameters
  assert.equal(greedy.do_sample, false)
  assert.equal('temperature' in greedy, false)
  assert.equal('top_p' in greedy, false)
  assert.equal(greedy.seed, 42)
  await postJson(`${url}/v1/chat/completions`, {
    model: ZEPHYR, messages: ZEPHYR_MESSAGES, temperature: 0.7, top_p: 0.9, frequency_penalty: 0.5, top_k: 40, repetition_penalty: 1.1, typical_p: 0.95, truncate: 100
  })
  const sampled = tgi.calls[1]!.body.parameters
  assert.equal(sampled.temperature, 0.7)
  assert.equal(sampled.top_p, 0.9)
  assert.equal(sampled.do_sample, true)
  assert.equal(sampled.frequency_penalty, 0.5)
  assert.equal(sampled.top_k, 40)
  assert.equal(sampled.repetition_penalty, 1.1)
  assert.equal(sampled.typical_p, 0.95)
  assert.equal(sampled.truncate, 100)
})

test('models-file defaults fill what the request leaves out; the request wins', async (t) => {
  const { url, tgi } = await startGateway(t, {
    modelsFile: `models:
  - id: zephyr
    backend: tgi
    url: "{{TGI_URL}}"
    model: ${ZEPHYR}
    defaults: { max_tokens: 512, temperature: 0.1, top_k: 50, repetition_penalty: 1.03 }
`
  })
  await postJson(`${url}/v1/chat/completions`, { model: 'zephyr', messages: ZEPHYR_MESSAGES })
  assert.deepEqual(
    { ...tgi.calls[0]!.body.parameters, details: undefined },
    { max_new_tokens: 512, temperature: 0.1, do_sample: true, top_k: 50, repetition_penalty: 1.03, details: undefined }
  )
  await postJson(`${url}/v1/chat/completions`, { model: 'zephyr', messages: ZEPHYR_MESSAGES, max_tokens: 5, temperature: 0 })
  const second = tgi.calls[1]!.body.parameters
  assert.equal(second.max_new_tokens, 5)
  assert.equal(second.do_sample, false)
  assert.equal('temperature' in second, false)
  const unknown = await postJson(`${url}/v1/chat/completions`, { model: 'not-configured', messages: ZEPHYR_MESSAGES })
  assert.equal(unknown.status, 404)
  assert.equal((await unknown.json()).error.code, 'model_not_found')
})

test('a client that disconnects mid-stream cancels the upstream generation', async (t) => {
  const { openai, tgi } = await startGateway(t)
  tgi.reply({ kind: 'tokens', tokens: Array.from({ length: 200 }, (_, index) => ` t${index}`), delayMs: 20 })
  const controller = new AbortController()
  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true }, { signal: controller.signal })
  let received = 0
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) received++
      if (received === 3) controller.abort()
    }
  } catch (error) {
    // The SDK may end the loop quietly or raise its abort error; either is the client going away.
    assert.ok(error instanceof OpenAI.APIUserAbortError || (error as Error).name === 'AbortError', String(error))
  }
  assert.equal(received, 3)
  await tgi.waitForAbort(0, 1000)
  assert.ok(tgi.calls[0]!.tokensSent < 200)
  assert.equal(tgi.activeGenerations(), 0)
})

test('a client that disconnects during a non-stream request cancels the upstream generation', async (t) => {
  const { openai, tgi } = await startGateway(t)
  tgi.reply({ kind: 'tokens', tokens: Array.from({ length: 100 }, () => ' x'), delayMs: 20 })
  const controller = new AbortController()
  const pending = openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES }, { signal: controller.signal })
  setTimeout(() => controller.abort(), 150)
  await assert.rejects(pending, OpenAI.APIUserAbortError)
  await tgi.waitForAbort(0, 1000)
  assert.equal(tgi.activeGenerations(), 0)
})
