/**
 * The chat pass-through: an OpenAI request whose model's upstream takes
 * messages (ChatBackend), and the upstream's answer re-issued as the
 * gateway's own OpenAI response or stream. The upstream renders the template;
 * what the gateway adds on every path still applies here: stops beyond the
 * upstream's limit (OpenAI's 4) and the trimmed stop text, OpenAI-valid
 * responses and chunks (its own ids, one role chunk, a `choices: []` usage
 * chunk when asked), error mapping, timeouts and cancel.
 */
import type { ChatCompletion, ChatCompletionRequest, FinishReason, Usage } from '../openai/schemas.js'
import { invalidRequest } from '../errors.js'
import { isRecord } from '../backends/upstream-replies.js'

/** How many stop sequences an OpenAI-compatible upstream takes. */
export const PASSTHROUGH_MAX_STOPS = 4

/**
 * Request fields that only the gateway's own render can honour (or that no
 * OpenAI-compatible provider takes): refused on this path, naming them.
 */
const PROMPT_ONLY_FIELDS = ['chat_template_name', 'documents', 'add_generation_prompt', 'continue_final_message', 'typical_p', 'truncate', 'do_sample'] as const

/** Fields passed on as given (OpenAI's, and the sampling extensions providers commonly take). */
const PASSED_FIELDS = [
  'messages', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'temperature', 'top_p', 'max_tokens',
  'max_completion_tokens', 'seed', 'frequency_penalty', 'presence_penalty', 'user', 'top_k', 'min_p', 'repetition_penalty',
  'chat_template_kwargs'
] as const

export interface PassthroughPlan {
  body: Record<string, unknown>
  /** Every stop the client asked for; the gateway applies all of them. */
  stops: string[]
}

export function planPassthrough (request: ChatCompletionRequest, model: string): PassthroughPlan {
  for (const field of PROMPT_ONLY_FIELDS) {
    const value = request[field]
    if (value !== undefined && value !== null) {
      throw invalidRequest(`'${field}' cannot be honoured for this model: its Inference Provider takes messages and renders its own chat template`, field, 'unsupported_parameter')
    }
  }
  const body: Record<string, unknown> = { model }
  for (const field of PASSED_FIELDS) {
    const value = request[field as keyof ChatCompletionRequest]
    if (value !== undefined && value !== null) body[field] = value
  }
  const stops = request.stop === undefined || request.stop === null ? [] : typeof request.stop === 'string' ? [request.stop] : [...new Set(request.stop)]
  if (stops.length > 0) body.stop = stops.slice(0, PASSTHROUGH_MAX_STOPS)
  return { body, stops }
}

const FINISH_REASONS = new Set<string>(['stop', 'length', 'tool_calls', 'content_filter'])

export function finishReasonOf (value: unknown): FinishReason | undefined {
  if (typeof value !== 'string') return undefined
  if (FINISH_REASONS.has(value)) return value as FinishReason
  // Some providers say `eos` or `function_call`.
  return value === 'function_call' ? 'tool_calls' : 'stop'
}

export function usageFrom (value: unknown): Usage | undefined {
  if (!isRecord(value) || typeof value.prompt_tokens !== 'number' || typeof value.completion_tokens !== 'number') return undefined
  return { prompt_tokens: value.prompt_tokens, completion_tokens: value.completion_tokens, total_tokens: typeof value.total_tokens === 'number' ? value.total_tokens : value.prompt_tokens + value.completion_tokens }
}

/** A provider's reasoning text: `reasoning_content` (DeepSeek, vLLM) or `reasoning` (others). */
export function reasoningOf (message: Record<string, unknown>): string | undefined {
  const text = message.reasoning_content ?? message.reasoning
  return typeof text === 'string' && text !== '' ? text : undefined
}

type ToolCall = NonNullable<ChatCompletion['choices'][number]['message']['tool_calls']>[number]

/** A complete message's tool calls, in OpenAI's shape (object arguments re-serialised as JSON text). */
export function toolCallsOf (message: Record<string, unknown>, newId: () => string): ToolCall[] {
  if (!Array.isArray(message.tool_calls)) return []
  const calls: ToolCall[] = []
  for (const call of message.tool_calls) {
    if (!isRecord(call) || !isRecord(call.function) || typeof call.function.name !== 'string') continue
    const args = call.function.arguments
    calls.push({
      id: typeof call.id === 'string' && call.id !== '' ? call.id : newId(),
      type: 'function',
      function: { name: call.function.name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) }
    })
  }
  return calls
}
