/**
 * Model id → backend + compiled chat template. Templates are compiled once per
 * model and reused; a failed load is retried on the next request (the Hub may
 * have been briefly unreachable). In single-model mode (TGI_URL alone) the
 * model's Hub repo id comes from TGI's /info, and any requested id routes to it.
 */
import type { Backend, BackendInfo } from '../backends/backend.js'
import type { ModelConfig } from '../config.js'
import { ChatTemplate, type SpecialTokens } from '../templates/chat-template.js'
import type { PromptPolicy } from './prompt-tokens.js'
import type { ModelObject } from '../openai/schemas.js'
import { isValidRepoId, loadTemplateFile, SPECIAL_TOKEN_NAMES, type HubTemplateLoader } from '../templates/template-source.js'
import { ServiceError, TemplateLoadError, modelNotFound } from '../errors.js'

/** TGI's default `max_stop_sequences`, used until /info has answered. */
const DEFAULT_MAX_STOP_SEQUENCES = 4

export interface CatalogLogger {
  warn (object: object, message: string): void
  info (object: object, message: string): void
}

export interface ModelCatalogOptions {
  mode: 'single' | 'file' | 'hub'
  models: readonly ModelConfig[]
  /** Zero-config mode: the entry for a requested Hub repo id. */
  createServerlessModel?: (repo: string) => ModelConfig
  createBackend: (model: ModelConfig) => Backend
  templateLoader: HubTemplateLoader
  logger: CatalogLogger
  /** Clock for the templates' strftime_now. */
  now?: () => Date
  probeTimeoutMs?: number
  /** How long one readiness check's result is reused by /ready (default 2000 ms). */
  readinessCacheMs?: number
  /** Monotonic clock (ms) for that cache. */
  monotonicNow?: () => number
}

export interface ModelStatus {
  id: string
  ready: boolean
  template: string
  backend: string
  engine?: string
}

export class ModelEntry {
  readonly config: ModelConfig
  readonly backend: Backend
  readonly #options: ModelCatalogOptions
  #discoveredId: string | undefined
  #repo: string | undefined
  #template: ChatTemplate | undefined
  #templateLoading: Promise<ChatTemplate> | undefined
  #templateError: string | undefined
  #info: BackendInfo | undefined
  #probeError: string | undefined
  #templateOrigin = 'not loaded'
  #readiness: Promise<ModelStatus> | undefined
  #readinessCheckedAt = -Infinity
  /** Who rendered the template for this model's last request (Hub models may go either way); engines: the gateway. */
  templateRenderer: 'gateway' | 'provider' | undefined
  /** tokenizer_config's add_bos_token, when the template came from the Hub and it says. */
  #addBosToken: boolean | undefined
  #promptPolicy: PromptPolicy | undefined
  #promptPolicyLoading: Promise<PromptPolicy> | undefined

  constructor (config: ModelConfig, options: ModelCatalogOptions) {
    this.templateRenderer = undefined
    this.config = config
    this.backend = options.createBackend(config)
    this.#options = options
    this.#repo = config.repo
  }

  /** The id clients see: the configured id, or in single-model mode the model TGI serves. */
  get id (): string {
    return this.#discoveredId ?? this.config.id
  }

  /** The OpenAI `model` object for /v1/models. */
  get modelObject (): ModelObject {
    const object: ModelObject = { id: this.id, object: 'model', created: 0, owned_by: ownerOf(this.#repo ?? this.id) }
    const engine = this.engine
    if (engine !== undefined) object.engine = engine
    const template = this.templateRenderer ?? (this.backend.messagesRoute === undefined ? 'gateway' : undefined)
    if (template !== undefined) object.template = template
    return object
  }

  /** The engine serving this model: configured, or detected once the upstream answered. */
  get engine (): string | undefined {
    return this.#info?.engine ?? (this.backend.kind === 'endpoint' || this.backend.kind === 'completions' ? undefined : this.backend.kind)
  }

  /** Single-model mode: whether TGI has named its model yet. */
  get discovered (): boolean {
    return this.#discoveredId !== undefined
  }

  get maxStopSequences (): number {
    return this.#info?.maxStopSequences ?? DEFAULT_MAX_STOP_SEQUENCES
  }

  get status (): ModelStatus {
    const template = this.#template !== undefined ? `loaded (${this.#templateOrigin})` : this.#templateError ?? 'not loaded'
    const backend = this.#probeError ?? (this.#info !== undefined ? 'ok' : 'not probed')
    const status: ModelStatus = { id: this.id, ready: this.#template !== undefined && this.#info !== undefined && this.#probeError === undefined, template, backend }
    const engine = this.engine
    if (engine !== undefined) status.engine = engine
    return status
  }

  /**
   * Probes the backend and loads the template, sharing one check among all
   * callers while it runs and reusing its result for `readinessCacheMs`: an
   * unauthenticated `GET /ready` flood must not become an upstream probe flood.
   */
  checkReadiness (timeoutMs: number): Promise<ModelStatus> {
    const now = this.#options.monotonicNow ?? monotonicNow
    if (this.#readiness !== undefined && now() - this.#readinessCheckedAt < (this.#options.readinessCacheMs ?? 2000)) return this.#readiness
    this.#readinessCheckedAt = now()
    this.#readiness = (async () => {
      await this.probe(AbortSignal.timeout(timeoutMs)).catch(() => {})
      await this.template().catch(() => {})
      return this.status
    })().finally(() => {
      // The cache window starts when the check ends, so a slow probe is not repeated at once.
      this.#readinessCheckedAt = now()
    })
    return this.#readiness
  }

  async probe (signal: AbortSignal): Promise<BackendInfo> {
    try {
      const info = await this.backend.probe(signal)
      this.#probeError = undefined
      const firstAnswer = this.#info === undefined || this.#info.engine !== info.engine
      this.#info = info
      if (firstAnswer && info.engine !== undefined) this.#options.logger.info({ model: this.id, engine: info.engine, url: this.config.url, modelId: info.modelId }, `engine: ${info.engine}`)
      if (info.modelId !== undefined) {
        if (this.#options.mode === 'single') this.#discoveredId = info.modelId
        // An engine entry without `model`: the server names the repo its template comes from.
        this.#repo ??= info.modelId
      }
      return info
    } catch (error) {
      this.#probeError = error instanceof Error ? error.message : String(error)
      throw error
    }
  }

  /**
   * Before the first request is served: waits while the engine answers
   * "loading" (llama.cpp's 503 "Loading model" on every route), within
   * `budgetMs` (the first-token budget), as a cold Endpoint is waited for. Once
   * the engine has answered this returns at once; other failures are left to
   * the request itself to report.
   */
  /** Whether the engine has answered a probe (then untilEngineAnswers has nothing to wait for). */
  get engineAnswered (): boolean {
    return this.#info !== undefined
  }

  async untilEngineAnswers (budgetMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#info !== undefined) return
    // Real time: this waits on a real engine.
    const now = monotonicNow
    const deadline = now() + budgetMs
    for (let attempt = 0; ; attempt++) {
      const left = deadline - now()
      if (left <= 0) return
      try {
        const timeout = AbortSignal.timeout(Math.ceil(left))
        await this.probe(signal === undefined ? timeout : AbortSignal.any([signal, timeout]))
        return
      } catch (error) {
        if (!(error instanceof ServiceError) || error.code !== 'model_loading' || signal?.aborted === true) return
      }
      const wait = Math.ceil(Math.min(250 * 2 ** attempt, 2000, deadline - now()))
      if (wait <= 0) return
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }

  /**
   * The compiled template, loaded once. `clientToken` reads a gated repo's
   * template when the gateway itself has no Hub token.
   */
  template (clientToken?: string): Promise<ChatTemplate> {
    if (this.#template !== undefined) return Promise.resolve(this.#template)
    this.#templateLoading ??= this.#loadTemplate(clientToken).then((template) => {
      this.#template = template
      this.#templateError = undefined
      return template
    }, (error: unknown) => {
      this.#templateError = error instanceof Error ? error.message : String(error)
      throw error
    }).finally(() => {
      this.#templateLoading = undefined
    })
    return this.#templateLoading
  }

  async #loadTemplate (clientToken: string | undefined): Promise<ChatTemplate> {
    const { config } = this
    const hubToken = config.hubToken ?? clientToken
    if (this.#repo === undefined && config.chatTemplate === undefined && config.chatTemplateFile === undefined) {
      // No `model`: the repo id comes from the server's /info (TGI and Endpoints).
      const info = await this.probe(AbortSignal.timeout(this.#options.probeTimeoutMs ?? 10_000))
      if (info.modelId === undefined && info.chatTemplate === undefined) throw new TemplateLoadError(`the engine at ${config.url} did not name its model; set \`model\` (a Hub repo) or a chat template in the models file`)
    }
    const repo = this.#repo
    const override = config.chatTemplate ?? (config.chatTemplateFile === undefined ? undefined : await loadTemplateFile(config.chatTemplateFile))
    if (override !== undefined) {
      const specialTokens = config.specialTokens ?? await this.#specialTokensFromHub(repo, hubToken)
      if (config.specialTokens === undefined) this.#requireSpecialTokens(override, specialTokens)
      this.#templateOrigin = config.chatTemplate !== undefined ? 'inline' : `file ${config.chatTemplateFile ?? ''}`
      return ChatTemplate.compile(override, specialTokens, { now: this.#options.now })
    }
    // llama.cpp serves a GGUF file: its template and special tokens come from /props unless `model` names a Hub repo.
    const engineTemplate = this.#info?.chatTemplate
    if (engineTemplate !== undefined && (config.repo === undefined || !isValidRepoId(config.repo))) {
      this.#templateOrigin = `engine ${this.#info?.engine ?? ''} ${this.#info?.modelPath ?? ''}`.trim()
      return ChatTemplate.compile(engineTemplate, { ...this.#info?.specialTokens, ...config.specialTokens }, { now: this.#options.now })
    }
    if (repo === undefined) throw new TemplateLoadError(`model '${this.id}' has no Hub repo to read its chat template from`)
    if (!isValidRepoId(repo)) throw new TemplateLoadError(`model '${this.id}': the engine serves '${repo.slice(0, 200)}', which is not a Hub repo id; set \`model\` (the Hub repo its chat template comes from) in the models file`, 503, 'chat_template_unavailable')
    const source = await this.#options.templateLoader.load(repo, hubToken)
    this.#addBosToken = source.addBosToken
    this.#templateOrigin = source.origin
    return ChatTemplate.compile(source.chatTemplate, { ...source.specialTokens, ...config.specialTokens }, { now: this.#options.now })
  }

  /**
   * How this model's prompts reach the engine's tokenizer (see prompt-tokens.ts):
   * learned once, after the template (its bos_token) and the engine are known.
   * A failed attempt is not kept, so a later request asks again.
   */
  get cachedPromptPolicy (): PromptPolicy | undefined {
    return this.#promptPolicy
  }

  promptPolicy (template: ChatTemplate, signal: AbortSignal): PromptPolicy | Promise<PromptPolicy> {
    if (this.#promptPolicy !== undefined) return this.#promptPolicy
    this.#promptPolicyLoading ??= this.#learnPromptPolicy(template, signal).then((policy) => {
      // Kept only once the engine answered: an unreachable engine is asked again next time.
      if (this.#info === undefined) return policy
      this.#promptPolicy = policy
      this.#options.logger.info({ model: this.id, engine: policy.engine, engineAddsBos: policy.engineAddsBos, learnedFrom: policy.learnedFrom }, 'prompt tokens: BOS handling learned')
      return policy
    }).finally(() => {
      this.#promptPolicyLoading = undefined
    })
    return this.#promptPolicyLoading
  }

  async #learnPromptPolicy (template: ChatTemplate, signal: AbortSignal): Promise<PromptPolicy> {
    // The request itself reports an unreachable engine; until the engine answers, the policy is provisional.
    if (this.#info === undefined) await this.probe(signal).catch(() => {})
    const engine = this.engine ?? this.backend.kind
    const bosToken = template.specialToken('bos_token')
    if (bosToken === undefined) return { engine, bosToken, engineAddsBos: false, learnedFrom: 'no_bos_token' }
    switch (this.backend.promptSpecialTokens ?? 'unknown') {
      case 'verbatim':
        return { engine, bosToken, engineAddsBos: false, learnedFrom: 'add_special_tokens_false' }
      case 'unknown':
        return { engine, bosToken, engineAddsBos: null, learnedFrom: 'unknown' }
      case 'tokenizer-default': {
        const asked = await this.backend.addsBos?.(bosToken, signal).catch(() => undefined)
        if (asked !== undefined) return { engine, bosToken, engineAddsBos: asked, learnedFrom: 'engine_tokenize' }
        if (this.#addBosToken !== undefined) return { engine, bosToken, engineAddsBos: this.#addBosToken, learnedFrom: 'tokenizer_config' }
        return { engine, bosToken, engineAddsBos: true, learnedFrom: 'assumed' }
      }
    }
  }

  /**
   * A template override whose special tokens could not be read (offline, no
   * cache, no `special_tokens`) and which prints one of them would fail every
   * render with a jinja error about an undefined value; it fails its load
   * instead, naming the model and the tokens, so start-up and /ready say so and
   * every request gets the same clear 503.
   */
  #requireSpecialTokens (source: string, specialTokens: SpecialTokens): void {
    const missing = SPECIAL_TOKEN_NAMES.filter((name) => specialTokens[name] === undefined && new RegExp(`\\b${name}\\b`).test(source))
    if (missing.length === 0) return
    throw new TemplateLoadError(
      `model '${this.id}': its chat template uses ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} unknown (no special_tokens in the models file, and ${this.#repo === undefined ? 'no Hub repo' : `the tokenizer_config of ${this.#repo} could not be read`}); set special_tokens for this model`,
      503, 'special_tokens_unavailable')
  }

  async #specialTokensFromHub (repo: string | undefined, hubToken: string | undefined): Promise<SpecialTokens> {
    if (repo === undefined) return {}
    try {
      return (await this.#options.templateLoader.load(repo, hubToken)).specialTokens
    } catch (error) {
      // The override still works; a template that prints bos/eos will print nothing for them.
      this.#options.logger.warn({ model: this.id, repo, reason: (error as Error).message }, 'chat template override: special tokens unavailable from the Hub; set special_tokens in the models file')
      return {}
    }
  }
}

export const UNKNOWN_MODEL_LABEL = 'unknown'

function monotonicNow (): number {
  return performance.now()
}

/** Zero-config mode keeps at most this many models (least recently used go first). */
const MAX_SERVERLESS_MODELS = 256

export class ModelCatalog {
  readonly #entries: ModelEntry[]
  readonly #byId: Map<string, ModelEntry>
  readonly #mode: 'single' | 'file' | 'hub'
  readonly #options: ModelCatalogOptions
  /** Zero-config mode: entries made on request, in least-recently-used order. */
  readonly #serverless = new Map<string, ModelEntry>()

  constructor (options: ModelCatalogOptions) {
    this.#mode = options.mode
    this.#options = options
    this.#entries = options.models.map((model) => new ModelEntry(model, options))
    this.#byId = new Map(this.#entries.map((entry) => [entry.config.id, entry]))
  }

  get entries (): readonly ModelEntry[] {
    return this.#mode === 'hub' ? [...this.#serverless.values()] : this.#entries
  }

  resolve (model: string): ModelEntry {
    const entry = this.#byId.get(model)
    if (entry !== undefined) return entry
    // Single-model mode: every id (the discovered one, "tgi", or any other) routes to the one TGI.
    if (this.#mode === 'single' && this.#entries[0] !== undefined) return this.#entries[0]
    if (this.#mode === 'hub' && this.#options.createServerlessModel !== undefined) return this.#serverlessEntry(model)
    throw modelNotFound(model)
  }

  #serverlessEntry (repo: string): ModelEntry {
    let entry = this.#serverless.get(repo)
    if (entry !== undefined) {
      this.#serverless.delete(repo)
      this.#serverless.set(repo, entry)
      return entry
    }
    // Hostile ids never reach a URL: only `org/name` Hub repo ids are served.
    if (!isValidRepoId(repo) || !repo.includes('/')) {
      throw new ServiceError(`The model '${repo.slice(0, 256)}' is not a Hugging Face Hub repo id (expected "org/name")`, {
        statusCode: 404, type: 'invalid_request_error', param: 'model', code: 'model_not_found'
      })
    }
    entry = new ModelEntry(this.#options.createServerlessModel!(repo), this.#options)
    this.#serverless.set(repo, entry)
    if (this.#serverless.size > MAX_SERVERLESS_MODELS) {
      const oldest = this.#serverless.keys().next().value
      if (oldest !== undefined) this.#serverless.delete(oldest)
    }
    return entry
  }

  /**
   * The OpenAI model objects. In single-model mode the id is TGI's model_id, so
   * TGI is asked once when it has not answered yet (falling back to "tgi").
   */
  async modelObjects (probeTimeoutMs: number): Promise<ModelObject[]> {
    if (this.#mode === 'single') {
      await Promise.all(this.#entries.filter((entry) => !entry.discovered).map(async (entry) => await entry.probe(AbortSignal.timeout(probeTimeoutMs)).catch(() => {})))
    }
    return this.entries.map((entry) => entry.modelObject)
  }

  /** Looks a model up by the id clients see (for GET /v1/models/{id}). */
  async find (model: string, probeTimeoutMs: number): Promise<ModelEntry | undefined> {
    await this.modelObjects(probeTimeoutMs)
    if (this.#mode === 'hub') return this.#serverless.get(model)
    return this.#entries.find((entry) => entry.id === model) ?? this.#byId.get(model)
  }

  /** Probes every backend and loads every template; never throws. */
  async refresh (timeoutMs: number): Promise<ModelStatus[]> {
    return await Promise.all(this.#entries.map(async (entry) => await entry.checkReadiness(timeoutMs)))
  }

  /**
   * The `model` label for metrics: the resolved id of a model this catalog
   * serves, else a fixed `unknown`, so client-chosen ids never become series.
   */
  metricLabel (requested: string | undefined): string {
    if (requested === undefined) return ''
    if (this.#mode === 'single') return this.#entries[0]?.id ?? UNKNOWN_MODEL_LABEL
    if (this.#mode === 'hub') return this.#serverless.has(requested) ? requested : UNKNOWN_MODEL_LABEL
    // A models file's ids are the ids clients see (only single-model mode discovers one).
    return this.#byId.has(requested) ? requested : UNKNOWN_MODEL_LABEL
  }
}

/** `org/name` → `org`, as the Hub's OpenAI-compatible router reports owners. */
function ownerOf (repo: string): string {
  const slash = repo.indexOf('/')
  return slash > 0 ? repo.slice(0, slash) : 'hf-chat-gateway'
}

export function isServiceError (error: unknown): error is ServiceError {
  return error instanceof ServiceError
}
