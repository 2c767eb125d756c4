import test from 'node:test'
import assert from 'node:assert/strict'
import { assertReleasedPromptly, assertStreamsLikeParse, calls, releasedAfterEachToken, runStream, tokenize } from './helpers.js'

const SPECIAL = ['<|python_tag|>']

function llama (text: string): ReturnType<typeof assertStreamsLikeParse> {
  return assertStreamsLikeParse('llama3_json', text, SPECIAL)
}

test('a single call: the whole reply is the JSON, with "parameters" as the template asks', () => {
  assert.deepEqual(llama('{"name": "get_current_weather", "parameters": {"location": "Paris, France", "unit": "celsius"}}'), {
    content: null,
    toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_current_weather', arguments: '{"location":"Paris, France","unit":"celsius"}' }]
  })
})

test('after <|python_tag|>, with "arguments", and with whitespace around', () => {
  assert.deepEqual(calls(llama('<|python_tag|>{"name": "get_current_weather", "parameters": {"location": "Paris"}}')), [{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }])
  assert.deepEqual(calls(llama('{"name": "searchTool", "arguments": {"query": "test"}}')), [{ name: 'searchTool', arguments: '{"query":"test"}' }])
  assert.deepEqual(llama('\n\n{"type": "function", "name": "getOpenIncidentsTool", "parameters": {}}\n').content, null)
})

test('parallel calls joined by "; " (or just whitespace)', () => {
  const output = llama('{"name": "searchTool", "parameters": {"query": "test1"}}; {"name": "getOpenIncidentsTool", "parameters": {}}; {"name": "searchTool", "parameters": {"query": "test2"}}')
  assert.equal(output.content, null)
  assert.deepEqual(calls(output), [
    { name: 'searchTool', arguments: '{"query":"test1"}' },
    { name: 'getOpenIncidentsTool', arguments: '{}' },
    { name: 'searchTool', arguments: '{"query":"test2"}' }
  ])
  assert.equal(llama('{"name": "a", "parameters": {}} ; {"name": "b", "parameters": {}}').toolCalls.length, 2)
  assert.equal(llama('{"name": "a", "parameters": {}}\n{"name": "b", "parameters": {}}').toolCalls.length, 2)
})

test('text before the JSON: Llama replies with text or with a call, so that is an answer', () => {
  const text = 'Here is the result: {"name": "getOpenIncidentsTool", "parameters": {}} Would you like to know more?'
  assert.deepEqual(llama(text), { content: text, toolCalls: [] })
})

test('text after a call is content', () => {
  const output = llama('{"name": "get_time", "parameters": {}}\n\nI have asked for the time.')
  assert.deepEqual(calls(output), [{ name: 'get_time', arguments: '{}' }])
  assert.equal(output.content, 'I have asked for the time.')
})

test('a plain answer passes through unchanged and is released at once', () => {
  const answer = 'Paris is the capital of France; it lies on the Seine.'
  assert.deepEqual(llama(answer), { content: answer, toolCalls: [] })
  assertReleasedPromptly('llama3_json', tokenize(answer), [])
  // Only the very first '{' (or '<') of a reply is held.
  assert.deepEqual(releasedAfterEachToken('llama3_json', ['{', 'x', '} is a set']), ['', '{x', '{x} is a set'])
  assert.deepEqual(releasedAfterEachToken('llama3_json', ['<', 'b', '>bold</b>']), ['', '<b', '<b>bold</b>'])
})

test('malformed JSON, or JSON that is not a call, is content', () => {
  for (const text of [
    '{"name": "invalidTool", "parameters": {invalid json}',
    '{"name": "invalidTool", "parameters": {"a": 1}',
    '{"name": "Alice", "age": 30}',
    '{"name": "f", "parameters": [1, 2]}',
    '{"parameters": {"a": 1}}',
    '<|python_tag|>brave_search.call(query="weather in Paris")'
  ]) assert.deepEqual(llama(text), { content: text, toolCalls: [] }, text)
})

test('a malformed second call: the first is a call, the rest content', () => {
  const output = llama('{"name": "a", "parameters": {}}; {"name": "b", "parameters": {oops}}')
  assert.deepEqual(calls(output), [{ name: 'a', arguments: '{}' }])
  assert.equal(output.content, '; {"name": "b", "parameters": {oops}}')
})

test('arguments given as a JSON string (as the template renders string arguments back)', () => {
  assert.deepEqual(calls(llama('{"name": "search_web", "parameters": "{\\"query\\": \\"Jinja templates\\", \\"max_results\\": 3}"}')),
    [{ name: 'search_web', arguments: '{"query":"Jinja templates","max_results":3}' }])
})

test('unicode, nested objects, quotes and brackets inside strings', () => {
  const nested = llama('{"name": "complexTool", "parameters": {"level1": {"level2": {"level3": {"level4": {"value": "deep"}}}}, "list": [{"a": [1, {"b": null}]}]}}')
  assert.deepEqual(JSON.parse(nested.toolCalls[0]!.arguments), { level1: { level2: { level3: { level4: { value: 'deep' } } } }, list: [{ a: [1, { b: null }] }] })
  const quoted = llama('{"name": "parserTool", "parameters": {"text": "He said \\"Hello {world}\\" [x]; ok", "city": "Zürich 東京 🚀"}}')
  assert.deepEqual(JSON.parse(quoted.toolCalls[0]!.arguments), { text: 'He said "Hello {world}" [x]; ok', city: 'Zürich 東京 🚀' })
})

test('streaming: the call comes out when its JSON closes', () => {
  const tokens = ['{"', 'name', '":', ' "', 'get', '_weather', '",', ' "', 'parameters', '":', ' {"', 'city', '":', ' "', 'Paris', '"}}']
  const run = runStream('llama3_json', tokens)
  assert.deepEqual(run.steps.slice(0, -2).flat(), [])
  assert.deepEqual(run.steps.at(-2), [
    { type: 'tool_call', index: 0, id: 'call_000000000000000000000000', name: 'get_weather' },
    { type: 'tool_call_arguments', index: 0, text: '{"city":"Paris"}' }
  ])
})
