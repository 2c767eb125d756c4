/**
 * examples/tool-calling-agent.ts against the gateway serving Qwen2.5's chat template
 * over the loopback fake TGI. The fake "model" answers in Qwen2.5's (Hermes) format,
 * `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`; the gateway must hand
 * LangChain OpenAI `tool_calls`, and render the tool results back into the prompt the
 * way Qwen2.5's template renders role `tool`.
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway } from '../helpers/gateway.js'
import { runCreateAgent, runToolCallingAgent } from '../../examples/tool-calling-agent.js'
import { skipWithoutCorpus } from '../helpers/corpus.js'

const QWEN = 'Qwen/Qwen2.5-7B-Instruct'
const QUESTION = "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"
const ANSWER = "Leo DiCaprio's girlfriend is Vittoria Ceretti. She is 25 years old, and 25 raised to the 0.43 power is 3.991298452658078."

/** Small BPE-like pieces: words, runs of spaces, runs of punctuation. */
function pieces (text: string): string[] {
  return text.match(/\w+|\s+|[^\w\s]+/g) ?? []
}

const toolCall = (name: string, args: Record<string, string>): string =>
  `<tool_call>\n{"name": "${name}", "arguments": ${JSON.stringify(args).replace(/":"/g, '": "')}}\n</tool_call>`

const REPLIES = [
  toolCall('search', { query: 'Leo DiCaprio girlfriend' }),
  toolCall('search', { query: 'Vittoria Ceretti age' }),
  toolCall('calculator', { expression: '25^0.43' }),
  ANSWER
]

const SEARCH_RESULTS: Record<string, string> = {
  'Leo DiCaprio girlfriend': 'Vittoria Ceretti',
  'Vittoria Ceretti age': '25'
}

async function runAgainstQwen (t: test.TestContext, streaming: boolean) {
  const harness = await startGateway(t, {
    repos: [QWEN],
    modelsFile: `models:\n  - { id: ${QWEN}, backend: tgi, url: "{{TGI_URL}}", model: ${QWEN} }\n`
  })
  for (const reply of REPLIES) harness.tgi.replyOnce({ kind: 'tokens', tokens: pieces(reply) })
  const queries: string[] = []
  const result = await runToolCallingAgent({
    baseURL: `${harness.url}/v1`,
    model: QWEN,
    question: QUESTION,
    streaming,
    search: (query) => {
      queries.push(query)
      return SEARCH_RESULTS[query] ?? 'No results.'
    }
  })
  return { ...harness, result, queries }
}

const EXPECTED_STEPS = [
  { tool: 'search', input: { query: 'Leo DiCaprio girlfriend' }, observation: 'Vittoria Ceretti' },
  { tool: 'search', input: { query: 'Vittoria Ceretti age' }, observation: '25' },
  { tool: 'calculator', input: { expression: '25^0.43' }, observation: '3.991298452658078' }
]

/** Qwen2.5's rendering of one assistant tool call followed by its tool result. */
const turn = (name: string, args: Record<string, string>, observation: string): string =>
  `<|im_start|>assistant\n${toolCall(name, args)}<|im_end|>\n<|im_start|>user\n<tool_response>\n${observation}\n</tool_response><|im_end|>\n`

for (const streaming of [false, true]) {
  test(`tool-calling agent over Qwen2.5 (${streaming ? 'streaming' : 'non-stream'}): search, search, calculator, answer; tool results rendered as <tool_response>`, { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
    const { tgi, result, queries } = await runAgainstQwen(t, streaming)

    assert.deepEqual(result.steps, EXPECTED_STEPS)
    assert.deepEqual(queries, ['Leo DiCaprio girlfriend', 'Vittoria Ceretti age'])
    assert.equal(result.answer, ANSWER)
    assert.match(result.answer, /3\.991298452658078/)

    assert.equal(tgi.calls.length, 4)
    for (const call of tgi.calls) assert.equal(call.path, streaming ? '/generate_stream' : '/generate')
    const prompts = tgi.calls.map((call) => call.body.inputs as string)

    // The tools reach Qwen2.5's template: its system block lists them inside <tools>.
    assert.match(prompts[0]!, /^<\|im_start\|>system\n/)
    assert.ok(prompts[0]!.includes('# Tools\n\nYou may call one or more functions to assist with the user query.'), prompts[0])
    assert.ok(prompts[0]!.includes('{"type": "function", "function": {"name": "search", "description": "A search engine.'), prompts[0])
    assert.ok(prompts[0]!.includes('{"type": "function", "function": {"name": "calculator", '), prompts[0])
    assert.ok(prompts[0]!.endsWith(`<|im_start|>user\n${QUESTION}<|im_end|>\n<|im_start|>assistant\n`), prompts[0])

    // The round trip: each later prompt holds the model's calls as Qwen writes them and the
    // tool results as role `tool` renders (a user turn of <tool_response> blocks).
    const turns = [
      turn('search', { query: 'Leo DiCaprio girlfriend' }, 'Vittoria Ceretti'),
      turn('search', { query: 'Vittoria Ceretti age' }, '25'),
      turn('calculator', { expression: '25^0.43' }, '3.991298452658078')
    ]
    for (let call = 1; call <= 3; call++) {
      const expectedEnd = `<|im_start|>user\n${QUESTION}<|im_end|>\n${turns.slice(0, call).join('')}<|im_start|>assistant\n`
      assert.ok(prompts[call]!.endsWith(expectedEnd), `prompt ${call}:\n${prompts[call]}\n--- should end with:\n${expectedEnd}`)
    }

    // What LangChain kept: AI messages with tool calls, tool messages tied to them by id.
    const toolMessages = result.messages.filter((message) => message.type === 'tool')
    assert.deepEqual(toolMessages.map((message) => message.text), ['Vittoria Ceretti', '25', '3.991298452658078'])
    const aiMessages = result.messages.filter((message) => message.type === 'ai')
    assert.equal(aiMessages.length, 4)
    assert.deepEqual(aiMessages.map((message) => (message.response_metadata as { finish_reason?: string }).finish_reason), ['tool_calls', 'tool_calls', 'tool_calls', 'stop'])
    for (const message of aiMessages) assert.ok(!message.text.includes('<tool_call>'), message.text)
    const callIds = aiMessages.flatMap((message) => 'tool_calls' in message && Array.isArray(message.tool_calls) ? message.tool_calls.map((call: { id?: string }) => call.id) : [])
    assert.equal(callIds.length, 3)
    assert.deepEqual(toolMessages.map((message) => (message as unknown as { tool_call_id: string }).tool_call_id), callIds)
    assert.equal(new Set(callIds).size, 3)
  })
}

test('the same flow through LangChain v1 createAgent', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { url, tgi } = await startGateway(t, {
    repos: [QWEN],
    modelsFile: `models:\n  - { id: ${QWEN}, backend: tgi, url: "{{TGI_URL}}", model: ${QWEN} }\n`
  })
  for (const reply of REPLIES) tgi.replyOnce({ kind: 'tokens', tokens: pieces(reply) })
  const result = await runCreateAgent({ baseURL: `${url}/v1`, model: QWEN, question: QUESTION, search: (query) => SEARCH_RESULTS[query] ?? 'No results.' })
  assert.deepEqual(result.steps, EXPECTED_STEPS)
  assert.equal(result.answer, ANSWER)
  assert.equal(tgi.calls.length, 4)
  assert.ok((tgi.calls[3]!.body.inputs as string).includes('<|im_start|>user\n<tool_response>\n3.991298452658078\n</tool_response><|im_end|>\n<|im_start|>assistant\n'))
})

test('the gateway answers a Hermes <tool_call> as OpenAI tool_calls with finish_reason "tool_calls"', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { openai, tgi } = await startGateway(t, {
    repos: [QWEN],
    modelsFile: `models:\n  - { id: ${QWEN}, backend: tgi, url: "{{TGI_URL}}", model: ${QWEN} }\n`
  })
  tgi.replyOnce({ kind: 'tokens', tokens: pieces(REPLIES[0]!) })
  const completion = await openai.chat.completions.create({
    model: QWEN,
    messages: [{ role: 'user', content: QUESTION }],
    tools: [{ type: 'function', function: { name: 'search', description: 'search', parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] } } }]
  })
  const choice = completion.choices[0]!
  assert.equal(choice.finish_reason, 'tool_calls')
  assert.equal(choice.message.tool_calls?.length, 1)
  const call = choice.message.tool_calls![0]!
  assert.equal(call.type, 'function')
  assert.ok(call.type === 'function')
  assert.equal(call.function.name, 'search')
  assert.deepEqual(JSON.parse(call.function.arguments), { query: 'Leo DiCaprio girlfriend' })
  assert.ok(!(choice.message.content ?? '').includes('<tool_call>'))
})

// The same agent over Llama 3.1 (JSON calls) and Mistral v0.3 ([TOOL_CALLS], a special
// token TGI drops from the text, so the gateway reads the bare list that follows).
const FAMILIES = [
  {
    repo: 'meta-llama/Llama-3.1-8B-Instruct',
    call: (name: string, args: Record<string, string>): Array<string | { text: string, special: boolean }> => pieces(`{"name": "${name}", "parameters": ${JSON.stringify(args)}}`),
    // Llama 3.1 renders a tool result as an ipython turn.
    resultTurn: (observation: string): string => `<|start_header_id|>ipython<|end_header_id|>\n\n"${observation}"<|eot_id|>`
  },
  {
    repo: 'mistralai/Mistral-7B-Instruct-v0.3',
    call: (name: string, args: Record<string, string>): Array<string | { text: string, special: boolean }> => [{ text: '[TOOL_CALLS]', special: true }, ...pieces(` [{"name": "${name}", "arguments": ${JSON.stringify(args)}}]`)],
    resultTurn: (observation: string): string => `"content": ${observation}} [/TOOL_RESULTS]`
  }
]

for (const family of FAMILIES) {
  for (const streaming of [false, true]) {
    test(`tool-calling agent over ${family.repo} (${streaming ? 'streaming' : 'non-stream'})`, { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
      const { url, tgi } = await startGateway(t, {
        repos: [family.repo],
        modelsFile: `models:\n  - { id: ${family.repo}, backend: tgi, url: "{{TGI_URL}}", model: ${family.repo} }\n`
      })
      tgi.replyOnce({ kind: 'tokens', tokens: family.call('search', { query: 'Leo DiCaprio girlfriend' }) })
      tgi.replyOnce({ kind: 'tokens', tokens: family.call('search', { query: 'Vittoria Ceretti age' }) })
      tgi.replyOnce({ kind: 'tokens', tokens: family.call('calculator', { expression: '25^0.43' }) })
      tgi.replyOnce({ kind: 'tokens', tokens: pieces(ANSWER) })
      const result = await runToolCallingAgent({
        baseURL: `${url}/v1`, model: family.repo, question: QUESTION, streaming, search: (query) => SEARCH_RESULTS[query] ?? 'No results.'
      })
      assert.deepEqual(result.steps, EXPECTED_STEPS)
      assert.equal(result.answer, ANSWER)
      assert.equal(tgi.calls.length, 4)
      const last = tgi.calls[3]!.body.inputs as string
      assert.ok(last.includes(family.resultTurn('3.991298452658078')), last)
    })
  }
}
