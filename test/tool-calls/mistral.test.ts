import test from 'node:test'
import assert from 'node:assert/strict'
import { createToolCallParser } from '../../src/chat/tool-calls/index.js'
import { assertReleasedPromptly, assertStreamsLikeParse, calls, releasedAfterEachToken, runStream, tokenize } from './helpers.js'

const SPECIAL = ['[TOOL_CALLS]', '[ARGS]', '[CALL_ID]']

function mistral (text: string): ReturnType<typeof assertStreamsLikeParse> {
  return assertStreamsLikeParse('mistral', text, SPECIAL)
}

test('v0.3 list form, as the template writes it back (with a space after the marker)', () => {
  assert.deepEqual(mistral('[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}]'), {
    content: null,
    toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_current_weather', arguments: '{"location":"Paris, France","unit":"celsius"}' }]
  })
})

test('Nemo list form with the model\'s own "id", which is not used', () => {
  const output = mistral('[TOOL_CALLS][{"name": "get_current_weather", "arguments": {"location": "Paris, France"}, "id": "a1B2c3D4e"}]')
  assert.deepEqual(calls(output), [{ name: 'get_current_weather', arguments: '{"location":"Paris, France"}' }])
  assert.equal(output.toolCalls[0]!.id, 'call_000000000000000000000000')
})

test('parallel calls in one list', () => {
  const output = mistral('[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris"}}, {"name": "get_current_weather", "arguments": {"location": "London"}}]')
  assert.deepEqual(calls(output), [
    { name: 'get_current_weather', arguments: '{"location":"Paris"}' },
    { name: 'get_current_weather', arguments: '{"location":"London"}' }
  ])
})

test('Small 3.2 / Magistral form: name[ARGS]{...}, repeated per call, with or without [CALL_ID]', () => {
  assert.deepEqual(calls(mistral('[TOOL_CALLS]get_current_weather[ARGS]{"location": "Paris, France", "unit": "celsius"}')),
    [{ name: 'get_current_weather', arguments: '{"location":"Paris, France","unit":"celsius"}' }])
  assert.deepEqual(calls(mistral('[TOOL_CALLS]get_current_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]get_time[CALL_ID]call12345[ARGS]{}')), [
    { name: 'get_current_weather', arguments: '{"location":"Paris"}' },
    { name: 'get_time', arguments: '{}' }
  ])
  // Tokenizer v11 output with [ARGS] decoded away, and string arguments as the template renders them back.
  assert.deepEqual(calls(mistral('[TOOL_CALLS]add{"a": 3.5, "b": 4}')), [{ name: 'add', arguments: '{"a":3.5,"b":4}' }])
  assert.deepEqual(calls(mistral('[TOOL_CALLS]search_web[CALL_ID]call98765[ARGS]"{\\"query\\": \\"Jinja templates\\", \\"max_results\\": 3}"')),
    [{ name: 'search_web', arguments: '{"query":"Jinja templates","max_results":3}' }])
})

test('text before the call is content', () => {
  const output = mistral('Let me look that up for you.\n[TOOL_CALLS]get_current_weather[ARGS]{"location": "Paris"}')
  assert.equal(output.content, 'Let me look that up for you.')
  assert.equal(output.toolCalls.length, 1)
  assert.equal(mistral('Sure! [TOOL_CALLS] [{"name": "f", "arguments": {}}]').content, 'Sure!')
})

test('a plain answer passes through unchanged and is released at once', () => {
  const answer = 'The weather in Paris is usually mild in spring [citation needed].'
  assert.deepEqual(mistral(answer), { content: answer, toolCalls: [] })
  // ' [' waits for the next token: it could be the start of [TOOL_CALLS].
  assertReleasedPromptly('mistral', tokenize(answer), ['[TOOL_CALLS]'])
  assert.deepEqual(mistral('[1] Smith, J. (2020)'), { content: '[1] Smith, J. (2020)', toolCalls: [] })
  assert.deepEqual(releasedAfterEachToken('mistral', ['[', '1', '] Smith']), ['', '[1', '[1] Smith'])
})

test('a reply that is just the list counts (a backend that drops the [TOOL_CALLS] control token)', () => {
  assert.deepEqual(calls(mistral(' [{"name": "get_current_weather", "arguments": {"location": "Paris"}}]')), [{ name: 'get_current_weather', arguments: '{"location":"Paris"}' }])
  const notCalls = '[{"city": "Paris"}, {"city": "Rome"}]'
  assert.deepEqual(mistral(notCalls), { content: notCalls, toolCalls: [] })
})

test('malformed calls are content', () => {
  for (const text of [
    '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris"}]',
    '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris"}}',
    '[TOOL_CALLS] []',
    '[TOOL_CALLS]get_current_weather[ARGS]{"location": Paris}',
    '[TOOL_CALLS]get_current_weather[ARGS][1]',
    '[TOOL_CALLS] Sorry, I cannot do that.',
    '[TOOL_CALLS]'
  ]) assert.deepEqual(mistral(text), { content: text, toolCalls: [] }, text)
})

test('unicode and nested arguments', () => {
  const args = { text: 'Ça va? Ñandú, straße, 你好 🌦️', options: { nested: { list: [1, [2, { three: 'trois' }]] }, flag: false } }
  assert.deepEqual(JSON.parse(mistral(`[TOOL_CALLS] [{"name": "translate", "arguments": ${JSON.stringify(args)}}]`).toolCalls[0]!.arguments), args)
  assert.deepEqual(JSON.parse(mistral(`[TOOL_CALLS]translate[ARGS]${JSON.stringify(args, null, 1)}`).toolCalls[0]!.arguments), args)
})

test('default ids are 9 alphanumerics, which Mistral templates require when the calls come back', () => {
  const parser = createToolCallParser('mistral')
  const [first, second] = parser.parse('[TOOL_CALLS] [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]').toolCalls
  assert.match(first!.id, /^[A-Za-z0-9]{9}$/)
  assert.match(second!.id, /^[A-Za-z0-9]{9}$/)
  assert.notEqual(first!.id, second!.id)
})

test('streaming the name form: each call comes out when its arguments close', () => {
  const tokens = ['[TOOL_CALLS]', 'get', '_weather', '[ARGS]', '{"', 'city', '":', ' "', 'Paris', '"}', '[TOOL_CALLS]', 'get', '_time', '[ARGS]', '{}']
  const run = runStream('mistral', tokens)
  assert.deepEqual(run.steps[9]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
  assert.deepEqual(run.steps[14]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
  assert.deepEqual(run.steps.filter((_, index) => index !== 9 && index !== 14).flat(), [])
})
