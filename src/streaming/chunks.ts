/**
 * Encodes chat completion stream events as SSE `data:` lines. The envelope of a
 * chunk (id, created, model) is the same for every token, so it is serialised
 * once per stream; each token then costs one JSON string escape.
 */
import type { FinishReason, Usage } from '../openai/schemas.js'
import type { OpenAIErrorBody } from '../errors.js'

export class ChunkEncoder {
  readonly #prefix: string
  readonly #contentPrefix: string
  static readonly #contentSuffix = '},"logprobs":null,"finish_reason":null}]}\n\n'

  constructor (id: string, created: number, model: string) {
    this.#prefix = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"choices":`
    this.#contentPrefix = `${this.#prefix}[{"index":0,"delta":{"content":`
  }

  /** The first chunk: the assistant role with empty content. */
  role (): string {
    return `${this.#prefix}[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`
  }

  content (text: string): string {
    return this.#contentPrefix + JSON.stringify(text) + ChunkEncoder.#contentSuffix
  }

  /** A reasoning model's thinking (`delta.reasoning_content`). */
  reasoning (text: string): string {
    return `${this.#prefix}[{"index":0,"delta":{"reasoning_content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]}\n\n`
  }

  /** The first delta of a tool call: index, id, type and name, with empty arguments (as OpenAI streams them). */
  toolCallStart (index: number, id: string, name: string): string {
    const call = `{"index":${index},"id":${JSON.stringify(id)},"type":"function","function":{"name":${JSON.stringify(name)},"arguments":""}}`
    return `${this.#prefix}[{"index":0,"delta":{"tool_calls":[${call}]},"logprobs":null,"finish_reason":null}]}\n\n`
  }

  /** Later deltas of a tool call: argument JSON fragments. */
  toolCallArguments (index: number, text: string): string {
    return `${this.#prefix}[{"index":0,"delta":{"tool_calls":[{"index":${index},"function":{"arguments":${JSON.stringify(text)}}}]},"logprobs":null,"finish_reason":null}]}\n\n`
  }

  finish (reason: FinishReason): string {
    return `${this.#prefix}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${reason}"}]}\n\n`
  }

  /** stream_options.include_usage: a last chunk with no choices and the counts. */
  usage (usage: Usage): string {
    return `${this.#prefix}[],"usage":${JSON.stringify(usage)}}\n\n`
  }
}

export const SSE_DONE = 'data: [DONE]\n\n'

export function sseError (body: OpenAIErrorBody): string {
  return `data: ${JSON.stringify(body)}\n\n`
}
