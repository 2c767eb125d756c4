/**
 * The process entry point, and the only file that reads process.env: load the
 * config, build the app, listen, and drain on SIGINT/SIGTERM (see src/operations/drain.ts).
 */
import pino from 'pino'
import { ConfigError, loadConfig } from './config.js'
import { buildApp, LOG_REDACT } from './app.js'

const LOG_BLOCK_BYTES = 4096
const LOG_FLUSH_MS = 200

async function main (): Promise<void> {
  let config
  try {
    config = await loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hf-chat-gateway: ${error.message}\n`)
      process.exit(1)
    }
    throw error
  }
  // Asynchronous stdout, written in blocks of LOG_BLOCK_BYTES and at least every
  // LOG_FLUSH_MS. A write per line cost two syscalls and a thread-pool round
  // trip per request (an fs.write, then the wake-up of the event loop): at one
  // connection that was as many syscalls as the request's own network I/O.
  // A line waits at most LOG_FLUSH_MS; flushSync() on exit keeps the last ones.
  const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_BLOCK_BYTES })
  setInterval(() => { destination.flush() }, LOG_FLUSH_MS).unref()
  const logger = pino({ level: config.logLevel, redact: LOG_REDACT }, destination)
  const app = await buildApp(config, { loggerInstance: logger })
  process.once('exit', () => { try { destination.flushSync() } catch {} })
  let draining = false
  const shutdown = (signal: string): void => {
    if (draining) {
      // A second signal: the operator does not want to wait for the drain.
      app.log.warn({ signal }, 'second signal; exiting without waiting for in-flight requests')
      process.exit(1)
    }
    draining = true
    app.log.info({ signal, graceMs: app.drain.graceMs }, 'draining: no new requests; in-flight ones may finish within the grace')
    app.drain.drain({ server: app.server, close: async () => await app.close() }).then((outcome) => {
      app.log.info(outcome, 'drained; exiting')
      process.exit(0)
    }, (error: unknown) => {
      app.log.error({ err: error }, 'error while draining')
      process.exit(1)
    })
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))

  await app.listen({ port: config.port, host: config.host })
  // Warm up: probe backends and load templates now, so the first request does not pay for it.
  void app.catalog.refresh(app.probeTimeoutMs).then((models) => {
    for (const model of models) {
      if (model.ready) app.log.info({ model: model.id, template: model.template }, 'model ready')
      else app.log.warn({ model: model.id, template: model.template, backend: model.backend }, 'model not ready yet (see /ready)')
    }
  })
}

main().catch((error: unknown) => {
  process.stderr.write(`hf-chat-gateway: failed to start: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
