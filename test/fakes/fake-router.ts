/**
 * A fake of the Hub's serverless inference router (router.huggingface.co) for the
 * hf-inference provider, in front of fake TGIs: a real loopback HTTP server (node:http
 * only). `@huggingface/inference` sends text generation for a model to
 * `{router}/hf-inference/models/{org}/{name}/v1/completions`
 * (providers/hf-inference.js HFInferenceTextGenerationTask); this fake authenticates,
 * plays any scripted router-level failure, then proxies to that model's fake TGI.
 *
 * Where the bodies come from (the router is closed source; these are what users and
 * HF maintainers quote from real responses):
 * - 401 `{"error":"Invalid credentials in Authorization header"}`: huggingface_hub#3368,
 *   transformers#38289 (the same text the Hub itself answers for a bad token).
 * - 503 `{"error":"Model org/name is currently loading","estimated_time":20.0}`: the
 *   serverless API's cold start (transformers#23793, #32665); estimated_time is a
 *   Python float, so it always has a decimal point.
 * - 429 "Rate limit reached. You reached free usage limit (reset hourly). ...": the
 *   serverless API's rate limit text. Whether the router sends Retry-After is not
 *   documented; the step sends it only when given one.
 * - 404 for a model hf-inference does not serve: a text/plain `Not Found`
 *   (hub-docs#1818, forum "404 Not Found / Unexpected Token 'N'"), not JSON. (Today's
 *   router answers 400 `{"error":"Model not supported by provider hf-inference"}` there,
 *   as users quote it, and huggingface.js#2225 quotes the same for together; the fake
 *   keeps its 404 for hf-inference and uses that 400 on the text providers' route.)
 *
 * Inference Providers (the router in front of third-party providers):
 * - `POST /v1/chat/completions` (OpenAI-compatible; `model` is `org/name`, `org/name:provider`
 *   or `org/name:fastest|cheapest|preferred`; without a suffix the router applies `:fastest`)
 *   and `GET /v1/models` (object 'list'; each model with id, object 'model', created,
 *   owned_by, architecture, and `providers: [{provider, status, context_length, pricing
 *   {input, output} (USD per million tokens), supports_tools, supports_structured_output,
 *   first_token_latency_ms?, throughput?, is_model_author}]`): hub-docs
 *   242f4a1eeb867daf4ac3f44026a5df4a68908a3d docs/inference-providers/index.md ("By default,
 *   the fastest available provider is selected ... equivalent to appending `:fastest`";
 *   `:cheapest` = lowest price per output token; `:preferred` = the user's order) and
 *   docs/inference-providers/hub-api.md (the /v1/models example and field table).
 * - Text generation on a provider that maps the model as `text-generation` (featherless-ai):
 *   `POST {router}/{provider}/v1/completions` with `{model: providerId, prompt, ...}`:
 *   huggingface.js fe42e68017ffc76d09922ea8f9b38a6964345710 packages/inference/src/providers/
 *   providerHelper.ts (makeBaseUrl `${HF_ROUTER_URL}/${provider}` for HF tokens,
 *   BaseTextGenerationTask route `v1/completions`, BaseConversationalTask `v1/chat/completions`
 *   with `model` serialised first) and featherless-ai.ts (max_new_tokens -> max_tokens).
 * - 400 for a model no provider serves: `{"error":{"message":"The requested model 'X' is not
 *   supported by any provider you have enabled.","type":"invalid_request_error","param":"model",
 *   "code":"model_not_supported"}}` (huggingface/smolagents#2584 quotes the whole object;
 *   cline#5098, vercel/ai#7788, page-assist#727 the message with the 400). For `X:provider`
 *   with a provider that does not serve X no verbatim quote was found: the fake answers the
 *   same shape with "The requested model 'X' is not supported by provider 'P'."
 * - 402 out of credits: `{"error":"You have depleted your monthly included credits. Purchase
 *   pre-paid credits to continue using Inference Providers. Alternatively, subscribe to PRO to
 *   get 20x more included credits."}` (quoted verbatim from 2026 probes in public code; the
 *   2025 text was "You have exceeded your monthly included credits for Inference Providers.
 *   Subscribe to PRO to get 20x more monthly included credits.", huggingface/agents-course#386).
 * - More than 4 stop sequences: OpenAI's 400 `array_above_max_length` for `stop`.
 * The chat provider itself is scripted here (FakeChatReply), answering OpenAI
 * `chat.completion` / `chat.completion.chunk` objects as providers do through the router.
 */
import { createServer, request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import type { FakeTgi } from './fake-tgi.js'

/** What the scripted chat provider answers for one POST /v1/chat/completions. */
export type FakeChatReply =
  /**
   * An assistant message. `content` default 'Hello! How can I help?' (null: none);
   * `reasoning` comes as `reasoning_content`; `finishReason` default 'tool_calls' with
   * tool calls, else 'stop' (the request's `stop` and `max_tokens` cut first: 'stop' /
   * 'length'). A stream splits content into `chunks` pieces (default one per word) and
   * waits `delayMs` between events (without streaming: before the answer).
   */
  | { kind: 'message', content?: string | null, reasoning?: string, toolCalls?: Array<{ name: string, arguments: string }>, finishReason?: 'stop' | 'length' | 'tool_calls', chunks?: number, delayMs?: number }
  /** Any plain reply (a string body is text/plain, anything else JSON), on streams too. */
  | { kind: 'status', status: number, body: unknown, headers?: Record<string, string> }
  /** A stream that sends `afterChunks` events after the role chunk, then an OpenAI-style in-stream error event and ends (no [DONE]); without streaming a 500 with that error. */
  | { kind: 'stream-error', afterChunks: number, message: string }
  /** Accept the request and never answer. */
  | { kind: 'hang' }
  /** Send `afterChunks` content pieces (without streaming: none), then destroy the socket. */
  | { kind: 'drop', afterChunks: number }

export interface FakeChatCall {
  /** The parsed request body. */
  body: any
  headers: IncomingHttpHeaders
  /** The repo asked for, without its suffix. */
  repo: string
  /** The provider the router picked. */
  provider: string
  /** The client went away before the answer was complete. */
  aborted: boolean
}

export type FakeRouterStep =
  /** 503 with the serverless API's cold-start body. */
  | { kind: 'loading', estimatedTime: number }
  /** 429 with the serverless API's rate-limit body, and `retry-after` (seconds) when given. */
  | { kind: 'rate-limit', retryAfter?: number }
  /** Destroy the connection before any byte of the answer. */
  | { kind: 'reset' }
  /** Any plain reply: a string body is text/plain, anything else JSON. */
  | { kind: 'status', status: number, body: unknown, headers?: Record<string, string> }

export interface FakeRouterOptions {
  /** Repos ('org/name') hf-inference serves, each with the started fake TGI behind it. */
  models?: Record<string, { tgi: FakeTgi }>
  /**
   * Repos served for chat at POST /v1/chat/completions, each with its live conversational
   * providers in preference order: `:fastest` (the default) and `:preferred` pick the first,
   * `:cheapest` the one priced lowest in /v1/models (the last: prices fall along the list).
   * `providerIds` gives a provider's own model id (the reply's `model`; default the repo).
   */
  chatModels?: Record<string, { providers: string[], providerIds?: Record<string, string> }>
  /**
   * Providers serving `text-generation` at POST /{provider}/v1/completions (e.g.
   * 'featherless-ai'), each proxied to an OpenAI-completions engine (a fake vLLM).
   * With `models` (provider model ids), another model is a 400 "Model not supported by provider".
   */
  textProviders?: Record<string, { engine: { url: string }, models?: string[] }>
  /** Every inference route answers the router's 402 (see setOutOfCredits). */
  outOfCredits?: boolean
  /** Valid HF tokens; when set, a request without `Authorization: Bearer <one of them>` gets 401. */
  tokens?: string[]
  port?: number
}

export interface FakeRouterRequest {
  method: string
  /** Path and query, as sent. */
  path: string
  headers: IncomingHttpHeaders
  /** Parsed JSON; the raw text when it is not JSON; undefined when empty. */
  body: any
}

export interface FakeRouter {
  /** http://127.0.0.1:PORT (what `https://router.huggingface.co` would be) */
  url: string
  /** Every request, in arrival order, whatever its answer. */
  requests: FakeRouterRequest[]
  /** Queues steps for that repo's next requests (one step per request, FIFO); then requests go through. */
  script (repo: string, ...steps: FakeRouterStep[]): void
  /** POST /v1/chat/completions calls that reached a provider (after auth, model and credit checks), in order. */
  chatCalls: FakeChatCall[]
  /** The chat provider's reply from now on (a function is asked per call). */
  chatReply (reply: FakeChatReply | ((request: FakeChatCall) => FakeChatReply)): void
  /** The next chat call's reply (FIFO), before the standing one. */
  chatReplyOnce (reply: FakeChatReply): void
  /** Resolves once that chat call's client disconnected mid-answer; rejects on timeout (default 5000 ms) or if it completed. */
  waitForChatAbort (index: number, timeoutMs?: number): Promise<void>
  /** Turns the 402 out-of-credits answer on or off. */
  setOutOfCredits (on: boolean): void
  /** Closes the server, aborts forwarded requests and destroys open sockets. */
  close (): Promise<void>
}

const COMPLETIONS_ROUTE = /^\/hf-inference\/models\/(.+)\/v1\/completions$/
const PROVIDER_COMPLETIONS_ROUTE = /^\/([^/]+)\/v1\/completions$/
const DEFAULT_CHAT_CONTENT = 'Hello! How can I help?'
const POLICIES = new Set(['fastest', 'cheapest', 'preferred'])
const OUT_OF_CREDITS = 'You have depleted your monthly included credits. Purchase pre-paid credits to continue using Inference Providers. Alternatively, subscribe to PRO to get 20x more included credits.'
// a fixed creation time for /v1/models entries, so answers are deterministic
const MODELS_CREATED = 1_740_000_000
// hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'])

export async function startFakeRouter (options: FakeRouterOptions): Promise<FakeRouter> {
  const validAuthorizations = options.tokens === undefined ? undefined : new Set(options.tokens.map((token) => `Bearer ${token}`))
  const requests: FakeRouterRequest[] = []
  const scripts = new Map<string, FakeRouterStep[]>()
  const forwarded = new Set<ClientRequest>()
  const sockets = new Set<Socket>()
  const chatCalls: FakeChatCall[] = []
  const chatOnce: FakeChatReply[] = []
  let chatStanding: FakeChatReply | ((request: FakeChatCall) => FakeChatReply) = { kind: 'message' }
  const chatDone = new Set<number>()
  const abortWaiters = new Map<number, Array<(error?: Error) => void>>()
  const timers = new Set<NodeJS.Timeout>()
  let outOfCredits = options.outOfCredits === true

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: String(error) })
      else response.destroy()
    })
  })
  server.keepAliveTimeout = 65_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const raw = await readBody(request)
    const path = request.url ?? '/'
    requests.push({ method: request.method ?? 'GET', path, headers: request.headers, body: parseBody(raw) })
    // every answer carries a request id, which @huggingface/inference puts in its errors
    response.setHeader('x-request-id', randomUUID())

    // the router authenticates before it looks at the route; only the model list is
    // public (hub-api.md lists it with a bare curl), a bad token is refused there too
    const publicList = (request.url ?? '').split('?')[0] === '/v1/models' && request.headers.authorization === undefined
    if (validAuthorizations !== undefined && !publicList && !validAuthorizations.has(request.headers.authorization ?? '')) {
      return sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
    }
    const queryStart = path.indexOf('?')
    const pathname = queryStart === -1 ? path : path.slice(0, queryStart)
    if (pathname === '/v1/models') {
      if (request.method !== 'GET') return sendText(response, 405, 'Method Not Allowed')
      return sendJson(response, 200, modelList())
    }
    if (pathname === '/v1/chat/completions') {
      if (request.method !== 'POST') return sendText(response, 405, 'Method Not Allowed')
      return chat(request, response, parseBody(raw))
    }
    const match = COMPLETIONS_ROUTE.exec(pathname)
    const repo = match?.[1]
    const model = repo === undefined ? undefined : options.models?.[repo]
    if (repo === undefined || model === undefined) {
      const provider = PROVIDER_COMPLETIONS_ROUTE.exec(pathname)?.[1]
      const text = provider === undefined ? undefined : options.textProviders?.[provider]
      if (provider === undefined || text === undefined) return sendText(response, 404, 'Not Found')
      if (request.method !== 'POST') return sendText(response, 405, 'Method Not Allowed')
      const asked = (parseBody(raw) as any)?.model
      if (text.models !== undefined && !text.models.includes(asked)) return sendJson(response, 400, { error: `Model not supported by provider ${provider}` })
      if (outOfCredits) return sendJson(response, 402, { error: OUT_OF_CREDITS })
      forward(request, response, `${text.engine.url}/v1/completions`, raw)
      return
    }
    if (request.method !== 'POST') return sendText(response, 405, 'Method Not Allowed')
    if (outOfCredits) return sendJson(response, 402, { error: OUT_OF_CREDITS })

    const step = scripts.get(repo)?.shift()
    if (step !== undefined) {
      switch (step.kind) {
        case 'loading':
          // written by hand: JSON.stringify(20.0) would drop the Python float's ".0"
          return sendRawJson(response, 503, `{"error":${JSON.stringify(`Model ${repo} is currently loading`)},"estimated_time":${pythonFloat(step.estimatedTime)}}`)
        case 'rate-limit':
          if (step.retryAfter !== undefined) response.setHeader('retry-after', String(step.retryAfter))
          return sendJson(response, 429, { error: 'Rate limit reached. You reached free usage limit (reset hourly). Please subscribe to a plan at https://huggingface.co/pricing to use the API at this rate' })
        case 'reset':
          request.socket.destroy()
          return
        case 'status': {
          const body = typeof step.body === 'string' ? step.body : JSON.stringify(step.body)
          const contentType = typeof step.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'
          response.writeHead(step.status, { 'content-type': contentType, ...step.headers, 'content-length': Buffer.byteLength(body) })
          response.end(body)
          return
        }
      }
    }
    forward(request, response, `${model.tgi.url}/v1/completions`, raw)
  }

  function modelList (): unknown {
    const data = Object.entries(options.chatModels ?? {}).map(([repo, served]) => ({
      id: repo,
      object: 'model',
      created: MODELS_CREATED,
      owned_by: repo.includes('/') ? repo.slice(0, repo.indexOf('/')) : repo,
      architecture: { input_modalities: ['text'], output_modalities: ['text'] },
      providers: served.providers.map((provider, index) => ({
        provider,
        status: 'live',
        context_length: 131072,
        pricing: priceOf(index, served.providers.length),
        supports_tools: true,
        supports_structured_output: true,
        is_model_author: false
      }))
    }))
    return { object: 'list', data }
  }

  function chooseReply (call: FakeChatCall): FakeChatReply {
    const once = chatOnce.shift()
    if (once !== undefined) return once
    return typeof chatStanding === 'function' ? chatStanding(call) : chatStanding
  }

  async function chat (request: IncomingMessage, response: ServerResponse, body: any): Promise<void> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendJson(response, 400, openAiError('We could not parse the JSON body of your request.', null, null))
    }
    if (typeof body.model !== 'string' || body.model === '') {
      return sendJson(response, 400, openAiError('you must provide a model parameter', null, null))
    }
    const asked: string = body.model
    const colon = asked.lastIndexOf(':')
    const repo = colon === -1 ? asked : asked.slice(0, colon)
    const suffix = colon === -1 ? 'fastest' : asked.slice(colon + 1)
    const served = options.chatModels?.[repo]
    const providers = served?.providers ?? []
    if (providers.length === 0) {
      return sendJson(response, 400, openAiError(`The requested model '${repo}' is not supported by any provider you have enabled.`, 'model', 'model_not_supported'))
    }
    let provider: string
    if (POLICIES.has(suffix)) {
      provider = (suffix === 'cheapest' ? providers.at(-1) : providers[0]) ?? ''
    } else if (providers.includes(suffix)) {
      provider = suffix
    } else {
      return sendJson(response, 400, openAiError(`The requested model '${repo}' is not supported by provider '${suffix}'.`, 'model', 'model_not_supported'))
    }
    if (outOfCredits) return sendJson(response, 402, { error: OUT_OF_CREDITS })
    const stops: string[] = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop.filter((stop: unknown): stop is string => typeof stop === 'string') : []
    if (Array.isArray(body.stop) && body.stop.length > 4) {
      return sendJson(response, 400, openAiError(`Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length ${body.stop.length as number} instead.`, 'stop', 'array_above_max_length'))
    }

    const index = chatCalls.length
    const call: FakeChatCall = { body, headers: request.headers, repo, provider, aborted: false }
    chatCalls.push(call)
    const finish = (): void => {
      chatDone.add(index)
      for (const waiter of abortWaiters.get(index) ?? []) waiter(new Error(`fake router chat call ${index} completed without an abort`))
      abortWaiters.delete(index)
    }
    response.on('close', () => {
      if (chatDone.has(index)) return
      if (response.writableFinished) {
        finish()
        return
      }
      call.aborted = true
      chatDone.add(index)
      for (const waiter of abortWaiters.get(index) ?? []) waiter()
      abortWaiters.delete(index)
    })

    const reply = chooseReply(call)
    const stream = body.stream === true
    const includeUsage = stream && body.stream_options?.include_usage === true
    const modelId = served?.providerIds?.[provider] ?? repo
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`
    const created = Math.floor(Date.now() / 1000)

    switch (reply.kind) {
      case 'hang':
        return
      case 'status': {
        const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
        const contentType = typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'
        response.writeHead(reply.status, { 'content-type': contentType, ...reply.headers, 'content-length': Buffer.byteLength(text) })
        response.end(text)
        return
      }
      case 'stream-error':
      case 'drop':
        if (!stream) {
          if (reply.kind === 'drop') {
            finish()
            request.socket.destroy()
            return
          }
          return sendJson(response, 500, { error: { message: reply.message, type: 'server_error', param: null, code: null } })
        }
        break
      case 'message':
        break
    }

    const message = reply.kind === 'message' ? reply : { kind: 'message' as const }
    const generated = generate(message, stops, maxTokensOf(body))
    const promptTokens = countPromptWords(body.messages)
    const usage = { prompt_tokens: promptTokens, completion_tokens: generated.completionTokens, total_tokens: promptTokens + generated.completionTokens }
    const delayMs = message.delayMs ?? 0

    if (!stream) {
      if (delayMs > 0) await sleep(delayMs)
      if (call.aborted) return
      const assistant: Record<string, unknown> = { role: 'assistant', content: generated.content }
      if (generated.reasoning !== undefined) assistant.reasoning_content = generated.reasoning
      if (generated.toolCalls.length > 0) {
        assistant.tool_calls = generated.toolCalls.map((tool) => ({ id: tool.id, type: 'function', function: { name: tool.name, arguments: tool.arguments } }))
      }
      sendJson(response, 200, {
        id,
        object: 'chat.completion',
        created,
        model: modelId,
        choices: [{ index: 0, message: assistant, logprobs: null, finish_reason: generated.finishReason }],
        usage
      })
      return
    }

    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    response.flushHeaders()
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): string => {
      const event: Record<string, unknown> = { id, object: 'chat.completion.chunk', created, model: modelId, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] }
      if (includeUsage) event.usage = null
      return `data: ${JSON.stringify(event)}\n\n`
    }
    const events: string[] = []
    for (const piece of generated.reasoningPieces) events.push(chunk({ reasoning_content: piece }))
    const contentPieces = splitPieces(generated.content ?? '', message.chunks)
    for (const piece of contentPieces) events.push(chunk({ content: piece }))
    generated.toolCalls.forEach((tool, toolIndex) => {
      events.push(chunk({ tool_calls: [{ index: toolIndex, id: tool.id, type: 'function', function: { name: tool.name, arguments: '' } }] }))
      for (const piece of splitArguments(tool.arguments)) events.push(chunk({ tool_calls: [{ index: toolIndex, function: { arguments: piece } }] }))
    })
    events.push(chunk({}, generated.finishReason))
    if (includeUsage) events.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: modelId, choices: [], usage })}\n\n`)
    events.push('data: [DONE]\n\n')

    // the role chunk first; `afterChunks` counts the events after it
    const write = (text: string): boolean => !call.aborted && !response.destroyed && response.write(text)
    write(chunk({ role: 'assistant', content: '' }))
    const cutAt = reply.kind === 'stream-error' || reply.kind === 'drop' ? Math.min(reply.afterChunks, events.length) : events.length
    for (let position = 0; position < cutAt; position++) {
      if (delayMs > 0) await sleep(delayMs)
      if (call.aborted || response.destroyed) return
      write(events[position] ?? '')
    }
    if (reply.kind === 'drop') {
      finish()
      response.destroy()
      return
    }
    if (reply.kind === 'stream-error') {
      write(`data: ${JSON.stringify({ error: { message: reply.message, type: 'server_error', param: null, code: null } })}\n\n`)
    }
    if (!call.aborted) response.end()
  }

  function sleep (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timers.add(timer)
    })
  }

  /**
   * Proxies to the model's TGI (or a text provider's engine) without the caller's Authorization (the HF token is the
   * router's business, not the model server's), streaming the answer back as it comes.
   */
  function forward (request: IncomingMessage, response: ServerResponse, target: string, raw: Buffer): void {
    const headers: Record<string, string | number> = { 'content-length': raw.length }
    const contentType = request.headers['content-type']
    if (contentType !== undefined) headers['content-type'] = contentType
    const accept = request.headers.accept
    if (accept !== undefined) headers.accept = accept
    // a connection of its own (no agent pool), so destroying it is a disconnect TGI sees
    const upstream = httpRequest(target, { method: request.method, headers, agent: false })
    forwarded.add(upstream)
    let done = false
    const settle = (): void => {
      done = true
      forwarded.delete(upstream)
    }

    upstream.on('response', (answer) => {
      const passed: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) passed[name] = value
      }
      response.writeHead(answer.statusCode ?? 502, passed)
      // SSE events must reach the client as TGI writes them
      response.flushHeaders()
      answer.on('data', (chunk: Buffer) => response.write(chunk))
      answer.on('end', () => {
        settle()
        response.end()
      })
      answer.on('error', () => {})
      answer.on('close', () => {
        if (answer.complete) return
        // TGI dropped the connection mid-answer: the client sees the same
        settle()
        response.destroy()
      })
    })
    upstream.on('error', () => {
      settle()
      // upstream went away before or while answering: pass the disconnect on
      response.destroy()
    })
    // the client hung up before the answer was complete: hang up on TGI too
    response.on('close', () => {
      if (!done) {
        settle()
        upstream.destroy()
      }
    })
    upstream.end(raw)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    script (repo, ...steps) {
      const queue = scripts.get(repo) ?? []
      queue.push(...steps)
      scripts.set(repo, queue)
    },
    chatCalls,
    chatReply (reply) {
      chatStanding = reply
    },
    chatReplyOnce (reply) {
      chatOnce.push(reply)
    },
    async waitForChatAbort (index, timeoutMs = 5000) {
      if (chatCalls[index]?.aborted === true) return
      if (chatDone.has(index)) throw new Error(`fake router chat call ${index} completed without an abort`)
      await new Promise<void>((resolve, reject) => {
        const waiter = (error?: Error): void => {
          clearTimeout(timer)
          if (error === undefined) resolve()
          else reject(error)
        }
        const timer = setTimeout(() => {
          const waiters = abortWaiters.get(index) ?? []
          waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`fake router chat call ${index} was not aborted within ${timeoutMs} ms`))
        }, timeoutMs)
        abortWaiters.set(index, [...(abortWaiters.get(index) ?? []), waiter])
      })
    },
    setOutOfCredits (on) {
      outOfCredits = on
    },
    async close () {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      for (const upstream of forwarded) upstream.destroy()
      forwarded.clear()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
    }
  }
}

function pythonFloat (value: number): string {
  // Python's repr of a float: integral values keep ".0"
  return Number.isInteger(value) ? `${value}.0` : String(value)
}

function parseBody (raw: Buffer): unknown {
  if (raw.length === 0) return undefined
  const text = raw.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

async function readBody (request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sendJson (response: ServerResponse, status: number, body: unknown): void {
  sendRawJson(response, status, JSON.stringify(body))
}

function sendRawJson (response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

function sendText (response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  response.end(text)
}

/** The /v1/models price of the provider at `index` of `count`: prices fall along the list, so the last is the cheapest. */
function priceOf (index: number, count: number): { input: number, output: number } {
  const step = count - index
  return { input: step * 0.1, output: step * 0.3 }
}

function openAiError (message: string, param: string | null, code: string | null): unknown {
  return { error: { message, type: 'invalid_request_error', param, code } }
}

function maxTokensOf (body: any): number | undefined {
  const value = body.max_completion_tokens ?? body.max_tokens
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined
}

/** Words of the messages' text (string content, or text parts), a deterministic prompt token count. */
function countPromptWords (messages: unknown): number {
  if (!Array.isArray(messages)) return 0
  let count = 0
  for (const message of messages) {
    const content = (message as any)?.content
    const texts = typeof content === 'string'
      ? [content]
      : Array.isArray(content) ? content.map((part: any) => typeof part?.text === 'string' ? part.text : '') : []
    for (const text of texts) count += words(text).length
  }
  return count
}

/** Each word with the whitespace before it: 'Hello! How' -> ['Hello!', ' How']. */
function words (text: string): string[] {
  return text.match(/\s*\S+/g) ?? []
}

interface Generated {
  content: string | null
  reasoning: string | undefined
  reasoningPieces: string[]
  toolCalls: Array<{ id: string, name: string, arguments: string }>
  finishReason: string
  completionTokens: number
}

/** The message after the request's stop strings (OpenAI semantics: the stop is not included) and max_tokens (words). */
function generate (reply: Extract<FakeChatReply, { kind: 'message' }>, stops: string[], maxTokens: number | undefined): Generated {
  let content = reply.content === undefined ? DEFAULT_CHAT_CONTENT : reply.content
  let finishReason: string = reply.finishReason ?? ((reply.toolCalls?.length ?? 0) > 0 ? 'tool_calls' : 'stop')
  let toolCalls = (reply.toolCalls ?? []).map((tool) => ({ id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, name: tool.name, arguments: tool.arguments }))
  const reasoningWords = words(reply.reasoning ?? '')
  if (content !== null) {
    let cut = -1
    for (const stop of stops) {
      if (stop === '') continue
      const at = content.indexOf(stop)
      if (at !== -1 && (cut === -1 || at < cut)) cut = at
    }
    if (cut !== -1) {
      content = content.slice(0, cut)
      finishReason = 'stop'
      toolCalls = []
    }
  }
  let contentWords = words(content ?? '')
  if (maxTokens !== undefined) {
    const budget = Math.max(0, maxTokens - reasoningWords.length)
    if (reasoningWords.length > maxTokens) {
      reasoningWords.splice(maxTokens)
      contentWords = []
      content = content === null ? null : ''
      toolCalls = []
      finishReason = 'length'
    } else if (contentWords.length > budget) {
      contentWords = contentWords.slice(0, budget)
      content = contentWords.join('')
      toolCalls = []
      finishReason = 'length'
    }
  }
  const argumentWords = toolCalls.reduce((sum, tool) => sum + Math.max(1, words(tool.arguments).length), 0)
  return {
    content,
    reasoning: reply.reasoning === undefined ? undefined : reasoningWords.join(''),
    reasoningPieces: reasoningWords,
    toolCalls,
    finishReason,
    completionTokens: reasoningWords.length + contentWords.length + argumentWords
  }
}

/** Content in `chunks` pieces (default one per word), joined back it is the content. */
function splitPieces (content: string, chunks: number | undefined): string[] {
  const pieces = words(content)
  const trailing = content.slice(pieces.join('').length)
  if (trailing !== '') pieces.push(trailing)
  if (chunks === undefined || chunks <= 0 || chunks >= pieces.length) return pieces
  const size = Math.ceil(pieces.length / chunks)
  const grouped: string[] = []
  for (let start = 0; start < pieces.length; start += size) grouped.push(pieces.slice(start, start + size).join(''))
  return grouped
}

/** Tool-call arguments in pieces of up to 8 characters, as providers stream them. */
function splitArguments (text: string): string[] {
  const pieces: string[] = []
  for (let start = 0; start < text.length; start += 8) pieces.push(text.slice(start, start + 8))
  return pieces
}
