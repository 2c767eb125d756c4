/**
 * Writes SSE frames to the HTTP response. Frames produced in the same turn of
 * the event loop (a whole upstream chunk holds many tokens under load) go out
 * in one write: the socket is corked at the first frame and uncorked on
 * setImmediate, after the pending microtasks that produce the rest. Writing
 * each frame on its own cost a syscall per token (writev was a quarter of the
 * gateway's CPU in `npm run bench -- --cpu-prof`), except the first two frames (see
 * FLUSHED_AT_ONCE). Backpressure is honoured, with a deadline (see drained).
 */
import type { ServerResponse } from 'node:http'

export interface WriteFramesOptions {
  /**
   * A client that leaves the socket's buffer full this long (no 'drain') is
   * dropped: it would otherwise hold its stream and its upstream forever.
   */
  writeIdleTimeoutMs: number
  /** The request's signal: when it aborts (deadline, shutdown) while the buffer is full, the response is dropped too. */
  signal?: AbortSignal
}

/**
 * Waits for 'drain'. Destroying the response on a timeout or an abort fires its
 * 'close', which makes the route cancel the upstream request.
 */
function drained (response: ServerResponse, options: WriteFramesOptions): Promise<void> {
  return new Promise((resolve) => {
    const drop = (): void => { response.destroy() }
    const timer = setTimeout(drop, options.writeIdleTimeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', drop)
      response.off('drain', done)
      response.off('close', done)
      resolve()
    }
    response.on('drain', done)
    response.on('close', done)
    if (options.signal?.aborted === true) drop()
    else options.signal?.addEventListener('abort', drop, { once: true })
  })
}

// The role frame and the first token's frame leave at once, not at the end of
// the turn: under load an upstream chunk carries many tokens, and waiting for all
// of them put the whole chunk's processing into the client's time to first token.
const FLUSHED_AT_ONCE = 2

export async function writeFrames (frames: AsyncIterable<string>, response: ServerResponse, options: WriteFramesOptions): Promise<void> {
  let corked = false
  let written = 0
  const uncork = (): void => {
    if (!corked) return
    corked = false
    response.uncork()
  }
  try {
    for await (const frame of frames) {
      if (response.destroyed) break
      if (!corked) {
        corked = true
        response.cork()
        setImmediate(uncork)
      }
      const flowing = response.write(frame)
      if (++written === FLUSHED_AT_ONCE) uncork()
      if (!flowing) await drained(response, options)
    }
  } finally {
    if (!response.destroyed) response.end()
  }
}
