import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorBodySchema, modelObjectSchema } from '../../src/openai/schemas.js'
import { modelNotFound } from '../../src/errors.js'

const modelRoute: FastifyPluginAsyncZod = async (app) => {
  const retrieve = async (id: string): Promise<z.infer<typeof modelObjectSchema>> => {
    const entry = await app.catalog.find(id, app.probeTimeoutMs)
    if (entry === undefined) throw modelNotFound(id)
    return entry.modelObject
  }
  app.get('/models/:model', {
    schema: {
      tags: ['models'],
      summary: 'One model. Hub-style ids contain a slash: send it encoded (%2F, as the OpenAI SDK does) or plain',
      params: z.object({ model: z.string().min(1).max(256) }),
      response: { 200: modelObjectSchema, 404: errorBodySchema }
    }
  }, async (request) => await retrieve(request.params.model))
  // The same endpoint for `org/name` ids written with a literal slash.
  app.get('/models/:owner/:name', {
    schema: { hide: true, params: z.object({ owner: z.string().min(1).max(128), name: z.string().min(1).max(128) }) }
  }, async (request) => await retrieve(`${request.params.owner}/${request.params.name}`))
}

export default modelRoute
