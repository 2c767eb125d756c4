/**
 * The chat service: resolve the model, render its chat template, call the
 * backend, and map the answer to OpenAI's response or stream. Framework-free.
 */
import { randomUUID } from 'node:crypto'
import { isBufferedTokenStream, type Backend, type GenerationEnd, type GenerationRequest, type MessagesRoute, type TokenDelta, type UpstreamFinishReason } from '../backends/backend.js'
import { isRecord } from '../backends/upstream-replies.js'
import { finishReasonOf, planPassthrough, reasoningOf as providerReasoningOf, toolCallsOf, usageFrom } from './messages-passthrough.js'
import type { ChatCompletion, ChatCompletionRequest, ChatRenderRequest, FinishReason, PromptTokens, Usage } from '../openai/schemas.js'
import type { GatewayMetrics } from '../metrics.js'
import type { ModelCatalog, ModelEntry } from './model-catalog.js'
import { asCompletionFields, toTemplateMessages, type TemplateMessage } from './messages.js'
import type { ChatTemplate } from '../templates/chat-template.js'
import { withoutPythonFloats } from '../templates/python-json.js'
import { planGeneration } from './generation-parameters.js'
import { describePromptTokens, promptAsSent } from './prompt-tokens.js'
import { planTools, withGenericToolPrompt, type ToolPlan } from './tool-planning.js'
import { AnswerStream, parseAnswer, type AnswerEvent, type AnswerPlan } from './answer-parser.js'
import { detectReasoning } from './tool-calls/index.js'
import { TemplateRenderError } from '../errors.js'
import { StopSequenceMatcher, applyStopSequences } from './stop-sequences.js'
import { createDeadline, type Deadline } from './deadline.js'
import { ChunkEncoder, SSE_DONE, sseError } from '../streaming/chunks.js'
import { ClientAbortError, ServiceError, invalidRequest, toOpenAIErrorBody } from '../errors.js'

export interface ChatServiceLogger {
  info (object: object, message: string): void
  warn (object: object, message: string): void
  error (object: object, message: string): void
}

export interface ChatServiceOptions {
  catalog: ModelCatalog
  metrics?: GatewayMetrics
  logger: ChatServiceLogger
  /** Milliseconds since the epoch; injectable for tests. */
  clock?: () => number
  /** How long /v1/chat/render waits for the engine to say how it tokenises (default 5000 ms). */
  renderProbeTimeoutMs?: number
}

/** Per-request facts from the HTTP layer. */
export interface RequestContext {
  /** The client's own Hugging Face token, used upstream instead of the gateway's (never logged). */
  clientToken?: string
}

/** Who rendered the chat template: the gateway (a prompt was sent) or the upstream (messages were). */
export type TemplateRenderer = 'gateway' | 'provider'

export interface ChatResult {
  completion: ChatCompletion
  template: TemplateRenderer
}

export interface ChatStream {
  model: string
  template: TemplateRenderer
  /** SSE frames (`data: ...\n\n`), ending with `data: [DONE]`; errors after the first byte become an error frame. */
  frames: AsyncIterable<string>
}

type PromptFields = Pick<ChatCompletionRequest, 'messages' | 'tools' | 'documents' | 'add_generation_prompt' | 'continue_final_message' | 'chat_template_kwargs' | 'chat_template_name'>

interface TemplateFields {
  messages: TemplateMessage[]
  tools?: readonly unknown[] | null
  documents?: readonly unknown[] | null
  add_generation_prompt?: boolean | null
  continue_final_message?: boolean | null
  chat_template_kwargs?: Record<string, unknown> | null
  templateName: string | undefined
}

/** A render field given under its name or its case-file alias (template_name, kwargs); both given must agree. */
function aliased<T> (value: T | null | undefined, alias: T | null | undefined, name: string, aliasName: string): T | undefined {
  if (value !== undefined && value !== null && alias !== undefined && alias !== null && JSON.stringify(value) !== JSON.stringify(alias)) {
    throw invalidRequest(`${name} and ${aliasName} (its alias) differ; give one of them`, aliasName)
  }
  return value ?? alias ?? undefined
}

function renderTemplate (template: ChatTemplate, fields: TemplateFields): string {
  const continueFinalMessage = fields.continue_final_message ?? false
  // Default true, as in vLLM and the reference renderer: a prefill must say add_generation_prompt: false.
  const addGenerationPrompt = fields.add_generation_prompt ?? true
  if (continueFinalMessage && addGenerationPrompt) {
    throw invalidRequest('continue_final_message and add_generation_prompt cannot both be true (add_generation_prompt defaults to true; set it to false to continue the final message)', 'continue_final_message')
  }
  return template.render({
    messages: fields.messages,
    tools: fields.tools === undefined || fields.tools === null ? null : [...fields.tools],
    documents: fields.documents === undefined || fields.documents === null ? null : [...fields.documents],
    addGenerationPrompt,
    continueFinalMessage,
    templateName: fields.templateName,
    kwargs: fields.chat_template_kwargs ?? undefined
  })
}

/** Whether a template's model thinks in <think> blocks: read once per template, not per request. */
const thinkingTemplates = new WeakMap<ChatTemplate, boolean>()
function reasoningOf (template: ChatTemplate, prompt: string): { enabled: boolean, startsInside: boolean } {
  let thinks = thinkingTemplates.get(template)
  if (thinks === undefined) {
    thinks = detectReasoning(template.sourceText, '').enabled
    thinkingTemplates.set(template, thinks)
  }
  // The generation prompt may already open the block (DeepSeek-R1, QwQ): the answer starts inside it.
  const startsInside = prompt.endsWith('<think>\n') || prompt.endsWith('<think>')
  return { enabled: thinks || startsInside, startsInside }
}

export function mapFinishReason (reason: UpstreamFinishReason, stoppedByGateway: boolean): FinishReason {
  if (stoppedByGateway) return 'stop'
  return reason === 'length' ? 'length' : 'stop'
}

export class ChatService {
  readonly #catalog: ModelCatalog
  readonly #metrics: GatewayMetrics | undefined
  readonly #logger: ChatServiceLogger
  readonly #clock: () => number
  readonly #renderProbeTimeoutMs: number

  constructor (options: ChatServiceOptions) {
    this.#renderProbeTimeoutMs = options.renderProbeTimeoutMs ?? 5000
    this.#catalog = options.catalog
    this.#metrics = options.metrics
    this.#logger = options.logger
    this.#clock = options.clock ?? Date.now
  }

  /**
   * The prompt for these messages. By default the messages, tools and
   * documents reach the template exactly as given (Python's
   * apply_chat_template); with `openai_normalization` they are validated and
   * normalised as /v1/chat/completions does, giving the prompt it would send.
   */
  async render (request: ChatRenderRequest, context: RequestContext = {}): Promise<{ model: string, prompt: string, sent_as: 'prompt' | 'messages', sent_prompt?: string, prompt_tokens?: PromptTokens }> {
    const entry = this.#catalog.resolve(request.model)
    const templateName = aliased(request.chat_template_name, request.template_name, 'chat_template_name', 'template_name')
    const kwargs = aliased(request.chat_template_kwargs, request.kwargs, 'chat_template_kwargs', 'kwargs')
    let prompt: string
    if (request.openai_normalization === true) {
      // Numbers as /v1/chat/completions reads them: its body has no PythonFloat.
      const plain = withoutPythonFloats({ messages: request.messages, tools: request.tools, documents: request.documents, chat_template_kwargs: kwargs })
      prompt = await this.#renderPrompt(entry, { ...request, ...plain, ...asCompletionFields(plain.messages, plain.tools), chat_template_name: templateName }, context)
    } else {
      const template = await entry.template(context.clientToken)
      prompt = renderTemplate(template, { ...request, chat_template_kwargs: kwargs, templateName })
    }
    // A model whose provider takes messages renders its own template: the gateway's render is for comparison.
    const messages = await entry.backend.messagesRoute?.(context.clientToken).catch(() => undefined)
    if (messages !== undefined) return { model: entry.id, prompt, sent_as: 'messages' }
    // The engine's BOS handling, when the engine can be reached; the render itself needs only the template.
    const template = await entry.template(context.clientToken)
    const policy = await Promise.resolve(entry.promptPolicy(template, AbortSignal.timeout(this.#renderProbeTimeoutMs))).catch(() => undefined)
    // After rendering: in single-model mode the id is known once the engine named its model.
    if (policy === undefined) return { model: entry.id, prompt, sent_as: 'prompt' }
    return { model: entry.id, prompt, sent_as: 'prompt', sent_prompt: promptAsSent(policy, prompt), prompt_tokens: describePromptTokens(policy, prompt) }
  }

  /** OpenAI messages, normalised for the template that will render them (its content format). */
  async #renderPrompt (entry: ModelEntry, request: PromptFields, context: RequestContext = {}, tools?: ToolPlan, loaded?: ChatTemplate): Promise<string> {
    const template = loaded ?? await entry.template(context.clientToken)
    const templateName = request.chat_template_name ?? undefined
    const templateTools = tools === undefined ? request.tools : tools.templateTools
    const contentFormat = template.contentFormat({ templateName, tools: templateTools })
    const messages = toTemplateMessages(request.messages, contentFormat)
    // The template's fields named one by one: spreading the whole request cost
    // more than the zephyr render itself in the benchmark's profile.
    const fields: TemplateFields = {
      messages,
      tools: templateTools,
      documents: request.documents,
      add_generation_prompt: request.add_generation_prompt,
      continue_final_message: request.continue_final_message,
      chat_template_kwargs: request.chat_template_kwargs,
      templateName
    }
    if (tools?.genericPrompt !== true || request.tools === undefined || request.tools === null) {
      return renderTemplate(template, fields)
    }
    const prompted = withGenericToolPrompt(messages, request.tools)
    fields.tools = null
    fields.messages = prompted
    try {
      return renderTemplate(template, fields)
    } catch (error) {
      // Some templates refuse a system role (Gemma): give the instructions with the first user turn instead.
      if (!(error instanceof TemplateRenderError) || prompted[0]?.role !== 'system' || messages[0]?.role === 'system') throw error
      const [instructions, ...rest] = prompted
      const firstUser = rest.findIndex((message) => message.role === 'user')
      if (firstUser === -1) throw error
      rest[firstUser] = { ...rest[firstUser], content: `${String(instructions!.content)}\n\n${String(rest[firstUser]!.content ?? '')}` }
      return renderTemplate(template, { ...fields, messages: rest })
    }
  }

  async #prepare (request: ChatCompletionRequest, context: RequestContext): Promise<{ entry: ModelEntry, generation: GenerationRequest, stops: string[], gatewayOnlyStops: boolean, answer: AnswerPlan, singleCall: boolean }> {
    const entry = this.#catalog.resolve(request.model)
    if (!entry.engineAnswered) await entry.untilEngineAnswers(entry.config.firstTokenTimeoutMs)
    const template = await entry.template(context.clientToken)
    const tools = planTools(request, {
      templateSupportsTools: template.supportsTools,
      templateSource: template.sourceText,
      configuredParser: entry.config.toolParser,
      supportsGrammar: entry.backend.supportsGrammar,
      backendKind: entry.backend.kind
    })
    const rendered = await this.#renderPrompt(entry, request, context, tools, template)
    const policy = entry.cachedPromptPolicy ?? await entry.promptPolicy(template, AbortSignal.timeout(entry.config.firstTokenTimeoutMs))
    const prompt = promptAsSent(policy, rendered)
    const plan = planGeneration(request, entry.config.defaults, entry.maxStopSequences)
    if (tools.grammar !== undefined) plan.parameters.structuredOutput = tools.grammar
    const reasoning = reasoningOf(template, rendered)
    return {
      entry,
      generation: { prompt, parameters: plan.parameters, clientToken: context.clientToken },
      stops: plan.stops,
      gatewayOnlyStops: plan.gatewayOnlyStops,
      answer: { ...tools.answer, reasoning: reasoning.enabled ? { startsInside: reasoning.startsInside } : undefined },
      singleCall: tools.singleCall
    }
  }

  /**
   * `abort` is the request's controller: the HTTP layer aborts it (with a
   * ClientAbortError) when the client goes away; timeouts and gateway-side
   * stops abort it too.
   */
  async complete (request: ChatCompletionRequest, abort: AbortController, context: RequestContext = {}): Promise<ChatResult> {
    const routed = this.#catalog.resolve(request.model)
    // No await for backends that only take prompts (every engine): the hot path.
    const messages = routed.backend.messagesRoute === undefined ? undefined : await routed.backend.messagesRoute(context.clientToken)
    routed.templateRenderer = messages === undefined ? 'gateway' : 'provider'
    if (messages !== undefined) return { completion: await this.#completeMessages(routed, messages, request, abort, context), template: 'provider' }
    return { completion: await this.#completePrompt(request, abort, context), template: 'gateway' }
  }

  async #completePrompt (request: ChatCompletionRequest, abort: AbortController, context: RequestContext): Promise<ChatCompletion> {
    const { entry, generation, stops, gatewayOnlyStops, answer, singleCall } = await this.#prepare(request, context)
    const created = Math.floor(this.#clock() / 1000)
    const started = performance.now()
    const deadline = createDeadline(abort, entry.config.timeoutMs, entry.config.timeoutMs)
    let outcome = 'error'
    try {
      let text: string
      let finishReason: FinishReason
      let usage: Usage | undefined
      if (gatewayOnlyStops) {
        // More stops than the upstream takes: stream internally so the gateway can
        // cancel the generation as soon as one of the extra stops appears.
        const collected = await this.#collect(entry.backend, generation, stops, deadline)
        ;({ text, finishReason, usage } = collected)
      } else {
        const result = await entry.backend.generate(generation, deadline.signal)
        const cut = applyStopSequences(result.text, stops)
        text = cut.text
        finishReason = mapFinishReason(result.finishReason, cut.stopped)
        usage = toUsage(result.promptTokens, result.generatedTokens)
      }
      outcome = 'ok'
      if (usage !== undefined) this.#metrics?.forModel(entry.id).generatedTokens.inc(usage.completion_tokens)
      const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: text, refusal: null }
      if (answer.reasoning !== undefined || answer.toolParser !== undefined || answer.forcedCall === true) {
        const parsed = parseAnswer(text, answer)
        const calls = singleCall ? parsed.toolCalls.slice(0, 1) : parsed.toolCalls
        message.content = parsed.content
        if (parsed.reasoning !== null) message.reasoning_content = parsed.reasoning
        if (calls.length > 0) {
          message.tool_calls = calls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } }))
          finishReason = 'tool_calls'
        }
      }
      const completion: ChatCompletion = {
        id: newCompletionId(),
        object: 'chat.completion',
        created,
        model: entry.id,
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }]
      }
      if (usage !== undefined) completion.usage = usage
      return completion
    } catch (error) {
      throw abortReasonOr(deadline.signal, error)
    } finally {
      deadline.dispose()
      this.#metrics?.forModel(entry.id).upstreamLatency(outcome).observe((performance.now() - started) / 1000)
    }
  }

  async #collect (backend: Backend, generation: GenerationRequest, stops: string[], deadline: Deadline): Promise<{ text: string, finishReason: FinishReason, usage: Usage | undefined }> {
    const deltas = await backend.stream(generation, deadline.signal)
    const matcher = new StopSequenceMatcher(stops)
    let text = ''
    let tokens = 0
    let end: GenerationEnd | undefined
    for await (const delta of deltas) {
      if (delta.text !== '' || delta.end === undefined) tokens++
      if (!delta.special) text += matcher.push(delta.text)
      end = delta.end
      if (matcher.stopped || end !== undefined) break
    }
    if (!matcher.stopped) text += matcher.flush()
    const promptTokens = end?.promptTokens ?? await this.#countPromptTokens(backend, generation, deadline.signal)
    return {
      text,
      finishReason: mapFinishReason(end?.finishReason ?? 'stop_sequence', matcher.stopped),
      usage: toUsage(promptTokens, end?.generatedTokens ?? tokens)
    }
  }

  async #countPromptTokens (backend: Backend, generation: GenerationRequest, signal: AbortSignal): Promise<number | undefined> {
    if (backend.countTokens === undefined) return undefined
    try {
      return await backend.countTokens(generation.prompt, signal.aborted ? AbortSignal.timeout(5000) : signal)
    } catch {
      return undefined
    }
  }

  /**
   * Opens a stream. Everything that can fail before the first token (unknown
   * model, template error, upstream refusal, first-token timeout, TGI's in-stream
   * validation error) rejects this promise, so the client gets a proper HTTP
   * status; after that, failures become an SSE error frame.
   */
  async stream (request: ChatCompletionRequest, abort: AbortController, context: RequestContext = {}): Promise<ChatStream> {
    const routed = this.#catalog.resolve(request.model)
    // No await for backends that only take prompts (every engine): the hot path.
    const messages = routed.backend.messagesRoute === undefined ? undefined : await routed.backend.messagesRoute(context.clientToken)
    routed.templateRenderer = messages === undefined ? 'gateway' : 'provider'
    if (messages !== undefined) return await this.#streamMessages(routed, messages, request, abort, context)
    const requestStarted = performance.now()
    const { entry, generation, stops, answer, singleCall } = await this.#prepare(request, context)
    const deadline = createDeadline(abort, entry.config.timeoutMs, entry.config.firstTokenTimeoutMs)
    const model = entry.id
    let iterator: AsyncIterator<TokenDelta>
    let first: IteratorResult<TokenDelta>
    try {
      const deltas = await entry.backend.stream(generation, deadline.signal)
      iterator = deltas[Symbol.asyncIterator]()
      first = await iterator.next()
    } catch (error) {
      deadline.dispose()
      throw abortReasonOr(deadline.signal, error)
    }
    deadline.firstTokenArrived()
    this.#metrics?.forModel(model).timeToFirstToken.observe((performance.now() - requestStarted) / 1000)
    const encoder = new ChunkEncoder(newCompletionId(), Math.floor(this.#clock() / 1000), model)
    const includeUsage = request.stream_options?.include_usage === true
    return { model, template: 'gateway', frames: this.#frames({ entry, generation, stops, deadline, iterator, first, encoder, includeUsage, answer: new AnswerStream(answer), singleCall }) }
  }

  async * #frames (state: {
    entry: ModelEntry
    generation: GenerationRequest
    stops: string[]
    deadline: Deadline
    iterator: AsyncIterator<TokenDelta>
    first: IteratorResult<TokenDelta>
    encoder: ChunkEncoder
    includeUsage: boolean
    answer: AnswerStream
    singleCall: boolean
  }): AsyncGenerator<string> {
    const { entry, deadline, iterator, encoder, answer } = state
    let toolCalls = 0
    // Answer events → SSE frames (content, reasoning, tool-call deltas), as one string.
    const framesOf = (events: AnswerEvent[]): string => {
      let frames = ''
      for (const event of events) {
        if (event.type === 'content') frames += encoder.content(event.text)
        else if (event.type === 'reasoning') frames += encoder.reasoning(event.text)
        else if (state.singleCall && event.index > 0) continue
        else if (event.type === 'tool_call') {
          toolCalls++
          frames += encoder.toolCallStart(event.index, event.id, event.name)
        } else frames += encoder.toolCallArguments(event.index, event.text)
      }
      return frames
    }
    // Deltas the upstream already delivered are taken without an await each and
    // leave as one string (see BufferedTokenStream).
    const takeBuffered = isBufferedTokenStream(iterator) ? () => iterator.takeBuffered() : () => undefined
    const model = entry.id
    const matcher = new StopSequenceMatcher(state.stops)
    const started = performance.now()
    let tokens = 0
    let end: GenerationEnd | undefined
    let outcome = 'cancelled'
    this.#metrics?.forModel(model).inFlightStreams.inc()
    try {
      yield encoder.role()
      let result = state.first
      while (result.done !== true) {
        let frames = ''
        for (let delta: TokenDelta | undefined = result.value; delta !== undefined; delta = takeBuffered()) {
          if (delta.text !== '' || delta.end === undefined) tokens++
          if (!delta.special) {
            const released = matcher.push(delta.text)
            if (released !== '') frames += answer.passthrough ? encoder.content(released) : framesOf(answer.push(released))
          }
          end = delta.end
          if (matcher.stopped || end !== undefined) break
        }
        if (frames !== '') yield frames
        if (matcher.stopped || end !== undefined) break
        result = await iterator.next()
      }
      if (matcher.stopped && end === undefined) {
        // The gateway matched a stop before the upstream ended: cancel the generation upstream.
        await iterator.return?.()
        deadline.cancel()
      } else if (!matcher.stopped) {
        const rest = matcher.flush()
        if (rest !== '') yield answer.passthrough ? encoder.content(rest) : framesOf(answer.push(rest))
      }
      if (end === undefined && !matcher.stopped) {
        throw new ServiceError('Upstream stream ended before the generation finished', { statusCode: 502, type: 'server_error', code: 'upstream_stream_broken' })
      }
      const last = answer.passthrough ? '' : framesOf(answer.finish())
      if (last !== '') yield last
      yield encoder.finish(toolCalls > 0 ? 'tool_calls' : mapFinishReason(end?.finishReason ?? 'stop_sequence', matcher.stopped))
      const promptTokens = end?.promptTokens ?? await this.#countPromptTokens(entry.backend, state.generation, AbortSignal.timeout(5000))
      const usage = toUsage(promptTokens, end?.generatedTokens ?? tokens)
      if (state.includeUsage && usage !== undefined) yield encoder.usage(usage)
      this.#metrics?.forModel(model).generatedTokens.inc(end?.generatedTokens ?? tokens)
      outcome = 'ok'
      yield SSE_DONE
    } catch (error) {
      const reason = abortReasonOr(deadline.signal, error)
      if (reason instanceof ClientAbortError) return
      outcome = 'error'
      const serviceError = reason instanceof ServiceError
        ? reason
        : new ServiceError('Internal error while streaming', { statusCode: 500, type: 'server_error', code: 'internal_error' })
      this.#logger.warn({ model, err: serviceError }, 'stream failed after the first byte')
      yield sseError(toOpenAIErrorBody(serviceError))
      yield SSE_DONE
    } finally {
      // Runs also when the client went away and the route stopped pulling frames.
      if (!deadline.signal.aborted && end === undefined) {
        await iterator.return?.().catch(() => {})
      }
      deadline.dispose()
      this.#metrics?.forModel(model).inFlightStreams.dec()
      this.#metrics?.forModel(model).upstreamLatency(outcome).observe((performance.now() - started) / 1000)
    }
  }

  /** The chat pass-through, non-stream: the upstream's message, with the gateway's stops, ids and shape. */
  async #completeMessages (entry: ModelEntry, route: MessagesRoute, request: ChatCompletionRequest, abort: AbortController, context: RequestContext): Promise<ChatCompletion> {
    const plan = planPassthrough(request, route.model)
    const created = Math.floor(this.#clock() / 1000)
    const started = performance.now()
    const deadline = createDeadline(abort, entry.config.timeoutMs, entry.config.timeoutMs)
    let outcome = 'error'
    try {
      const reply = await route.chat.complete(plan.body, context.clientToken, deadline.signal)
      const choice = (reply.choices as Array<Record<string, unknown>>)[0]!
      const upstream = choice.message as Record<string, unknown>
      let content = typeof upstream.content === 'string' ? upstream.content : null
      let finishReason = finishReasonOf(choice.finish_reason) ?? 'stop'
      if (content !== null && plan.stops.length > 0) {
        const cut = applyStopSequences(content, plan.stops)
        content = cut.text
        if (cut.stopped) finishReason = 'stop'
      }
      const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content, refusal: null }
      const reasoning = providerReasoningOf(upstream)
      if (reasoning !== undefined) message.reasoning_content = reasoning
      const calls = toolCallsOf(upstream, newToolCallId)
      if (calls.length > 0) {
        message.tool_calls = request.parallel_tool_calls === false ? calls.slice(0, 1) : calls
        finishReason = 'tool_calls'
      }
      const completion: ChatCompletion = { id: newCompletionId(), object: 'chat.completion', created, model: entry.id, choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }] }
      const usage = usageFrom(reply.usage)
      if (usage !== undefined) {
        completion.usage = usage
        this.#metrics?.forModel(entry.id).generatedTokens.inc(usage.completion_tokens)
      }
      outcome = 'ok'
      return completion
    } catch (error) {
      throw abortReasonOr(deadline.signal, error)
    } finally {
      deadline.dispose()
      this.#metrics?.forModel(entry.id).upstreamLatency(outcome).observe((performance.now() - started) / 1000)
    }
  }

  /** The chat pass-through, streaming: the upstream's chunks re-encoded as the gateway's own. */
  async #streamMessages (entry: ModelEntry, route: MessagesRoute, request: ChatCompletionRequest, abort: AbortController, context: RequestContext): Promise<ChatStream> {
    const requestStarted = performance.now()
    const plan = planPassthrough(request, route.model)
    // Usage is always asked for: the gateway reports it when the client asked, and counts it.
    plan.body.stream_options = { include_usage: true }
    const deadline = createDeadline(abort, entry.config.timeoutMs, entry.config.firstTokenTimeoutMs)
    let iterator: AsyncIterator<Record<string, unknown>>
    let first: IteratorResult<Record<string, unknown>>
    try {
      iterator = (await route.chat.stream(plan.body, context.clientToken, deadline.signal))[Symbol.asyncIterator]()
      first = await iterator.next()
    } catch (error) {
      deadline.dispose()
      throw abortReasonOr(deadline.signal, error)
    }
    deadline.firstTokenArrived()
    this.#metrics?.forModel(entry.id).timeToFirstToken.observe((performance.now() - requestStarted) / 1000)
    const encoder = new ChunkEncoder(newCompletionId(), Math.floor(this.#clock() / 1000), entry.id)
    return {
      model: entry.id,
      template: 'provider',
      frames: this.#messageFrames({ entry, stops: plan.stops, deadline, iterator, first, encoder, includeUsage: request.stream_options?.include_usage === true, singleCall: request.parallel_tool_calls === false })
    }
  }

  async * #messageFrames (state: { entry: ModelEntry, stops: string[], deadline: Deadline, iterator: AsyncIterator<Record<string, unknown>>, first: IteratorResult<Record<string, unknown>>, encoder: ChunkEncoder, includeUsage: boolean, singleCall: boolean }): AsyncGenerator<string> {
    const { entry, deadline, iterator, encoder } = state
    const model = entry.id
    const matcher = new StopSequenceMatcher(state.stops)
    const started = performance.now()
    const startedCalls = new Set<number>()
    let finish: FinishReason | undefined
    let usage: Usage | undefined
    let ended = false
    let outcome = 'cancelled'
    this.#metrics?.forModel(model).inFlightStreams.inc()
    try {
      yield encoder.role()
      for (let result = state.first; result.done !== true; result = await iterator.next()) {
        const chunk = result.value
        usage = usageFrom(chunk.usage) ?? usage
        const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined
        if (!isRecord(choice)) continue
        const delta = isRecord(choice.delta) ? choice.delta : {}
        let frames = ''
        const reasoning = providerReasoningOf(delta)
        if (reasoning !== undefined) frames += encoder.reasoning(reasoning)
        if (typeof delta.content === 'string' && delta.content !== '') {
          const released = matcher.push(delta.content)
          if (released !== '') frames += encoder.content(released)
        }
        if (Array.isArray(delta.tool_calls)) {
          for (const call of delta.tool_calls) {
            if (!isRecord(call)) continue
            const index = typeof call.index === 'number' ? call.index : 0
            if (state.singleCall && index > 0) continue
            const fn = isRecord(call.function) ? call.function : {}
            if (!startedCalls.has(index) && (typeof call.id === 'string' || typeof fn.name === 'string')) {
              startedCalls.add(index)
              frames += encoder.toolCallStart(index, typeof call.id === 'string' && call.id !== '' ? call.id : newToolCallId(), typeof fn.name === 'string' ? fn.name : '')
            }
            if (typeof fn.arguments === 'string' && fn.arguments !== '' && startedCalls.has(index)) frames += encoder.toolCallArguments(index, fn.arguments)
          }
        }
        finish = finishReasonOf(choice.finish_reason) ?? finish
        if (frames !== '') yield frames
        if (matcher.stopped) break
      }
      ended = true
      if (matcher.stopped) {
        // A stop beyond the upstream's limit matched: cancel the generation upstream.
        await iterator.return?.()
        deadline.cancel()
        finish = 'stop'
      } else {
        const rest = matcher.flush()
        if (rest !== '') yield encoder.content(rest)
      }
      yield encoder.finish(startedCalls.size > 0 ? 'tool_calls' : finish ?? 'stop')
      if (state.includeUsage && usage !== undefined) yield encoder.usage(usage)
      if (usage !== undefined) this.#metrics?.forModel(model).generatedTokens.inc(usage.completion_tokens)
      outcome = 'ok'
      yield SSE_DONE
    } catch (error) {
      const reason = abortReasonOr(deadline.signal, error)
      if (reason instanceof ClientAbortError) return
      outcome = 'error'
      const serviceError = reason instanceof ServiceError
        ? reason
        : new ServiceError('Internal error while streaming', { statusCode: 500, type: 'server_error', code: 'internal_error' })
      this.#logger.warn({ model, err: serviceError }, 'stream failed after the first byte')
      yield sseError(toOpenAIErrorBody(serviceError))
      yield SSE_DONE
    } finally {
      if (!ended && !deadline.signal.aborted) await iterator.return?.().catch(() => {})
      deadline.dispose()
      this.#metrics?.forModel(model).inFlightStreams.dec()
      this.#metrics?.forModel(model).upstreamLatency(outcome).observe((performance.now() - started) / 1000)
    }
  }
}

function abortReasonOr (signal: AbortSignal, error: unknown): unknown {
  return signal.aborted && signal.reason !== undefined ? signal.reason : error
}

function toUsage (promptTokens: number | undefined, generatedTokens: number | undefined): Usage | undefined {
  if (promptTokens === undefined || generatedTokens === undefined) return undefined
  return { prompt_tokens: promptTokens, completion_tokens: generatedTokens, total_tokens: promptTokens + generatedTokens }
}

function newToolCallId (): string {
  return `call_${randomUUID().replaceAll('-', '').slice(0, 24)}`
}

function newCompletionId (): string {
  return `chatcmpl-${randomUUID().replaceAll('-', '')}`
}
