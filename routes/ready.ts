import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { readinessSchema } from '../src/openai/schemas.js'

const readyRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/ready', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness: 200 when every model\'s template is loaded and its backend answered this probe, else 503 listing what is not ready',
      response: { 200: readinessSchema, 503: readinessSchema }
    }
  }, async (_request, reply) => {
    // Shutting down: load balancers take the instance out before it stops answering.
    if (app.drain.draining) return reply.code(503).header('connection', 'close').send({ status: 'draining', models: [] })
    const models = await app.catalog.refresh(app.probeTimeoutMs)
    const ready = models.every((model) => model.ready)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', models })
  })
}

export default readyRoute
