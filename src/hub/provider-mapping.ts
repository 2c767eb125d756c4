/**
 * Which Inference Providers serve a Hub model, and for which task:
 * `GET {HF_ENDPOINT}/api/models/{repo}?expand[]=inferenceProviderMapping`.
 * The Hub answers an array of `{provider, hfModelId, providerId, status, task}`
 * (huggingface.js hub/src/types/api/api-model.ts); older Hubs an object keyed
 * by provider (`{[provider]: {providerId, status, task}}`): both are read.
 * Answers are cached per repo for `ttlMs`; a failed read is not cached.
 */
import { ServiceError } from '../errors.js'

export interface ProviderMapping {
  provider: string
  hfModelId: string
  providerId: string
  status: 'live' | 'staging' | string
  task: string
}

export interface ProviderMappingsOptions {
  hubBaseUrl: string
  fetch?: typeof globalThis.fetch
  /** How long a repo's mapping is reused (default 5 minutes). */
  ttlMs?: number
  /** Per read (default 10 s). */
  timeoutMs?: number
  now?: () => number
}

/** Repos whose mapping is kept at most (least recently read go first). */
const MAX_CACHED = 1024

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The Hub's mapping in either shape → entries (unusable ones dropped). */
export function normaliseProviderMapping (repo: string, raw: unknown): ProviderMapping[] {
  const entries: unknown[] = Array.isArray(raw)
    ? raw
    : isRecord(raw) ? Object.entries(raw).map(([provider, mapping]) => isRecord(mapping) ? { provider, hfModelId: repo, ...mapping } : undefined) : []
  const mappings: ProviderMapping[] = []
  for (const entry of entries) {
    if (!isRecord(entry) || typeof entry.provider !== 'string' || typeof entry.task !== 'string') continue
    mappings.push({
      provider: entry.provider,
      hfModelId: typeof entry.hfModelId === 'string' ? entry.hfModelId : repo,
      providerId: typeof entry.providerId === 'string' ? entry.providerId : repo,
      status: typeof entry.status === 'string' ? entry.status : 'live',
      task: entry.task
    })
  }
  return mappings
}

export class ProviderMappings {
  readonly #hubBaseUrl: string
  readonly #fetch: typeof globalThis.fetch
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #now: () => number
  readonly #cache = new Map<string, { at: number, mappings: ProviderMapping[] }>()
  readonly #loading = new Map<string, Promise<ProviderMapping[]>>()

  constructor (options: ProviderMappingsOptions) {
    this.#hubBaseUrl = options.hubBaseUrl.replace(/\/+$/, '')
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#ttlMs = options.ttlMs ?? 5 * 60_000
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /** The repo's mappings (live and staging), from the cache while fresh; one read shared by concurrent callers. */
  async get (repo: string, token: string | undefined): Promise<ProviderMapping[]> {
    const cached = this.#cache.get(repo)
    if (cached !== undefined && this.#now() - cached.at < this.#ttlMs) return cached.mappings
    const key = `${repo}\u0000${token ?? ''}`
    let loading = this.#loading.get(key)
    if (loading === undefined) {
      loading = this.#read(repo, token).then((mappings) => {
        this.#cache.delete(repo)
        this.#cache.set(repo, { at: this.#now(), mappings })
        if (this.#cache.size > MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value as string)
        return mappings
      }).finally(() => this.#loading.delete(key))
      this.#loading.set(key, loading)
    }
    return await loading
  }

  async #read (repo: string, token: string | undefined): Promise<ProviderMapping[]> {
    const url = `${this.#hubBaseUrl}/api/models/${repo.split('/').map(encodeURIComponent).join('/')}?expand[]=inferenceProviderMapping`
    const headers: Record<string, string> = { accept: 'application/json' }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    let response: Response
    try {
      response = await this.#fetch(url, { headers, signal: AbortSignal.timeout(this.#timeoutMs) })
    } catch (error) {
      throw new ServiceError(`cannot read the Inference Providers of ${repo} from the Hub (${this.#hubBaseUrl}): ${(error as Error).message}`, { statusCode: 502, type: 'server_error', code: 'hub_unavailable', cause: error })
    }
    if (response.status === 404) {
      await response.body?.cancel().catch(() => {})
      throw new ServiceError(`The model '${repo}' does not exist on the Hugging Face Hub`, { statusCode: 404, type: 'invalid_request_error', param: 'model', code: 'model_not_found' })
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel().catch(() => {})
      throw new ServiceError(`The Hub refused access to '${repo}' (HTTP ${response.status}${token === undefined ? '; no token: set HF_TOKEN or send your hf_ token as the API key' : ''})`, {
        statusCode: response.status, type: response.status === 401 ? 'authentication_error' : 'permission_error', param: 'model', code: 'model_access_denied'
      })
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {})
      throw new ServiceError(`cannot read the Inference Providers of ${repo}: the Hub answered ${response.status}`, { statusCode: 502, type: 'server_error', code: 'hub_unavailable' })
    }
    let body: unknown
    try {
      body = await response.json()
    } catch (error) {
      throw new ServiceError(`the Hub's answer for ${repo}'s Inference Providers is not JSON`, { statusCode: 502, type: 'server_error', code: 'hub_unavailable', cause: error })
    }
    return normaliseProviderMapping(repo, isRecord(body) ? body.inferenceProviderMapping : undefined)
  }
}

/** How a request for a Hub model travels. */
export type HubRoute =
  /** A raw prompt rendered by the gateway, to the provider's /v1/completions. */
  | { kind: 'prompt', mapping: ProviderMapping }
  /** Messages to the router's /v1/chat/completions; the provider renders the template. */
  | { kind: 'messages', model: string }

/**
 * A text-generation mapping (of the named provider; for `auto` the first live
 * one in the Hub's order) takes the gateway's own prompt; otherwise a
 * conversational one takes messages through the router.
 */
export function chooseHubRoute (repo: string, provider: string, mappings: readonly ProviderMapping[]): HubRoute {
  const live = mappings.filter((mapping) => mapping.status === 'live')
  if (provider === 'auto') {
    const textGeneration = live.find((mapping) => mapping.task === 'text-generation')
    if (textGeneration !== undefined) return { kind: 'prompt', mapping: textGeneration }
    if (live.some((mapping) => mapping.task === 'conversational')) return { kind: 'messages', model: repo }
    throw new ServiceError(`The model '${repo}' exists, but no Inference Provider serves it for chat${live.length > 0 ? ` (live tasks: ${[...new Set(live.map((mapping) => mapping.task))].join(', ')})` : ''}`, {
      statusCode: 404, type: 'invalid_request_error', param: 'model', code: 'model_not_found'
    })
  }
  const own = live.filter((mapping) => mapping.provider === provider)
  const textGeneration = own.find((mapping) => mapping.task === 'text-generation')
  if (textGeneration !== undefined) return { kind: 'prompt', mapping: textGeneration }
  if (own.some((mapping) => mapping.task === 'conversational')) return { kind: 'messages', model: `${repo}:${provider}` }
  const serving = [...new Set(live.filter((mapping) => mapping.task === 'conversational' || mapping.task === 'text-generation').map((mapping) => mapping.provider))]
  throw new ServiceError(`The Inference Provider '${provider}' does not serve '${repo}'; ${serving.length > 0 ? `these do: ${serving.join(', ')}` : 'no provider serves it'}`, {
    statusCode: 400, type: 'invalid_request_error', param: 'provider', code: 'provider_not_serving_model'
  })
}
