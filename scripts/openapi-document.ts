/**
 * Builds the app (no network: nothing is probed or loaded) and returns its
 * OpenAPI document as YAML, generated from the routes' zod schemas.
 */
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config.js'

export async function generateOpenApiYaml (): Promise<string> {
  const config: Config = {
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    hubBaseUrl: 'http://127.0.0.1:9',
    inferenceBaseUrl: 'http://127.0.0.1:9',
    hubOffline: true,
    cacheDir: '.hf-cache',
    apiKeys: [],
    upstreamTimeoutMs: 1000,
    firstTokenTimeoutMs: 1000,
    bodyLimitBytes: 1024,
    shutdownGraceMs: 25_000,
    streamWriteIdleTimeoutMs: 30_000,
    requestTimeoutMs: 60_000,
    mode: 'file',
    models: []
  }
  const app = await buildApp(config, { logger: false })
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}
