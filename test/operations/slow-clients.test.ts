/**
 * Clients that hold resources without progressing: one that never reads its
 * stream (the write deadline drops it and cancels the upstream), and one that
 * trickles its body (REQUEST_TIMEOUT_MS), which must not cut long streams.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { once } from 'node:events'
import { startGateway } from '../helpers/gateway.js'

test('a client that never reads is dropped after STREAM_WRITE_IDLE_TIMEOUT_MS and its upstream request is cancelled', async (t) => {
  const big = 'x'.repeat(65_536)
  const { url, tgi } = await startGateway(t, {
    env: { STREAM_WRITE_IDLE_TIMEOUT_MS: '300' },
    tgi: { maxTotalTokens: 1_000_000 }
  })
  tgi.reply({ kind: 'tokens', tokens: Array.from({ length: 1000 }, () => big), delayMs: 10 })
  const socket = connect(Number(new URL(url).port), '127.0.0.1')
  await once(socket, 'connect')
  const body = JSON.stringify({ model: 'tgi', stream: true, max_tokens: 1000, messages: [{ role: 'user', content: 'hi' }] })
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  socket.pause()
  const started = Date.now()
  await tgi.waitForAbort(0, 15_000)
  assert.ok(tgi.calls[0]!.tokensSent < 1000, 'the upstream was cancelled before it finished')
  socket.resume()
  socket.on('data', () => {})
  socket.on('error', () => {})
  await once(socket, 'close')
  assert.ok(Date.now() - started < 15_000)
})

test('a client trickling its body is cut off by REQUEST_TIMEOUT_MS; a stream longer than it completes', async (t) => {
  const { url, tgi } = await startGateway(t, { env: { REQUEST_TIMEOUT_MS: '500' } })
  tgi.reply({ kind: 'tokens', tokens: Array.from({ length: 15 }, () => 'a'), delayMs: 100 })
  const socket = connect(Number(new URL(url).port), '127.0.0.1')
  await once(socket, 'connect')
  socket.write('POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n')
  let reply = ''
  socket.on('data', (chunk: Buffer) => { reply += chunk.toString() })
  socket.on('error', () => {})
  const started = Date.now()
  const trickle = setInterval(() => { if (!socket.destroyed) socket.write(' ') }, 100)
  t.after(() => clearInterval(trickle))
  await once(socket, 'close')
  clearInterval(trickle)
  const elapsed = Date.now() - started
  assert.ok(elapsed < 3000, `cut after ${elapsed} ms`)
  assert.ok(reply === '' || /^HTTP\/1\.1 408/.test(reply), reply)

  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tgi', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
  const streamStarted = Date.now()
  const text = await response.text()
  assert.ok(Date.now() - streamStarted > 1000, 'the stream outlived REQUEST_TIMEOUT_MS')
  assert.match(text, /data: \[DONE\]\n\n$/)
})
