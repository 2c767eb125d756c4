/**
 * A loopback stand-in for the Hugging Face Hub's file endpoint
 * `GET /{org}/{name}/resolve/{revision}/{file}`, answering like the real Hub:
 * 404 + `x-error-code: RepoNotFound` for unknown repos (or 401, as the Hub
 * does for anonymous callers, when `unknownRepoStatus: 401`), 404 +
 * `EntryNotFound` for a missing file, 401 + `GatedRepo` for a gated repo asked
 * without its token (403 with a wrong one). Every request is recorded.
 *
 * It also answers the model-info route `GET /api/models/{org}/{name}` with
 * `expand[]=inferenceProviderMapping` (plain or URL-encoded `expand%5B%5D=`, and
 * `expand=` as huggingface_hub sends it), which is how @huggingface/inference finds
 * which providers serve a model and for which task. What it follows:
 * - huggingface.js fe42e68017ffc76d09922ea8f9b38a6964345710:
 *   packages/inference/src/lib/getInferenceProviderMapping.ts (the URL
 *   `${HF_HUB_URL}/api/models/${modelId}?expand[]=inferenceProviderMapping`, the token
 *   sent only when it starts with `hf_`, a JSON error's `error` string quoted in the
 *   client's message, the array shape and the older object shape keyed by provider,
 *   normalised with hfModelId = the asked id) and packages/hub/src/types/api/api-model.ts
 *   (ApiModelInferenceProviderMappingEntry: provider, hfModelId, providerId,
 *   status "live" | "staging", task, adapter?, adapterWeightsPath?, type?).
 * - hub-docs 242f4a1eeb867daf4ac3f44026a5df4a68908a3d: docs/inference-providers/hub-api.md
 *   (with `expand[]=X` the Hub answers only `_id`, `id` and the expanded field; its
 *   example of the object shape carries `isModelAuthor`).
 * - The 404 body `{"error":"Repository not found"}` + `x-error-code: RepoNotFound` for
 *   the API route, as Hub fakes of other projects quote it (the file route keeps its
 *   `Repository Not Found`).
 * Deliberate simplification: a gated repo's model info answers 401/403 without its
 * token like its files do; the real Hub shows a gated (not private) repo's metadata to
 * anyone and only gates its files.
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHash } from 'node:crypto'

export interface FakeInferenceProviderMapping {
  provider: string
  task: 'conversational' | 'text-generation'
  /** The model's id on the provider's side; default the repo id. */
  providerId?: string
  /** Default 'live'. */
  status?: 'live' | 'staging'
}

export interface FakeRepo {
  /** Served as tokenizer_config.json (a string is served verbatim); absent: EntryNotFound. */
  tokenizerConfig?: Record<string, unknown> | string
  /** Served as chat_template.jinja; absent: EntryNotFound. */
  chatTemplateJinja?: string
  /** Gated: requests must carry `Authorization: Bearer <token>`. */
  token?: string
  /**
   * What `GET /api/models/{repo}?expand[]=inferenceProviderMapping` lists. When unset, the
   * repo is served by hf-inference as text generation:
   * `[{ provider: 'hf-inference', task: 'text-generation', providerId: repo, status: 'live' }]`
   * (what the serverless tests assume). `[]` lists no provider.
   */
  inferenceProviderMapping?: FakeInferenceProviderMapping[]
}

export interface FakeHubOptions {
  repos?: Record<string, FakeRepo>
  /** How an unknown repo is answered: 404 (default, like an authenticated call) or 401 (like an anonymous one). */
  unknownRepoStatus?: 404 | 401
  /** Answer the mapping in the Hub's older shape, an object keyed by provider: `{ [provider]: { status, providerId, task, isModelAuthor } }`. */
  legacyProviderMapping?: boolean
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
    const parsed = new URL(request.url ?? '/', 'http://hub')
    const path = parsed.pathname
    const apiMatch = /^\/api\/models\/([^/]+(?:\/[^/]+)?)$/.exec(path)
    if (request.method === 'GET' && apiMatch !== null) {
      const repoId = decodeURIComponent(apiMatch[1] ?? '')
      const repo = repos.get(repoId)
      if (repo === undefined) {
        const status = options.unknownRepoStatus ?? 404
        send(status, JSON.stringify({ error: 'Repository not found' }), { 'x-error-code': 'RepoNotFound', 'content-type': 'application/json' })
        return
      }
      if (!authorized(repo, request.headers.authorization, send)) return
      const expand = [...parsed.searchParams.getAll('expand[]'), ...parsed.searchParams.getAll('expand')]
      const body: Record<string, unknown> = { _id: objectId(repoId), id: repoId }
      if (expand.length === 0) body.modelId = repoId
      if (expand.includes('inferenceProviderMapping')) body.inferenceProviderMapping = mappingOf(repoId, repo, options.legacyProviderMapping === true)
      send(200, JSON.stringify(body), { 'content-type': 'application/json' })
      return
    }
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
    if (!authorized(repo, request.headers.authorization, send)) return
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

type Send = (status: number, body: string, headers?: Record<string, string>) => void

/** A gated repo's check: false once it has answered 401 (no token) or 403 (a wrong one). */
function authorized (repo: FakeRepo, authorization: string | undefined, send: Send): boolean {
  if (repo.token === undefined) return true
  if (authorization === undefined) {
    send(401, JSON.stringify({ error: 'Access to this repo is restricted. You must be authenticated.' }), { 'x-error-code': 'GatedRepo', 'content-type': 'application/json' })
    return false
  }
  if (authorization !== `Bearer ${repo.token}`) {
    send(403, JSON.stringify({ error: 'Access to this repo is restricted.' }), { 'x-error-code': 'GatedRepo', 'content-type': 'application/json' })
    return false
  }
  return true
}

function mappingOf (repoId: string, repo: FakeRepo, legacy: boolean): unknown {
  const entries = (repo.inferenceProviderMapping ?? [{ provider: 'hf-inference', task: 'text-generation' }]).map((entry) => ({
    provider: entry.provider,
    hfModelId: repoId,
    providerId: entry.providerId ?? repoId,
    status: entry.status ?? 'live',
    task: entry.task
  }))
  if (!legacy) return entries
  return Object.fromEntries(entries.map((entry) => [entry.provider, { status: entry.status, providerId: entry.providerId, task: entry.task, isModelAuthor: false }]))
}

/** A stable 24-hex-digit id, shaped like the Hub's MongoDB `_id`. */
function objectId (repoId: string): string {
  return createHash('sha256').update(repoId).digest('hex').slice(0, 24)
}
