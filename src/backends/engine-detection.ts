/**
 * Which engine answers at a URL, asked the way each engine names itself, first
 * match wins: TGI `GET /info` (`model_id`), vLLM `GET /version` plus
 * `/v1/models` entries `owned_by: "vllm"`, SGLang `GET /get_model_info`
 * (`model_path`), llama.cpp `GET /props`, else any server whose `/v1/models`
 * answers (plain OpenAI dialect). An Inference Endpoint guards every route,
 * these included, with its token; a 401/403 stops detection at once.
 *
 * DetectedBackend runs detection on first use (and again after a failed one),
 * then delegates to the TGI adapter (native /generate routes) or the
 * completions adapter with the engine's dialect.
 */
import type { Dispatcher } from 'undici'
import type { Backend, BackendInfo, EngineKind, GenerationRequest, GenerationResult, PromptSpecialTokens, TokenDelta } from './backend.js'
import { UpstreamError } from '../errors.js'
import { isRecord, parseBody, upstreamMessage } from './upstream-replies.js'
import { requestText, splitBaseUrl, transportFailure } from './upstream-http.js'
import { defaultDispatcher } from './tgi.js'

export interface DetectionOptions {
  baseUrl: string
  token?: string
  dispatcher?: Dispatcher
  modelLabel: string
  secrets?: ReadonlyArray<string | undefined>
  connectTimeoutMs?: number
}

interface Answer { status: number, body: unknown }

/** What detection can name (the serverless `hub` is never detected). */
export type DetectableEngine = Exclude<EngineKind, 'hub'>

export async function detectEngine (options: DetectionOptions, signal: AbortSignal): Promise<DetectableEngine> {
  const { origin, pathPrefix } = splitBaseUrl(options.baseUrl)
  const headers: Record<string, string> = { accept: 'application/json' }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  const dispatcher = options.dispatcher ?? defaultDispatcher(options.connectTimeoutMs)
  const get = async (path: string): Promise<Answer> => {
    let reply
    try {
      reply = await requestText(dispatcher, { origin, path: pathPrefix + path, method: 'GET', headers, signal })
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      throw transportFailure(error, options.baseUrl, options.modelLabel)
    }
    const answer = { status: reply.statusCode, body: parseBody(reply.text) }
    if (answer.status === 401 || answer.status === 403) {
      throw new UpstreamError(`${options.baseUrl} refused the gateway's credentials while detecting its engine (HTTP ${answer.status}${options.token === undefined ? '; no token is configured for it' : ''})`, {
        statusCode: 502, type: 'server_error', code: 'upstream_auth_failed'
      })
    }
    // llama.cpp answers every route 503 "Loading model" while it loads.
    if (answer.status === 503) {
      throw new UpstreamError(`Model ${options.modelLabel} is not ready (${upstreamMessage(answer.body, options.secrets)}); try again later`, {
        statusCode: 503, type: 'service_unavailable_error', code: 'model_loading', isRetryable: true, headers: { 'retry-after': '5' }
      })
    }
    return answer
  }
  const ok = (answer: Answer): Record<string, unknown> | undefined => answer.status === 200 && isRecord(answer.body) ? answer.body : undefined

  if (typeof ok(await get('/info'))?.model_id === 'string') return 'tgi'
  if (typeof ok(await get('/version'))?.version === 'string') {
    const models = ok(await get('/v1/models'))
    if (Array.isArray(models?.data) && models.data.some((entry) => isRecord(entry) && entry.owned_by === 'vllm')) return 'vllm'
  }
  if (typeof ok(await get('/get_model_info'))?.model_path === 'string') return 'sglang'
  if (ok(await get('/props')) !== undefined) return 'llamacpp'
  if (Array.isArray(ok(await get('/v1/models'))?.data)) return 'openai'
  throw new UpstreamError(`no engine answered at ${options.baseUrl} as TGI (/info), vLLM (/version), SGLang (/get_model_info), llama.cpp (/props) or an OpenAI-style server (/v1/models)`, {
    statusCode: 502, type: 'server_error', code: 'engine_unknown'
  })
}

export class DetectedBackend implements Backend {
  readonly #options: DetectionOptions
  readonly #create: (engine: DetectableEngine) => Backend
  readonly #configured: string
  #backend: Backend | undefined
  #detecting: Promise<Backend> | undefined

  /** `create` builds the engine's adapter once detection named it. */
  constructor (configured: 'endpoint' | 'completions', options: DetectionOptions, create: (engine: DetectableEngine) => Backend) {
    this.#configured = configured
    this.#options = options
    this.#create = create
  }

  get kind (): string {
    return this.#backend?.kind ?? this.#configured
  }

  get description (): string {
    return this.#backend === undefined ? `${this.#configured} ${this.#options.baseUrl} (engine not detected yet)` : `${this.#configured} ${this.#backend.description}`
  }

  get supportsGrammar (): boolean {
    return this.#backend?.supportsGrammar ?? false
  }

  get promptSpecialTokens (): PromptSpecialTokens {
    return this.#backend?.promptSpecialTokens ?? 'unknown'
  }

  /** The engine's adapter, detecting it first when needed (one detection shared by concurrent callers). */
  async resolve (signal: AbortSignal): Promise<Backend> {
    if (this.#backend !== undefined) return this.#backend
    this.#detecting ??= detectEngine(this.#options, signal).then((engine) => {
      this.#backend = this.#create(engine)
      return this.#backend
    }).finally(() => {
      this.#detecting = undefined
    })
    return await this.#detecting
  }

  async generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    return await (this.#backend ?? await this.resolve(signal)).generate(request, signal)
  }

  async stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>> {
    return await (this.#backend ?? await this.resolve(signal)).stream(request, signal)
  }

  async countTokens (prompt: string, signal: AbortSignal): Promise<number> {
    const backend = this.#backend ?? await this.resolve(signal)
    if (backend.countTokens === undefined) throw new Error(`${backend.kind} cannot count tokens`)
    return await backend.countTokens(prompt, signal)
  }

  async addsBos (bosToken: string, signal: AbortSignal): Promise<boolean | undefined> {
    const backend = this.#backend ?? await this.resolve(signal)
    return await backend.addsBos?.(bosToken, signal)
  }

  async probe (signal: AbortSignal): Promise<BackendInfo> {
    const backend = this.#backend ?? await this.resolve(signal)
    return { engine: backend.kind as EngineKind, ...await backend.probe(signal) }
  }
}
