/**
 * The real server process, signalled: streams in flight finish within the
 * grace, the rest end with an error event and [DONE], /ready turns 503, the
 * process exits 0. The fake TGI runs in this process; the gateway is spawned.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, createServer } from 'node:net'
import { once } from 'node:events'
import { startFakeTgi, type FakeTgi } from '../fakes/fake-tgi.js'
import { startFakeHub } from '../fakes/fake-hub.js'

const TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\\n{{ m['content'] }}{{ eos_token }}\\n{% endfor %}<|assistant|>\\n"

interface Spawned { child: ChildProcess, url: string, exited: Promise<number | null> }

async function spawnGateway (t: TestContext, tgi: FakeTgi, env: Record<string, string>): Promise<Spawned> {
  const hub = await startFakeHub({})
  t.after(() => hub.close())
  const dir = await mkdtemp(join(tmpdir(), 'drain-test-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const models = join(dir, 'models.yaml')
  await writeFile(models, `models:\n  - id: tiny\n    backend: tgi\n    url: ${tgi.url}\n    chat_template: "${TEMPLATE}"\n    special_tokens: { eos_token: "</s>", bos_token: "<s>" }\n`)
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', GATEWAY_CONFIG: models, HF_ENDPOINT: hub.url, HF_HOME: dir, HF_HUB_OFFLINE: '1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  let output = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(output)
      if (match !== null) resolve(match[1]!)
    })
    void exited.then(() => reject(new Error(`gateway exited before listening:\n${output}`)))
  })
  return { child, url, exited }
}

function streamRequest (url: string): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', stream: true, messages: [{ role: 'user', content: 'hi' }] })
  })
}

function events (text: string): string[] {
  return text.split('\n\n').filter((event) => event.startsWith('data: ')).map((event) => event.slice(6))
}

test('SIGTERM: a stream within the grace completes, /ready is 503, new connections are refused, exit 0', async (t) => {
  const tgi = await startFakeTgi({ modelId: 'org/tiny' })
  t.after(() => tgi.close())
  tgi.reply({ kind: 'tokens', tokens: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], delayMs: 100 })
  const gateway = await spawnGateway(t, tgi, { SHUTDOWN_GRACE_MS: '5000' })
  const response = await streamRequest(gateway.url)
  assert.equal(response.status, 200)
  const body = response.text()
  const signalled = Date.now()
  gateway.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const port = Number(new URL(gateway.url).port)
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
  assert.equal(refused, true, 'new connections are refused during the drain')
  const frames = events(await body)
  assert.equal(frames.at(-1), '[DONE]')
  assert.equal(frames.filter((frame) => frame.includes('"error"')).length, 0)
  assert.equal(frames.map((frame) => frame === '[DONE]' ? '' : JSON.parse(frame).choices[0]?.delta?.content ?? '').join(''), 'abcdefgh')
  assert.equal(await gateway.exited, 0)
  assert.ok(Date.now() - signalled < 4000)
})

test('SIGTERM with a short grace: a long stream ends with server_shutting_down then [DONE]; upstream cancelled; /ready 503 on a kept-alive connection', async (t) => {
  const tgi = await startFakeTgi({ modelId: 'org/tiny' })
  t.after(() => tgi.close())
  tgi.reply({ kind: 'tokens', tokens: Array.from({ length: 200 }, () => 'x'), delayMs: 50 })
  const gateway = await spawnGateway(t, tgi, { SHUTDOWN_GRACE_MS: '500' })
  const ready = await fetch(`${gateway.url}/health`)
  await ready.text()
  const response = await streamRequest(gateway.url)
  const body = response.text()
  // A connection mid-request at the signal (not idle, so not closed): its request completes during the drain.
  const probe = connect(Number(new URL(gateway.url).port), '127.0.0.1')
  await once(probe, 'connect')
  probe.write('GET /ready HTTP/1.1\r\nhost: x\r\n')
  let probeReply = ''
  probe.on('data', (chunk: Buffer) => { probeReply += chunk.toString() })
  await new Promise((resolve) => setTimeout(resolve, 200))
  gateway.child.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 100))
  probe.write('\r\n')
  await once(probe, 'close')
  assert.match(probeReply, /^HTTP\/1\.1 503/)
  assert.match(probeReply, /connection: close/i)
  assert.match(probeReply, /"status":"draining"/)
  const frames = events(await body)
  assert.equal(frames.at(-1), '[DONE]')
  const error = JSON.parse(frames.at(-2)!)
  assert.equal(error.error.code, 'server_shutting_down')
  assert.equal(error.error.type, 'service_unavailable_error')
  await tgi.waitForAbort(0)
  assert.equal(await gateway.exited, 0)
})
