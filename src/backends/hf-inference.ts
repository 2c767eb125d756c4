/**
 * The Hub's serverless API (hf-inference provider) through
 * @huggingface/inference, which speaks the OpenAI-style `/v1/completions`
 * route for text generation (since 4.13.17). (Dedicated Inference Endpoints
 * are engines: engine-detection.ts.)
 *
 * The library builds each request (URL, headers, payload: makeRequestOptions
 * with the hf-inference text-generation helper); this adapter sends it, because
 * the library's own senders do not fit a gateway:
 * - textGeneration() keeps only `generated_text`, dropping finish_reason and
 *   usage, which the OpenAI answer needs;
 * - on 503 they retry immediately and without bound, while a cold model must be
 *   waited for (honouring `estimated_time`) within the first-token budget;
 * - their stream reader releases the lock on early exit without cancelling the
 *   request, so a gateway-side stop would leave the generation running.
 * The base URLs are not configurable in the library except through
 * `endpointUrl`, which is how HF_INFERENCE_ENDPOINT (and the tests' loopback
 * fakes) are reached: `{base}/hf-inference/models/{repo}` for serverless.
 */
import { getProviderHelper, makeRequestOptions } from '@huggingface/inference'
import type { Backend, BackendInfo, GenerationEnd, GenerationParameters, GenerationRequest, GenerationResult, TokenDelta, UpstreamFinishReason } from './backend.js'
import { ServiceError, UpstreamError, invalidRequest } from '../errors.js'
import { decodeServerSentEvents, ServerSentEventLimitError } from '../streaming/sse-decoder.js'
import { isRecord, malformedReply, MAX_ERROR_BODY, parseBody, parseEvent, upstreamGenerationFailed, upstreamMessage, upstreamPayloadTooLarge, upstreamRejected, upstreamStreamBroken } from './upstream-replies.js'

export interface HfInferenceBackendOptions {
  kind: 'hub'
  /** `{HF_INFERENCE_ENDPOINT}/hf-inference/models/{repo}`. */
  endpointUrl: string
  /** Hub repo id, sent as `model`. */
  repo?: string
  /** The gateway's token (models-file `token`, else HF_TOKEN). */
  token?: string
  /** More secrets to strip from upstream text (HF_TOKEN, other configured tokens). */
  redact?: string[]
  /** How long a cold model may be waited for before answering 503 (the first-token timeout). */
  coldStartBudgetMs: number
  fetch?: typeof globalThis.fetch
  /** Waits `ms` or rejects when the signal aborts; injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  now?: () => number
  modelLabel: string
}

/** Parameters the OpenAI-style route has no field for (TGI's native routes do). */
const UNSUPPORTED: Array<[keyof GenerationParameters, string]> = [['topK', 'top_k'], ['typicalP', 'typical_p'], ['truncate', 'truncate'], ['minP', 'min_p']]
const MAX_BACKOFF_MS = 10_000
const FIRST_BACKOFF_MS = 500

export function serverlessEndpointUrl (inferenceBaseUrl: string, repo: string): string {
  return `${inferenceBaseUrl.replace(/\/+$/, '')}/hf-inference/models/${repo}`
}

function defaultSleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** TGI formats finish reasons for its OpenAI routes; accept both spellings. */
function toFinishReason (value: unknown): UpstreamFinishReason | undefined {
  switch (value) {
    case 'length': return 'length'
    case 'stop_sequence': return 'stop_sequence'
    case 'eos_token': case 'stop': return 'eos_token'
    default: return undefined
  }
}

function usageOf (body: Record<string, unknown>): { promptTokens?: number, generatedTokens?: number } {
  const usage = body.usage
  if (!isRecord(usage)) return {}
  return {
    promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : undefined,
    generatedTokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : undefined
  }
}

export class HfInferenceBackend implements Backend {
  readonly kind: 'hub'
  readonly description: string
  // TGI's OpenAI-style completions route has no grammar field.
  readonly supportsGrammar = false
  readonly #options: HfInferenceBackendOptions
  readonly #fetch: typeof globalThis.fetch
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #now: () => number

  constructor (options: HfInferenceBackendOptions) {
    this.kind = options.kind
    this.#options = { ...options, endpointUrl: options.endpointUrl.replace(/\/+$/, '') }
    this.description = `${options.kind} ${this.#options.endpointUrl}`
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#sleep = options.sleep ?? defaultSleep
    this.#now = options.now ?? Date.now
  }

  async generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    const response = await this.#send(request, false, signal)
    const body = await readBody(response)
    if (!isRecord(body) || !Array.isArray(body.choices) || !isRecord(body.choices[0]) || typeof body.choices[0].text !== 'string') {
      throw this.#malformed('no choices[0].text in the completion')
    }
    const choice = body.choices[0]
    return { text: choice.text as string, finishReason: toFinishReason(choice.finish_reason) ?? 'eos_token', ...usageOf(body) }
  }

  async stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>> {
    const response = await this.#send(request, true, signal)
    if (response.body === null) throw this.#malformed('an empty stream')
    return this.#deltas(response.body, signal, this.#secrets(request.clientToken))
  }

  async * #deltas (body: ReadableStream<Uint8Array>, signal: AbortSignal, secrets: ReadonlyArray<string | undefined>): AsyncGenerator<TokenDelta> {
    let end: GenerationEnd | undefined
    let pendingText: string | undefined
    try {
      for await (const data of decodeServerSentEvents(body as AsyncIterable<Uint8Array>)) {
        if (data === '[DONE]') break
        const event = parseEvent(data, this.#options.modelLabel)
        if (event.error !== undefined) throw this.#streamError(event, secrets)
        const usage = usageOf(event)
        if (end !== undefined && usage.promptTokens !== undefined) end = { ...end, ...usage }
        const choice = Array.isArray(event.choices) ? event.choices[0] : undefined
        if (!isRecord(choice)) continue
        if (typeof choice.text !== 'string') throw this.#malformed('a chunk without choices[0].text')
        const finishReason = toFinishReason(choice.finish_reason)
        if (finishReason !== undefined) {
          // Held until [DONE]: a usage chunk may still follow the finishing one.
          end = { finishReason, ...usage }
          pendingText = choice.text
          continue
        }
        yield { text: choice.text, special: false }
      }
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      if (error instanceof ServiceError) throw error
      if (error instanceof ServerSentEventLimitError) throw this.#malformed(error.message)
      throw upstreamStreamBroken(this.#options.modelLabel, error)
    } finally {
      if (end === undefined) await body.cancel().catch(() => {})
    }
    if (end === undefined) {
      if (signal.aborted) throw signal.reason
      throw upstreamStreamBroken(this.#options.modelLabel)
    }
    // The eos token's text ("</s>") is not part of the answer.
    yield { text: pendingText ?? '', special: end.finishReason === 'eos_token', end }
  }

  async probe (): Promise<BackendInfo> {
    // The serverless API has no cheap status route: readiness is the template alone.
    return { engine: 'hub' }
  }

  /**
   * Sends the request, waiting out cold starts: a 503 (model loading, endpoint
   * scaled to zero) or a connection reset before any byte is retried with
   * bounded backoff, honouring `estimated_time`, while the cold-start budget
   * lasts. Nothing is retried once a response has been accepted.
   */
  async #send (request: GenerationRequest, stream: boolean, signal: AbortSignal): Promise<Response> {
    for (const [field, param] of UNSUPPORTED) {
      if (request.parameters[field] !== undefined) {
        throw invalidRequest(`'${param}' is not supported by the ${this.kind} backend (its OpenAI-style completions route has no such field)`, param, 'unsupported_parameter')
      }
    }
    const clientToken = request.clientToken
    const token = clientToken ?? this.#options.token
    const { url, info } = await makeRequestOptions({
      endpointUrl: this.#options.endpointUrl,
      model: this.#options.repo,
      accessToken: token,
      inputs: request.prompt,
      parameters: toCompletionParameters(request.parameters),
      ...(stream ? { stream: true } : {})
    }, getProviderHelper('hf-inference', 'text-generation'), { task: 'text-generation' })
    const deadline = this.#now() + this.#options.coldStartBudgetMs
    let attempt = 0
    while (true) {
      let response: Response
      try {
        response = await this.#fetch(url, { ...info, signal })
      } catch (error) {
        if (signal.aborted) throw signal.reason ?? error
        if (!isConnectionReset(error)) throw this.#unreachable(error)
        await this.#waitBeforeRetry(attempt++, undefined, deadline, signal, `the connection to ${this.#options.modelLabel} was reset`)
        continue
      }
      if (response.ok) return response
      const body = await readErrorBody(response)
      if (response.status === 503) {
        const estimated = isRecord(body) && typeof body.estimated_time === 'number' ? body.estimated_time * 1000 : undefined
        await this.#waitBeforeRetry(attempt++, estimated, deadline, signal, upstreamMessage(body, this.#secrets(clientToken)))
        continue
      }
      throw this.#statusError(response, body, clientToken)
    }
  }

  async #waitBeforeRetry (attempt: number, estimatedMs: number | undefined, deadline: number, signal: AbortSignal, reason: string): Promise<void> {
    const backoff = Math.min(MAX_BACKOFF_MS, Math.max(estimatedMs ?? 0, FIRST_BACKOFF_MS * 2 ** attempt))
    const wait = Math.min(backoff, MAX_BACKOFF_MS)
    if (this.#now() + wait > deadline) {
      throw new UpstreamError(`Model ${this.#options.modelLabel} is loading (${reason}); try again later`, {
        statusCode: 503, type: 'service_unavailable_error', code: 'model_loading', isRetryable: true,
        headers: { 'retry-after': String(Math.max(1, Math.ceil((estimatedMs ?? wait) / 1000))) }
      })
    }
    await this.#sleep(wait, signal)
  }

  /** What is stripped from this request's upstream text: the gateway's tokens and the client's own. */
  #secrets (clientToken: string | undefined): Array<string | undefined> {
    return [this.#options.token, clientToken, ...this.#options.redact ?? []]
  }

  #statusError (response: Response, body: unknown, clientToken: string | undefined): UpstreamError {
    const message = upstreamMessage(body, this.#secrets(clientToken))
    const label = this.#options.modelLabel
    switch (response.status) {
      case 400: case 422:
        return upstreamRejected(message)
      case 413:
        return upstreamPayloadTooLarge(label, message)
      case 401: case 403:
        // The client's own token: its problem, passed on. The gateway's: a misconfiguration, 502.
        return clientToken !== undefined
          ? new UpstreamError(`The upstream rejected your token for model ${label} (HTTP ${response.status})`, {
            statusCode: response.status, type: response.status === 401 ? 'authentication_error' : 'permission_error', code: 'upstream_auth_failed'
          })
          : new UpstreamError(`Upstream rejected the gateway's credentials for model ${label} (HTTP ${response.status})`, {
            statusCode: 502, type: 'server_error', code: 'upstream_auth_failed'
          })
      case 404:
        return new UpstreamError(`The model '${label}' does not exist or is not served by the serverless Inference API`, {
          statusCode: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model'
        })
      case 429: {
        const retryAfter = response.headers.get('retry-after')
        return new UpstreamError(`Upstream rate limit for model ${label}: ${message}`, {
          statusCode: 429, type: 'rate_limit_error', code: 'upstream_rate_limited', isRetryable: true,
          headers: retryAfter === null ? undefined : { 'retry-after': retryAfter }
        })
      }
      default:
        return new UpstreamError(`Upstream error for model ${label} (HTTP ${response.status}): ${message}`, { statusCode: 502, type: 'server_error', code: 'upstream_error' })
    }
  }

  /**
   * TGI's OpenAI routes report in-stream errors as `{"error": {"message",
   * "http_status_code": 422}}` (always 422, overload included); older ones as
   * `{"error": "...", "error_type": "..."}`.
   */
  #streamError (event: Record<string, unknown>, secrets: ReadonlyArray<string | undefined>): UpstreamError {
    const message = upstreamMessage(event, secrets)
    if (/overloaded/i.test(message)) return new UpstreamError(`Upstream model ${this.#options.modelLabel} is overloaded: ${message}`, { statusCode: 429, type: 'rate_limit_error', code: 'upstream_overloaded' })
    const status = isRecord(event.error) ? event.error.http_status_code : undefined
    if (event.error_type === 'validation' || status === 422 || status === 400) return upstreamRejected(message)
    return upstreamGenerationFailed(this.#options.modelLabel, message)
  }

  #unreachable (cause: unknown): UpstreamError {
    const reason = causeCode(cause) ?? (cause instanceof Error ? cause.message : 'connection failed')
    return new UpstreamError(`Upstream for model ${this.#options.modelLabel} unreachable: ${reason}`, {
      statusCode: 502, type: 'server_error', code: 'upstream_unreachable', cause
    })
  }

  #malformed (what: string): UpstreamError {
    return malformedReply(this.#options.modelLabel, what)
  }
}

/** GenerationParameters → the OpenAI-style route's fields (the library renames max_new_tokens to max_tokens). */
function toCompletionParameters (parameters: GenerationParameters): Record<string, unknown> {
  return {
    max_new_tokens: parameters.maxNewTokens,
    // Greedy on OpenAI routes is temperature 0 (TGI turns it into do_sample false).
    temperature: parameters.doSample === false ? 0 : parameters.temperature,
    top_p: parameters.topP,
    seed: parameters.seed,
    frequency_penalty: parameters.frequencyPenalty,
    repetition_penalty: parameters.repetitionPenalty,
    stop: parameters.stop.length > 0 ? parameters.stop : undefined
  }
}

function causeCode (error: unknown): string | undefined {
  let current: unknown = error
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code
    if (typeof code === 'string') return code
    current = current.cause
  }
  return undefined
}

function isConnectionReset (error: unknown): boolean {
  const code = causeCode(error)
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE'
}

async function readBody (response: Response): Promise<unknown> {
  return parseBody(await response.text().catch(() => ''))
}

/** An error reply's body, read up to MAX_ERROR_BODY bytes (the rest is cancelled, not buffered). */
async function readErrorBody (response: Response): Promise<unknown> {
  if (response.body === null) return parseBody('')
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    while (size < MAX_ERROR_BODY) {
      const { done, value } = await reader.read()
      if (done) break
      const room = MAX_ERROR_BODY - size
      chunks.push(value.byteLength > room ? value.subarray(0, room) : value)
      size += Math.min(value.byteLength, room)
    }
  } catch {
    // A body that broke off: what arrived still names the error.
  } finally {
    await reader.cancel().catch(() => {})
  }
  return parseBody(Buffer.concat(chunks).toString('utf8'))
}
