import test from 'node:test'
import assert from 'node:assert/strict'
import { assertReleasedPromptly, assertStreamsLikeParse, calls, runStream, tokenize } from './helpers.js'

const SPECIAL = ['<|tool_call|>']

function granite (text: string): ReturnType<typeof assertStreamsLikeParse> {
  return assertStreamsLikeParse('granite', text, SPECIAL)
}

test('a single call: <|tool_call|> and a JSON list', () => {
  assert.deepEqual(granite('<|tool_call|>[{"name": "get_current_weather", "arguments": {"location": "Boston, MA", "unit": "fahrenheit"}}]'), {
    content: null,
    toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_current_weather', arguments: '{"location":"Boston, MA","unit":"fahrenheit"}' }]
  })
})

test('parallel calls in the list', () => {
  const output = granite('<|tool_call|>[{"name": "get_current_weather", "arguments": {"location": "Boston"}}, {"name": "get_stock_price", "arguments": {"ticker": "IBM"}}]')
  assert.deepEqual(calls(output), [
    { name: 'get_current_weather', arguments: '{"location":"Boston"}' },
    { name: 'get_stock_price', arguments: '{"ticker":"IBM"}' }
  ])
})

test('text before the call is content', () => {
  const output = granite('I need the current weather to answer that.\n<|tool_call|>[{"name": "get_current_weather", "arguments": {"location": "Boston"}}]')
  assert.equal(output.content, 'I need the current weather to answer that.')
  assert.equal(output.toolCalls.length, 1)
})

test('Granite 3.1\'s plain <tool_call> string, and a bare list at the start (marker decoded away)', () => {
  assert.deepEqual(calls(granite('<tool_call>[{"name": "get_time", "arguments": {}}]')), [{ name: 'get_time', arguments: '{}' }])
  assert.deepEqual(calls(granite('[{"name": "get_time", "arguments": {"tz": "UTC"}}]')), [{ name: 'get_time', arguments: '{"tz":"UTC"}' }])
  assert.deepEqual(calls(granite('<|tool_call|>{"name": "get_time", "arguments": {}}')), [{ name: 'get_time', arguments: '{}' }])
})

test('a plain answer passes through unchanged and is released at once', () => {
  const answer = 'Boston is in Massachusetts. <b>Bold</b> claims need sources [1].'
  assert.deepEqual(granite(answer), { content: answer, toolCalls: [] })
  assertReleasedPromptly('granite', tokenize(answer), ['<|tool_call|>'])
})

test('malformed calls are content', () => {
  for (const text of [
    '<|tool_call|>[{"name": "get_current_weather", "arguments": {"location": "Boston"}]',
    '<|tool_call|>[{"name": "get_current_weather", "arguments": "Boston"}]',
    '<|tool_call|>get_current_weather(location="Boston")',
    '<|tool_call|>',
    '[{"location": "Boston"}]'
  ]) assert.deepEqual(granite(text), { content: text, toolCalls: [] }, text)
})

test('unicode and nested arguments', () => {
  const args = { query: 'Müller & Söhne — 株式会社 🏭', filter: { range: { from: '2024-01-01', to: null }, ids: [[1, 2], [3]] } }
  assert.deepEqual(JSON.parse(granite(`<|tool_call|>[{"name": "lookup_company", "arguments": ${JSON.stringify(args)}}]`).toolCalls[0]!.arguments), args)
})

test('streaming: the calls come out when the list closes', () => {
  const run = runStream('granite', ['<|tool_call|>', '[{"', 'name', '": "', 'a', '", "', 'arguments', '": {}}', ', {"name": "b", "arguments": {}}', ']'])
  assert.deepEqual(run.steps.slice(0, 9).flat(), [])
  assert.deepEqual(run.steps[9]!.map((event) => event.type), ['tool_call', 'tool_call_arguments', 'tool_call', 'tool_call_arguments'])
})
