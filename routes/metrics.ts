import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'

const metricsRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/metrics', {
    schema: { tags: ['operations'], summary: 'Prometheus metrics (text exposition format)' }
  }, async (_request, reply) => {
    return reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics())
  })
}

export default metricsRoute
