import assert from 'node:assert/strict'
import { createToolCallParser } from '../../src/chat/tool-calls/index.js'
import type { ParsedOutput, ToolStreamEvent } from '../../src/chat/tool-calls/index.js'

/** Deterministic ids, so that parse() and stream() can be compared call for call. */
export function sequentialIds (): () => string {
  let next = 0
  return () => `call_${String(next++).padStart(24, '0')}`
}

export function parse (parserName: string, text: string): ParsedOutput {
  return createToolCallParser(parserName, { newId: sequentialIds() }).parse(text)
}

export interface StreamRun {
  /** What each push returned, then what finish returned (last). */
  steps: ToolStreamEvent[][]
  events: ToolStreamEvent[]
  output: ParsedOutput
}

export function runStream (parserName: string, tokens: readonly string[]): StreamRun {
  const stream = createToolCallParser(parserName, { newId: sequentialIds() }).stream()
  const steps = tokens.map((token) => stream.push(token))
  steps.push(stream.finish())
  const events = steps.flat()
  return { steps, events, output: collect(events) }
}

/** Builds the message a client's stream helper (OpenAI SDK, LangChain) would, checking the order it relies on. */
export function collect (events: readonly ToolStreamEvent[]): ParsedOutput {
  let content = ''
  const toolCalls: ParsedOutput['toolCalls'] = []
  let current = -1
  for (const event of events) {
    if (event.type === 'content') {
      assert.notEqual(event.text, '', 'no empty content events')
      content += event.text
    } else if (event.type === 'tool_call') {
      assert.equal(event.index, current + 1, 'calls start in index order, each once')
      current = event.index
      assert.match(event.name, /\S/)
      toolCalls.push({ id: event.id, name: event.name, arguments: '' })
    } else {
      assert.equal(event.index, current, 'arguments belong to the call started last')
      toolCalls[event.index]!.arguments += event.text
    }
  }
  for (const call of toolCalls) {
    const value: unknown = JSON.parse(call.arguments)
    assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value), `arguments are a JSON object: ${call.arguments}`)
  }
  return { content: content === '' ? null : content, toolCalls }
}

// A rough stand-in for a BPE tokenizer: words with their leading space, single
// digits, short punctuation runs, whitespace runs; special tokens whole.
const PIECES = /[ ]?\p{L}+|\p{N}|[ ]?[^\s\p{L}\p{N}]{1,2}|\s+/gu

export function tokenize (text: string, specialTokens: readonly string[] = []): string[] {
  const tokens: string[] = []
  let rest = text
  while (rest !== '') {
    let next = rest.length
    let special: string | undefined
    for (const token of specialTokens) {
      const index = rest.indexOf(token)
      if (index >= 0 && index < next) {
        next = index
        special = token
      }
    }
    tokens.push(...(rest.slice(0, next).match(PIECES) ?? []))
    if (special === undefined) break
    tokens.push(special)
    rest = rest.slice(next + special.length)
  }
  assert.equal(tokens.join(''), text)
  return tokens
}

/**
 * The streaming contract: split in two at every position, token by token (with
 * the family's special tokens whole, and without), and character by character,
 * the stream gives exactly what parse() gives.
 */
export function assertStreamsLikeParse (parserName: string, text: string, specialTokens: readonly string[] = []): ParsedOutput {
  const expected = parse(parserName, text)
  for (let at = 0; at <= text.length; at++) {
    const run = runStream(parserName, [text.slice(0, at), text.slice(at)])
    assert.deepEqual(run.output, expected, `split at ${at}: ${JSON.stringify(text.slice(0, at))} | ${JSON.stringify(text.slice(at))}`)
  }
  const tokenizations = [tokenize(text, specialTokens), tokenize(text), Array.from(text)]
  for (const tokens of tokenizations) assert.deepEqual(runStream(parserName, tokens).output, expected, `tokens ${JSON.stringify(tokens)}`)
  return expected
}

/** A parsed call without its id. */
export function calls (output: ParsedOutput): Array<{ name: string, arguments: string }> {
  return output.toolCalls.map(({ name, arguments: args }) => ({ name, arguments: args }))
}

/** Content released after each token of a plain answer. */
export function releasedAfterEachToken (parserName: string, tokens: readonly string[]): string[] {
  const stream = createToolCallParser(parserName, { newId: sequentialIds() }).stream()
  let released = ''
  return tokens.map((token) => {
    for (const event of stream.push(token)) {
      assert.equal(event.type, 'content')
      if (event.type === 'content') released += event.text
    }
    return released
  })
}

/**
 * A plain answer (no call) streamed token by token is released as it comes: after
 * each token, all of it except a tail that could begin one of `markers`, and the
 * trailing whitespace before that.
 */
export function assertReleasedPromptly (parserName: string, tokens: readonly string[], markers: readonly string[]): void {
  const released = releasedAfterEachToken(parserName, tokens)
  let prefix = ''
  tokens.forEach((token, index) => {
    prefix += token
    let expected = prefix
    for (let start = 0; start < prefix.length; start++) {
      const tail = prefix.slice(start)
      if (markers.some((marker) => marker.length > tail.length && marker.startsWith(tail))) {
        expected = prefix.slice(0, start)
        break
      }
    }
    assert.equal(released[index], expected.trimEnd(), `after token ${index} ${JSON.stringify(token)}`)
  })
}
