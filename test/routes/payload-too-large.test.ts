import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, postJson, ZEPHYR } from '../helpers/gateway.js'

test('TGI\'s own body limit (2 MB, axum\'s 413) is a 413 to the client, not a 502 an SDK would retry', async (t) => {
  const { url, tgi, openai } = await startGateway(t)
  // Under the gateway's 8 MB limit, over TGI's 2 MB one.
  const messages = [{ role: 'user' as const, content: 'x'.repeat(3_000_000) }]
  const response = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages })
  assert.equal(response.status, 413)
  const body = await response.json()
  assert.equal(body.error.code, 'upstream_payload_too_large')
  assert.equal(body.error.type, 'invalid_request_error')
  assert.match(body.error.message, /length limit exceeded/)
  const stream = await postJson(`${url}/v1/chat/completions`, { model: ZEPHYR, messages, stream: true })
  assert.equal(stream.status, 413)
  await stream.arrayBuffer()
  // The SDK does not retry a 413 (it retries 408/409/429/5xx).
  const sdk = openai.withOptions({ maxRetries: 2 })
  const before = tgi.calls.length
  await assert.rejects(sdk.chat.completions.create({ model: ZEPHYR, messages }), (error: { status?: number }) => error.status === 413)
  assert.equal(tgi.calls.length, before, 'TGI rejected it before generating')
})
