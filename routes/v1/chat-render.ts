import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { chatRenderRequestSchema, chatRenderResponseSchema, errorBodySchema } from '../../src/openai/schemas.js'

const chatRenderRoute: FastifyPluginAsyncZod = async (app) => {
  app.post('/chat/render', {
    schema: {
      tags: ['chat'],
      summary: 'The prompt the model\'s chat template renders for these messages (as given, like apply_chat_template; or, with openai_normalization, exactly what /v1/chat/completions would send)',
      body: chatRenderRequestSchema,
      response: { 200: chatRenderResponseSchema, 400: errorBodySchema, 404: errorBodySchema }
    }
  }, async (request) => {
    request.modelLabel = request.body.model
    return await app.chatService.render(request.body, { clientToken: app.clientTokenOf(request) })
  })
}

export default chatRenderRoute
