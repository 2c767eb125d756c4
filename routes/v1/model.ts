import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorBodySchema, modelObjectSchema } from '../../src/openai/schemas.js'
import { modelNotFound } from '../../src/errors.js'

const modelRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/models/*', {
    schema: {
      tags: ['models'],
      summary: 'One model (ids may contain slashes, e.g. HuggingFaceH4/zephyr-7b-beta)',
      params: z.object({ '*': z.string().min(1).max(256) }),
      response: { 200: modelObjectSchema, 404: errorBodySchema }
    }
  }, async (request) => {
    const id = request.params['*']
    const entry = app.catalog.find(id)
    if (entry === undefined) throw modelNotFound(id)
    return entry.modelObject
  })
}

export default modelRoute
