/**
 * Writes SSE frames to the HTTP response. Frames produced in the same turn of
 * the event loop (a whole upstream chunk holds many tokens under load) go out
 * in one write: the socket is corked at the first frame and uncorked on
 * setImmediate, after the pending microtasks that produce the rest. Writing
 * each frame on its own cost a syscall per token (writev was a quarter of the
 * gateway's CPU in `npm run bench -- --cpu-prof`). Backpressure is honoured.
 */
import type { ServerResponse } from 'node:http'

function drained (response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off('drain', done)
      response.off('close', done)
      resolve()
    }
    response.on('drain', done)
    response.on('close', done)
  })
}

export async function writeFrames (frames: AsyncIterable<string>, response: ServerResponse): Promise<void> {
  let corked = false
  const uncork = (): void => {
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
      if (!response.write(frame)) await drained(response)
    }
  } finally {
    if (!response.destroyed) response.end()
  }
}
