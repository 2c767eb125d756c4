/**
 * GATEWAY_API_KEYS: `/v1/*` needs `Authorization: Bearer <one of the keys>`.
 * Keys are compared as SHA-256 digests with timingSafeEqual, over every key,
 * so neither the length nor the position of a match leaks through timing.
 */
import fp from 'fastify-plugin'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { ServiceError } from '../errors.js'
import { sendError } from './error-handler.js'

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export function createKeyChecker (keys: readonly string[]): (presented: string) => boolean {
  const digests = keys.map(digest)
  return (presented) => {
    const candidate = digest(presented)
    let matched = false
    for (const known of digests) matched = timingSafeEqual(candidate, known) || matched
    return matched
  }
}

export default fp(async function apiKeys (app: FastifyInstance, options: { keys: readonly string[] }) {
  if (options.keys.length === 0) return
  const isKnown = createKeyChecker(options.keys)
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/')) return
    const header = request.headers.authorization
    const presented = typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : undefined
    if (presented === undefined || !isKnown(presented)) {
      return sendError(reply, new ServiceError(presented === undefined
        ? 'Missing API key: send Authorization: Bearer <key>'
        : 'Incorrect API key provided', { statusCode: 401, type: 'authentication_error', code: 'invalid_api_key' }))
    }
  })
}, { name: 'api-keys' })
