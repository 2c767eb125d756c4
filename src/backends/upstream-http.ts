/**
 * One upstream request whose whole reply is read as text, sent through the
 * dispatcher's own `dispatch()` with a small handler.
 *
 * Why not undici's `request()`: for a JSON reply that is read whole anyway it
 * parses the URL again, makes an AsyncResource and a Readable body stream, and
 * reads that stream back into a string; in the benchmark's profile that was
 * most of undici's share of a non-stream request. Streams keep `request()`,
 * whose body they do need as a stream.
 */
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'

export interface UpstreamTextReply {
  statusCode: number
  headers: IncomingHttpHeaders
  text: string
}

export interface UpstreamTextRequest {
  /** `protocol://host:port`, no path. */
  origin: string
  /** Path and query, starting with `/`. */
  path: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  signal: AbortSignal
}

/**
 * Where a failure happened, so the caller can tell an unreachable upstream
 * (nothing answered) from a reply that broke half way.
 */
export class UpstreamTransportError extends Error {
  readonly afterHeaders: boolean
  constructor (cause: unknown, afterHeaders: boolean) {
    super(cause instanceof Error ? cause.message : String(cause), { cause })
    this.name = 'UpstreamTransportError'
    this.afterHeaders = afterHeaders
  }
}

/**
 * Resolves with the status, headers and body text. Rejects with the signal's
 * reason when the signal aborts (the request is cancelled, which closes the
 * connection and makes TGI drop the generation), else with an
 * UpstreamTransportError.
 */
export function requestText (dispatcher: Dispatcher, request: UpstreamTextRequest): Promise<UpstreamTextReply> {
  return new Promise((resolve, reject) => {
    const { signal } = request
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    let controller: Dispatcher.DispatchController | undefined
    let statusCode = 0
    let headers: IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    let settled = false
    const onAbort = (): void => { controller?.abort(signal.reason) }
    const settle = (): boolean => {
      if (settled) return false
      settled = true
      signal.removeEventListener('abort', onAbort)
      return true
    }
    signal.addEventListener('abort', onAbort, { once: true })

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart (requestController) {
        controller = requestController
        if (signal.aborted) requestController.abort(signal.reason)
      },
      onResponseStart (_controller, status, responseHeaders) {
        // 1xx informational replies come first and are not the answer.
        statusCode = status
        headers = responseHeaders
      },
      onResponseData (_controller, chunk) {
        chunks.push(chunk)
      },
      onResponseEnd () {
        if (!settle()) return
        const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')
        resolve({ statusCode, headers, text })
      },
      onResponseError (_controller, error) {
        if (!settle()) return
        reject(signal.aborted ? signal.reason : new UpstreamTransportError(error, statusCode !== 0))
      }
    }
    try {
      dispatcher.dispatch({ origin: request.origin, path: request.path, method: request.method, headers: request.headers, body: request.body }, handler)
    } catch (error) {
      if (settle()) reject(new UpstreamTransportError(error, false))
    }
  })
}

/** A base URL split for dispatch(): its origin, and its path without a trailing slash. */
export function splitBaseUrl (baseUrl: string): { origin: string, pathPrefix: string } {
  const url = new URL(baseUrl)
  return { origin: url.origin, pathPrefix: url.pathname.replace(/\/+$/, '') }
}
