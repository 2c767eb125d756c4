/**
 * Turns what the model wrote (after stop sequences were applied) into the parts
 * of an OpenAI answer: reasoning (`<think>...</think>` → reasoning_content),
 * tool calls written in the model family's own markup (→ tool_calls), and the
 * remaining content. The same machinery serves whole answers and streams, so a
 * streamed answer concatenates to the non-streamed one.
 */
import { ReasoningStream, type ParsedToolCall, type ToolCallParser, type ToolCallStream, type ToolStreamEvent } from './tool-calls/index.js'
import { newToolCallId } from './tool-calls/ids.js'

export interface AnswerPlan {
  /** Present when the output may open with or contain a think block. */
  reasoning?: { startsInside: boolean }
  /** The family parser, when tools are offered (tool_choice auto). */
  toolParser?: ToolCallParser
  /**
   * Generation was constrained by a grammar to one JSON call object
   * `{"name", "arguments"}` (tool_choice required or a named function).
   */
  forcedCall?: boolean
}

export type AnswerEvent = ToolStreamEvent | { type: 'reasoning', text: string }

export interface Answer {
  content: string | null
  reasoning: string | null
  toolCalls: ParsedToolCall[]
}

/** Streaming: feed released text, get answer events. */
export class AnswerStream {
  readonly #reasoning: ReasoningStream | undefined
  readonly #tools: ToolCallStream | undefined
  readonly #forcedCall: boolean
  #forcedText = ''

  constructor (plan: AnswerPlan) {
    this.#reasoning = plan.reasoning === undefined ? undefined : new ReasoningStream({ startsInside: plan.reasoning.startsInside })
    this.#tools = plan.toolParser?.stream()
    this.#forcedCall = plan.forcedCall === true
  }

  get passthrough (): boolean {
    return this.#reasoning === undefined && this.#tools === undefined && !this.#forcedCall
  }

  push (text: string): AnswerEvent[] {
    if (this.#reasoning === undefined) return this.#content(text, false)
    const split = this.#reasoning.push(text)
    const events: AnswerEvent[] = split.reasoning === '' ? [] : [{ type: 'reasoning', text: split.reasoning }]
    if (split.content !== '') events.push(...this.#content(split.content, false))
    return events
  }

  finish (): AnswerEvent[] {
    const events: AnswerEvent[] = []
    if (this.#reasoning !== undefined) {
      const split = this.#reasoning.finish()
      if (split.reasoning !== '') events.push({ type: 'reasoning', text: split.reasoning })
      if (split.content !== '') events.push(...this.#content(split.content, false))
    }
    events.push(...this.#content('', true))
    return events
  }

  #content (text: string, final: boolean): AnswerEvent[] {
    if (this.#forcedCall) {
      this.#forcedText += text
      return final ? forcedCallEvents(this.#forcedText) : []
    }
    if (this.#tools === undefined) return text === '' ? [] : [{ type: 'content', text }]
    const events = text === '' ? [] : this.#tools.push(text)
    return final ? [...events, ...this.#tools.finish()] : events
  }
}

/** The whole answer at once (non-streaming), by the same rules as the stream. */
export function parseAnswer (text: string, plan: AnswerPlan): Answer {
  const stream = new AnswerStream(plan)
  const events = [...stream.push(text), ...stream.finish()]
  let content = ''
  let reasoning = ''
  const toolCalls: ParsedToolCall[] = []
  for (const event of events) {
    if (event.type === 'content') content += event.text
    else if (event.type === 'reasoning') reasoning += event.text
    else if (event.type === 'tool_call') toolCalls[event.index] = { id: event.id, name: event.name, arguments: '' }
    else toolCalls[event.index]!.arguments += event.text
  }
  // The family parsers trim the whitespace their markup leaves; no content at all is null, as OpenAI sends.
  return { content: content === '' && (toolCalls.length > 0 || reasoning !== '') ? null : content, reasoning: reasoning === '' ? null : reasoning, toolCalls }
}

/** A grammar-constrained call: the whole output is `{"name": ..., "arguments": {...}}`. */
function forcedCallEvents (text: string): AnswerEvent[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return text === '' ? [] : [{ type: 'content', text }]
  }
  if (typeof value !== 'object' || value === null || typeof (value as { name?: unknown }).name !== 'string') return [{ type: 'content', text }]
  const call = value as { name: string, arguments?: unknown, parameters?: unknown }
  const argumentsValue = call.arguments ?? call.parameters ?? {}
  const id = newToolCallId()
  return [
    { type: 'tool_call', index: 0, id, name: call.name },
    { type: 'tool_call_arguments', index: 0, text: typeof argumentsValue === 'string' ? argumentsValue : JSON.stringify(argumentsValue) }
  ]
}
