/**
 * The second backend contract: messages in, OpenAI chat deltas out. For Hub
 * models whose providers take messages only (`conversational`), the router's
 * OpenAI-compatible `POST {HF_INFERENCE_ENDPOINT}/v1/chat/completions` with
 * `model: "{repo}"` (the router picks the provider) or `"{repo}:{provider}"`.
 * The provider renders the template; this adapter only sends the request and
 * reads the answer (a `chat.completion`, or `chat.completion.chunk` events up
 * to `data: [DONE]`, where a `data: {"error": ...}` event is a failure). The
 * chat service keeps adding what it adds on every path (stops beyond the
 * provider's limit, OpenAI-valid output, errors, timeouts, cancel).
 */
import type { ChatBackend } from './backend.js'
import { ServiceError } from '../errors.js'
import { decodeServerSentEvents, ServerSentEventLimitError } from '../streaming/sse-decoder.js'
import { isRecord, malformedReply, parseEvent, upstreamGenerationFailed, upstreamMessage, upstreamRejected, upstreamStreamBroken } from './upstream-replies.js'
import { readBody, type RouterRequester } from './router-http.js'

export interface RouterChatOptions {
  inferenceBaseUrl: string
  requester: RouterRequester
}

export class RouterChatBackend implements ChatBackend {
  readonly #url: string
  readonly #requester: RouterRequester

  constructor (options: RouterChatOptions) {
    this.#url = `${options.inferenceBaseUrl.replace(/\/+$/, '')}/v1/chat/completions`
    this.#requester = options.requester
  }

  /** The provider's `chat.completion` (its choices[0] checked to be there). */
  async complete (body: Record<string, unknown>, clientToken: string | undefined, signal: AbortSignal): Promise<Record<string, unknown>> {
    const response = await this.#requester.send(this.#url, this.#init(body, clientToken, 'application/json'), clientToken, signal)
    const reply = await readBody(response)
    if (!isRecord(reply) || !Array.isArray(reply.choices) || !isRecord(reply.choices[0]) || !isRecord(reply.choices[0].message)) {
      throw malformedReply(this.#requester.modelLabel, 'no choices[0].message in the chat completion')
    }
    return reply
  }

  /** The provider's chunks, parsed, up to `[DONE]`. Leaving early cancels the request. */
  async stream (body: Record<string, unknown>, clientToken: string | undefined, signal: AbortSignal): Promise<AsyncIterable<Record<string, unknown>>> {
    const response = await this.#requester.send(this.#url, this.#init({ ...body, stream: true }, clientToken, 'text/event-stream'), clientToken, signal)
    if (response.body === null) throw malformedReply(this.#requester.modelLabel, 'an empty stream')
    return this.#chunks(response.body, signal, this.#requester.secrets(clientToken))
  }

  #init (body: Record<string, unknown>, clientToken: string | undefined, accept: string): RequestInit {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept }
    const token = this.#requester.tokenFor(clientToken)
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    return { method: 'POST', headers, body: JSON.stringify(body) }
  }

  async * #chunks (body: ReadableStream<Uint8Array>, signal: AbortSignal, secrets: ReadonlyArray<string | undefined>): AsyncGenerator<Record<string, unknown>> {
    const label = this.#requester.modelLabel
    let done = false
    try {
      for await (const data of decodeServerSentEvents(body as AsyncIterable<Uint8Array>)) {
        if (data === '[DONE]') {
          done = true
          break
        }
        const event = parseEvent(data, label)
        if (event.error !== undefined) {
          const message = upstreamMessage(event, secrets)
          const status = isRecord(event.error) ? Number(event.error.code ?? event.error.status) : NaN
          throw status === 400 || status === 422 ? upstreamRejected(message) : upstreamGenerationFailed(label, message)
        }
        yield event
      }
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      if (error instanceof ServiceError) throw error
      if (error instanceof ServerSentEventLimitError) throw malformedReply(label, error.message)
      throw upstreamStreamBroken(label, error)
    } finally {
      if (!done) await body.cancel().catch(() => {})
    }
    if (!done) {
      if (signal.aborted) throw signal.reason
      throw upstreamStreamBroken(label)
    }
  }
}
