import test from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { requestText, splitBaseUrl, UpstreamTransportError } from '../../src/backends/upstream-http.js'

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
