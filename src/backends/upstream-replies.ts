/**
 * What every HTTP backend does with an upstream reply: parse (never cast) JSON
 * bodies and SSE events, find the upstream's error message in the shapes TGI,
 * its OpenAI routes and the Hugging Face router use, and build the errors the
 * client sees for the cases all backends share.
 */
import { UpstreamError } from '../errors.js'

const MAX_ERROR_BODY = 64 * 1024

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

/** `{"error": "..."}` (TGI), `{"error": {"message"}}` (OpenAI routes), `{"message"}`, or plain text. */
export function upstreamMessage (body: unknown): string {
  if (isRecord(body) && typeof body.error === 'string') return body.error
  if (isRecord(body) && isRecord(body.error) && typeof body.error.message === 'string') return body.error.message
  if (isRecord(body) && typeof body.message === 'string') return body.message
  if (typeof body === 'string' && body.trim() !== '') return body.trim().slice(0, 500)
  return 'no message'
}

export function malformedReply (modelLabel: string, what: string): UpstreamError {
  return new UpstreamError(`Upstream for model ${modelLabel} sent a malformed reply: ${what}`, {
    statusCode: 502, type: 'server_error', code: 'upstream_malformed_reply'
  })
}

export function upstreamRejected (message: string): UpstreamError {
  return new UpstreamError(`Upstream rejected the request: ${message}`, { statusCode: 400, type: 'invalid_request_error', code: 'upstream_validation_error' })
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
