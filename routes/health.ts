import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { healthSchema } from '../src/openai/schemas.js'

const healthRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/health', {
    schema: { tags: ['operations'], summary: 'Liveness: 200 while the process serves requests', response: { 200: healthSchema } }
  }, async () => ({ status: 'ok' as const }))
}

export default healthRoute
