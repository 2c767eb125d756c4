/**
 * A fake of the Hub's serverless inference router (router.huggingface.co) for the
 * hf-inference provider, in front of fake TGIs: a real loopback HTTP server (node:http
 * only). `@huggingface/inference` sends text generation for a model to
 * `{router}/hf-inference/models/{org}/{name}/v1/completions`
 * (providers/hf-inference.js HFInferenceTextGenerationTask); this fake authenticates,
 * plays any scripted router-level failure, then proxies to that model's fake TGI.
 *
 * Where the bodies come from (the router is closed source; these are what users and
 * HF maintainers quote from real responses):
 * - 401 `{"error":"Invalid credentials in Authorization header"}`: huggingface_hub#3368,
 *   transformers#38289 (the same text the Hub itself answers for a bad token).
 * - 503 `{"error":"Model org/name is currently loading","estimated_time":20.0}`: the
 *   serverless API's cold start (transformers#23793, #32665); estimated_time is a
 *   Python float, so it always has a decimal point.
 * - 429 "Rate limit reached. You reached free usage limit (reset hourly). ...": the
 *   serverless API's rate limit text. Whether the router sends Retry-After is not
 *   documented; the step sends it only when given one.
 * - 404 for a model hf-inference does not serve: a text/plain `Not Found`
 *   (hub-docs#1818, forum "404 Not Found / Unexpected Token 'N'"), not JSON.
 */
import { createServer, request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import type { FakeTgi } from './fake-tgi.js'

export type FakeRouterStep =
  /** 503 with the serverless API's cold-start body. */
  | { kind: 'loading', estimatedTime: number }
  /** 429 with the serverless API's rate-limit body, and `retry-after` (seconds) when given. */
  | { kind: 'rate-limit', retryAfter?: number }
  /** Destroy the connection before any byte of the answer. */
  | { kind: 'reset' }
  /** Any plain reply: a string body is text/plain, anything else JSON. */
  | { kind: 'status', status: number, body: unknown, headers?: Record<string, string> }

export interface FakeRouterOptions {
  /** Repos ('org/name') hf-inference serves, each with the started fake TGI behind it. */
  models: Record<string, { tgi: FakeTgi }>
  /** Valid HF tokens; when set, a request without `Authorization: Bearer <one of them>` gets 401. */
  tokens?: string[]
  port?: number
}

export interface FakeRouterRequest {
  method: string
  /** Path and query, as sent. */
  path: string
  headers: IncomingHttpHeaders
  /** Parsed JSON; the raw text when it is not JSON; undefined when empty. */
  body: any
}

export interface FakeRouter {
  /** http://127.0.0.1:PORT (what `https://router.huggingface.co` would be) */
  url: string
  /** Every request, in arrival order, whatever its answer. */
  requests: FakeRouterRequest[]
  /** Queues steps for that repo's next requests (one step per request, FIFO); then requests go through. */
  script (repo: string, ...steps: FakeRouterStep[]): void
  /** Closes the server, aborts forwarded requests and destroys open sockets. */
  close (): Promise<void>
}

const COMPLETIONS_ROUTE = /^\/hf-inference\/models\/(.+)\/v1\/completions$/
// hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'])

export async function startFakeRouter (options: FakeRouterOptions): Promise<FakeRouter> {
  const validAuthorizations = options.tokens === undefined ? undefined : new Set(options.tokens.map((token) => `Bearer ${token}`))
  const requests: FakeRouterRequest[] = []
  const scripts = new Map<string, FakeRouterStep[]>()
  const forwarded = new Set<ClientRequest>()
  const sockets = new Set<Socket>()

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: String(error) })
      else response.destroy()
    })
  })
  server.keepAliveTimeout = 65_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const raw = await readBody(request)
    const path = request.url ?? '/'
    requests.push({ method: request.method ?? 'GET', path, headers: request.headers, body: parseBody(raw) })
    // every answer carries a request id, which @huggingface/inference puts in its errors
    response.setHeader('x-request-id', randomUUID())

    // the router authenticates before it looks at the route
    if (validAuthorizations !== undefined && !validAuthorizations.has(request.headers.authorization ?? '')) {
      return sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
    }
    const queryStart = path.indexOf('?')
    const match = COMPLETIONS_ROUTE.exec(queryStart === -1 ? path : path.slice(0, queryStart))
    const repo = match?.[1]
    const model = repo === undefined ? undefined : options.models[repo]
    if (repo === undefined || model === undefined) return sendText(response, 404, 'Not Found')
    if (request.method !== 'POST') return sendText(response, 405, 'Method Not Allowed')

    const step = scripts.get(repo)?.shift()
    if (step !== undefined) {
      switch (step.kind) {
        case 'loading':
          // written by hand: JSON.stringify(20.0) would drop the Python float's ".0"
          return sendRawJson(response, 503, `{"error":${JSON.stringify(`Model ${repo} is currently loading`)},"estimated_time":${pythonFloat(step.estimatedTime)}}`)
        case 'rate-limit':
          if (step.retryAfter !== undefined) response.setHeader('retry-after', String(step.retryAfter))
          return sendJson(response, 429, { error: 'Rate limit reached. You reached free usage limit (reset hourly). Please subscribe to a plan at https://huggingface.co/pricing to use the API at this rate' })
        case 'reset':
          request.socket.destroy()
          return
        case 'status': {
          const body = typeof step.body === 'string' ? step.body : JSON.stringify(step.body)
          const contentType = typeof step.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'
          response.writeHead(step.status, { 'content-type': contentType, ...step.headers, 'content-length': Buffer.byteLength(body) })
          response.end(body)
          return
        }
      }
    }
    forward(request, response, model.tgi, raw)
  }

  /**
   * Proxies to the model's TGI without the caller's Authorization (the HF token is the
   * router's business, not the model server's), streaming the answer back as it comes.
   */
  function forward (request: IncomingMessage, response: ServerResponse, tgi: FakeTgi, raw: Buffer): void {
    const headers: Record<string, string | number> = { 'content-length': raw.length }
    const contentType = request.headers['content-type']
    if (contentType !== undefined) headers['content-type'] = contentType
    const accept = request.headers.accept
    if (accept !== undefined) headers.accept = accept
    // a connection of its own (no agent pool), so destroying it is a disconnect TGI sees
    const upstream = httpRequest(`${tgi.url}/v1/completions`, { method: request.method, headers, agent: false })
    forwarded.add(upstream)
    let done = false
    const settle = (): void => {
      done = true
      forwarded.delete(upstream)
    }

    upstream.on('response', (answer) => {
      const passed: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) passed[name] = value
      }
      response.writeHead(answer.statusCode ?? 502, passed)
      // SSE events must reach the client as TGI writes them
      response.flushHeaders()
      answer.on('data', (chunk: Buffer) => response.write(chunk))
      answer.on('end', () => {
        settle()
        response.end()
      })
      answer.on('error', () => {})
      answer.on('close', () => {
        if (answer.complete) return
        // TGI dropped the connection mid-answer: the client sees the same
        settle()
        response.destroy()
      })
    })
    upstream.on('error', () => {
      settle()
      // upstream went away before or while answering: pass the disconnect on
      response.destroy()
    })
    // the client hung up before the answer was complete: hang up on TGI too
    response.on('close', () => {
      if (!done) {
        settle()
        upstream.destroy()
      }
    })
    upstream.end(raw)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    script (repo, ...steps) {
      const queue = scripts.get(repo) ?? []
      queue.push(...steps)
      scripts.set(repo, queue)
    },
    async close () {
      for (const upstream of forwarded) upstream.destroy()
      forwarded.clear()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
    }
  }
}

function pythonFloat (value: number): string {
  // Python's repr of a float: integral values keep ".0"
  return Number.isInteger(value) ? `${value}.0` : String(value)
}

function parseBody (raw: Buffer): unknown {
  if (raw.length === 0) return undefined
  const text = raw.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

async function readBody (request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sendJson (response: ServerResponse, status: number, body: unknown): void {
  sendRawJson(response, status, JSON.stringify(body))
}

function sendRawJson (response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

function sendText (response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  response.end(text)
}
