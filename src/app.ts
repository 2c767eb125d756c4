/**
 * Builds the Fastify app from a typed Config. Every I/O seam (backend factory,
 * template loader fetch, clocks, logger) can be overridden, which is how tests
 * point the app at loopback fakes. Listening is src/server.ts's job.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod'
import type { Dispatcher } from 'undici'
import { serverlessModelConfig, type Config, type ModelConfig } from './config.js'
import type { Backend } from './backends/backend.js'
import { CompletionsBackend } from './backends/completions.js'
import { DetectedBackend, type DetectableEngine } from './backends/engine-detection.js'
import { TgiBackend } from './backends/tgi.js'
import { HubBackend } from './backends/hub.js'
import { RouterRequester } from './backends/router-http.js'
import { ProviderMappings } from './hub/provider-mapping.js'
import { ModelCatalog } from './chat/model-catalog.js'
import { ChatService } from './chat/chat-service.js'
import { HubTemplateLoader } from './templates/template-source.js'
import { createMetrics, type GatewayMetrics } from './metrics.js'
import { DrainController, serverShuttingDown } from './operations/drain.js'
import { toOpenAIErrorBody } from './errors.js'
import errorHandler from './plugins/error-handler.js'
import apiKeys from './plugins/api-keys.js'
import services from './plugins/services.js'
import openapi from './plugins/swagger.js'
import healthRoute from '../routes/health.js'
import readyRoute from '../routes/ready.js'
import metricsRoute from '../routes/metrics.js'
import openapiRoute from '../routes/openapi-json.js'
import modelsRoute from '../routes/v1/models.js'
import modelRoute from '../routes/v1/model.js'
import chatCompletionsRoute from '../routes/v1/chat-completions.js'
import chatRenderRoute from '../routes/v1/chat-render.js'


export const VERSION = '0.1.0'

/** Log paths whose values are never written (tokens, API keys). */
export const LOG_REDACT = ['req.headers.authorization', 'headers.authorization']

export interface AppOverrides {
  /** Replaces the backend factory (e.g. an in-memory backend). */
  createBackend?: (model: ModelConfig) => Backend
  /** Connection pool for upstream model servers. */
  dispatcher?: Dispatcher
  /** fetch used for Hub downloads. */
  fetch?: typeof globalThis.fetch
  /** Clock for the templates' strftime_now. */
  now?: () => Date
  /** Wall clock (ms) for `created` timestamps. */
  clock?: () => number
  metrics?: GatewayMetrics
  /** Fastify logger settings or instance (default: pino at config.logLevel). */
  logger?: FastifyServerOptions['logger']
  loggerInstance?: FastifyServerOptions['loggerInstance']
  probeTimeoutMs?: number
  /** How long /ready reuses a readiness check (default 2000 ms). */
  readinessCacheMs?: number
  /** Monotonic clock (ms) for that reuse. */
  monotonicNow?: () => number
  /** Shutdown sequencing (default: one with config.shutdownGraceMs). */
  drain?: DrainController
}

declare module 'fastify' {
  interface FastifyInstance {
    drain: DrainController
  }
}

export async function buildApp (config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(overrides.loggerInstance !== undefined
      ? { loggerInstance: overrides.loggerInstance }
      : { logger: overrides.logger ?? { level: config.logLevel, redact: LOG_REDACT } }),
    bodyLimit: config.bodyLimitBytes,
    // services.ts writes one access-log line per request instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Receiving the request (headers and body) only: Node stops the timer once the
    // request is complete, so long response streams are not cut by it.
    requestTimeout: config.requestTimeoutMs,
    http: {
      // Node's default (60 s) must not exceed requestTimeout.
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      // How often Node enforces those timeouts (default 30 s, too coarse for them).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.requestTimeoutMs / 4)))
    },
    // The drain hook below answers requests during shutdown itself, in OpenAI's
    // error shape; Fastify's own 503 would run first and in its own shape.
    return503OnClosing: false
  }).withTypeProvider<ZodTypeProvider>()
  const drain = overrides.drain ?? new DrainController({ graceMs: config.shutdownGraceMs })
  app.decorate('drain', drain)
  app.addHook('onRequest', (request, reply, done) => {
    if (drain.draining && request.url !== '/ready') {
      const error = serverShuttingDown()
      void reply.code(503).headers(error.headers).send(toOpenAIErrorBody(error))
      return
    }
    drain.trackResponse(reply.raw)
    done()
  })

  app.setValidatorCompiler(validatorCompiler)
  // Responses are built by our own mapping (checked against OpenAI's spec in the
  // tests), so they are serialised as they are instead of re-validated per request.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))

  const metrics = overrides.metrics ?? createMetrics()
  const templateLoader = new HubTemplateLoader({
    hubBaseUrl: config.hubBaseUrl,
    cacheDir: `${config.cacheDir}/templates`,
    offline: config.hubOffline,
    fetch: overrides.fetch,
    logger: app.log
  })
  // Every configured token is stripped from upstream text, whichever model's it is.
  const secrets = [config.hfToken, ...config.models.flatMap((model) => [model.upstreamToken, model.hubToken])].filter((token): token is string => token !== undefined)
  // Which providers serve which Hub model: read once per repo and TTL, shared by every hub model.
  const providerMappings = new ProviderMappings({ hubBaseUrl: config.hubBaseUrl, fetch: overrides.fetch })
  const createBackend = overrides.createBackend ?? ((model: ModelConfig): Backend => {
    const common = { token: model.upstreamToken, dispatcher: overrides.dispatcher, modelLabel: model.id, connectTimeoutMs: model.firstTokenTimeoutMs, redact: secrets }
    const engineBackend = (engine: DetectableEngine): Backend => engine === 'tgi'
      ? new TgiBackend({ ...common, baseUrl: model.url })
      : new CompletionsBackend({ ...common, baseUrl: model.url, engine, servedModel: model.servedModel })
    switch (model.backend) {
      case 'tgi': case 'vllm': case 'sglang': case 'llamacpp':
        return engineBackend(model.backend)
      case 'completions': case 'endpoint':
        return new DetectedBackend(model.backend, { ...common, baseUrl: model.url, secrets }, engineBackend)
      case 'hub':
        return new HubBackend({
          repo: model.repo ?? model.id,
          provider: model.provider ?? 'auto',
          inferenceBaseUrl: model.url,
          mappings: providerMappings,
          requester: new RouterRequester({ token: model.upstreamToken, coldStartBudgetMs: model.firstTokenTimeoutMs, redact: secrets, fetch: overrides.fetch, modelLabel: model.id })
        })
    }
  })
  const catalog = new ModelCatalog({
    mode: config.mode,
    models: config.models,
    createBackend,
    createServerlessModel: (repo) => serverlessModelConfig(config, repo),
    probeTimeoutMs: overrides.probeTimeoutMs,
    templateLoader,
    logger: app.log,
    now: overrides.now,
    readinessCacheMs: overrides.readinessCacheMs,
    monotonicNow: overrides.monotonicNow
  })
  const chatService = new ChatService({ catalog, metrics, logger: app.log, clock: overrides.clock })

  await app.register(errorHandler)
  await app.register(openapi, { version: VERSION })
  await app.register(apiKeys, { keys: config.apiKeys })
  await app.register(services, { chatService, catalog, metrics, probeTimeoutMs: overrides.probeTimeoutMs ?? 5000, streamWriteIdleTimeoutMs: config.streamWriteIdleTimeoutMs, acceptClientTokens: config.apiKeys.length === 0 })

  await app.register(healthRoute)
  await app.register(readyRoute)
  await app.register(metricsRoute)
  await app.register(openapiRoute)
  await app.register(modelsRoute, { prefix: '/v1' })
  await app.register(modelRoute, { prefix: '/v1' })
  await app.register(chatCompletionsRoute, { prefix: '/v1' })
  await app.register(chatRenderRoute, { prefix: '/v1' })
  return app
}
