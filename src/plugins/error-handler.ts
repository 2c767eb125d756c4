/**
 * The one place errors become responses: OpenAI's `{error: {message, type,
 * param, code}}` with OpenAI's statuses, so the OpenAI SDK raises its typed
 * errors. 5xx details never reach the client unless they are our own messages.
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ServiceError, toOpenAIErrorBody } from '../errors.js'

interface ValidationIssue { instancePath?: string, message?: string, keyword?: string, params?: Record<string, unknown> }

/** `/messages/0/role` → `messages[0].role`, the way OpenAI names params. */
export function paramFromInstancePath (instancePath: string | undefined): string | null {
  if (instancePath === undefined || instancePath === '' || instancePath === '/') return null
  return instancePath.slice(1).split('/').reduce((param, part) => /^\d+$/.test(part) ? `${param}[${part}]` : param === '' ? part : `${param}.${part}`, '')
}

function describeValidation (issue: ValidationIssue, param: string | null, context: string | undefined): string {
  const where = param ?? (context === 'body' ? 'request body' : context ?? 'request')
  if (issue.keyword === 'invalid_union' || issue.keyword === 'invalid_union_discriminator') {
    return `Invalid value for '${where}': ${issue.message ?? 'does not match any allowed shape'}`
  }
  if (issue.keyword === 'unrecognized_keys' && Array.isArray(issue.params?.keys)) {
    return `Unrecognized request argument supplied: ${issue.params.keys.join(', ')}`
  }
  return `Invalid value for '${where}': ${issue.message ?? 'invalid'}`
}

export function toServiceError (error: FastifyError | ServiceError | Error): ServiceError {
  if (error instanceof ServiceError) return error
  const fastifyError = error as FastifyError & { validation?: ValidationIssue[], validationContext?: string }
  if (Array.isArray(fastifyError.validation) && fastifyError.validation.length > 0) {
    const issue = fastifyError.validation[0] as ValidationIssue
    const param = paramFromInstancePath(issue.instancePath)
    const missing = issue.keyword === 'invalid_type' && issue.message?.includes('received undefined') === true
    return new ServiceError(missing ? `Missing required parameter: '${param ?? 'body'}'.` : describeValidation(issue, param, fastifyError.validationContext), {
      statusCode: 400, type: 'invalid_request_error', param, code: missing ? 'missing_required_parameter' : 'invalid_value'
    })
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ServiceError('Request body too large', { statusCode: 413, type: 'invalid_request_error', code: 'request_too_large' })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ServiceError('Unsupported content type: send application/json', { statusCode: 415, type: 'invalid_request_error', code: 'unsupported_media_type' })
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ServiceError('The request body is empty; expected a JSON object', { statusCode: 400, type: 'invalid_request_error', code: 'invalid_json' })
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ServiceError(`The request body is not valid JSON: ${fastifyError.message}`, { statusCode: 400, type: 'invalid_request_error', code: 'invalid_json' })
  }
  if (error instanceof SyntaxError || fastifyError.statusCode === 400) {
    return new ServiceError(`The request body is not valid JSON: ${error.message}`, { statusCode: 400, type: 'invalid_request_error', code: 'invalid_json' })
  }
  const status = fastifyError.statusCode
  if (status !== undefined && status >= 400 && status < 500) {
    return new ServiceError(error.message, { statusCode: status, type: 'invalid_request_error', code: fastifyError.code ?? null })
  }
  return new ServiceError('Internal server error', { statusCode: 500, type: 'server_error', code: 'internal_error', cause: error })
}

export function sendError (reply: FastifyReply, error: ServiceError): FastifyReply {
  return reply.code(error.statusCode).headers(error.headers).type('application/json').send(toOpenAIErrorBody(error))
}

export default fp(async function errorHandler (app: FastifyInstance) {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const serviceError = toServiceError(error)
    if (serviceError.statusCode >= 500) request.log.error({ err: error }, serviceError.message)
    else request.log.info({ status: serviceError.statusCode, code: serviceError.code, message: serviceError.message }, 'request rejected')
    return sendError(reply, serviceError)
  })
  app.setNotFoundHandler((request, reply) => sendError(reply, new ServiceError(`Unknown route: ${request.method} ${request.url.split('?')[0] ?? ''}`, {
    statusCode: 404, type: 'invalid_request_error', code: 'unknown_url'
  })))
}, { name: 'error-handler' })
