import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { modelListSchema } from '../../src/openai/schemas.js'

const modelsRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/models', {
    schema: { tags: ['models'], summary: 'Lists the models this gateway serves', response: { 200: modelListSchema } }
  }, async () => ({ object: 'list' as const, data: await app.catalog.modelObjects(app.probeTimeoutMs) }))
}

export default modelsRoute
