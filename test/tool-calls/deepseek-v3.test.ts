import test from 'node:test'
import assert from 'node:assert/strict'
import { assertReleasedPromptly, assertStreamsLikeParse, calls, runStream, tokenize } from './helpers.js'

const CALLS_BEGIN = '<｜tool▁calls▁begin｜>'
const CALLS_END = '<｜tool▁calls▁end｜>'
const CALL_BEGIN = '<｜tool▁call▁begin｜>'
const CALL_END = '<｜tool▁call▁end｜>'
const SEP = '<｜tool▁sep｜>'
const SPECIAL = [CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP]

function deepseek (text: string): ReturnType<typeof assertStreamsLikeParse> {
  return assertStreamsLikeParse('deepseek_v3', text, SPECIAL)
}

function v3Call (name: string, args: string): string {
  return `${CALL_BEGIN}function${SEP}${name}\n\`\`\`json\n${args}\n\`\`\`${CALL_END}`
}

function v31Call (name: string, args: string): string {
  return `${CALL_BEGIN}${name}${SEP}${args}${CALL_END}`
}

test('V3 / R1: a single call with fenced JSON', () => {
  assert.deepEqual(deepseek(`${CALLS_BEGIN}${v3Call('get_weather', '{"city": "Tokyo", "unit": "celsius"}')}${CALLS_END}`), {
    content: null,
    toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_weather', arguments: '{"city":"Tokyo","unit":"celsius"}' }]
  })
})

test('V3: parallel calls, newline-separated as the template writes them, and without calls-end (the template drops it for one call)', () => {
  const output = deepseek(`${CALLS_BEGIN}${v3Call('get_weather', '{"city": "Tokyo"}')}\n${v3Call('search_hotels', '{"location": "Tokyo", "check_in": "2025-01-15"}')}${CALLS_END}`)
  assert.equal(output.content, null)
  assert.deepEqual(calls(output), [
    { name: 'get_weather', arguments: '{"city":"Tokyo"}' },
    { name: 'search_hotels', arguments: '{"location":"Tokyo","check_in":"2025-01-15"}' }
  ])
  assert.deepEqual(calls(deepseek(`${CALLS_BEGIN}${v3Call('search_web', '{"query": "Jinja templates", "max_results": 3}')}`)), [{ name: 'search_web', arguments: '{"query":"Jinja templates","max_results":3}' }])
})

test('V3.1: name before the separator, bare JSON after', () => {
  const output = deepseek(`${CALLS_BEGIN}${v31Call('get_weather', '{"city": "Tokyo"}')}${v31Call('get_time', '{}')}${CALLS_END}`)
  assert.deepEqual(calls(output), [{ name: 'get_weather', arguments: '{"city":"Tokyo"}' }, { name: 'get_time', arguments: '{}' }])
})

test('text before the calls is content; text after them too', () => {
  assert.equal(deepseek(`Let me check the weather for you.${CALLS_BEGIN}${v3Call('get_weather', '{"city": "Paris"}')}${CALLS_END}`).content, 'Let me check the weather for you.')
  const after = deepseek(`${CALLS_BEGIN}${v31Call('get_time', '{}')}${CALLS_END}\n\nChecking the clock.`)
  assert.equal(after.content, 'Checking the clock.')
})

test('a plain answer passes through unchanged and is released at once', () => {
  const answer = 'How can I help you today? I can check the weather for you <if you like>.'
  assert.deepEqual(deepseek(answer), { content: answer, toolCalls: [] })
  assertReleasedPromptly('deepseek_v3', tokenize(answer), [CALLS_BEGIN])
})

test('malformed calls are content', () => {
  for (const text of [
    `${CALLS_BEGIN}${v3Call('get_weather', '{"city": "Tokyo"')}${CALLS_END}`,
    `${CALLS_BEGIN}function${SEP}get_weather\n\`\`\`json\n{"city": "Tokyo"}\n\`\`\`${CALLS_END}`,
    `${CALLS_BEGIN}${v31Call('get_weather', '["Tokyo"]')}${CALLS_END}`,
    `${CALLS_BEGIN}${CALL_BEGIN}get_weather {"city": "Tokyo"}${CALL_END}${CALLS_END}`,
    CALLS_BEGIN
  ]) assert.deepEqual(deepseek(text), { content: text, toolCalls: [] }, text)
})

test('an unterminated call that parses is completed at the end', () => {
  assert.deepEqual(calls(deepseek(`${CALLS_BEGIN}${CALL_BEGIN}function${SEP}get_weather\n\`\`\`json\n{"city": "Tokyo"}\n\`\`\``)), [{ name: 'get_weather', arguments: '{"city":"Tokyo"}' }])
  assert.deepEqual(calls(deepseek(`${CALLS_BEGIN}${CALL_BEGIN}get_weather${SEP}{"city": "Tokyo"}`)), [{ name: 'get_weather', arguments: '{"city":"Tokyo"}' }])
})

test('unicode, nested objects and escapes', () => {
  const args = { text: 'He said "hello"', path: 'C:\\Users\\file', newline: 'line1\nline2', city: '北京 🏙️', nested: { a: [{ b: { c: true } }] } }
  assert.deepEqual(JSON.parse(deepseek(`${CALLS_BEGIN}${v3Call('send_message', JSON.stringify(args))}${CALLS_END}`).toolCalls[0]!.arguments), args)
  assert.deepEqual(JSON.parse(deepseek(`${CALLS_BEGIN}${v31Call('send_message', JSON.stringify(args, null, 2))}${CALLS_END}`).toolCalls[0]!.arguments), args)
})

test('streaming: each call comes out when its call-end arrives', () => {
  const tokens = [CALLS_BEGIN, CALL_BEGIN, 'function', SEP, 'get', '_weather', '\n```json\n', '{"city": "Tokyo"}', '\n```', CALL_END, '\n', CALL_BEGIN, 'get_time', SEP, '{}', CALL_END, CALLS_END]
  const run = runStream('deepseek_v3', tokens)
  assert.deepEqual(run.steps[9]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
  assert.deepEqual(run.steps[15]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
  assert.equal(run.events.length, 4)
})
