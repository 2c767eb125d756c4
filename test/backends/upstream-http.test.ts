import test from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { openEventStream, requestText, splitBaseUrl, UpstreamTransportError } from '../../src/backends/upstream-http.js'

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void

async function startServer (t: test.TestContext, handler: Handler): Promise<{ origin: string, closedRequests: () => number }> {
  let closed = 0
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => { body += chunk })
    request.on('end', () => { handler(request, response, body) })
    response.on('close', () => { if (!response.writableFinished) closed++ })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.closeAllConnections(); server.close() })
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closedRequests: () => closed }
}

function agent (t: test.TestContext): Agent {
  const dispatcher = new Agent({ keepAliveTimeout: 1000 })
  t.after(() => dispatcher.destroy())
  return dispatcher
}

test('requestText sends method, path, headers and body, and reads a reply written in several chunks', async (t) => {
  const { origin } = await startServer(t, (request, response, body) => {
    response.writeHead(201, { 'content-type': 'application/json', 'x-prompt-tokens': '7' })
    // Several writes, with a multi-byte character split across two of them.
    const reply = Buffer.from(JSON.stringify({ echo: body, method: request.method, url: request.url, auth: request.headers.authorization, text: 'héllo' }))
    const split = reply.indexOf(Buffer.from('é')) + 1
    response.write(reply.subarray(0, split))
    setTimeout(() => { response.end(reply.subarray(split)) }, 10)
  })
  const reply = await requestText(agent(t), {
    origin, path: '/prefix/generate', method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer hf_x' }, body: '{"inputs":"hi"}', signal: new AbortController().signal
  })
  assert.equal(reply.statusCode, 201)
  assert.equal(reply.headers['x-prompt-tokens'], '7')
  assert.deepEqual(JSON.parse(reply.text), { echo: '{"inputs":"hi"}', method: 'POST', url: '/prefix/generate', auth: 'Bearer hf_x', text: 'héllo' })
})

test('requestText: an abort mid-reply rejects with the signal reason and closes the upstream connection', async (t) => {
  const server = await startServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.write('{"generated_text":') // and never ends
  })
  const controller = new AbortController()
  const reason = new Error('client went away')
  const pending = requestText(agent(t), { origin: server.origin, path: '/generate', method: 'POST', headers: {}, body: '{}', signal: controller.signal })
  setTimeout(() => { controller.abort(reason) }, 50)
  await assert.rejects(pending, (error) => error === reason)
  for (let waited = 0; server.closedRequests() === 0 && waited < 2000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(server.closedRequests(), 1, 'the upstream saw its connection close')
})

test('requestText: an already aborted signal sends nothing', async (t) => {
  let requests = 0
  const { origin } = await startServer(t, (_request, response) => { requests++; response.end('{}') })
  const controller = new AbortController()
  controller.abort(new Error('too late'))
  await assert.rejects(requestText(agent(t), { origin, path: '/generate', method: 'GET', headers: {}, signal: controller.signal }), /too late/)
  assert.equal(requests, 0)
})

test('requestText tells a refused connection (before headers) from a reply broken after its headers', async (t) => {
  const { origin } = await startServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
    response.write('{"partial"')
    setTimeout(() => response.socket?.destroy(), 10)
  })
  await assert.rejects(
    requestText(agent(t), { origin, path: '/generate', method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }),
    (error) => error instanceof UpstreamTransportError && error.afterHeaders
  )
  // A port nothing listens on: find one by closing a server.
  const closed = createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const port = (closed.address() as AddressInfo).port
  closed.close()
  await assert.rejects(
    requestText(agent(t), { origin: `http://127.0.0.1:${port}`, path: '/generate', method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }),
    (error) => error instanceof UpstreamTransportError && !error.afterHeaders
  )
})

test('splitBaseUrl keeps a base URL\'s path as the prefix of every route', () => {
  assert.deepEqual(splitBaseUrl('https://abc.endpoints.huggingface.cloud/'), { origin: 'https://abc.endpoints.huggingface.cloud', pathPrefix: '' })
  assert.deepEqual(splitBaseUrl('http://127.0.0.1:8080/tgi/v2//'), { origin: 'http://127.0.0.1:8080', pathPrefix: '/tgi/v2' })
})

const decodeNumbers = { decode: (data: string) => ({ value: Number(JSON.parse(data).n), last: JSON.parse(data).last === true }), broken: (cause?: unknown) => new Error(`broken: ${String(cause)}`) }

function sse (response: ServerResponse, events: Array<Record<string, unknown>>): void {
  response.writeHead(200, { 'content-type': 'text/event-stream' })
  for (const event of events) response.write(`data: ${JSON.stringify(event)}\n\n`)
}

async function collect<T> (iterator: AsyncIterable<T>): Promise<T[]> {
  const values: T[] = []
  for await (const value of iterator) values.push(value)
  return values
}

test('openEventStream decodes events split anywhere across chunks, in order, and ends at the last one', async (t) => {
  const { origin } = await startServer(t, (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    const text = Array.from({ length: 300 }, (_unused, n) => `data:${JSON.stringify({ n, last: n === 299 })}\r\n\r\n`).join('')
    // Cut into 7-byte pieces, so lines, \r\n pairs and events are split everywhere.
    let offset = 0
    const next = (): void => {
      if (offset >= text.length) return
      response.write(text.slice(offset, offset + 7))
      offset += 7
      setImmediate(next)
    }
    next()
    // Never ends the response: the last event alone must end the iteration.
  })
  const reply = await openEventStream(agent(t), { origin, path: '/generate_stream', method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }, decodeNumbers)
  assert.ok('events' in reply)
  assert.deepEqual(await collect(reply.events), Array.from({ length: 300 }, (_unused, n) => n))
})

test('openEventStream gives a non-200 reply\'s body as text', async (t) => {
  const { origin } = await startServer(t, (_request, response) => {
    response.writeHead(422, { 'content-type': 'application/json' })
    response.end('{"error":"bad","error_type":"validation"}')
  })
  const reply = await openEventStream(agent(t), { origin, path: '/generate_stream', method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }, decodeNumbers)
  assert.equal(reply.statusCode, 422)
  assert.ok('text' in reply)
  assert.equal(reply.text, '{"error":"bad","error_type":"validation"}')
})

test('openEventStream: leaving early closes the upstream connection; a decode error and a broken stream surface as themselves', async (t) => {
  const server = await startServer(t, (request, response) => {
    if (request.url === '/early') sse(response, [{ n: 1 }, { n: 2 }]) // then hangs
    else if (request.url === '/error') sse(response, [{ n: 1 }, { n: 'x', fail: true }])
    else { sse(response, [{ n: 1 }]); response.end() } // ends without its last event
  })
  const open = (path: string) => openEventStream(agent(t), { origin: server.origin, path, method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }, {
    decode: (data: string) => {
      const event = JSON.parse(data)
      if (event.fail === true) throw new Error('upstream error event')
      return { value: Number(event.n), last: false }
    },
    broken: () => new Error('ended without its last event')
  })

  const early = await open('/early')
  assert.ok('events' in early)
  for await (const value of early.events) {
    assert.equal(value, 1)
    break
  }
  for (let waited = 0; server.closedRequests() === 0 && waited < 2000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(server.closedRequests(), 1, 'the upstream saw its connection close')

  const failing = await open('/error')
  assert.ok('events' in failing)
  await assert.rejects(collect(failing.events), /upstream error event/)

  const cut = await open('/cut')
  assert.ok('events' in cut)
  await assert.rejects(collect(cut.events), /ended without its last event/)
})

test('openEventStream: an abort while the reader waits rejects with the signal reason', async (t) => {
  const { origin } = await startServer(t, (_request, response) => { sse(response, [{ n: 1 }]) })
  const controller = new AbortController()
  const reply = await openEventStream(agent(t), { origin, path: '/generate_stream', method: 'POST', headers: {}, body: '{}', signal: controller.signal }, decodeNumbers)
  assert.ok('events' in reply)
  assert.deepEqual(await reply.events.next(), { value: 1, done: false })
  const waiting = reply.events.next()
  const reason = new Error('deadline')
  controller.abort(reason)
  await assert.rejects(waiting, (error) => error === reason)
})

test('openEventStream pauses a fast upstream for a slow reader and still delivers every event', async (t) => {
  const total = 5000
  const { origin } = await startServer(t, (_request, response) => {
    sse(response, Array.from({ length: total }, (_unused, n) => ({ n, last: n === total - 1, pad: 'x'.repeat(200) })))
  })
  const reply = await openEventStream(agent(t), { origin, path: '/generate_stream', method: 'POST', headers: {}, body: '{}', signal: new AbortController().signal }, decodeNumbers)
  assert.ok('events' in reply)
  let expected = 0
  for await (const value of reply.events) {
    assert.equal(value, expected++)
    if (value % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  assert.equal(expected, total)
})
