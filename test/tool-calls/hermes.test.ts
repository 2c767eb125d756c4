import test from 'node:test'
import assert from 'node:assert/strict'
import { assertReleasedPromptly, assertStreamsLikeParse, calls, parse, releasedAfterEachToken, runStream, tokenize } from './helpers.js'

// Qwen2.5/Qwen3 keep <tool_call> and </tool_call> as single added tokens;
// Hermes-2-Pro (Llama 3 tokenizer) splits them, which the untokenized runs cover.
const SPECIAL = ['<tool_call>', '</tool_call>']

function hermes (text: string): ReturnType<typeof parse> {
  return assertStreamsLikeParse('hermes', text, SPECIAL)
}

test('a single call, as Qwen2.5 and Hermes write it', () => {
  const output = hermes('<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}\n</tool_call>')
  assert.deepEqual(output, {
    content: null,
    toolCalls: [{ id: 'call_000000000000000000000000', name: 'get_current_weather', arguments: '{"location":"Paris, France","unit":"celsius"}' }]
  })
})

test('parallel calls, one block each', () => {
  const output = hermes('<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris, France"}}\n</tool_call>\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Tokyo, Japan"}}\n</tool_call>')
  assert.equal(output.content, null)
  assert.deepEqual(calls(output), [
    { name: 'get_current_weather', arguments: '{"location":"Paris, France"}' },
    { name: 'get_current_weather', arguments: '{"location":"Tokyo, Japan"}' }
  ])
  assert.deepEqual(output.toolCalls.map((call) => call.id), ['call_000000000000000000000000', 'call_000000000000000000000001'])
})

test('text before the call is content, without the whitespace before the markup', () => {
  const output = hermes('I\'ll check the weather in both cities for you.\n\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Berlin"}}\n</tool_call>')
  assert.equal(output.content, 'I\'ll check the weather in both cities for you.')
  assert.equal(output.toolCalls.length, 2)
})

test('text after the calls is content too', () => {
  const output = hermes('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n\nOne moment while I look that up.')
  assert.equal(output.content, 'One moment while I look that up.')
  assert.deepEqual(calls(output), [{ name: 'get_time', arguments: '{}' }])
})

test('a plain answer passes through unchanged and is released as it comes', () => {
  const answer = 'The capital of France is Paris. It has about 2.1 million inhabitants.\n'
  assert.deepEqual(hermes(answer), { content: answer, toolCalls: [] })
  assertReleasedPromptly('hermes', tokenize(answer), ['<tool_call>'])
  // The final newline waits to see whether a call follows it; finish() lets it go.
  assert.deepEqual(runStream('hermes', tokenize(answer)).steps.at(-1), [{ type: 'content', text: '\n' }])
})

test('only text that could start <tool_call> is held back', () => {
  assert.deepEqual(releasedAfterEachToken('hermes', ['Use a', ' <', 'tool', '_', 'box', '> tag']), ['Use a', 'Use a', 'Use a', 'Use a', 'Use a <tool_box', 'Use a <tool_box> tag'])
  assert.deepEqual(hermes('if a < b and b > c then <tool> is not a call'), { content: 'if a < b and b > c then <tool> is not a call', toolCalls: [] })
})

test('malformed JSON is not a call: the text comes back as content', () => {
  for (const text of [
    '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "Paris"}\n</tool_call>',
    '<tool_call>\n{\'name\': \'get_current_weather\', \'arguments\': {\'location\': \'Paris\'}}\n</tool_call>',
    'Sure.\n<tool_call>\n{"name": "get_current_weather", "arguments": [1, 2]}\n</tool_call>',
    '<tool_call>\n{"arguments": {"location": "Paris"}}\n</tool_call>',
    '<tool_call>\nget_current_weather(location="Paris")\n</tool_call>'
  ]) assert.deepEqual(hermes(text), { content: text, toolCalls: [] }, text)
})

test('one malformed call among good ones: the good ones are calls, the bad one text', () => {
  const bad = '<tool_call>\n{"name": "b", "arguments": {"x": }}\n</tool_call>'
  const output = hermes(`<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n${bad}`)
  assert.deepEqual(calls(output), [{ name: 'a', arguments: '{}' }])
  assert.equal(output.content, bad)
})

test('unicode in arguments is kept as is', () => {
  const output = hermes('<tool_call>\n{"name": "internet_search", "arguments": {"question": "5MW燃气轮机设计参数 空气流量 压气机压比", "note": "Zürich ☔ 🌦️ naïve", "escaped": "\\u00e9t\\u00e9"}}\n</tool_call>')
  assert.deepEqual(JSON.parse(output.toolCalls[0]!.arguments), { question: '5MW燃气轮机设计参数 空气流量 压气机压比', note: 'Zürich ☔ 🌦️ naïve', escaped: 'été' })
  assert.equal(output.toolCalls[0]!.arguments, '{"question":"5MW燃气轮机设计参数 空气流量 压气机压比","note":"Zürich ☔ 🌦️ naïve","escaped":"été"}')
})

test('nested objects, arrays, and markup-like text inside strings', () => {
  const args = { query: { filters: { price: { min: 10, max: 99.5 }, tags: ['a', 'b'] }, sort: [{ field: 'date', desc: true }] }, note: 'a "quoted" </tool_call> {brace} [bracket]', empty: null }
  const output = hermes(`<tool_call>\n{"name": "search_products", "arguments": ${JSON.stringify(args, null, 2)}}\n</tool_call>`)
  assert.equal(output.content, null)
  assert.deepEqual(JSON.parse(output.toolCalls[0]!.arguments), args)
})

test('arguments as a JSON string (as the templates render them back) are normalised; missing ones are {}', () => {
  assert.deepEqual(calls(hermes('<tool_call>\n{"name": "search_web", "arguments": "{\\"query\\": \\"Jinja templates\\", \\"max_results\\": 3}"}\n</tool_call>')),
    [{ name: 'search_web', arguments: '{"query":"Jinja templates","max_results":3}' }])
  assert.deepEqual(calls(hermes('<tool_call>\n{"name": "get_time"}\n</tool_call>')), [{ name: 'get_time', arguments: '{}' }])
  // A string that does not hold an object is not arguments.
  const notObject = '<tool_call>\n{"name": "f", "arguments": "Paris"}\n</tool_call>'
  assert.deepEqual(hermes(notObject), { content: notObject, toolCalls: [] })
})

test('raw newlines inside argument strings (multi-line code) are accepted', () => {
  const output = hermes('<tool_call>\n{"name": "run_python", "arguments": {"code": "for i in range(3):\n\tprint(i)"}}\n</tool_call>')
  assert.deepEqual(JSON.parse(output.toolCalls[0]!.arguments), { code: 'for i in range(3):\n\tprint(i)' })
})

test('an unterminated call that parses is completed at the end; one that does not is content', () => {
  assert.deepEqual(calls(hermes('<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n')), [{ name: 'get_time', arguments: '{"tz":"UTC"}' }])
  assert.deepEqual(calls(hermes('<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n</tool_')), [{ name: 'get_time', arguments: '{"tz":"UTC"}' }])
  const cut = 'Let me see.\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "UT'
  assert.deepEqual(hermes(cut), { content: cut, toolCalls: [] })
  assert.deepEqual(hermes('<tool_call>'), { content: '<tool_call>', toolCalls: [] })
  assert.deepEqual(hermes('Done <tool'), { content: 'Done <tool', toolCalls: [] })
})

test('a call whose closing tag never comes still counts once its JSON is complete', () => {
  const output = hermes('<tool_call>\n{"name": "a", "arguments": {}}\n<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>')
  assert.deepEqual(calls(output), [{ name: 'a', arguments: '{}' }, { name: 'b', arguments: '{}' }])
})

test('two calls in one block (a Qwen2.5 habit) are both calls', () => {
  const output = hermes('<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n{"name": "b", "arguments": {"y": 2}}\n</tool_call>')
  assert.deepEqual(output, { content: null, toolCalls: [
    { id: 'call_000000000000000000000000', name: 'a', arguments: '{"x":1}' },
    { id: 'call_000000000000000000000001', name: 'b', arguments: '{"y":2}' }
  ] })
  // JSON after a call that is not a call stays text.
  assert.equal(hermes('<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n{"note": 1}').content, '{"note": 1}')
})

test('streaming: content first, then each call as one start event and one arguments fragment', () => {
  const run = runStream('hermes', tokenize('Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', SPECIAL))
  assert.deepEqual(run.events.filter((event) => event.type === 'content').map((event) => event.type === 'content' && event.text), ['Checking', '.'])
  assert.deepEqual(run.events.filter((event) => event.type !== 'content'), [
    { type: 'tool_call', index: 0, id: 'call_000000000000000000000000', name: 'get_weather' },
    { type: 'tool_call_arguments', index: 0, text: '{"city":"Paris"}' }
  ])
  // Nothing of the markup ever shows up as content, and the content is out before the call starts.
  const firstCallStep = run.steps.findIndex((step) => step.some((event) => event.type === 'tool_call'))
  assert.ok(run.steps.slice(0, firstCallStep).flat().some((event) => event.type === 'content'))
})

test('a call is emitted as soon as its closing tag arrives, not at the end', () => {
  const tokens = ['<tool_call>', '\n', '{"', 'name', '":', ' "', 'a', '",', ' "', 'arguments', '":', ' {}', '}\n', '</tool_call>', '\n', '<tool_call>', '\n', '{"name": "b", "arguments": {}}', '\n', '</tool_call>']
  const run = runStream('hermes', tokens)
  assert.deepEqual(run.steps[13]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
  assert.deepEqual(run.steps[19]!.map((event) => event.type), ['tool_call', 'tool_call_arguments'])
})

test('Qwen-style token stream with Chinese text before the call', () => {
  const tokens = ['好的', '，', '我', '来', '搜索', '。', '\n\n', '<tool_call>', '\n', '{"', 'name', '":', ' "', 'internet', '_search', '",', ' "', 'arguments', '":', ' {"', 'question', '":', ' "', '5', 'MW', '燃气', '轮', '机', '设计', '参数', '"}', '}\n', '</tool_call>', '']
  const run = runStream('hermes', tokens)
  assert.deepEqual(run.output, parse('hermes', tokens.join('')))
  assert.equal(run.output.content, '好的，我来搜索。')
  assert.deepEqual(calls(run.output), [{ name: 'internet_search', arguments: '{"question":"5MW燃气轮机设计参数"}' }])
})
