/**
 * Decorates the app with the framework-free services the routes call.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ChatService } from '../chat/chat-service.js'
import type { ModelCatalog } from '../chat/model-catalog.js'
import type { GatewayMetrics } from '../metrics.js'

export interface Services {
  chatService: ChatService
  catalog: ModelCatalog
  metrics: GatewayMetrics
  /** How long /ready waits for each backend probe. */
  probeTimeoutMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    chatService: ChatService
    catalog: ModelCatalog
    metrics: GatewayMetrics
    probeTimeoutMs: number
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
  app.decorateRequest('modelLabel', undefined)
  app.addHook('onResponse', async (request, reply) => {
    options.metrics.requests.inc({ route: request.routeOptions.url ?? 'unmatched', model: request.modelLabel ?? '', status: String(reply.statusCode) })
  })
}, { name: 'services' })
