/**
 * OpenAPI from the same zod schemas the routes validate with: served at
 * /openapi.json and /docs, and written to openapi.yaml by `npm run openapi:write`.
 */
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod'

export default fp(async function openapi (app: FastifyInstance, options: { version: string }) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'hf-chat-gateway',
        description: 'OpenAI-compatible chat completions for Hugging Face models served by TGI, rendering each model\'s own chat template.',
        version: options.version
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Needed when GATEWAY_API_KEYS is set.' } } },
      tags: [{ name: 'chat' }, { name: 'models' }, { name: 'operations' }]
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}, { name: 'swagger' })
