import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { chatRenderRequestSchema, chatRenderResponseSchema, errorBodySchema } from '../../src/openai/schemas.js'
import { markPythonFloats, revivePythonFloats } from '../../src/templates/python-json.js'

const chatRenderRoute: FastifyPluginAsyncZod = async (app) => {
  // This plugin's own JSON parser (encapsulated: other routes keep the default):
  // the default one, after marking integral floats (`1.0`) so the template
  // prints them as Python would. Invalid JSON fails on the text as sent.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString()
    const marked = markPythonFloats(text)
    if (marked === undefined) {
      parseJson(request, text, done)
      return
    }
    parseJson(request, marked.text, (error, value) => {
      if (error !== null) parseJson(request, text, done)
      else done(null, revivePythonFloats(value, marked.nonce))
    })
  })

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
