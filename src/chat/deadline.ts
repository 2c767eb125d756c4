/**
 * Timers on the request's one AbortController: it aborts when the client goes
 * away (the route does that, with a ClientAbortError), when no first token
 * arrived in time, or when the whole generation ran too long. The abort reason
 * says which, so the caller can answer 504 or stay silent. One controller per
 * request, no extra listeners: abort signals were a tenth of the gateway's CPU
 * per request in the benchmark's profile when each layer made its own.
 */
import { ClientAbortError, upstreamTimeout } from '../errors.js'

export interface Deadline {
  readonly signal: AbortSignal
  /** Call when the first token arrived: the first-token timer stops. */
  firstTokenArrived (): void
  /** Cancel the upstream on purpose (a stop the gateway applied itself). */
  cancel (): void
  dispose (): void
}

export function createDeadline (controller: AbortController, totalMs: number, firstTokenMs: number): Deadline {
  const total = setTimeout(() => controller.abort(upstreamTimeout(`no complete reply within ${totalMs} ms`)), totalMs)
  let firstToken: NodeJS.Timeout | undefined = firstTokenMs < totalMs
    ? setTimeout(() => controller.abort(upstreamTimeout(`no first token within ${firstTokenMs} ms`)), firstTokenMs)
    : undefined
  return {
    signal: controller.signal,
    firstTokenArrived () {
      if (firstToken !== undefined) clearTimeout(firstToken)
      firstToken = undefined
    },
    cancel () {
      controller.abort(new ClientAbortError())
    },
    dispose () {
      clearTimeout(total)
      if (firstToken !== undefined) clearTimeout(firstToken)
    }
  }
}
