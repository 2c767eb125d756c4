import test from 'node:test'
import assert from 'node:assert/strict'
import { decodeServerSentEvents } from '../../src/streaming/sse-decoder.js'

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
