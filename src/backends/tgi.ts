/**
 * Text Generation Inference (TGI) backend: the native /generate and
 * /generate_stream routes. Protocol rules that shape this file:
 * - /generate_stream always answers HTTP 200; every error, validation
 *   included, arrives as one `data:{"error":..,"error_type":..}` event and the
 *   stream ends. There is no `[DONE]`: the last token event carries `details`.
 * - The prompt's token count is not in /generate's body (only with
 *   decoder_input_details); TGI sends it as the `x-prompt-tokens` header. On the
 *   stream, the final event's details carry `input_length`.
 * - Requests go through an undici keep-alive pool (injectable dispatcher); the
 *   caller's AbortSignal cancels the request, which makes TGI drop the
 *   generation when the connection closes.
 */
import { Agent, type Dispatcher } from 'undici'
import type { Backend, BackendInfo, GenerationParameters, GenerationRequest, GenerationResult, TokenDelta, UpstreamFinishReason } from './backend.js'
import { tgiGrammar } from './tgi-grammar.js'
import { invalidRequest, UpstreamError } from '../errors.js'
import { commonStatusError, isRecord, malformedReply, parseBody, parseEvent, upstreamGenerationFailed, upstreamMessage, upstreamRejected, upstreamStreamBroken } from './upstream-replies.js'
import { openEventStream, requestText, splitBaseUrl, transportFailure, type UpstreamEventReply, type UpstreamTextReply } from './upstream-http.js'

export interface TgiBackendOptions {
  /** Base URL of the TGI server (or of an Inference Endpoint running TGI). */
  baseUrl: string
  /** Sent as `Authorization: Bearer` when set. Never logged. */
  token?: string
  /** Connection pool; defaults to a shared keep-alive Agent. */
  dispatcher?: Dispatcher
  /** Model name used in error messages. */
  modelLabel?: string
  /** More secrets to strip from upstream text (HF_TOKEN, other configured tokens). */
  redact?: string[]
  /** The default pool's connect timeout (the model's first-token timeout); default 10 s. */
  connectTimeoutMs?: number
}

const sharedAgents = new Map<number, Agent>()
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
/**
 * One keep-alive pool per process (per connect timeout); timeouts are enforced
 * by the caller's signal, and connecting by `connectTimeoutMs` (the model's
 * first-token timeout), so a dead upstream frees its slot no later than that.
 */
export function defaultDispatcher (connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): Agent {
  let agent = sharedAgents.get(connectTimeoutMs)
  // No connection cap: TGI queues and batches requests itself, and a cap here
  // queued slow streams behind each other (1000 concurrent streams in the bench).
  if (agent === undefined) {
    agent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0, pipelining: 1, connect: { timeout: connectTimeoutMs } })
    sharedAgents.set(connectTimeoutMs, agent)
  }
  return agent
}

const FINISH_REASONS = new Set<string>(['length', 'eos_token', 'stop_sequence'])

export class TgiBackend implements Backend {
  readonly kind = 'tgi'
  readonly supportsGrammar = true
  // /generate always tokenises with add_special_tokens (a field TGI does not let clients set).
  readonly promptSpecialTokens = 'tokenizer-default' as const
  readonly description: string
  readonly #baseUrl: string
  readonly #origin: string
  readonly #pathPrefix: string
  readonly #headers: Record<string, string>
  readonly #streamHeaders: Record<string, string>
  readonly #dispatcher: Dispatcher
  readonly #modelLabel: string
  /** Redacted from upstream text. */
  readonly #secrets: ReadonlyArray<string | undefined>

  constructor (options: TgiBackendOptions) {
    this.#baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.description = `tgi ${this.#baseUrl}`
    ;({ origin: this.#origin, pathPrefix: this.#pathPrefix } = splitBaseUrl(this.#baseUrl))
    this.#headers = { 'content-type': 'application/json', accept: 'application/json' }
    if (options.token !== undefined) this.#headers.authorization = `Bearer ${options.token}`
    this.#streamHeaders = { ...this.#headers, accept: 'text/event-stream' }
    this.#dispatcher = options.dispatcher ?? defaultDispatcher(options.connectTimeoutMs)
    this.#modelLabel = options.modelLabel ?? this.#baseUrl
    this.#secrets = [options.token, ...options.redact ?? []]
  }

  async generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    const response = await this.#send('POST', '/generate', signal, JSON.stringify({ inputs: request.prompt, parameters: toTgiParameters(request.parameters) }))
    const body = parseBody(response.text)
    if (response.statusCode !== 200) throw tgiError(response.statusCode, body, response.headers, this.#modelLabel, this.#secrets)
    if (!isRecord(body) || typeof body.generated_text !== 'string') throw malformedReply(this.#modelLabel, 'no generated_text in /generate reply')
    const details = isRecord(body.details) ? body.details : undefined
    const finishReason = details !== undefined && typeof details.finish_reason === 'string' && FINISH_REASONS.has(details.finish_reason)
      ? details.finish_reason as UpstreamFinishReason
      : 'eos_token'
    return {
      text: body.generated_text,
      finishReason,
      promptTokens: headerNumber(response.headers['x-prompt-tokens']),
      generatedTokens: typeof details?.generated_tokens === 'number' ? details.generated_tokens : headerNumber(response.headers['x-generated-tokens'])
    }
  }

  async stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>> {
    const body = JSON.stringify({ inputs: request.prompt, parameters: toTgiParameters(request.parameters) })
    let reply: UpstreamEventReply<TokenDelta>
    try {
      reply = await openEventStream(this.#dispatcher, {
        origin: this.#origin, path: `${this.#pathPrefix}/generate_stream`, method: 'POST', headers: this.#streamHeaders, body, signal
      }, {
        decode: (data) => this.#decodeEvent(data),
        broken: (cause) => upstreamStreamBroken(this.#modelLabel, cause),
        malformed: (what) => malformedReply(this.#modelLabel, what)
      })
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      throw transportFailure(error, this.#baseUrl, this.#modelLabel)
    }
    if (!('events' in reply)) throw tgiError(reply.statusCode, parseBody(reply.text), reply.headers, this.#modelLabel, this.#secrets)
    return reply.events
  }

  /** One /generate_stream event: a token, the last token with `details`, or an error. */
  #decodeEvent (data: string): { value: TokenDelta, last: boolean } {
    const event = parseEvent(data, this.#modelLabel)
    if (event.error !== undefined) throw tgiStreamError(event, this.#modelLabel, this.#secrets)
    const token = event.token
    if (!isRecord(token) || typeof token.text !== 'string') throw malformedReply(this.#modelLabel, 'a token event without token.text')
    const details = event.details
    if (!isRecord(details)) return { value: { text: token.text, special: token.special === true }, last: false }
    const finishReason = typeof details.finish_reason === 'string' && FINISH_REASONS.has(details.finish_reason)
      ? details.finish_reason as UpstreamFinishReason
      : 'eos_token'
    return {
      value: {
        text: token.text,
        special: token.special === true,
        end: {
          finishReason,
          promptTokens: typeof details.input_length === 'number' ? details.input_length : undefined,
          generatedTokens: typeof details.generated_tokens === 'number' ? details.generated_tokens : undefined
        }
      },
      last: true
    }
  }

  async countTokens (prompt: string, signal: AbortSignal): Promise<number> {
    const response = await this.#send('POST', '/tokenize', signal, JSON.stringify({ inputs: prompt }))
    const body = parseBody(response.text)
    if (response.statusCode !== 200) throw tgiError(response.statusCode, body, response.headers, this.#modelLabel, this.#secrets)
    if (!Array.isArray(body)) throw malformedReply(this.#modelLabel, '/tokenize did not return a list')
    return body.length
  }

  /**
   * Whether TGI's tokenizer adds BOS to a string prompt: /tokenize (which, like
   * /generate, adds special tokens) turns the BOS text alone into two equal
   * ids when it does, one when it does not.
   */
  async addsBos (bosToken: string, signal: AbortSignal): Promise<boolean | undefined> {
    const response = await this.#send('POST', '/tokenize', signal, JSON.stringify({ inputs: bosToken })).catch(() => undefined)
    if (response?.statusCode !== 200) return undefined
    const body = parseBody(response.text)
    if (!Array.isArray(body) || !body.every((token) => isRecord(token) && typeof token.id === 'number')) return undefined
    const ids = (body as Array<{ id: number }>).map((token) => token.id)
    if (ids.length === 1) return false
    if (ids.length === 2 && ids[0] === ids[1]) return true
    return undefined
  }

  async probe (signal: AbortSignal): Promise<BackendInfo> {
    const response = await this.#send('GET', '/info', signal)
    const body = parseBody(response.text)
    if (response.statusCode !== 200) throw tgiError(response.statusCode, body, response.headers, this.#modelLabel, this.#secrets)
    if (!isRecord(body)) throw malformedReply(this.#modelLabel, '/info is not an object')
    return {
      engine: 'tgi',
      modelId: typeof body.model_id === 'string' ? body.model_id : undefined,
      maxStopSequences: typeof body.max_stop_sequences === 'number' ? body.max_stop_sequences : undefined
    }
  }

  /** A request whose reply is read whole (see upstream-http.ts for why not undici's request()). */
  async #send (method: 'GET' | 'POST', path: string, signal: AbortSignal, body?: string): Promise<UpstreamTextReply> {
    try {
      return await requestText(this.#dispatcher, { origin: this.#origin, path: this.#pathPrefix + path, method, headers: this.#headers, body, signal })
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      throw transportFailure(error, this.#baseUrl, this.#modelLabel)
    }
  }
}

/** TGI's GenerateParameters; undefined fields are dropped by JSON.stringify. */
export function toTgiParameters (parameters: GenerationParameters): Record<string, unknown> {
  if (parameters.minP !== undefined) throw invalidRequest("'min_p' is not supported by the tgi engine (its GenerateParameters have no such field)", 'min_p', 'unsupported_parameter')
  return {
    max_new_tokens: parameters.maxNewTokens,
    temperature: parameters.temperature,
    do_sample: parameters.doSample,
    top_p: parameters.topP,
    top_k: parameters.topK,
    seed: parameters.seed,
    frequency_penalty: parameters.frequencyPenalty,
    repetition_penalty: parameters.repetitionPenalty,
    typical_p: parameters.typicalP,
    truncate: parameters.truncate,
    stop: parameters.stop.length > 0 ? parameters.stop : undefined,
    grammar: parameters.structuredOutput === undefined ? undefined : tgiGrammar(parameters.structuredOutput),
    details: true
  }
}

function headerNumber (value: string | string[] | undefined): number | undefined {
  const number = typeof value === 'string' ? Number(value) : NaN
  return Number.isFinite(number) ? number : undefined
}

/** Maps a TGI HTTP error to the status the client should see. */
export function tgiError (status: number, body: unknown, headers: Record<string, string | string[] | undefined>, modelLabel: string, secrets: ReadonlyArray<string | undefined> = []): UpstreamError {
  const message = upstreamMessage(body, secrets)
  if (status === 422 || status === 400) return upstreamRejected(message)
  const common = commonStatusError(status, message, headers, modelLabel)
  if (common !== undefined) return common
  return new UpstreamError(`Upstream error for model ${modelLabel} (HTTP ${status}): ${message}`, {
    statusCode: 502, type: 'server_error', code: 'upstream_error', isRetryable: status === 503
  })
}

/** Maps TGI's in-stream `{"error", "error_type"}` event. */
export function tgiStreamError (event: Record<string, unknown>, modelLabel: string, secrets: ReadonlyArray<string | undefined> = []): UpstreamError {
  const message = typeof event.error === 'string' ? upstreamMessage(event, secrets) : 'unknown error'
  switch (event.error_type) {
    case 'validation':
      return upstreamRejected(message)
    case 'overloaded':
      return new UpstreamError(`Upstream model ${modelLabel} is overloaded: ${message}`, { statusCode: 429, type: 'rate_limit_error', code: 'upstream_overloaded', isRetryable: true })
    default:
      return upstreamGenerationFailed(modelLabel, message)
  }
}
