/**
 * The streaming contract over all families at once: any tokenization gives what
 * parse() gives, and long calls stream in linear time.
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { createToolCallParser } from '../../src/chat/tool-calls/index.js'
import { parse, runStream } from './helpers.js'

const CORPUS: Record<string, string[]> = {
  hermes: [
    'Let me check.\n\n<tool_call>\n{"name": "a", "arguments": {"x": "</tool_call> <tool_call>"}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": "{\\"y\\": [1, {}]}"}\n</tool_call>\nDone.',
    '<tool_call>\n{"name": "a", "arguments": {"x": 1}\n</tool_call>\n<tool_call>{"name": "b", "arguments": {}}</tool_call> tail <tool_call',
    '  <tool_call>\n<tool_call>\n{"name": "a"}\n\n</tool_call>  ',
    '<tool_call>\n{"name": "a", "arguments": {}}\n{"name": "b"}\n{bad}\n</tool_call> {"name": "c"}'
  ],
  llama3_json: [
    ' <|python_tag|>{"name": "a", "parameters": {"q": "{;}"}} ; {"name": "b", "arguments": {}}\n{"name": "c", "parameters": {}}  trailing',
    '{"name": "a", "parameters": {}};;{"name": "b", "parameters": {}}',
    '<|python_tag|>  x = 1; {"name": "a", "parameters": {}}'
  ],
  mistral: [
    'Ok [TOOL_CALLS] [{"name": "a", "arguments": {"s": "[TOOL_CALLS]"}}, {"name": "b", "arguments": {}, "id": "abcdefghi"}] then [TOOL_CALLS]c[CALL_ID]x1[ARGS]{"k": [1]}[TOOL_CALLS]d{}',
    '[[TOOL_CALLS]e[ARGS] {"a": 1}[TOOL_CALLS]f[ARG]{}[TOOL_CALLS]',
    ' [ {"name": "a", "arguments": {}} ] [TOOL_CALLS]'
  ],
  granite: [
    'Sure <|tool_call|>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"n": null}}] and <|tool_call|>{"name": "c", "arguments": {}}',
    '<tool_call> [{"name": "a", "arguments": {}}]<|tool_call|>[oops]',
    '[ {"name": "a"} ]'
  ],
  deepseek_v3: [
    'Hi<｜tool▁calls▁begin｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>a\n```json\n{"x": "```"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>b<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜> bye',
    '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>bad<｜tool▁call▁end｜><｜tool▁call▁begin｜>c<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    '<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>text<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>d<｜tool▁sep｜>{"e": 1}'
  ]
}

/** A small seeded generator, so failures reproduce. */
function random (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  }
}

function randomTokens (text: string, next: () => number): string[] {
  const tokens: string[] = []
  let at = 0
  while (at < text.length) {
    const length = 1 + Math.floor(next() * 6)
    tokens.push(text.slice(at, at + length))
    at += length
  }
  return tokens
}

for (const [parserName, texts] of Object.entries(CORPUS)) {
  test(`${parserName}: random tokenizations stream like parse()`, () => {
    const next = random(7)
    for (const text of texts) {
      const expected = parse(parserName, text)
      for (let at = 0; at <= text.length; at++) assert.deepEqual(runStream(parserName, [text.slice(0, at), text.slice(at)]).output, expected, `${text} split at ${at}`)
      for (let round = 0; round < 300; round++) {
        const tokens = randomTokens(text, next)
        assert.deepEqual(runStream(parserName, tokens).output, expected, JSON.stringify(tokens))
      }
      // Empty pushes change nothing.
      assert.deepEqual(runStream(parserName, ['', ...Array.from(text).flatMap((character) => [character, ''])]).output, expected)
    }
  })
}

test('the corpus outputs are what the formats mean', () => {
  assert.deepEqual(parse('hermes', CORPUS.hermes![0]!).toolCalls.map((call) => [call.name, call.arguments]), [['a', '{"x":"</tool_call> <tool_call>"}'], ['b', '{"y":[1,{}]}']])
  // The whitespace the model wrote before the calls separates the text around them.
  assert.equal(parse('hermes', CORPUS.hermes![0]!).content, 'Let me check.\n\nDone.')
  assert.deepEqual(parse('mistral', CORPUS.mistral![0]!).toolCalls.map((call) => call.name), ['a', 'b', 'c', 'd'])
  assert.equal(parse('mistral', CORPUS.mistral![0]!).content, 'Ok then')
  assert.equal(parse('deepseek_v3', CORPUS.deepseek_v3![0]!).content, 'Hi bye')
  assert.deepEqual(parse('deepseek_v3', CORPUS.deepseek_v3![0]!).toolCalls.map((call) => [call.name, call.arguments]), [['a', '{"x":"```"}'], ['b', '{}']])
})

test('a long call streams in linear time', () => {
  const code = JSON.stringify(Array.from({ length: 4000 }, (_, line) => `    print("line ${line}: {brace} [bracket] </tool_call>")`).join('\n'))
  const texts: Record<string, string> = {
    hermes: `<tool_call>\n{"name": "write_file", "arguments": {"path": "a.py", "content": ${code}}}\n</tool_call>`,
    llama3_json: `{"name": "write_file", "parameters": {"path": "a.py", "content": ${code}}}`,
    mistral: `[TOOL_CALLS]write_file[ARGS]{"path": "a.py", "content": ${code}}`,
    granite: `<|tool_call|>[{"name": "write_file", "arguments": {"path": "a.py", "content": ${code}}}]`,
    deepseek_v3: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>write_file\n\`\`\`json\n{"path": "a.py", "content": ${code}}\n\`\`\`<｜tool▁call▁end｜><｜tool▁calls▁end｜>`
  }
  for (const [parserName, text] of Object.entries(texts)) {
    assert.ok(text.length > 200_000)
    const started = performance.now()
    const stream = createToolCallParser(parserName).stream()
    const events = []
    for (let at = 0; at < text.length; at += 3) events.push(...stream.push(text.slice(at, at + 3)))
    events.push(...stream.finish())
    const elapsed = performance.now() - started
    assert.deepEqual(events.map((event) => event.type), ['tool_call', 'tool_call_arguments'], parserName)
    assert.ok(elapsed < 1500, `${parserName}: ${Math.round(elapsed)} ms`)
  }
})
