/**
 * A loopback stand-in for the Hugging Face Hub's file endpoint
 * `GET /{org}/{name}/resolve/{revision}/{file}`, answering like the real Hub:
 * 404 + `x-error-code: RepoNotFound` for unknown repos (or 401, as the Hub
 * does for anonymous callers, when `unknownRepoStatus: 401`), 404 +
 * `EntryNotFound` for a missing file, 401 + `GatedRepo` for a gated repo asked
 * without its token (403 with a wrong one). Every request is recorded.
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FakeRepo {
  /** Served as tokenizer_config.json (a string is served verbatim); absent: EntryNotFound. */
  tokenizerConfig?: Record<string, unknown> | string
  /** Served as chat_template.jinja; absent: EntryNotFound. */
  chatTemplateJinja?: string
  /** Gated: requests must carry `Authorization: Bearer <token>`. */
  token?: string
}

export interface FakeHubOptions {
  repos?: Record<string, FakeRepo>
  /** How an unknown repo is answered: 404 (default, like an authenticated call) or 401 (like an anonymous one). */
  unknownRepoStatus?: 404 | 401
}

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
}

export interface FakeHub {
  url: string
  requests: RecordedRequest[]
  /** Adds, replaces or (with undefined) removes a repo. */
  setRepo (repo: string, content: FakeRepo | undefined): void
  /** The next `count` requests answer `status` instead (0: the connection is destroyed, a network failure). */
  failNext (status: number, count?: number): void
  close (): Promise<void>
}

export async function startFakeHub (options: FakeHubOptions = {}): Promise<FakeHub> {
  const repos = new Map<string, FakeRepo>(Object.entries(options.repos ?? {}))
  const requests: RecordedRequest[] = []
  const failures: number[] = []

  const server = createServer((request, response) => {
    requests.push({ method: request.method ?? '', url: request.url ?? '', headers: { ...request.headers } })
    const failure = failures.shift()
    if (failure === 0) {
      request.socket.destroy()
      return
    }
    const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers })
      response.end(body)
    }
    if (failure !== undefined) {
      send(failure, `fake hub failure ${failure}`)
      return
    }
    const path = new URL(request.url ?? '/', 'http://hub').pathname
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path)
    if (request.method !== 'GET' || match === null) {
      send(404, 'Not Found')
      return
    }
    const repoId = decodeURIComponent(match[1] ?? '')
    const file = decodeURIComponent(match[3] ?? '')
    const repo = repos.get(repoId)
    if (repo === undefined) {
      const status = options.unknownRepoStatus ?? 404
      send(status, JSON.stringify({ error: 'Repository Not Found' }), { 'x-error-code': 'RepoNotFound', 'content-type': 'application/json' })
      return
    }
    if (repo.token !== undefined) {
      const authorization = request.headers.authorization
      if (authorization === undefined) {
        send(401, JSON.stringify({ error: 'Access to this repo is restricted. You must be authenticated.' }), { 'x-error-code': 'GatedRepo', 'content-type': 'application/json' })
        return
      }
      if (authorization !== `Bearer ${repo.token}`) {
        send(403, JSON.stringify({ error: 'Access to this repo is restricted.' }), { 'x-error-code': 'GatedRepo', 'content-type': 'application/json' })
        return
      }
    }
    if (file === 'tokenizer_config.json' && repo.tokenizerConfig !== undefined) {
      const body = typeof repo.tokenizerConfig === 'string' ? repo.tokenizerConfig : JSON.stringify(repo.tokenizerConfig)
      send(200, body, { 'content-type': 'application/json' })
      return
    }
    if (file === 'chat_template.jinja' && repo.chatTemplateJinja !== undefined) {
      send(200, repo.chatTemplateJinja)
      return
    }
    send(404, JSON.stringify({ error: 'Entry not found' }), { 'x-error-code': 'EntryNotFound', 'content-type': 'application/json' })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setRepo (repo, content) {
      if (content === undefined) repos.delete(repo)
      else repos.set(repo, content)
    },
    failNext (status, count = 1) {
      for (let index = 0; index < count; index++) failures.push(status)
    },
    async close () {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
