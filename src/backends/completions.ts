/**
 * OpenAI-style `/v1/completions` engines (vLLM, SGLang, llama.cpp, or any
 * other such server): one adapter, the engines' differences in
 * completions-dialects.ts. Protocol rules that shape this file:
 * - vLLM and SGLang stop after 16 tokens when `max_tokens` is omitted, so a
 *   computed `max_tokens` is always sent (the request's, the model's default,
 *   else the context left after the prompt); llama.cpp has no such limit.
 * - A matched stop comes back as `stop_reason` (vLLM), `matched_stop` (SGLang)
 *   or `stopping_word` (llama.cpp), as text or as a token id (EOS): text means a
 *   stop sequence, anything else the end of the sequence.
 * - Errors: `{"error": {message, type, code}}` bodies (vLLM, current SGLang,
 *   llama.cpp), older SGLang's flat `{"object": "error", message, code}`; inside
 *   a 200 stream a `data: {"error": ...}` event, or llama.cpp's `error:` field
 *   line followed by `data: [DONE]` (a reader that ignores unknown fields would
 *   see a clean end); vLLM's finish_reason `abort`/`error` end the generation
 *   in failure.
 * - llama.cpp answers 503 "Loading model" while it loads; like a cold
 *   Endpoint, that is waited out within the first-token budget.
 * - Streams go through the same synchronous SSE decoding as the TGI adapter
 *   (upstream-http.ts): bytes are decoded and mapped as they arrive.
 */
import type { Dispatcher } from 'undici'
import type { Backend, BackendInfo, GenerationEnd, GenerationRequest, GenerationResult, TokenDelta, UpstreamFinishReason } from './backend.js'
import { DIALECTS, EXTRA_PARAMETER_NAMES, type CompletionsDialect, type CompletionsEngine, type ExtraParameter } from './completions-dialects.js'
import { defaultDispatcher } from './tgi.js'
import { invalidRequest, UpstreamError } from '../errors.js'
import { commonStatusError, isRecord, malformedReply, parseBody, parseEvent, upstreamGenerationFailed, upstreamMessage, upstreamRejected, upstreamStreamBroken } from './upstream-replies.js'
import { openEventStream, requestText, splitBaseUrl, transportFailure, type UpstreamTextReply } from './upstream-http.js'

export interface CompletionsBackendOptions {
  baseUrl: string
  engine: CompletionsEngine
  /** The `model` the engine serves (models-file `served_model`); default: the one id in /v1/models. */
  servedModel?: string
  /** Sent as `Authorization: Bearer` when set. Never logged. */
  token?: string
  dispatcher?: Dispatcher
  modelLabel?: string
  redact?: string[]
  /** The default pool's connect timeout, and how long a loading engine (503) is waited for. */
  connectTimeoutMs?: number
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  now?: () => number
}

const EXTRA_PARAMETERS = Object.keys(EXTRA_PARAMETER_NAMES) as ExtraParameter[]
const MAX_BACKOFF_MS = 5000
const FIRST_BACKOFF_MS = 250
/** Used when the engine reports no context length and the request sets no max_tokens. */
const FALLBACK_MAX_TOKENS = 4096

function defaultSleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

interface ChoiceEnd { finishReason: UpstreamFinishReason }

export class CompletionsBackend implements Backend {
  readonly kind: CompletionsEngine
  readonly description: string
  readonly supportsGrammar: boolean
  readonly promptSpecialTokens: 'verbatim' | 'tokenizer-default' | 'unknown'
  readonly dialect: CompletionsDialect
  readonly #baseUrl: string
  readonly #origin: string
  readonly #pathPrefix: string
  readonly #headers: Record<string, string>
  readonly #streamHeaders: Record<string, string>
  readonly #dispatcher: Dispatcher
  readonly #modelLabel: string
  readonly #secrets: ReadonlyArray<string | undefined>
  readonly #loadingBudgetMs: number
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #now: () => number
  #servedModel: string | undefined
  #contextLength: number | undefined

  constructor (options: CompletionsBackendOptions) {
    this.dialect = DIALECTS[options.engine]
    this.kind = options.engine
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.description = `${options.engine} ${this.#baseUrl}`
    this.supportsGrammar = this.dialect.structuredOutput !== undefined
    this.promptSpecialTokens = this.dialect.verbatimPrompt !== undefined ? 'verbatim' : options.engine === 'openai' ? 'unknown' : 'tokenizer-default'
    ;({ origin: this.#origin, pathPrefix: this.#pathPrefix } = splitBaseUrl(this.#baseUrl))
    this.#headers = { 'content-type': 'application/json', accept: 'application/json' }
    if (options.token !== undefined) this.#headers.authorization = `Bearer ${options.token}`
    this.#streamHeaders = { ...this.#headers, accept: 'text/event-stream' }
    this.#dispatcher = options.dispatcher ?? defaultDispatcher(options.connectTimeoutMs)
    this.#modelLabel = options.modelLabel ?? this.#baseUrl
    this.#secrets = [options.token, ...options.redact ?? []]
    this.#loadingBudgetMs = options.connectTimeoutMs ?? 60_000
    this.#sleep = options.sleep ?? defaultSleep
    this.#now = options.now ?? (() => performance.now())
    this.#servedModel = options.servedModel
  }

  async generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    // The common case (model and max_tokens known) builds the body without an await.
    const built = this.#body(request, false, signal)
    const body = typeof built === 'string' ? built : await built
    const first = await this.#send('POST', '/v1/completions', signal, body)
    const response = first.statusCode === 200 ? first : await this.#sendWaitingOutLoading('/v1/completions', body, signal, first)
    const reply = parseBody(response.text)
    const choice = isRecord(reply) && Array.isArray(reply.choices) ? reply.choices[0] : undefined
    if (!isRecord(choice) || typeof choice.text !== 'string') throw malformedReply(this.#modelLabel, 'no choices[0].text in the completion')
    const end = this.#choiceEnd(choice)
    if (end === undefined) throw malformedReply(this.#modelLabel, `finish_reason ${JSON.stringify(choice.finish_reason)} in a finished completion`)
    return { text: choice.text, finishReason: end.finishReason, ...usageOf(reply as Record<string, unknown>) }
  }

  async stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>> {
    const built = this.#body(request, true, signal)
    const body = typeof built === 'string' ? built : await built
    const deadline = this.#now() + this.#loadingBudgetMs
    for (let attempt = 0; ; attempt++) {
      // Per request: the finishing choice waits for the usage chunk and [DONE].
      let end: GenerationEnd | undefined
      let reply
      try {
        reply = await openEventStream<TokenDelta>(this.#dispatcher, {
          origin: this.#origin, path: `${this.#pathPrefix}/v1/completions`, method: 'POST', headers: this.#streamHeaders, body, signal
        }, {
          decode: (data) => {
            if (data === '[DONE]') {
              if (end === undefined) throw upstreamStreamBroken(this.#modelLabel)
              // The end of the sequence has no text of its own ("</s>" is not part of the answer).
              return { value: { text: '', special: end.finishReason === 'eos_token', end }, last: true }
            }
            const event = parseEvent(data, this.#modelLabel)
            if (event.error !== undefined || event.object === 'error') throw this.#streamError(event)
            const usage = usageOf(event)
            const choice = Array.isArray(event.choices) ? event.choices[0] : undefined
            if (!isRecord(choice)) {
              // The include_usage chunk (`choices: []`).
              if (end !== undefined && usage.promptTokens !== undefined) end = { ...end, ...usage }
              return undefined
            }
            if (typeof choice.text !== 'string') throw malformedReply(this.#modelLabel, 'a chunk without choices[0].text')
            const finished = this.#choiceEnd(choice)
            if (finished !== undefined) end = { ...finished, ...usage }
            return choice.text === '' ? undefined : { value: { text: choice.text, special: false }, last: false }
          },
          broken: (cause) => upstreamStreamBroken(this.#modelLabel, cause),
          malformed: (what) => malformedReply(this.#modelLabel, what),
          // llama.cpp: `error: {...}` then `data: [DONE]`.
          errorField: (text) => this.#streamError(asErrorEvent(text))
        })
      } catch (error) {
        if (signal.aborted) throw signal.reason ?? error
        throw transportFailure(error, this.#baseUrl, this.#modelLabel)
      }
      if ('events' in reply) return reply.events
      const parsed = parseBody(reply.text)
      if (reply.statusCode === 503 && this.#now() + backoff(attempt) <= deadline) {
        await this.#sleep(backoff(attempt), signal)
        continue
      }
      throw this.#statusError(reply.statusCode, parsed, reply.headers)
    }
  }

  async countTokens (prompt: string, signal: AbortSignal): Promise<number> {
    const ids = await this.#tokenize(prompt, signal)
    if (ids === undefined) throw malformedReply(this.#modelLabel, `no token ids from ${this.dialect.tokenize?.path ?? 'a tokenize route'}`)
    return ids.length
  }

  /**
   * Whether the engine adds BOS to a string prompt, asked of its own tokenizer:
   * the BOS text alone tokenises to two equal ids when it does, to one when it
   * does not. Undefined when the engine cannot say.
   */
  async addsBos (bosToken: string, signal: AbortSignal): Promise<boolean | undefined> {
    if (this.dialect.tokenize === undefined) return undefined
    const ids = await this.#tokenize(bosToken, signal).catch(() => undefined)
    if (ids === undefined) return undefined
    if (ids.length === 1) return false
    if (ids.length === 2 && ids[0] === ids[1]) return true
    return undefined
  }

  async #tokenize (text: string, signal: AbortSignal): Promise<number[] | undefined> {
    const route = this.dialect.tokenize
    if (route === undefined) return undefined
    const response = await this.#send('POST', route.path, signal, JSON.stringify(route.body(text, this.#servedModel)))
    const body = parseBody(response.text)
    if (response.statusCode !== 200) throw this.#statusError(response.statusCode, body, response.headers)
    return route.ids(body)
  }

  async probe (signal: AbortSignal): Promise<BackendInfo> {
    const info: BackendInfo = { engine: this.kind }
    if (this.kind === 'llamacpp') {
      const health = await this.#send('GET', '/health', signal)
      if (health.statusCode === 503) throw this.#statusError(503, parseBody(health.text), health.headers)
      const props = await this.#getJson('/props', signal)
      Object.assign(info, llamacppInfo(props))
    }
    if (this.kind === 'sglang') {
      const modelInfo = await this.#getJson('/get_model_info', signal)
      if (isRecord(modelInfo) && typeof modelInfo.model_path === 'string') info.modelPath = modelInfo.model_path
    }
    const models = await this.#getJson('/v1/models', signal).catch((error: unknown) => {
      // llama.cpp's /props already named the model.
      if (this.kind === 'llamacpp') return undefined
      throw error
    })
    const entries = isRecord(models) && Array.isArray(models.data) ? models.data.filter(isRecord) : []
    const ids = entries.map((entry) => entry.id).filter((id): id is string => typeof id === 'string')
    if (this.#servedModel === undefined && this.dialect.needsModel) {
      if (ids.length !== 1) {
        throw new UpstreamError(`${this.kind} at ${this.#baseUrl} serves ${ids.length === 0 ? 'no model' : `${ids.length} models (${ids.slice(0, 5).join(', ')})`} in /v1/models; set served_model for model ${this.#modelLabel}`, {
          statusCode: 502, type: 'server_error', code: 'served_model_unknown'
        })
      }
      this.#servedModel = ids[0]
    }
    const served = entries.find((entry) => entry.id === (this.#servedModel ?? ids[0]))
    if (served !== undefined) {
      if (typeof served.max_model_len === 'number') info.contextLength = served.max_model_len
      // vLLM names what it loaded in `root` (the Hub repo, or a local path).
      if (typeof served.root === 'string' && info.modelPath === undefined) info.modelPath = served.root
    }
    info.servedModel = this.#servedModel ?? ids[0]
    info.modelId ??= info.modelPath ?? info.servedModel
    if (info.contextLength !== undefined) this.#contextLength = info.contextLength
    return info
  }

  async #getJson (path: string, signal: AbortSignal): Promise<unknown> {
    const response = await this.#send('GET', path, signal)
    const body = parseBody(response.text)
    if (response.statusCode !== 200) throw this.#statusError(response.statusCode, body, response.headers)
    return body
  }

  /**
   * The request body: OpenAI's fields, the dialect's extras, structured output
   * and prompt switches. A string at once when nothing must be asked of the
   * engine first (the served model's name, the prompt's length).
   */
  #body (request: GenerationRequest, stream: boolean, signal: AbortSignal): string | Promise<string> {
    if (this.dialect.needsModel && this.#servedModel === undefined) return this.probe(signal).then(() => this.#body(request, stream, signal))
    const maxTokens = this.#maxTokens(request, signal)
    if (typeof maxTokens === 'object') return maxTokens.then((value) => this.#bodyText(request, stream, value))
    return this.#bodyText(request, stream, maxTokens)
  }

  #bodyText (request: GenerationRequest, stream: boolean, maxTokens: number | undefined): string {
    const { parameters } = request
    const { dialect } = this
    const body: Record<string, unknown> = {}
    if (dialect.needsModel) body.model = this.#servedModel
    body.prompt = request.prompt
    body.max_tokens = maxTokens
    // Greedy on OpenAI routes is temperature 0.
    body.temperature = parameters.doSample === false ? 0 : parameters.temperature
    body.top_p = parameters.topP
    for (const name of EXTRA_PARAMETERS) {
      const value = parameters[name]
      if (value === undefined) continue
      const field = dialect.fields[name]
      if (field === undefined) {
        throw invalidRequest(`'${EXTRA_PARAMETER_NAMES[name]}' is not supported by the ${this.kind} engine (its /v1/completions has no such field)`, EXTRA_PARAMETER_NAMES[name], 'unsupported_parameter')
      }
      body[field] = value
    }
    if (parameters.stop.length > 0) body.stop = parameters.stop
    if (parameters.structuredOutput !== undefined) {
      if (dialect.structuredOutput === undefined) {
        throw invalidRequest(`constrained output (response_format json, tool_choice required or named) is not supported by the ${this.kind} engine`, 'response_format', 'unsupported_parameter')
      }
      Object.assign(body, dialect.structuredOutput(parameters.structuredOutput))
    }
    if (dialect.verbatimPrompt !== undefined) Object.assign(body, dialect.verbatimPrompt)
    if (stream) {
      body.stream = true
      body.stream_options = { include_usage: true }
    }
    return JSON.stringify(body)
  }

  /**
   * vLLM and SGLang cut at 16 tokens without `max_tokens`; an answer should
   * instead run to its end or the context's. Without a request or default
   * value: the context length left after the prompt (counted by the engine).
   */
  #maxTokens (request: GenerationRequest, signal: AbortSignal): number | undefined | Promise<number | undefined> {
    if (request.parameters.maxNewTokens !== undefined) return request.parameters.maxNewTokens
    if (this.kind === 'llamacpp') return undefined
    const contextLength = this.#contextLength
    if (contextLength === undefined) return FALLBACK_MAX_TOKENS
    return this.countTokens(request.prompt, signal).then((promptTokens) => Math.max(1, contextLength - promptTokens), () => FALLBACK_MAX_TOKENS)
  }

  #choiceEnd (choice: Record<string, unknown>): ChoiceEnd | undefined {
    const reason = choice.finish_reason
    if (reason === null || reason === undefined) return undefined
    switch (reason) {
      case 'length':
        return { finishReason: 'length' }
      case 'stop': {
        // A matched stop string is a stop sequence; a token id (EOS, stop_token_ids) or nothing is the end of the sequence.
        const matched = this.dialect.matchedStop(choice)
        return { finishReason: typeof matched === 'string' && matched !== '' ? 'stop_sequence' : 'eos_token' }
      }
      // vLLM: the repetition detector ended the generation, which is a normal end.
      case 'repetition':
        return { finishReason: 'eos_token' }
      case 'abort':
      case 'error':
        throw upstreamGenerationFailed(this.#modelLabel, `the engine ended the generation with finish_reason "${reason}"`)
      default:
        return { finishReason: 'eos_token' }
    }
  }

  /** A non-stream request, waiting out a loading engine's 503 within the first-token budget (`first`: the answer already in). */
  async #sendWaitingOutLoading (path: string, body: string, signal: AbortSignal, first: UpstreamTextReply): Promise<UpstreamTextReply> {
    const deadline = this.#now() + this.#loadingBudgetMs
    for (let attempt = 0; ; attempt++) {
      const response = attempt === 0 ? first : await this.#send('POST', path, signal, body)
      if (response.statusCode === 200) return response
      if (response.statusCode === 503 && this.#now() + backoff(attempt) <= deadline) {
        await this.#sleep(backoff(attempt), signal)
        continue
      }
      throw this.#statusError(response.statusCode, parseBody(response.text), response.headers)
    }
  }

  async #send (method: 'GET' | 'POST', path: string, signal: AbortSignal, body?: string): Promise<UpstreamTextReply> {
    try {
      return await requestText(this.#dispatcher, { origin: this.#origin, path: this.#pathPrefix + path, method, headers: this.#headers, body, signal })
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      throw transportFailure(error, this.#baseUrl, this.#modelLabel)
    }
  }

  #statusError (status: number, body: unknown, headers: Record<string, string | string[] | undefined>): UpstreamError {
    return completionsError(status, body, headers, this.kind, this.#modelLabel, this.#secrets)
  }

  /** `{"error": {message, type, code}}`, `{"error": "..."}` or SGLang's older flat `{"object": "error", message, code}`. */
  #streamError (event: Record<string, unknown>): UpstreamError {
    const message = upstreamMessage(event, this.#secrets)
    const inner = isRecord(event.error) ? event.error : event
    const code = typeof inner.code === 'number' ? inner.code : Number(inner.code)
    if (code === 400 || code === 422 || inner.type === 'invalid_request_error' || inner.type === 'BadRequestError') return upstreamRejected(message)
    if (code === 429) return new UpstreamError(`Upstream model ${this.#modelLabel} is overloaded: ${message}`, { statusCode: 429, type: 'rate_limit_error', code: 'upstream_overloaded', isRetryable: true })
    return upstreamGenerationFailed(this.#modelLabel, message)
  }
}

function backoff (attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** attempt)
}

function asErrorEvent (text: string): Record<string, unknown> {
  const parsed = parseBody(text)
  if (isRecord(parsed)) return isRecord(parsed.error) || typeof parsed.error === 'string' ? parsed : { error: parsed }
  return { error: typeof parsed === 'string' ? parsed : 'unknown error' }
}

function usageOf (body: Record<string, unknown>): { promptTokens?: number, generatedTokens?: number } {
  const usage = body.usage
  if (!isRecord(usage)) return {}
  return {
    promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : undefined,
    generatedTokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : undefined
  }
}

/** What llama.cpp's /props says about its model: the GGUF's template and special tokens, its context. */
function llamacppInfo (props: unknown): BackendInfo {
  if (!isRecord(props)) return {}
  const info: BackendInfo = {}
  if (typeof props.model_path === 'string') info.modelPath = props.model_path
  if (typeof props.chat_template === 'string' && props.chat_template !== '') info.chatTemplate = props.chat_template
  const specialTokens: Record<string, string> = {}
  if (typeof props.bos_token === 'string' && props.bos_token !== '') specialTokens.bos_token = props.bos_token
  if (typeof props.eos_token === 'string' && props.eos_token !== '') specialTokens.eos_token = props.eos_token
  if (Object.keys(specialTokens).length > 0) info.specialTokens = specialTokens
  const settings = props.default_generation_settings
  if (isRecord(settings) && typeof settings.n_ctx === 'number') info.contextLength = settings.n_ctx
  return info
}

/** An engine's HTTP error → the status the client sees. */
export function completionsError (status: number, body: unknown, headers: Record<string, string | string[] | undefined>, engine: string, modelLabel: string, secrets: ReadonlyArray<string | undefined> = []): UpstreamError {
  const message = upstreamMessage(body, secrets)
  if (status === 400 || status === 422) return upstreamRejected(message)
  const common = commonStatusError(status, message, headers, modelLabel)
  if (common !== undefined) return common
  if (status === 503) {
    return new UpstreamError(`Model ${modelLabel} is not ready (${engine}: ${message}); try again later`, {
      statusCode: 503, type: 'service_unavailable_error', code: 'model_loading', isRetryable: true, headers: { 'retry-after': '5' }
    })
  }
  return new UpstreamError(`Upstream error for model ${modelLabel} (${engine}, HTTP ${status}): ${message}`, { statusCode: 502, type: 'server_error', code: 'upstream_error' })
}

