/**
 * Hub models through Inference Providers (the Hugging Face router). Which
 * provider serves a model, and for which task, is read from the Hub
 * (hub/provider-mapping.ts); a request then travels one of two ways:
 * - a `text-generation` mapping takes the gateway's own prompt (the model's
 *   template, rendered here) at the provider's `/v1/completions`, through the
 *   router: `@huggingface/inference`'s provider helper builds URL, headers and
 *   payload (hf-inference `models/{id}/v1/completions`, deepinfra
 *   `v1/openai/completions`, most `v1/completions`), the gateway sends it;
 * - a `conversational` one takes messages at the router's
 *   `/v1/chat/completions` (router-chat.ts): the provider renders the template.
 *
 * The library's own senders do not fit a gateway: textGeneration() keeps only
 * `generated_text` (no finish reason, no usage), retries a 503 at once and
 * without bound, and does not cancel the request when a stream is left early.
 * Its base URL is fixed (router.huggingface.co); `urlTransform` (and, for
 * hf-inference, `endpointUrl`) point it at HF_INFERENCE_ENDPOINT instead.
 */
import { getProviderHelper, makeRequestOptionsFromResolvedModel } from '@huggingface/inference'
import type { Backend, BackendInfo, GenerationEnd, GenerationParameters, GenerationRequest, GenerationResult, MessagesRoute, TokenDelta, UpstreamFinishReason } from './backend.js'
import { ServiceError, UpstreamError, invalidRequest } from '../errors.js'
import { decodeServerSentEvents, ServerSentEventLimitError } from '../streaming/sse-decoder.js'
import { isRecord, malformedReply, parseEvent, upstreamGenerationFailed, upstreamMessage, upstreamRejected, upstreamStreamBroken } from './upstream-replies.js'
import { readBody, RouterRequester } from './router-http.js'
import { RouterChatBackend } from './router-chat.js'
import { chooseHubRoute, type HubRoute, type ProviderMapping, type ProviderMappings } from '../hub/provider-mapping.js'

export interface HubBackendOptions {
  /** The Hub repo id. */
  repo: string
  /** `auto` (default): the Hub's order; or one provider's name. */
  provider: string
  /** HF_INFERENCE_ENDPOINT: the router's base URL. */
  inferenceBaseUrl: string
  mappings: ProviderMappings
  requester: RouterRequester
}

/** The library's fixed router base, replaced by HF_INFERENCE_ENDPOINT. */
const LIBRARY_ROUTER_URL = 'https://router.huggingface.co'

/** Parameters the OpenAI-style route has no field for (TGI's native routes do). */
const UNSUPPORTED: Array<[keyof GenerationParameters, string]> = [['topK', 'top_k'], ['typicalP', 'typical_p'], ['truncate', 'truncate'], ['minP', 'min_p']]

/** TGI formats finish reasons for its OpenAI routes; accept both spellings. */
function toFinishReason (value: unknown): UpstreamFinishReason | undefined {
  switch (value) {
    case 'length': return 'length'
    case 'stop_sequence': return 'stop_sequence'
    case 'eos_token': case 'stop': return 'eos_token'
    default: return undefined
  }
}

function usageOf (body: Record<string, unknown>): { promptTokens?: number, generatedTokens?: number } {
  const usage = body.usage
  if (!isRecord(usage)) return {}
  return {
    promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : undefined,
    generatedTokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : undefined
  }
}

export class HubBackend implements Backend {
  readonly kind = 'hub'
  readonly description: string
  // The providers' OpenAI-style completions routes have no common grammar field.
  readonly supportsGrammar = false
  // Providers run vLLM, SGLang, TGI...: a string prompt gets the tokenizer's BOS, and none can be asked.
  readonly promptSpecialTokens = 'tokenizer-default' as const
  readonly #options: HubBackendOptions
  readonly #requester: RouterRequester
  readonly #chat: RouterChatBackend

  constructor (options: HubBackendOptions) {
    this.#options = { ...options, inferenceBaseUrl: options.inferenceBaseUrl.replace(/\/+$/, '') }
    this.#requester = options.requester
    this.#chat = new RouterChatBackend({ inferenceBaseUrl: this.#options.inferenceBaseUrl, requester: options.requester })
    this.description = `hub ${options.repo} (provider ${options.provider})`
  }

  /** How this request travels (read from the Hub's provider mapping, cached). */
  async route (clientToken: string | undefined): Promise<HubRoute> {
    const mappings = await this.#options.mappings.get(this.#options.repo, this.#requester.tokenFor(clientToken))
    return chooseHubRoute(this.#options.repo, this.#options.provider, mappings)
  }

  /** The chat pass-through for this request, when the model's provider takes messages only. */
  async messagesRoute (clientToken: string | undefined): Promise<MessagesRoute | undefined> {
    const route = await this.route(clientToken)
    return route.kind === 'messages' ? { chat: this.#chat, model: route.model } : undefined
  }

  async generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult> {
    const response = await this.#send(request, false, signal)
    const body = await readBody(response)
    if (!isRecord(body) || !Array.isArray(body.choices) || !isRecord(body.choices[0]) || typeof body.choices[0].text !== 'string') {
      throw malformedReply(this.#requester.modelLabel, 'no choices[0].text in the completion')
    }
    const choice = body.choices[0]
    return { text: choice.text as string, finishReason: toFinishReason(choice.finish_reason) ?? 'eos_token', ...usageOf(body) }
  }

  async stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>> {
    const response = await this.#send(request, true, signal)
    if (response.body === null) throw malformedReply(this.#requester.modelLabel, 'an empty stream')
    return this.#deltas(response.body, signal, this.#requester.secrets(request.clientToken))
  }

  async * #deltas (body: ReadableStream<Uint8Array>, signal: AbortSignal, secrets: ReadonlyArray<string | undefined>): AsyncGenerator<TokenDelta> {
    let end: GenerationEnd | undefined
    let pendingText: string | undefined
    try {
      for await (const data of decodeServerSentEvents(body as AsyncIterable<Uint8Array>)) {
        if (data === '[DONE]') break
        const event = parseEvent(data, this.#requester.modelLabel)
        if (event.error !== undefined) throw this.#streamError(event, secrets)
        const usage = usageOf(event)
        if (end !== undefined && usage.promptTokens !== undefined) end = { ...end, ...usage }
        const choice = Array.isArray(event.choices) ? event.choices[0] : undefined
        if (!isRecord(choice)) continue
        if (typeof choice.text !== 'string') throw malformedReply(this.#requester.modelLabel, 'a chunk without choices[0].text')
        const finishReason = toFinishReason(choice.finish_reason)
        if (finishReason !== undefined) {
          // Held until [DONE]: a usage chunk may still follow the finishing one.
          end = { finishReason, ...usage }
          pendingText = choice.text
          continue
        }
        yield { text: choice.text, special: false }
      }
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error
      if (error instanceof ServiceError) throw error
      if (error instanceof ServerSentEventLimitError) throw malformedReply(this.#requester.modelLabel, error.message)
      throw upstreamStreamBroken(this.#requester.modelLabel, error)
    } finally {
      if (end === undefined) await body.cancel().catch(() => {})
    }
    if (end === undefined) {
      if (signal.aborted) throw signal.reason
      throw upstreamStreamBroken(this.#requester.modelLabel)
    }
    // The eos token's text ("</s>") is not part of the answer.
    yield { text: pendingText ?? '', special: end.finishReason === 'eos_token', end }
  }

  async probe (): Promise<BackendInfo> {
    // The router has no cheap status route per model: readiness is the template alone.
    return { engine: 'hub' }
  }

  async #send (request: GenerationRequest, stream: boolean, signal: AbortSignal): Promise<Response> {
    for (const [field, param] of UNSUPPORTED) {
      if (request.parameters[field] !== undefined) {
        throw invalidRequest(`'${param}' is not supported by the hub backend (the providers' OpenAI-style completions route has no such field)`, param, 'unsupported_parameter')
      }
    }
    const route = await this.route(request.clientToken)
    if (route.kind !== 'prompt') throw new ServiceError(`model ${this.#requester.modelLabel} takes messages, not a prompt`, { statusCode: 500, type: 'server_error', code: 'internal_error' })
    const { url, info } = this.#requestOptions(route.mapping, request, stream)
    return await this.#requester.send(url, info, request.clientToken, signal)
  }

  /** The provider helper's URL, headers and payload for this mapping, pointed at HF_INFERENCE_ENDPOINT. */
  #requestOptions (mapping: ProviderMapping, request: GenerationRequest, stream: boolean): { url: string, info: RequestInit } {
    const base = this.#options.inferenceBaseUrl
    const helper = getProviderHelper(mapping.provider as Parameters<typeof getProviderHelper>[0], 'text-generation')
    const { url, info } = makeRequestOptionsFromResolvedModel(mapping.providerId, helper, {
      // hf-inference builds its URL from the model itself: give it the full one.
      ...(mapping.provider === 'hf-inference' ? { endpointUrl: `${base}/hf-inference/models/${mapping.providerId}` } : {}),
      accessToken: this.#requester.tokenFor(request.clientToken),
      inputs: request.prompt,
      parameters: toCompletionParameters(request.parameters),
      ...(stream ? { stream: true } : {}),
      urlTransform: (built: string) => built.startsWith(LIBRARY_ROUTER_URL) ? base + built.slice(LIBRARY_ROUTER_URL.length) : built
    } as Parameters<typeof makeRequestOptionsFromResolvedModel>[2], { hfModelId: mapping.hfModelId, provider: mapping.provider, providerId: mapping.providerId, status: mapping.status, task: mapping.task } as Parameters<typeof makeRequestOptionsFromResolvedModel>[3], { task: 'text-generation' })
    return { url, info: info as RequestInit }
  }

  /**
   * TGI's OpenAI routes report in-stream errors as `{"error": {"message",
   * "http_status_code": 422}}` (always 422, overload included); older ones as
   * `{"error": "...", "error_type": "..."}`.
   */
  #streamError (event: Record<string, unknown>, secrets: ReadonlyArray<string | undefined>): UpstreamError {
    const message = upstreamMessage(event, secrets)
    if (/overloaded/i.test(message)) return new UpstreamError(`Upstream model ${this.#requester.modelLabel} is overloaded: ${message}`, { statusCode: 429, type: 'rate_limit_error', code: 'upstream_overloaded' })
    const status = isRecord(event.error) ? event.error.http_status_code : undefined
    if (event.error_type === 'validation' || status === 422 || status === 400) return upstreamRejected(message)
    return upstreamGenerationFailed(this.#requester.modelLabel, message)
  }

}

/** GenerationParameters → the OpenAI-style route's fields (the library renames max_new_tokens to max_tokens). */
function toCompletionParameters (parameters: GenerationParameters): Record<string, unknown> {
  return {
    max_new_tokens: parameters.maxNewTokens,
    // Greedy on OpenAI routes is temperature 0 (TGI turns it into do_sample false).
    temperature: parameters.doSample === false ? 0 : parameters.temperature,
    top_p: parameters.topP,
    seed: parameters.seed,
    frequency_penalty: parameters.frequencyPenalty,
    repetition_penalty: parameters.repetitionPenalty,
    stop: parameters.stop.length > 0 ? parameters.stop : undefined
  }
}

