/**
 * Decorates the app with the framework-free services the routes call.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ChatService } from '../chat/chat-service.js'
import type { ModelCatalog } from '../chat/model-catalog.js'
import type { GatewayMetrics } from '../metrics.js'

export interface Services {
  chatService: ChatService
  catalog: ModelCatalog
  metrics: GatewayMetrics
  /** How long /ready waits for each backend probe. */
  probeTimeoutMs: number
  /** A stream's client that takes no buffered bytes for this long is dropped. */
  streamWriteIdleTimeoutMs: number
  /** When GATEWAY_API_KEYS is unset, a client's `Bearer hf_...` is its own Hugging Face token. */
  acceptClientTokens: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    chatService: ChatService
    catalog: ModelCatalog
    metrics: GatewayMetrics
    probeTimeoutMs: number
    streamWriteIdleTimeoutMs: number
    /** The client's own Hugging Face token, when the gateway accepts them (else undefined). */
    clientTokenOf: (request: FastifyRequest) => string | undefined
  }
  interface FastifyRequest {
    /** The model a /v1 request resolved to, for metrics labels. */
    modelLabel: string | undefined
  }
}

export default fp(async function services (app: FastifyInstance, options: Services) {
  app.decorate('chatService', options.chatService)
  app.decorate('catalog', options.catalog)
  app.decorate('metrics', options.metrics)
  app.decorate('probeTimeoutMs', options.probeTimeoutMs)
  app.decorate('streamWriteIdleTimeoutMs', options.streamWriteIdleTimeoutMs)
  app.decorate('clientTokenOf', (request: FastifyRequest): string | undefined => {
    if (!options.acceptClientTokens) return undefined
    const match = /^Bearer\s+(hf_[A-Za-z0-9_-]{1,256})\s*$/i.exec(request.headers.authorization ?? '')
    return match?.[1]
  })
  app.decorateRequest('modelLabel', undefined)
  // A callback hook, not an async one: no promise per request for work that never waits.
  app.addHook('onResponse', (request, reply, done) => {
    options.metrics.countRequest(request.routeOptions.url ?? 'unmatched', options.catalog.metricLabel(request.modelLabel), reply.statusCode)
    // One access-log line per request (Fastify's own request logging, two lines with
    // full req/res serialisation, is turned off in app.ts for the hot path's sake).
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, model: request.modelLabel, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'request completed')
    done()
  })
}, { name: 'services' })
