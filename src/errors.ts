/**
 * One error hierarchy for the whole service. Every error the client can see is a
 * ServiceError; the error-handler plugin is the only place that turns it into
 * OpenAI's wire shape `{error: {message, type, param, code}}` (openai-node picks
 * its error class from the HTTP status and reads exactly these fields).
 */

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'timeout_error'
  | 'service_unavailable_error'

export interface ServiceErrorOptions {
  statusCode: number
  type: OpenAIErrorType
  code?: string | null
  param?: string | null
  /** Extra response headers, e.g. `retry-after` on 429. */
  headers?: Record<string, string>
  cause?: unknown
}

export class ServiceError extends Error {
  readonly statusCode: number
  readonly type: OpenAIErrorType
  readonly code: string | null
  readonly param: string | null
  readonly headers: Record<string, string>

  constructor (message: string, options: ServiceErrorOptions) {
    super(message, { cause: options.cause })
    this.name = 'ServiceError'
    this.statusCode = options.statusCode
    this.type = options.type
    this.code = options.code ?? null
    this.param = options.param ?? null
    this.headers = options.headers ?? {}
  }
}

export interface OpenAIErrorBody {
  error: { message: string, type: string, param: string | null, code: string | null }
}

export function toOpenAIErrorBody (error: ServiceError): OpenAIErrorBody {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.code } }
}

export function invalidRequest (message: string, param: string | null = null, code: string | null = null): ServiceError {
  return new ServiceError(message, { statusCode: 400, type: 'invalid_request_error', param, code })
}

export function modelNotFound (model: string): ServiceError {
  return new ServiceError(`The model '${model}' does not exist or you do not have access to it.`, {
    statusCode: 404, type: 'invalid_request_error', param: 'model', code: 'model_not_found'
  })
}

/** The chat template rejected the messages (raise_exception, bad role order, ...). */
export class TemplateRenderError extends ServiceError {
  constructor (message: string, cause?: unknown) {
    super(message, { statusCode: 400, type: 'invalid_request_error', param: 'messages', code: 'chat_template_error', cause })
    this.name = 'TemplateRenderError'
  }
}

/** The template could not be found, fetched or compiled. */
export class TemplateLoadError extends ServiceError {
  constructor (message: string, statusCode = 502, code = 'chat_template_unavailable', cause?: unknown) {
    const type: OpenAIErrorType = statusCode < 500 ? 'invalid_request_error' : statusCode === 503 ? 'service_unavailable_error' : 'server_error'
    super(message, { statusCode, type, code, cause })
    this.name = 'TemplateLoadError'
  }
}

/** The upstream model server failed or answered with an error. */
export class UpstreamError extends ServiceError {
  /** True when nothing reached the upstream model, so a retry cannot duplicate work. */
  readonly isRetryable: boolean
  constructor (message: string, options: ServiceErrorOptions & { isRetryable?: boolean }) {
    super(message, options)
    this.name = 'UpstreamError'
    this.isRetryable = options.isRetryable ?? false
  }
}

export function upstreamTimeout (what: string, cause?: unknown): UpstreamError {
  return new UpstreamError(`Upstream timed out: ${what}`, { statusCode: 504, type: 'timeout_error', code: 'upstream_timeout', cause })
}

export function upstreamUnreachable (url: string, cause?: unknown): UpstreamError {
  const reason = cause instanceof Error ? (cause as NodeJS.ErrnoException).code ?? cause.message : 'connection failed'
  return new UpstreamError(`Upstream model server unreachable (${url}): ${reason}`, {
    statusCode: 502, type: 'server_error', code: 'upstream_unreachable', cause, isRetryable: true
  })
}

/** Abort raised because the client went away; never answered, only logged. */
export class ClientAbortError extends Error {
  constructor () {
    super('client disconnected')
    this.name = 'ClientAbortError'
  }
}
