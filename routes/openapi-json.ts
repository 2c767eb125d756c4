import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'

const openapiRoute: FastifyPluginAsyncZod = async (app) => {
  app.get('/openapi.json', {
    schema: { tags: ['operations'], summary: 'This API\'s OpenAPI document', hide: true }
  }, async () => app.swagger())
}

export default openapiRoute
