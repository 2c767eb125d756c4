import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { chatRenderRequestSchema, chatRenderResponseSchema, errorBodySchema } from '../../src/openai/schemas.js'

const chatRenderRoute: FastifyPluginAsyncZod = async (app) => {
  app.post('/chat/render', {
    schema: {
      tags: ['chat'],
      summary: 'The exact prompt /v1/chat/completions would send upstream for these messages',
      body: chatRenderRequestSchema,
      response: { 200: chatRenderResponseSchema, 400: errorBodySchema, 404: errorBodySchema }
    }
  }, async (request) => {
    request.modelLabel = request.body.model
    return await app.chatService.render(request.body)
  })
}

export default chatRenderRoute
