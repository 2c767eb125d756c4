/**
 * Graceful shutdown. On a signal the gateway stops taking work (/ready and new
 * requests answer 503), stops listening, and lets what is in flight finish
 * for `graceMs`. Then every request still running is cancelled: a stream gets
 * an SSE error event and `[DONE]`, a non-stream request a 503, and its
 * upstream request is aborted. Whatever still holds a socket `cancelMarginMs`
 * later is destroyed, so shutdown always ends.
 */
import type { Server, ServerResponse } from 'node:http'
import { ServiceError } from '../errors.js'

export function serverShuttingDown (): ServiceError {
  return new ServiceError('The server is shutting down; retry the request', {
    statusCode: 503, type: 'service_unavailable_error', code: 'server_shutting_down', headers: { connection: 'close' }
  })
}

export interface DrainTimers {
  setTimeout: (callback: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export interface DrainControllerOptions {
  graceMs: number
  /** After the grace: time for cancelled requests to write their last bytes (default 1000 ms). */
  cancelMarginMs?: number
  timers?: DrainTimers
}

export interface DrainTarget {
  server: Server
  /** Stops the listener and resolves once every connection ended (Fastify's app.close()). */
  close: () => Promise<void>
}

export interface DrainOutcome {
  /** The grace ran out and requests were cancelled. */
  graceExpired: boolean
  cancelled: number
}

const realTimers: DrainTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout)
}

export class DrainController {
  readonly graceMs: number
  readonly #cancelMarginMs: number
  readonly #timers: DrainTimers
  #draining = false
  #server: Server | undefined
  readonly #cancels = new Set<(reason: ServiceError) => void>()
  readonly #responses = new Set<ServerResponse>()

  constructor (options: DrainControllerOptions) {
    this.graceMs = options.graceMs
    this.#cancelMarginMs = options.cancelMarginMs ?? 1000
    this.#timers = options.timers ?? realTimers
  }

  get draining (): boolean {
    return this.#draining
  }

  /** Follows a response until it closes; during a drain its keep-alive socket is closed after it. */
  trackResponse (response: ServerResponse): void {
    this.#responses.add(response)
    response.once('close', () => {
      this.#responses.delete(response)
      // The socket just went idle: a drain does not keep it open for another request.
      if (this.#draining) setImmediate(() => this.#server?.closeIdleConnections())
    })
  }

  /** `cancel` runs when the grace runs out; call the returned function once the request ended. */
  onGraceExpired (cancel: (reason: ServiceError) => void): () => void {
    this.#cancels.add(cancel)
    return () => { this.#cancels.delete(cancel) }
  }

  async drain (target: DrainTarget): Promise<DrainOutcome> {
    this.#draining = true
    this.#server = target.server
    const closed = target.close()
    closed.catch(() => {})
    if (await this.#settlesWithin(closed, this.graceMs)) return { graceExpired: false, cancelled: 0 }
    const cancels = [...this.#cancels]
    this.#cancels.clear()
    const reason = serverShuttingDown()
    for (const cancel of cancels) cancel(reason)
    if (!await this.#settlesWithin(closed, this.#cancelMarginMs)) {
      // Requests nobody could cancel (a body still arriving, another route's work).
      const body = JSON.stringify({ error: { message: reason.message, type: reason.type, param: null, code: reason.code } })
      for (const response of this.#responses) {
        if (!response.headersSent) response.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end(body)
      }
      target.server.closeAllConnections()
    }
    await closed
    return { graceExpired: true, cancelled: cancels.length }
  }

  async #settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
    let handle: unknown
    const expired = new Promise<boolean>((resolve) => { handle = this.#timers.setTimeout(() => resolve(false), ms) })
    try {
      return await Promise.race([promise.then(() => true, () => true), expired])
    } finally {
      this.#timers.clearTimeout(handle)
    }
  }
}
