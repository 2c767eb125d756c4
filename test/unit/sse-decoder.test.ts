import test from 'node:test'
import assert from 'node:assert/strict'
import { decodeServerSentEvents, ServerSentEventLimitError, ServerSentEventParser } from '../../src/streaming/sse-decoder.js'

async function decode (pieces: Array<string | Uint8Array>): Promise<string[]> {
  const events: string[] = []
  async function * source (): AsyncGenerator<string | Uint8Array> { yield * pieces }
  for await (const event of decodeServerSentEvents(source())) events.push(event)
  return events
}

test('accepts data: with and without the space, and every line ending', async () => {
  assert.deepEqual(await decode(['data:{"a":1}\n\ndata: {"b":2}\r\n\r\ndata: {"c":3}\r\r']), ['{"a":1}', '{"b":2}', '{"c":3}'])
})

test('bytes split mid-line and mid-character decode the same', async () => {
  const whole = Buffer.from('data: {"text":"héllo 🤗"}\n\n: keep-alive\n\ndata: {"x":2}\n\n')
  const expected = ['{"text":"héllo 🤗"}', '{"x":2}']
  for (let split = 1; split < whole.length; split++) {
    assert.deepEqual(await decode([whole.subarray(0, split), whole.subarray(split)]), expected, `split at ${split}`)
  }
  assert.deepEqual(await decode([...whole].map((byte) => Uint8Array.of(byte))), expected)
})

test('a \\r\\n split between chunks is one line ending', async () => {
  assert.deepEqual(await decode(['data: 1\r', '\n\r', '\ndata: 2\n\n']), ['1', '2'])
})

test('a last event without its blank line is still delivered', async () => {
  assert.deepEqual(await decode(['data: {"error":"x"}']), ['{"error":"x"}'])
})

test('a line over the limit throws, whether it arrives whole or in pieces', () => {
  assert.throws(() => new ServerSentEventParser(16).push(`data: ${'x'.repeat(32)}\n\n`), ServerSentEventLimitError)
  const parser = new ServerSentEventParser(16)
  assert.deepEqual(parser.push('data: 0123'), [])
  assert.deepEqual(parser.push('456789'), [])
  assert.throws(() => { for (let i = 0; i < 4; i++) parser.push('abcdef') }, ServerSentEventLimitError)
})

test("an event's data over the limit throws even when each line is short", () => {
  const parser = new ServerSentEventParser(16)
  assert.throws(() => parser.push('data: 0123456789\ndata: 0123456789\n\n'), ServerSentEventLimitError)
})

test('lines up to the limit pass, split anywhere, with \\r\\n endings', () => {
  const whole = `data: ${'a'.repeat(10)}\r\n\r\ndata: b\r\n\r\n`
  for (let split = 1; split < whole.length; split++) {
    const parser = new ServerSentEventParser(16)
    assert.deepEqual([...parser.push(whole.slice(0, split)), ...parser.push(whole.slice(split)), ...parser.end()], ['a'.repeat(10), 'b'], `split at ${split}`)
  }
})

test('a long line fed in small pieces is scanned once (linear, not quadratic)', () => {
  const parser = new ServerSentEventParser()
  const piece = 'y'.repeat(1024)
  const started = performance.now()
  parser.push('data: ')
  for (let i = 0; i < 1000; i++) parser.push(piece)
  assert.deepEqual(parser.push('\n\n'), ['y'.repeat(1024 * 1000)])
  assert.ok(performance.now() - started < 1000)
})
