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
import { ServerSentEventParser } from '../streaming/sse-decoder.js'
import { MAX_ERROR_BODY, malformedReply, upstreamReplyBroken } from './upstream-replies.js'
import { upstreamTimeout, upstreamUnreachable, type UpstreamError } from '../errors.js'

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

/** A 200 reply read whole is refused past this many bytes (a completion is kilobytes; a hostile upstream could send gigabytes). */
export const MAX_REPLY_BODY = 16 * 1024 * 1024

/** The reply outgrew MAX_REPLY_BODY; the request was cancelled. */
export class UpstreamReplyTooLarge extends Error {
  constructor () {
    super(`a reply larger than ${MAX_REPLY_BODY} bytes`)
    this.name = 'UpstreamReplyTooLarge'
  }
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
 * A request that failed in transport (the caller's own abort aside): an
 * over-large reply is malformed, a reply broken after its headers is 502
 * broken, and no connection is 504 when the connect outlasted the pool's
 * connect timeout (the first-token budget), else 502 unreachable.
 */
export function transportFailure (error: unknown, baseUrl: string, modelLabel: string): UpstreamError {
  const cause = error instanceof UpstreamTransportError ? error.cause : error
  if (cause instanceof UpstreamReplyTooLarge) return malformedReply(modelLabel, cause.message)
  if (error instanceof UpstreamTransportError && error.afterHeaders) return upstreamReplyBroken(modelLabel, cause)
  if ((cause as NodeJS.ErrnoException | undefined)?.code === 'UND_ERR_CONNECT_TIMEOUT') return upstreamTimeout(`no connection to ${baseUrl} within the connect timeout`, cause)
  return upstreamUnreachable(baseUrl, cause)
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
    let size = 0
    let settled = false
    // Rejects at once, even before the socket connected (undici calls onRequestStart
    // only once connected); the request is then cancelled in onRequestStart.
    const onAbort = (): void => {
      if (settle()) reject(signal.reason)
      controller?.abort(signal.reason)
    }
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
        if (statusCode !== 200) chunk = errorBodyPart(chunk, size)
        size += chunk.length
        if (size > MAX_REPLY_BODY) {
          if (settle()) reject(new UpstreamTransportError(new UpstreamReplyTooLarge(), true))
          controller?.abort(new UpstreamReplyTooLarge())
          return
        }
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
    dispatch(dispatcher, request, handler, (error) => { if (settle()) reject(error) })
  })
}

/** Hands the request to the dispatcher; one that throws at once (a closed pool) is reported, not thrown. */
function dispatch (dispatcher: Dispatcher, request: UpstreamTextRequest, handler: Dispatcher.DispatchHandler, refused: (error: UpstreamTransportError) => void): void {
  try {
    dispatcher.dispatch({ origin: request.origin, path: request.path, method: request.method, headers: request.headers, body: request.body }, handler)
  } catch (error) {
    refused(new UpstreamTransportError(error, false))
  }
}

/**
 * The part of an error body's chunk that is kept, given how much is kept
 * already: an error body only feeds a message, so past MAX_ERROR_BODY it is
 * discarded, not buffered.
 */
function errorBodyPart (chunk: Buffer, kept: number): Buffer {
  return kept + chunk.length <= MAX_ERROR_BODY ? chunk : chunk.subarray(0, Math.max(0, MAX_ERROR_BODY - kept))
}

/** A base URL split for dispatch(): its origin, and its path without a trailing slash. */
export function splitBaseUrl (baseUrl: string): { origin: string, pathPrefix: string } {
  const url = new URL(baseUrl)
  return { origin: url.origin, pathPrefix: url.pathname.replace(/\/+$/, '') }
}

/** What one upstream SSE event means to the caller's stream. */
export interface DecodedEvent<T> {
  value: T
  /** The generation's last event: nothing after it is read. */
  last: boolean
}

export interface EventStreamOptions<T> {
  /** Maps one event's `data` (undefined: an event with nothing for the reader); throws to fail the stream (an upstream error event). */
  decode: (data: string) => DecodedEvent<T> | undefined
  /**
   * Maps an `error:` field line (llama.cpp's in-stream error, followed by
   * `data: [DONE]`) to the stream's failure; without it such lines are ignored.
   */
  errorField?: (text: string) => unknown
  /** The error for a connection that broke after the headers. */
  broken: (cause?: unknown) => unknown
  /** The error for a stream the SSE decoder refused (a line or event over its limit). */
  malformed?: (what: string) => unknown
}

export interface BufferedEvents<T> extends AsyncIterableIterator<T> {
  /** The next event when one is already decoded and waiting; undefined means: await next(). */
  takeBuffered (): T | undefined
}

export type UpstreamEventReply<T> =
  | { statusCode: 200, headers: IncomingHttpHeaders, events: BufferedEvents<T> }
  | { statusCode: number, headers: IncomingHttpHeaders, text: string }

// Decoded events held before the upstream socket is paused (a slow client).
const QUEUE_HIGH_WATER = 256

/**
 * Opens an SSE request. Resolves at the headers: a 200 gives an async
 * iterator of decoded events, any other status its whole body as text.
 *
 * Why not undici's request() and an async generator per stage: each token then
 * went through a Readable's async iterator, an SSE decoder generator and a
 * mapping generator (a promise and a generator resume each). Here the bytes are
 * decoded and mapped synchronously as they arrive, and the consumer pays one
 * promise per event. Leaving early (`return()`) cancels the request, which
 * makes TGI stop generating; a full queue pauses the socket.
 */
export function openEventStream<T> (dispatcher: Dispatcher, request: UpstreamTextRequest, options: EventStreamOptions<T>): Promise<UpstreamEventReply<T>> {
  return new Promise((resolve, reject) => {
    const { signal } = request
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    let controller: Dispatcher.DispatchController | undefined
    let statusCode = 0
    let headers: IncomingHttpHeaders = {}
    let answered = false
    // Non-200 replies: the body, up to MAX_ERROR_BODY bytes.
    const chunks: Buffer[] = []
    let errorSize = 0
    // 200 replies: the event queue and its one waiting reader.
    const parser = new ServerSentEventParser(undefined, options.errorField !== undefined)
    const queue: T[] = []
    let head = 0
    let finished = false
    let failure: { error: unknown } | undefined
    let waiting: { resolve: (result: IteratorResult<T>) => void, reject: (error: unknown) => void } | undefined
    let paused = false

    const detach = (): void => { signal.removeEventListener('abort', onAbort) }
    const onAbort = (): void => {
      fail(signal.reason)
      // Before the headers (even before the socket connected): reject at once.
      if (!answered) {
        answered = true
        reject(signal.reason)
      }
      controller?.abort(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })

    const wake = (): void => {
      if (waiting === undefined) return
      const reader = waiting
      if (head < queue.length) {
        waiting = undefined
        reader.resolve({ value: take(), done: false })
      } else if (failure !== undefined) {
        waiting = undefined
        reader.reject(failure.error)
      } else if (finished) {
        waiting = undefined
        reader.resolve({ value: undefined, done: true })
      }
    }
    const take = (): T => {
      const value = queue[head] as T
      queue[head++] = undefined as T
      if (head === queue.length) {
        queue.length = 0
        head = 0
      }
      if (paused && queue.length - head < QUEUE_HIGH_WATER / 2) {
        paused = false
        controller?.resume()
      }
      return value
    }
    const fail = (error: unknown): void => {
      if (finished || failure !== undefined) return
      failure = { error }
      detach()
      wake()
    }
    const finish = (): void => {
      if (finished || failure !== undefined) return
      finished = true
      detach()
      wake()
    }
    const accept = (events: Array<string | { error: string }>): void => {
      for (const data of events) {
        if (finished || failure !== undefined) return
        let decoded: DecodedEvent<T> | undefined
        try {
          decoded = typeof data === 'string' ? options.decode(data) : undefined
          if (typeof data !== 'string') throw options.errorField!(data.error)
        } catch (error) {
          // Failed first: aborting calls onResponseError at once, which would fail it as "broken".
          fail(error)
          controller?.abort(error as Error)
          return
        }
        if (decoded === undefined) continue
        queue.push(decoded.value)
        if (decoded.last) {
          // Nothing after the last event matters; the upstream ends the reply itself.
          finish()
          return
        }
      }
      if (!paused && queue.length - head >= QUEUE_HIGH_WATER) {
        paused = true
        controller?.pause()
      }
      wake()
    }

    const events: BufferedEvents<T> = {
      takeBuffered () {
        return head < queue.length ? take() : undefined
      },
      next () {
        if (head < queue.length) return Promise.resolve({ value: take(), done: false })
        if (failure !== undefined) return Promise.reject(failure.error)
        if (finished) return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve, reject) => { waiting = { resolve, reject } })
      },
      return () {
        // The consumer left early (a stop the gateway matched, a client gone): stop the generation upstream.
        if (!finished && failure === undefined) {
          finished = true
          detach()
          controller?.abort(new Error('event stream closed by its reader'))
        }
        queue.length = 0
        head = 0
        return Promise.resolve({ value: undefined, done: true })
      },
      [Symbol.asyncIterator] () { return events }
    }

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart (requestController) {
        controller = requestController
        if (signal.aborted) requestController.abort(signal.reason)
      },
      onResponseStart (_controller, status, responseHeaders) {
        statusCode = status
        headers = responseHeaders
        if (status === 200) {
          answered = true
          resolve({ statusCode: 200, headers, events })
        }
      },
      onResponseData (_controller, chunk) {
        if (statusCode === 200) {
          let events: Array<string | { error: string }>
          try {
            events = parser.push(chunk)
          } catch (error) {
            // An over-long line or event (ServerSentEventLimitError).
            const failed = options.malformed !== undefined ? options.malformed((error as Error).message) : options.broken(error)
            fail(failed)
            controller?.abort(failed as Error)
            return
          }
          accept(events)
        } else {
          const part = errorBodyPart(chunk, errorSize)
          errorSize += part.length
          chunks.push(part)
        }
      },
      onResponseEnd () {
        if (statusCode === 200) {
          accept(parser.end())
          // Ended without its last event: the generation broke off. (The error is
          // built only then: an Error's stack capture per stream was 6 % of CPU.)
          if (!finished && failure === undefined) fail(signal.aborted ? signal.reason : options.broken())
          return
        }
        detach()
        answered = true
        resolve({ statusCode, headers, text: chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8') })
      },
      onResponseError (_controller, error) {
        if (!answered) {
          detach()
          answered = true
          reject(signal.aborted ? signal.reason : new UpstreamTransportError(error, statusCode !== 0))
          return
        }
        fail(signal.aborted ? signal.reason : options.broken(error))
      }
    }
    dispatch(dispatcher, request, handler, (error) => {
      detach()
      answered = true
      reject(error)
    })
  })
}
