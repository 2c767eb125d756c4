import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { chatCompletionChunkSchema, chatCompletionRequestSchema, chatCompletionSchema, errorBodySchema } from '../../src/openai/schemas.js'
import { ClientAbortError } from '../../src/errors.js'
import { writeFrames } from '../../src/streaming/sse-writer.js'

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }

const chatCompletionsRoute: FastifyPluginAsyncZod = async (app) => {
  app.post('/chat/completions', {
    schema: {
      tags: ['chat'],
      summary: 'Creates a chat completion (JSON, or text/event-stream with `stream: true`)',
      body: chatCompletionRequestSchema,
      response: {
        200: chatCompletionSchema.or(chatCompletionChunkSchema),
        400: errorBodySchema,
        401: errorBodySchema,
        402: errorBodySchema,
        404: errorBodySchema,
        413: errorBodySchema,
        429: errorBodySchema,
        503: errorBodySchema,
        502: errorBodySchema,
        504: errorBodySchema
      }
    }
  }, async (request, reply) => {
    // Aborts the upstream request when the client goes away before the answer is complete.
    const controller = new AbortController()
    // At the end of a shutdown's grace: a stream ends with an error event, a non-stream request gets a 503.
    const releaseDrain = app.drain.onGraceExpired((reason) => controller.abort(reason))
    reply.raw.once('close', () => {
      releaseDrain()
      if (!reply.raw.writableFinished) controller.abort(new ClientAbortError())
    })
    request.modelLabel = request.body.model
    const context = { clientToken: app.clientTokenOf(request) }
    try {
      if (request.body.stream === true) {
        const stream = await app.chatService.stream(request.body, controller, context)
        request.modelLabel = stream.model
        // Written straight to the socket, batched per event-loop turn (see sse-writer).
        reply.hijack()
        reply.raw.writeHead(200, { ...SSE_HEADERS, 'x-gateway-template': stream.template })
        await writeFrames(stream.frames, reply.raw, { writeIdleTimeoutMs: app.streamWriteIdleTimeoutMs, signal: controller.signal })
        return reply
      }
      const { completion, template } = await app.chatService.complete(request.body, controller, context)
      request.modelLabel = completion.model
      // Who rendered the chat template: `gateway` (a prompt was sent) or `provider` (messages were).
      void reply.header('x-gateway-template', template)
      return completion
    } catch (error) {
      if (error instanceof ClientAbortError) {
        request.log.info('client disconnected; upstream request cancelled')
        return reply.hijack()
      }
      throw error
    }
  })
}

export default chatCompletionsRoute
