import test from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import pino from 'pino'
import { postJson, readSse, startGateway, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'

const TOKEN = 'hf_ConfiguredSecretToken123'
const STRANGER = 'hf_SomeoneElsesToken4567'

/** A pino logger writing into an array of lines. */
function captureLogs (): { logger: pino.Logger, lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(...String(chunk).split('\n').filter((line) => line !== '')); done() } })
  return { logger: pino({ level: 'info' }, stream), lines }
}

function modelsFile (token: string): string {
  return `models:\n  - id: ${ZEPHYR}\n    backend: tgi\n    url: "{{TGI_URL}}"\n    token: ${token}\n`
}

function assertNoSecrets (text: string, where: string): void {
  assert.ok(!text.includes(TOKEN), `${where} holds the configured token`)
  assert.ok(!text.includes(STRANGER), `${where} holds an hf_ token`)
}

const body = (stream: boolean): Record<string, unknown> => ({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream })

test('TGI error texts quoting tokens reach neither the client nor the logs', async (t: TestContext) => {
  const logs = captureLogs()
  const gateway = await startGateway(t, { modelsFile: modelsFile(TOKEN), overrides: { loggerInstance: logs.logger } })
  const quoting = `invalid token ${TOKEN} (also tried ${STRANGER})`
  const variants: Array<{ name: string, stream: boolean, reply: Parameters<typeof gateway.tgi.replyOnce>[0] }> = [
    { name: 'non-stream 500 JSON', stream: false, reply: { kind: 'status', status: 500, body: { error: quoting } } },
    { name: 'non-stream 503 {error:{message}}', stream: false, reply: { kind: 'status', status: 503, body: { error: { message: quoting } } } },
    { name: 'non-stream plain text', stream: false, reply: { kind: 'status', status: 502, body: quoting } },
    { name: 'stream non-200', stream: true, reply: { kind: 'status', status: 500, body: { message: quoting } } },
    { name: 'in-stream error event', stream: true, reply: { kind: 'stream-error', afterTokens: 0, message: quoting } },
    { name: 'in-stream error event after tokens', stream: true, reply: { kind: 'stream-error', afterTokens: 2, message: quoting } }
  ]
  for (const variant of variants) {
    gateway.tgi.replyOnce(variant.reply)
    const response = await postJson(`${gateway.url}/v1/chat/completions`, body(variant.stream))
    const text = await response.text()
    assert.ok(response.status >= 400 || text.includes('"error"'), `${variant.name}: an error (${response.status} ${text})`)
    assertNoSecrets(text, `${variant.name} response`)
    assert.ok(text.includes('hf_***'), `${variant.name}: the redacted message is kept: ${text}`)
  }
  logs.logger.flush()
  assert.ok(logs.lines.length > 0)
  for (const line of logs.lines) assertNoSecrets(line, 'a log line')
})

test('a 10 MiB upstream error body becomes a short response and short log lines', async (t: TestContext) => {
  const logs = captureLogs()
  const gateway = await startGateway(t, { overrides: { loggerInstance: logs.logger } })
  for (const stream of [false, true]) {
    gateway.tgi.replyOnce({ kind: 'status', status: 500, body: { error: 'x'.repeat(10 * 1024 * 1024) } })
    const response = await postJson(`${gateway.url}/v1/chat/completions`, body(stream))
    const text = await response.text()
    assert.equal(response.status, 502)
    assert.ok(text.length < 2048, `response of ${text.length} bytes`)
    gateway.tgi.replyOnce({ kind: 'status', status: 500, body: 'y'.repeat(10 * 1024 * 1024) })
    const plain = await (await postJson(`${gateway.url}/v1/chat/completions`, body(stream))).text()
    assert.ok(plain.length < 2048, `plain-text response of ${plain.length} bytes`)
  }
  logs.logger.flush()
  for (const line of logs.lines) assert.ok(line.length < 8192, `log line of ${line.length} bytes`)
})

test('a 20 MiB SSE line fails the stream with upstream_malformed_reply', async (t: TestContext) => {
  const gateway = await startGateway(t)
  const line = `data: {"token":{"text":"${'z'.repeat(20 * 1024 * 1024)}"}}\n\n`
  gateway.tgi.replyOnce({ kind: 'status', status: 200, body: line, headers: { 'content-type': 'text/event-stream' } })
  const started = performance.now()
  const response = await postJson(`${gateway.url}/v1/chat/completions`, body(true))
  const text = await response.text()
  assert.ok(performance.now() - started < 5000)
  assert.ok(text.length < 4096, `relayed ${text.length} bytes`)
  if (response.status === 200) {
    const events = await readSse(new Response(text))
    const error = events.map((event) => event === '[DONE]' ? undefined : JSON.parse(event)).find((event) => event?.error !== undefined)
    assert.equal(error?.error.code, 'upstream_malformed_reply', text)
  } else {
    assert.equal(response.status, 502)
    assert.equal(JSON.parse(text).error.code, 'upstream_malformed_reply')
  }
})

/** A listening socket whose accept queue is full: connecting to it hangs (python3 never accepts). */
async function hungListener (t: TestContext): Promise<string> {
  const child = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)'])
  t.after(() => { child.kill() })
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (data) => resolve(Number(String(data).trim()))))
  const fillers = Array.from({ length: 4 }, () => net.connect(port, '127.0.0.1').on('error', () => {}))
  t.after(() => { for (const socket of fillers) socket.destroy() })
  await new Promise((resolve) => setTimeout(resolve, 200))
  // The technique must really hang here, or the test would prove nothing.
  const probe = net.connect(port, '127.0.0.1').on('error', () => {})
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.ok(probe.pending, 'the probe connection should still be connecting')
  probe.destroy()
  return `http://127.0.0.1:${port}`
}

test('a first-token timeout and a /ready probe hold while the connect hangs', async (t: TestContext) => {
  const url = await hungListener(t)
  const gateway = await startGateway(t, {
    // `model` names the repo, so no /info probe stands before the generation request.
    modelsFile: `models:\n  - id: ${ZEPHYR}\n    model: ${ZEPHYR}\n    backend: tgi\n    url: ${url}\n    first_token_timeout_ms: 300\n    timeout_ms: 300\n`,
    overrides: { probeTimeoutMs: 200 }
  })
  for (const stream of [true, false]) {
    const started = performance.now()
    const response = await postJson(`${gateway.url}/v1/chat/completions`, body(stream))
    const elapsed = performance.now() - started
    const text = await response.text()
    assert.equal(response.status, 504, text)
    t.diagnostic(`stream=${stream}: ${response.status} after ${Math.round(elapsed)} ms`)
    assert.ok(elapsed < 1000, `answered after ${Math.round(elapsed)} ms`)
  }
  const started = performance.now()
  const ready = await fetch(`${gateway.url}/ready`)
  await ready.text()
  assert.equal(ready.status, 503)
  assert.ok(performance.now() - started < 1000, `ready answered after ${Math.round(performance.now() - started)} ms`)
})

test('a 200 reply larger than 16 MiB is refused (502 malformed), not buffered whole', async (t: TestContext) => {
  const gateway = await startGateway(t)
  gateway.tgi.replyOnce({ kind: 'status', status: 200, body: { generated_text: 'x'.repeat(20 * 1024 * 1024) } })
  const response = await postJson(`${gateway.url}/v1/chat/completions`, body(false))
  assert.equal(response.status, 502)
  const error = (await response.json()).error
  assert.equal(error.code, 'upstream_malformed_reply')
  assert.match(error.message, /larger than 16777216 bytes/)
})
