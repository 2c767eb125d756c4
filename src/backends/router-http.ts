/**
 * Requests to the Hugging Face router (Inference Providers), shared by the
 * Hub's two paths (a raw prompt to a provider's /v1/completions, messages to
 * the router's /v1/chat/completions): sent with the injectable fetch, cold
 * starts waited out, and the router's answers mapped to honest statuses.
 * - A 503 (model loading) or a connection reset before any byte is retried
 *   with bounded backoff, honouring `estimated_time`, while the cold-start
 *   budget lasts; nothing is retried once a response has been accepted.
 * - 401/403 with the client's own token pass through; with the gateway's they
 *   are a misconfiguration (502). 402 (out of credits) passes through with the
 *   router's message, as do 404, 413 and 429.
 */
import { UpstreamError } from '../errors.js'
import { isRecord, MAX_ERROR_BODY, parseBody, upstreamMessage, upstreamPayloadTooLarge, upstreamRejected } from './upstream-replies.js'

export interface RouterRequesterOptions {
  /** The gateway's token (models-file `token`, else HF_TOKEN). */
  token?: string
  /** More secrets to strip from upstream text. */
  redact?: string[]
  /** How long a cold model may be waited for before answering 503 (the first-token timeout). */
  coldStartBudgetMs: number
  fetch?: typeof globalThis.fetch
  /** Waits `ms` or rejects when the signal aborts; injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  now?: () => number
  modelLabel: string
}

const MAX_BACKOFF_MS = 10_000
const FIRST_BACKOFF_MS = 500

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

export class RouterRequester {
  readonly modelLabel: string
  readonly #options: RouterRequesterOptions
  readonly #fetch: typeof globalThis.fetch
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>
  readonly #now: () => number

  constructor (options: RouterRequesterOptions) {
    this.#options = options
    this.modelLabel = options.modelLabel
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#sleep = options.sleep ?? defaultSleep
    this.#now = options.now ?? Date.now
  }

  /** The token a request goes with: the client's own, else the gateway's. */
  tokenFor (clientToken: string | undefined): string | undefined {
    return clientToken ?? this.#options.token
  }

  /** What is stripped from this request's upstream text: the gateway's tokens and the client's own. */
  secrets (clientToken: string | undefined): Array<string | undefined> {
    return [this.#options.token, clientToken, ...this.#options.redact ?? []]
  }

  /** Sends, waiting out cold starts; resolves with a 2xx response, else throws the mapped error. */
  async send (url: string, init: RequestInit, clientToken: string | undefined, signal: AbortSignal): Promise<Response> {
    const deadline = this.#now() + this.#options.coldStartBudgetMs
    let attempt = 0
    while (true) {
      let response: Response
      try {
        response = await this.#fetch(url, { ...init, signal })
      } catch (error) {
        if (signal.aborted) throw signal.reason ?? error
        if (!isConnectionReset(error)) throw this.unreachable(error)
        await this.#waitBeforeRetry(attempt++, undefined, deadline, signal, `the connection to ${this.modelLabel} was reset`)
        continue
      }
      if (response.ok) return response
      const body = await readErrorBody(response)
      if (response.status === 503) {
        const estimated = isRecord(body) && typeof body.estimated_time === 'number' ? body.estimated_time * 1000 : undefined
        await this.#waitBeforeRetry(attempt++, estimated, deadline, signal, upstreamMessage(body, this.secrets(clientToken)))
        continue
      }
      throw this.statusError(response.status, response.headers, body, clientToken)
    }
  }

  async #waitBeforeRetry (attempt: number, estimatedMs: number | undefined, deadline: number, signal: AbortSignal, reason: string): Promise<void> {
    const wait = Math.min(MAX_BACKOFF_MS, Math.max(estimatedMs ?? 0, FIRST_BACKOFF_MS * 2 ** attempt))
    if (this.#now() + wait > deadline) {
      throw new UpstreamError(`Model ${this.modelLabel} is loading (${reason}); try again later`, {
        statusCode: 503, type: 'service_unavailable_error', code: 'model_loading', isRetryable: true,
        headers: { 'retry-after': String(Math.max(1, Math.ceil((estimatedMs ?? wait) / 1000))) }
      })
    }
    await this.#sleep(wait, signal)
  }

  statusError (status: number, headers: Headers, body: unknown, clientToken: string | undefined): UpstreamError {
    const message = upstreamMessage(body, this.secrets(clientToken))
    const label = this.modelLabel
    switch (status) {
      case 400: case 422:
        return upstreamRejected(message)
      case 402:
        return new UpstreamError(`Payment required for model ${label}: ${message}`, { statusCode: 402, type: 'invalid_request_error', code: 'insufficient_credits' })
      case 413:
        return upstreamPayloadTooLarge(label, message)
      case 401: case 403:
        // The client's own token: its problem, passed on. The gateway's: a misconfiguration, 502.
        return clientToken !== undefined
          ? new UpstreamError(`The upstream rejected your token for model ${label} (HTTP ${status})`, {
            statusCode: status, type: status === 401 ? 'authentication_error' : 'permission_error', code: 'upstream_auth_failed'
          })
          : new UpstreamError(`Upstream rejected the gateway's credentials for model ${label} (HTTP ${status})`, {
            statusCode: 502, type: 'server_error', code: 'upstream_auth_failed'
          })
      case 404:
        return new UpstreamError(`The model '${label}' does not exist or is not served by its Inference Provider: ${message}`, {
          statusCode: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model'
        })
      case 429: {
        const retryAfter = headers.get('retry-after')
        return new UpstreamError(`Upstream rate limit for model ${label}: ${message}`, {
          statusCode: 429, type: 'rate_limit_error', code: 'upstream_rate_limited', isRetryable: true,
          headers: retryAfter === null ? undefined : { 'retry-after': retryAfter }
        })
      }
      default:
        return new UpstreamError(`Upstream error for model ${label} (HTTP ${status}): ${message}`, { statusCode: 502, type: 'server_error', code: 'upstream_error' })
    }
  }

  unreachable (cause: unknown): UpstreamError {
    const reason = causeCode(cause) ?? (cause instanceof Error ? cause.message : 'connection failed')
    return new UpstreamError(`Upstream for model ${this.modelLabel} unreachable: ${reason}`, {
      statusCode: 502, type: 'server_error', code: 'upstream_unreachable', cause
    })
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

export async function readBody (response: Response): Promise<unknown> {
  return parseBody(await response.text().catch(() => ''))
}

/** An error reply's body, read up to MAX_ERROR_BODY bytes (the rest is cancelled, not buffered). */
export async function readErrorBody (response: Response): Promise<unknown> {
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
