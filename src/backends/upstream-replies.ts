/**
 * What every HTTP backend does with an upstream reply: parse (never cast) JSON
 * bodies and SSE events, find the upstream's error message in the shapes TGI,
 * its OpenAI routes and the Hugging Face router use, and build the errors the
 * client sees for the cases all backends share.
 */
import { UpstreamError } from '../errors.js'

/** Upstream error bodies are read up to this many bytes; the rest is discarded. */
export const MAX_ERROR_BODY = 64 * 1024
/** Upstream text in an error message is cut to this many characters. */
const MAX_MESSAGE = 500
const HF_TOKEN_PATTERN = /hf_[A-Za-z0-9]{10,}/g

/**
 * The one redaction of upstream text before it reaches a response or a log
 * line: every known secret (the gateway's configured token, the client's own)
 * and anything shaped like a Hugging Face token becomes `hf_***`.
 */
export function redactUpstreamText (text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let redacted = text
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 4 && redacted.includes(secret)) redacted = redacted.split(secret).join('hf_***')
  }
  return redacted.replace(HF_TOKEN_PATTERN, 'hf_***')
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A reply body: JSON when it parses, else its text (capped: it only feeds error messages). */
export function parseBody (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text.slice(0, MAX_ERROR_BODY)
  }
}

/** One SSE `data:` payload, which must be a JSON object. */
export function parseEvent (data: string, modelLabel: string): Record<string, unknown> {
  let event: unknown
  try {
    event = JSON.parse(data)
  } catch {
    throw malformedReply(modelLabel, 'an event that is not JSON')
  }
  if (!isRecord(event)) throw malformedReply(modelLabel, 'an event that is not an object')
  return event
}

/** `{"error": "..."}` (TGI), `{"error": {"message"}}` (OpenAI routes), `{"message"}` (SGLang's flat ErrorResponse), `{"detail"}` (FastAPI), or plain text. */
export function upstreamMessage (body: unknown, secrets: ReadonlyArray<string | undefined> = []): string {
  let message: string
  if (isRecord(body) && typeof body.error === 'string') message = body.error
  else if (isRecord(body) && isRecord(body.error) && typeof body.error.message === 'string') message = body.error.message
  else if (isRecord(body) && typeof body.message === 'string') message = body.message
  // FastAPI's own validation reply (older SGLang, vLLM's unknown routes): `{"detail": "..." | [{msg, loc}]}`.
  else if (isRecord(body) && typeof body.detail === 'string') message = body.detail
  else if (isRecord(body) && Array.isArray(body.detail)) message = body.detail.map((item) => isRecord(item) && typeof item.msg === 'string' ? `${Array.isArray(item.loc) ? `${item.loc.join('.')}: ` : ''}${item.msg}` : JSON.stringify(item)).join('; ')
  else if (typeof body === 'string' && body.trim() !== '') message = body.trim()
  else return 'no message'
  // Redacted whole first, so a token cut by the cap cannot leak its first half.
  message = redactUpstreamText(message, secrets)
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message
}

/**
 * What every engine means alike by 413 (the client's request is too large),
 * 429 (overloaded: retry later) and 401/403 (the gateway's credentials are
 * wrong: a misconfiguration, 502); undefined for any other status.
 */
export function commonStatusError (status: number, message: string, headers: Record<string, string | string[] | undefined>, modelLabel: string): UpstreamError | undefined {
  if (status === 413) return upstreamPayloadTooLarge(modelLabel, message)
  if (status === 429) {
    const retryAfter = headers['retry-after']
    return new UpstreamError(`Upstream model ${modelLabel} is overloaded: ${message}`, {
      statusCode: 429, type: 'rate_limit_error', code: 'upstream_overloaded', isRetryable: true,
      headers: typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : undefined
    })
  }
  if (status === 401 || status === 403) {
    return new UpstreamError(`Upstream rejected the gateway's credentials for model ${modelLabel} (HTTP ${status})`, {
      statusCode: 502, type: 'server_error', code: 'upstream_auth_failed'
    })
  }
  return undefined
}

export function malformedReply (modelLabel: string, what: string): UpstreamError {
  return new UpstreamError(`Upstream for model ${modelLabel} sent a malformed reply: ${what}`, {
    statusCode: 502, type: 'server_error', code: 'upstream_malformed_reply'
  })
}

export function upstreamRejected (message: string): UpstreamError {
  return new UpstreamError(`Upstream rejected the request: ${message}`, { statusCode: 400, type: 'invalid_request_error', code: 'upstream_validation_error' })
}

/** The upstream's body limit (TGI's router: 2 MB by default): the client's request is too large, so a retry cannot help. */
export function upstreamPayloadTooLarge (modelLabel: string, message: string): UpstreamError {
  return new UpstreamError(`Upstream for model ${modelLabel} refused the request as too large (HTTP 413): ${message}`, {
    statusCode: 413, type: 'invalid_request_error', code: 'upstream_payload_too_large'
  })
}

export function upstreamGenerationFailed (modelLabel: string, message: string): UpstreamError {
  return new UpstreamError(`Upstream generation failed for model ${modelLabel}: ${message}`, { statusCode: 502, type: 'server_error', code: 'upstream_generation_error' })
}

/** The connection broke after the headers, while a reply read whole was arriving. */
export function upstreamReplyBroken (modelLabel: string, cause: unknown): UpstreamError {
  return new UpstreamError(`Upstream connection for model ${modelLabel} broke while reading the reply`, {
    statusCode: 502, type: 'server_error', code: 'upstream_stream_broken', cause
  })
}

export function upstreamStreamBroken (modelLabel: string, cause?: unknown): UpstreamError {
  return cause === undefined
    ? new UpstreamError(`Upstream stream for model ${modelLabel} ended before the generation finished`, { statusCode: 502, type: 'server_error', code: 'upstream_stream_broken' })
    : new UpstreamError(`Upstream connection for model ${modelLabel} broke mid-stream: ${(cause as Error).message}`, { statusCode: 502, type: 'server_error', code: 'upstream_stream_broken', cause })
}
