/**
 * A fake SGLang server (its OpenAI-compatible HTTP front end) for tests: a real
 * loopback HTTP server (node:http only) that speaks SGLang's wire protocol, while
 * the "model" says whatever the test scripted. It knows nothing of the gateway.
 *
 * Protocol reference: sgl-project/sglang, read file by file from the stored index:
 * - python/sglang/srt/entrypoints/http_server.py at 004c82e0 (routes, the
 *   RequestValidationError -> 400 override and its message, HTTPException handler,
 *   validate_json_request, /model_info, /server_info, /v1/models, /tokenize)
 * - python/sglang/srt/entrypoints/openai/protocol.py at 004c82e0 (CompletionRequest
 *   fields and defaults, max_tokens validator, choice/response/usage shapes,
 *   ErrorResponse, ModelCard, TokenizeRequest/Response)
 * - python/sglang/srt/entrypoints/openai/serving_completions.py at 004c82e0
 *   (_validate_request, sampling params, kick-started streams, chunk shapes,
 *   in-stream abort errors, include_usage chunk, non-stream response)
 * - python/sglang/srt/entrypoints/openai/serving_base.py at c5695a4b
 *   (create_error_response: flat ErrorResponse; create_streaming_error_response:
 *   `{"error": ErrorResponse}` through json.dumps)
 * - python/sglang/srt/entrypoints/openai/serving_tokenize.py at 0351c1fa
 * - python/sglang/srt/entrypoints/openai/usage_processor.py at 056c7ec2
 * - python/sglang/srt/utils/auth.py at 0ce3659c (--api-key middleware)
 * - python/sglang/srt/sampling/sampling_params.py at 00c17caf (verify() messages)
 * - tokenizer_manager.py (`self.tokenizer.encode(input_text)`: the tokenizer's
 *   default add_special_tokens, i.e. BOS added; context-length messages),
 *   schedule_batch.py Req.check_finished (length first, then stop/EOS token ids,
 *   then stop strings) and detokenizer_manager.py trim_matched_stop, as excerpted
 *   from the index (several commits; the newest wording is used)
 * - FastAPI's ValidationException.__str__ ("N validation error(s):\n  {err}...").
 *
 * Deliberate simplifications: one generation per prompt is computed up front from
 * the script and paced out; `n`, logprobs, min_tokens, grammars (json_schema, regex,
 * ebnf) and response_format are accepted, recorded and ignored; /tokenize with
 * `messages` (chat template) is not supported; /get_server_info is a subset of
 * SGLang's (it dumps all of ServerArgs); Python reprs in validation messages are
 * close to, not byte-identical with, pydantic's.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import { DEFAULT_FAKE_ENGINE_TOKENS } from './fake-engine.js'
import type { FakeEngine, FakeEngineCall, FakeEngineOptions, FakeEngineReply, FakeEngineToken } from './fake-engine.js'
import { FakeTokenizer } from './fake-tokenizer.js'
import type { FakeToken } from './fake-tokenizer.js'

export interface FakeSglangOptions extends FakeEngineOptions {
  /**
   * Older SGLang (before http_server.py overrode FastAPI's RequestValidationError
   * handler): request-validation failures are FastAPI's own 422
   * `{"detail":[{type,loc,msg,input}]}`. Default false: current SGLang's 400 with the
   * flat `{"object":"error","message",type:"Bad Request","param":null,"code":400}`.
   * Serving errors (empty prompt, prompt too long, sampling checks) are the flat
   * ErrorResponse in both.
   */
  legacyErrors?: boolean
  /**
   * Answer every JSON error in the OpenAI envelope `{"error":{message,type,param,code}}`
   * (what SGLang itself does only on /v1/responses; a router or proxy in front of
   * SGLang may do it everywhere). Default false: SGLang's flat ErrorResponse.
   */
  wrappedErrors?: boolean
  /** `--stream-response-default-include-usage` (default false). */
  streamDefaultIncludeUsage?: boolean
  /** /get_model_info `model_type` (default 'llama'). */
  modelType?: string
  /** /get_model_info `architectures` (default ['LlamaForCausalLM']). */
  architectures?: string[]
  /** `weight_version` (/get_model_info and the response `metadata`), default 'default'. */
  weightVersion?: string
  /** /tokenize `max_model_len`: the HF tokenizer's model_max_length (default maxModelLen). */
  tokenizerModelMaxLength?: number
  /** Reported by /get_server_info (default '0.5.6'). */
  version?: string
}

export interface FakeSglangCall extends FakeEngineCall {
  /** The sampling_params SGLang built from the request (`_build_sampling_params`); undefined until valid. */
  samplingParams: Record<string, unknown> | undefined
}

export interface FakeSglang extends FakeEngine {
  readonly engine: 'sglang'
  readonly calls: FakeSglangCall[]
}

const VOCAB_SIZE = 32_000
const TOP_K_ALL = 1 << 30
const SGLANG_VERSION = '0.5.6'
// An illustrative endpoint context for FastAPI's validation message (FastAPI names the route function's file and line)
const ENDPOINT_FILE = '/sgl-workspace/sglang/python/sglang/srt/entrypoints/http_server.py'

type Reply = FakeEngineReply | ((call: FakeEngineCall) => FakeEngineReply)

interface ScriptToken { id: number, text: string, special: boolean, eos: boolean }

/** One choice's generation, as the scheduler and detokenizer would produce it. */
interface Generation {
  /** Output tokens, the finishing one included (completion_tokens counts it). */
  tokens: ScriptToken[]
  /** Cumulative text after each token (the detokenizer's `text`; the last one trimmed). */
  texts: string[]
  finishReason: 'stop' | 'length'
  matchedStop: string | number | null
}

interface CallState {
  call: FakeSglangCall
  response: ServerResponse
  finished: boolean
  active: boolean
  timer: NodeJS.Timeout | undefined
}

/** A pydantic error, as FastAPI collects it (loc is a tuple in Python). */
interface PydanticError { type: string, loc: Array<string | number>, msg: string, input: unknown, ctx?: Record<string, unknown> }

interface CompletionRequest {
  model: string
  prompt: unknown
  echo: boolean
  maxTokens: number
  stop: string[]
  stopTokenIds: number[]
  stream: boolean
  includeUsage: boolean
  continuousUsage: boolean
  noStopTrim: boolean
  ignoreEos: boolean
  skipSpecialTokens: boolean
  samplingParams: Record<string, unknown>
}

class ServingError extends Error {
  readonly status: number
  readonly errType: string
  constructor (message: string, status = 400, errType = 'BadRequestError') {
    super(message)
    this.status = status
    this.errType = errType
  }
}

export async function startFakeSglang (options: FakeSglangOptions = {}): Promise<FakeSglang> {
  const modelPath = options.modelPath ?? 'fake-org/fake-model'
  const servedModelName = options.servedModelName ?? modelPath
  const contextLen = options.maxModelLen ?? 4096
  const tokenizer = new FakeTokenizer(options.tokenizer)
  const weightVersion = options.weightVersion ?? 'default'
  const legacyErrors = options.legacyErrors === true
  const wrappedErrors = options.wrappedErrors === true
  const startupTime = Date.now() / 1000

  const calls: FakeSglangCall[] = []
  const requests: string[] = []
  const states: CallState[] = []
  const active = new Set<CallState>()
  const queued: FakeEngineReply[] = []
  let defaultReply: Reply = { kind: 'tokens', tokens: [...DEFAULT_FAKE_ENGINE_TOKENS] }
  const abortWaiters = new Map<number, Array<{ settle: (error?: Error) => void }>>()
  let closing = false

  function settleWaiters (index: number, error?: Error): void {
    const waiters = abortWaiters.get(index)
    if (waiters === undefined) return
    abortWaiters.delete(index)
    for (const waiter of waiters) waiter.settle(error)
  }

  function finish (state: CallState): void {
    if (state.finished) return
    state.finished = true
    active.delete(state)
    if (state.timer !== undefined) clearTimeout(state.timer)
    state.timer = undefined
    const index = states.indexOf(state)
    if (!state.call.aborted) settleWaiters(index, new Error(`fake SGLang call ${index} completed without an abort`))
  }

  function onClose (state: CallState): void {
    if (state.finished) return
    // the connection went away before the reply was complete: the client hung up, and
    // SGLang's StreamingResponse background task / disconnect check aborts the request
    if (!closing) state.call.aborted = true
    state.finished = true
    active.delete(state)
    if (state.timer !== undefined) clearTimeout(state.timer)
    state.timer = undefined
    settleWaiters(states.indexOf(state), closing ? new Error('fake SGLang closed') : undefined)
  }

  function nextReply (call: FakeEngineCall): FakeEngineReply {
    const once = queued.shift()
    if (once !== undefined) return once
    return typeof defaultReply === 'function' ? defaultReply(call) : defaultReply
  }

  // ---- error bodies ----

  /** serving_base.create_error_response (ORJSONResponse of ErrorResponse.model_dump()). */
  function sendServingError (response: ServerResponse, message: string, status = 400, errType = 'BadRequestError'): void {
    if (wrappedErrors) return sendJson(response, status, { error: { message, type: errType, param: null, code: status } })
    sendJson(response, status, { object: 'error', message, type: errType, param: null, code: status })
  }

  /** http_server.py's RequestValidationError handler (or FastAPI's own 422 before it existed). */
  function sendValidationError (response: ServerResponse, errors: PydanticError[], endpoint: { fn: string, route: string } | undefined): void {
    if (legacyErrors) {
      return sendJson(response, 422, { detail: errors.map((error) => ({ type: error.type, loc: error.loc, msg: error.msg, input: error.input, ...(error.ctx === undefined ? {} : { ctx: jsonCtx(error.ctx) }) })) })
    }
    const message = validationMessage(errors, endpoint)
    if (wrappedErrors) return sendJson(response, 400, { error: { message, type: 'Bad Request', param: null, code: 400 } })
    sendJson(response, 400, { object: 'error', message, type: 'Bad Request', param: null, code: 400 })
  }

  // ---- server ----

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { detail: `fake SGLang: ${String(error)}` })
      else response.destroy()
    })
  })
  server.keepAliveTimeout = 65_000

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/'
    const queryStart = url.indexOf('?')
    const path = queryStart === -1 ? url : url.slice(0, queryStart)
    const method = request.method ?? 'GET'
    requests.push(`${method} ${path}`)

    if (options.requiredToken !== undefined) {
      const authorization = request.headers.authorization
      if (options.guardAllRoutes === true) {
        // an Inference Endpoint's proxy, in front of every route
        if (authorization !== `Bearer ${options.requiredToken}`) {
          request.resume()
          return sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
        }
      } else if (!sglangAuthAllows(method, path, authorization, headerValue(request.headers['x-api-key']), options.requiredToken)) {
        // utils/auth.py: every NORMAL route (unknown paths included) but /health*, /ready*, /metrics*
        request.resume()
        return sendJson(response, 401, { error: 'Unauthorized' })
      }
    }

    const route = matchRoute(path)
    if (route === undefined) {
      request.resume()
      return sendJson(response, 404, { detail: 'Not Found' })
    }
    if (!route.methods.includes(method)) {
      request.resume()
      return sendJson(response, 405, { detail: 'Method Not Allowed' }, { allow: route.methods.join(', ') })
    }

    switch (route.name) {
      case 'health':
        request.resume()
        return sendEmpty(response, 200)
      case 'root':
        request.resume()
        return sendJson(response, 200, 'SGLang is running')
      case 'model_info':
        request.resume()
        return sendJson(response, 200, {
          model_path: modelPath,
          tokenizer_path: modelPath,
          is_generation: true,
          preferred_sampling_params: null,
          weight_version: weightVersion,
          has_image_understanding: false,
          has_audio_understanding: false,
          model_type: options.modelType ?? 'llama',
          architectures: options.architectures ?? ['LlamaForCausalLM']
        })
      case 'server_info':
        request.resume()
        return sendJson(response, 200, {
          model_path: modelPath,
          tokenizer_path: modelPath,
          served_model_name: servedModelName,
          context_length: options.maxModelLen ?? null,
          skip_tokenizer_init: false,
          stream_response_default_include_usage: options.streamDefaultIncludeUsage === true,
          allow_auto_truncate: false,
          tokenizer_worker_num: 1,
          max_req_input_len: contextLen - 1,
          startup_time: startupTime,
          internal_states: [{ last_gen_throughput: 0 }],
          version: options.version ?? SGLANG_VERSION
        })
      case 'models':
        request.resume()
        return sendJson(response, 200, { object: 'list', data: [modelCard(servedModelName)] })
      case 'model': {
        request.resume()
        const model = decodeURIComponent(path.slice('/v1/models/'.length))
        if (model !== servedModelName) {
          return sendJson(response, 404, { error: { message: `The model '${model}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } })
        }
        return sendJson(response, 200, modelCard(model))
      }
      case 'tokenize':
        return await handleTokenize(request, response, path)
      case 'detokenize':
        return await handleDetokenize(request, response, path)
      case 'completions':
        return await handleCompletions(request, response, path, method)
    }
  }

  function modelCard (id: string): Record<string, unknown> {
    return { id, object: 'model', created: nowSeconds(), owned_by: 'sglang', root: id, parent: null, max_model_len: contextLen }
  }

  /**
   * FastAPI's body handling for a pydantic body model behind
   * `Depends(validate_json_request)`: JSON decode errors first (only a JSON content
   * type is parsed), then the content-type dependency, then a missing body.
   */
  async function readJsonBody (request: IncomingMessage, response: ServerResponse, endpoint: { fn: string, route: string }): Promise<{ ok: true, body: unknown } | { ok: false }> {
    const raw = await readBody(request)
    const contentType = request.headers['content-type']
    const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
    const parseAsJson = contentType === undefined || mediaType === 'application/json' || (mediaType.startsWith('application/') && mediaType.endsWith('+json'))
    let body: unknown
    if (raw.length > 0 && parseAsJson) {
      try {
        body = JSON.parse(raw)
      } catch (error) {
        const position = jsonErrorPosition(error, raw)
        sendValidationError(response, [{ type: 'json_invalid', loc: ['body', position], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }], endpoint)
        return { ok: false }
      }
    } else if (raw.length > 0) {
      body = raw
    }
    if (mediaType !== 'application/json') {
      // validate_json_request raises without FastAPI's endpoint context
      sendValidationError(response, [{ loc: ['header', 'content-type'], msg: "Unsupported Media Type: Only 'application/json' is allowed", type: 'value_error', input: undefined }], undefined)
      return { ok: false }
    }
    if (body === undefined) {
      sendValidationError(response, [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }], endpoint)
      return { ok: false }
    }
    if (!isObject(body)) {
      sendValidationError(response, [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: body }], endpoint)
      return { ok: false }
    }
    return { ok: true, body }
  }

  async function handleTokenize (request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const endpoint = { fn: 'openai_v1_tokenize', route: `POST ${path}` }
    const read = await readJsonBody(request, response, endpoint)
    if (!read.ok) return
    const body = read.body as Record<string, unknown>
    const errors: PydanticError[] = []
    checkField(errors, body, 'model', 'str')
    checkField(errors, body, 'prompt', 'str|list[str]', true)
    checkField(errors, body, 'add_special_tokens', 'bool')
    if (errors.length === 0 && ((body.prompt ?? null) === null) === ((body.messages ?? null) === null)) {
      errors.push({ type: 'value_error', loc: ['body'], msg: "Value error, Exactly one of 'prompt' or 'messages' must be provided.", input: body, ctx: { error: "ValueError(\"Exactly one of 'prompt' or 'messages' must be provided.\")" } })
    }
    if (errors.length > 0) return sendValidationError(response, errors, endpoint)
    if (body.prompt === undefined || body.prompt === null) return sendServingError(response, 'fake SGLang: /tokenize with messages (a chat template) is not supported by the fake')
    const addSpecialTokens = body.add_special_tokens === undefined ? true : coerceBool(body.add_special_tokens)
    const maxModelLen = options.tokenizerModelMaxLength ?? contextLen
    if (typeof body.prompt === 'string') {
      const tokens = tokenizer.encode(body.prompt, addSpecialTokens).map((token) => token.id)
      return sendJson(response, 200, { tokens, count: tokens.length, max_model_len: maxModelLen })
    }
    const lists = (body.prompt as string[]).map((text) => tokenizer.encode(text, addSpecialTokens).map((token) => token.id))
    sendJson(response, 200, { tokens: lists, count: lists.map((list) => list.length), max_model_len: maxModelLen })
  }

  async function handleDetokenize (request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const endpoint = { fn: 'openai_v1_detokenize', route: `POST ${path}` }
    const read = await readJsonBody(request, response, endpoint)
    if (!read.ok) return
    const body = read.body as Record<string, unknown>
    const errors: PydanticError[] = []
    checkField(errors, body, 'model', 'str')
    if (!('tokens' in body)) errors.push({ type: 'missing', loc: ['body', 'tokens'], msg: 'Field required', input: body })
    else checkField(errors, body, 'tokens', 'list[int]|list[list[int]]')
    checkField(errors, body, 'skip_special_tokens', 'bool')
    if (errors.length > 0) return sendValidationError(response, errors, endpoint)
    const skip = body.skip_special_tokens === undefined ? true : coerceBool(body.skip_special_tokens)
    const tokens = body.tokens as unknown[]
    if (tokens.length === 0) return sendJson(response, 200, { text: '' })
    if (Array.isArray(tokens[0])) {
      return sendJson(response, 200, { text: (tokens as number[][]).map((list) => tokenizer.decode(list.map(tokenForId), skip)) })
    }
    sendJson(response, 200, { text: tokenizer.decode((tokens as number[]).map(tokenForId), skip) })
  }

  function tokenForId (id: number): { text: string, special: boolean } {
    if (id === 1 && tokenizer.bosToken !== null) return { text: tokenizer.bosToken, special: true }
    if (id === 2) return { text: tokenizer.eosToken, special: true }
    return { text: '', special: false }
  }

  // ---- /v1/completions ----

  async function handleCompletions (request: IncomingMessage, response: ServerResponse, path: string, method: string): Promise<void> {
    const call: FakeSglangCall = { path, method, headers: request.headers, body: undefined, aborted: false, tokensSent: 0, promptTokens: [], samplingParams: undefined }
    const state: CallState = { call, response, finished: false, active: false, timer: undefined }
    calls.push(call)
    states.push(state)
    response.on('close', () => onClose(state))

    const endpoint = { fn: 'openai_v1_completions', route: 'POST /v1/completions' }
    const rawPromise = readJsonBody(request, response, endpoint)
    const read = await rawPromise
    if (!read.ok) return finish(state)
    call.body = read.body

    const parsed = parseCompletionRequest(read.body as Record<string, unknown>, options.streamDefaultIncludeUsage === true)
    if (!parsed.ok) {
      sendValidationError(response, parsed.errors, endpoint)
      return finish(state)
    }
    const completion = parsed.request
    // serving_completions._validate_request
    const prompt = completion.prompt
    if (isEmptyPrompt(prompt)) {
      sendServingError(response, 'Prompt cannot be empty')
      return finish(state)
    }
    // _build_sampling_params: a json_schema response_format needs its schema (a 400 since sglang#28090)
    const responseFormat = (read.body as Record<string, unknown>).response_format
    if (isObject(responseFormat) && responseFormat.type === 'json_schema' && !(isObject(responseFormat.json_schema) && isObject(responseFormat.json_schema.schema))) {
      sendServingError(response, 'schema_ is required for json_schema response format request.')
      return finish(state)
    }
    call.samplingParams = completion.samplingParams

    // tokenizer_manager: text prompts are tokenizer.encode(text), the tokenizer's
    // default add_special_tokens (BOS added); token-id prompts go in as they are
    const prompts = promptList(prompt)
    const promptTokens = prompts.map((one) => typeof one === 'string' ? tokenizer.encode(one, true) : one.map((id) => idToken(id)))
    call.promptTokens = promptTokens[0] ?? []

    const reply = nextReply(call)
    if (reply.kind === 'status') {
      const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
      const headers: Record<string, string> = { 'content-type': typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...reply.headers }
      response.writeHead(reply.status, { ...headers, 'content-length': Buffer.byteLength(body) })
      response.end(body)
      return finish(state)
    }
    if (reply.kind === 'hang') {
      state.active = true
      active.add(state)
      return
    }

    try {
      for (const tokens of promptTokens) validateLength(tokens.length, completion.maxTokens)
      verifySamplingParams(completion.samplingParams)
    } catch (error) {
      if (!(error instanceof ServingError)) throw error
      sendServingError(response, error.message, error.status, error.errType)
      return finish(state)
    }

    state.active = true
    active.add(state)
    const id = randomUUID().replaceAll('-', '')
    const created = nowSeconds()
    const script = (reply.kind === 'tokens' ? reply.tokens : reply.tokens ?? DEFAULT_FAKE_ENGINE_TOKENS).map(scriptToken)
    const endWithEos = reply.kind === 'tokens' ? reply.endWithEos !== false : true
    const generations = promptTokens.map(() => generate(script, endWithEos, completion))
    const echoes = prompts.map((one) => completion.echo ? (typeof one === 'string' ? one : tokenizer.decode(one.map(tokenForId), true)) : '')
    const delayMs = reply.kind === 'tokens' ? reply.delayMs ?? 0 : 0
    const firstTokenDelayMs = reply.kind === 'tokens' ? reply.firstTokenDelayMs ?? delayMs : 0
    const usageFor = (counts: number[]): Record<string, unknown> => {
      const promptCount = promptTokens.reduce((sum, tokens) => sum + tokens.length, 0)
      const completionCount = counts.reduce((sum, count) => sum + count, 0)
      return { prompt_tokens: promptCount, total_tokens: promptCount + completionCount, completion_tokens: completionCount, prompt_tokens_details: null, reasoning_tokens: 0 }
    }

    if (!completion.stream) {
      if (reply.kind === 'drop') {
        state.timer = setTimeout(() => {
          finish(state)
          response.socket?.destroy()
        }, 0)
        return
      }
      if (reply.kind === 'stream-error') {
        // tokenizer_manager: a 400 abort raises ValueError (-> create_error_response), other
        // codes an HTTPException, which handle_request's `except Exception` turns into a 500
        const status = reply.status ?? 500
        state.timer = setTimeout(() => {
          if (status === 400) sendServingError(response, reply.message)
          else sendServingError(response, `Internal server error: ${status}: ${reply.message}`, 500, 'InternalServerError')
          finish(state)
        }, 0)
        return
      }
      const longest = Math.max(...generations.map((generation) => generation.tokens.length))
      const total = firstTokenDelayMs + delayMs * Math.max(0, longest - 1)
      const send = (): void => {
        state.timer = undefined
        if (state.finished) return
        const body = {
          id,
          object: 'text_completion',
          created,
          model: completion.model,
          choices: generations.map((generation, index) => ({
            index,
            text: echoes[index]! + generation.texts[generation.texts.length - 1]!,
            logprobs: null,
            finish_reason: generation.finishReason,
            matched_stop: generation.matchedStop
          })),
          usage: usageFor(generations.map((generation) => generation.tokens.length)),
          metadata: { weight_version: weightVersion }
        }
        call.tokensSent = generations.reduce((sum, generation) => sum + generation.tokens.length, 0)
        sendJson(response, 200, body)
        finish(state)
      }
      if (total > 0) state.timer = setTimeout(send, total)
      else send()
      return
    }

    // ---- streaming: one chunk per token per choice, after SGLang's kick-start ----
    const frames: Array<{ frame: () => string, token: boolean }> = []
    const sentTokens = generations.map(() => 0)
    const offsets = generations.map(() => 0)
    const chunk = (index: number, text: string, finishReason: string | null, matchedStop: string | number | null): string => {
      const usage = completion.continuousUsage ? usageFor([sentTokens[index]!]) : null
      return `data: ${JSON.stringify({ id, object: 'text_completion', created, model: completion.model, choices: [{ index, text, logprobs: null, finish_reason: finishReason, matched_stop: matchedStop }], usage })}\n\n`
    }
    let limit = Number.POSITIVE_INFINITY
    let errorFrame: string | undefined
    if (reply.kind === 'stream-error' || reply.kind === 'drop') limit = reply.afterTokens
    const longest = Math.max(...generations.map((generation) => generation.tokens.length))
    let emitted = 0
    outer:
    for (let step = 0; step < longest; step++) {
      for (let index = 0; index < generations.length; index++) {
        const generation = generations[index]!
        if (step >= generation.tokens.length) continue
        if (emitted >= limit) break outer
        emitted++
        const last = step === generation.tokens.length - 1
        const text = generation.texts[step]!
        frames.push({
          token: true,
          frame: () => {
            sentTokens[index]!++
            let delta = text.slice(offsets[index])
            if (step === 0 && echoes[index] !== '') delta = echoes[index]! + delta
            offsets[index] = text.length
            // the scripted generation may be cut short by drop/stream-error: then it has no finish yet
            return chunk(index, delta, last ? generation.finishReason : null, last ? generation.matchedStop : null)
          }
        })
      }
    }
    if (reply.kind === 'stream-error') {
      // an abort with a status code: create_streaming_error_response(message, code.name, code.value),
      // through Python's json.dumps (", " and ": " separators, ASCII escapes)
      const status = reply.status ?? 500
      errorFrame = `data: ${pythonJsonDumps({ error: { object: 'error', message: reply.message, type: HTTP_STATUS_NAMES[status] ?? String(status), param: null, code: status } })}\n\n`
    }
    const trailer = (): string => {
      let text = errorFrame ?? ''
      if (completion.includeUsage) {
        // final usage chunk: model_dump_json(exclude_none=True)
        const usage = usageFor(sentTokens)
        delete usage.prompt_tokens_details
        text += `data: ${JSON.stringify({ id, object: 'text_completion', created, model: completion.model, choices: [], usage })}\n\n`
      }
      return text + 'data: [DONE]\n\n'
    }
    paceStream(state, frames, { drop: reply.kind === 'drop', delayMs, firstTokenDelayMs, trailer })
  }

  /**
   * Writes the frames; the headers go out with the first frame (SGLang awaits the
   * first chunk before answering 200), or with the trailer when there is none.
   */
  function paceStream (state: CallState, frames: Array<{ frame: () => string, token: boolean }>, pacing: { drop: boolean, delayMs: number, firstTokenDelayMs: number, trailer: () => string }): void {
    const response = state.response
    const writeHeadOnce = (): void => {
      if (response.headersSent) return
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', server: 'uvicorn' })
    }
    const close = (): void => {
      if (pacing.drop) {
        // nothing streamed yet: SGLang had not answered at all
        finish(state)
        response.socket?.destroy()
        return
      }
      writeHeadOnce()
      response.end(pacing.trailer())
      finish(state)
    }
    let next = 0
    const step = (): void => {
      state.timer = undefined
      if (state.finished) return
      const frame = frames[next]
      next++
      if (frame === undefined) return close()
      writeHeadOnce()
      if (frame.token) state.call.tokensSent++
      const text = frame.frame()
      if (next >= frames.length) {
        if (pacing.drop) response.write(text, close)
        else {
          response.write(text)
          close()
        }
        return
      }
      response.write(text)
      state.timer = setTimeout(step, pacing.delayMs)
    }
    state.timer = setTimeout(step, frames.length === 0 ? 0 : pacing.firstTokenDelayMs)
  }

  /** tokenizer_manager._validate_one_request (allow_auto_truncate off). */
  function validateLength (inputTokens: number, maxNewTokens: number): void {
    if (inputTokens >= contextLen) {
      throw new ServingError(`The input (${inputTokens} tokens) is longer than the model's context length (${contextLen} tokens).`)
    }
    if (maxNewTokens + inputTokens > contextLen) {
      const total = maxNewTokens + inputTokens
      throw new ServingError(
        `Requested token count exceeds the model's maximum context length of ${contextLen} tokens. ` +
        `You requested a total of ${total} tokens: ${inputTokens} tokens from the input messages and ` +
        `${maxNewTokens} tokens for the completion. Please reduce the number of tokens in the input messages ` +
        'or the completion to fit within the limit.'
      )
    }
  }

  function scriptToken (token: FakeEngineToken): ScriptToken {
    const text = typeof token === 'string' ? token : token.text
    const special = typeof token === 'string' ? tokenizer.isSpecial(text) : token.special === true || tokenizer.isSpecial(text)
    const id = tokenizer.idOf(text)
    return { id, text, special, eos: id === tokenizer.eos.id }
  }

  function idToken (id: number): FakeToken {
    const known = tokenForId(id)
    return { id, text: known.text, special: known.special, start: 0, stop: 0 }
  }

  /**
   * schedule_batch Req.check_finished after each token: max_new_tokens first, then
   * stop_token_ids / EOS (skipped with ignore_eos), then stop strings in the decoded
   * output; detokenizer trim_matched_stop then drops a matched stop token, or cuts the
   * text at the stop string (keeping it, and nothing after it, with no_stop_trim).
   */
  function generate (script: ScriptToken[], endWithEos: boolean, request: CompletionRequest): Generation {
    const tokens: ScriptToken[] = []
    const texts: string[] = []
    const sequence = endWithEos ? [...script, scriptToken({ text: tokenizer.eosToken, special: true })] : script
    let finishReason: Generation['finishReason'] = 'length'
    let matchedStop: string | number | null = null
    for (const token of sequence) {
      tokens.push(token)
      let finished = false
      if (tokens.length >= request.maxTokens) {
        finished = true
      } else if (!request.ignoreEos && (token.eos || request.stopTokenIds.includes(token.id))) {
        finishReason = 'stop'
        matchedStop = token.id
        finished = true
      } else if (request.stop.length > 0) {
        const raw = tokenizer.decode(tokens, false)
        const hit = request.stop.find((stop) => raw.includes(stop))
        if (hit !== undefined) {
          finishReason = 'stop'
          matchedStop = hit
          finished = true
        }
      }
      if (!finished) {
        texts.push(tokenizer.decode(tokens, request.skipSpecialTokens))
        continue
      }
      let kept = tokens
      if (typeof matchedStop === 'number' && matchedStop !== 0 && !request.noStopTrim) kept = tokens.slice(0, -1)
      let text = tokenizer.decode(kept, request.skipSpecialTokens)
      if (typeof matchedStop === 'string' && matchedStop !== '') {
        const position = text.indexOf(matchedStop)
        if (position !== -1) text = request.noStopTrim ? text.slice(0, position + matchedStop.length) : text.slice(0, position)
      }
      texts.push(text)
      return { tokens, texts, finishReason, matchedStop }
    }
    // the script ran out without EOS (endWithEos false, or ignore_eos): SGLang would go
    // on sampling; the fake ends the generation as if max_tokens was reached
    return { tokens, texts, finishReason: 'length', matchedStop: null }
  }

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve(server.address() as AddressInfo))
  })

  return {
    engine: 'sglang',
    url: `http://127.0.0.1:${address.port}`,
    calls,
    requests,
    reply (reply) {
      defaultReply = reply
    },
    replyOnce (reply) {
      queued.push(reply)
    },
    async waitForAbort (callIndex, timeoutMs = 5000) {
      const state = states[callIndex]
      if (state?.call.aborted === true) return
      if (state?.finished === true) throw new Error(`fake SGLang call ${callIndex} completed without an abort`)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const waiters = abortWaiters.get(callIndex)
          if (waiters !== undefined) waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`fake SGLang call ${callIndex} was not aborted within ${timeoutMs} ms`))
        }, timeoutMs)
        const waiter = {
          settle: (error?: Error) => {
            clearTimeout(timer)
            if (error === undefined) resolve()
            else reject(error)
          }
        }
        const waiters = abortWaiters.get(callIndex) ?? []
        waiters.push(waiter)
        abortWaiters.set(callIndex, waiters)
      })
    },
    activeGenerations () {
      return active.size
    },
    async close () {
      closing = true
      for (const state of states) if (state.timer !== undefined) clearTimeout(state.timer)
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      for (const index of [...abortWaiters.keys()]) settleWaiters(index, new Error('fake SGLang closed'))
    }
  }
}

// ---- routing and auth ----

type RouteName = 'health' | 'root' | 'model_info' | 'server_info' | 'models' | 'model' | 'tokenize' | 'detokenize' | 'completions'

function matchRoute (path: string): { name: RouteName, methods: string[] } | undefined {
  switch (path) {
    case '/health':
    case '/health_generate':
    case '/ping':
      return { name: 'health', methods: ['GET'] }
    case '/':
      return { name: 'root', methods: ['GET', 'HEAD'] }
    case '/get_model_info':
    case '/model_info':
      return { name: 'model_info', methods: ['GET'] }
    case '/get_server_info':
    case '/server_info':
      return { name: 'server_info', methods: ['GET'] }
    case '/v1/models':
      return { name: 'models', methods: ['GET'] }
    case '/tokenize':
    case '/v1/tokenize':
      return { name: 'tokenize', methods: ['POST'] }
    case '/detokenize':
    case '/v1/detokenize':
      return { name: 'detokenize', methods: ['POST'] }
    case '/v1/completions':
      return { name: 'completions', methods: ['POST'] }
  }
  if (path.startsWith('/v1/models/') && path.length > '/v1/models/'.length) return { name: 'model', methods: ['GET'] }
  return undefined
}

/** utils/auth.py decide_request_auth for a NORMAL route with only --api-key set. */
function sglangAuthAllows (method: string, path: string, authorization: string | undefined, apiKeyHeader: string | undefined, apiKey: string): boolean {
  if (method === 'OPTIONS') return true
  if (path.startsWith('/health') || path.startsWith('/ready') || path.startsWith('/metrics')) return true
  if (authorization !== undefined) {
    const space = authorization.indexOf(' ')
    if (space !== -1 && authorization.slice(0, space).toLowerCase() === 'bearer' && authorization.slice(space + 1) === apiKey) return true
  }
  return apiKeyHeader !== undefined && apiKeyHeader === apiKey
}

function headerValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

// ---- CompletionRequest (pydantic, lax mode) ----

type FieldType = 'str' | 'bool' | 'int' | 'float' | 'int?' | 'float?' | 'str?' | 'dict?' | 'list[int]?' | 'str|list[str]?' | 'str|list[str]' | 'list[int]|list[list[int]]' | 'stream_options?' | 'any'

/** protocol.py CompletionRequest, in field order (the order pydantic reports errors in). */
const COMPLETION_FIELDS: Array<[string, FieldType]> = [
  ['model', 'str'],
  ['prompt', 'any'],
  ['best_of', 'int?'],
  ['echo', 'bool'],
  ['frequency_penalty', 'float'],
  ['logit_bias', 'dict?'],
  ['logprobs', 'int?'],
  ['max_tokens', 'int'],
  ['n', 'int'],
  ['presence_penalty', 'float'],
  ['seed', 'int?'],
  ['stop', 'str|list[str]?'],
  ['stream', 'bool'],
  ['stream_options', 'stream_options?'],
  ['suffix', 'str?'],
  ['temperature', 'float'],
  ['top_p', 'float'],
  ['user', 'str?'],
  ['top_k', 'int'],
  ['min_p', 'float'],
  ['min_tokens', 'int'],
  ['json_schema', 'str?'],
  ['regex', 'str?'],
  ['ebnf', 'str?'],
  ['repetition_penalty', 'float'],
  ['stop_token_ids', 'list[int]?'],
  ['stop_regex', 'str|list[str]?'],
  ['no_stop_trim', 'bool'],
  ['ignore_eos', 'bool'],
  ['skip_special_tokens', 'bool']
]

function parseCompletionRequest (body: Record<string, unknown>, defaultIncludeUsage: boolean): { ok: true, request: CompletionRequest } | { ok: false, errors: PydanticError[] } {
  const errors: PydanticError[] = []
  for (const [name, type] of COMPLETION_FIELDS) {
    if (name === 'prompt') {
      if (!('prompt' in body)) errors.push({ type: 'missing', loc: ['body', 'prompt'], msg: 'Field required', input: body })
      else checkPrompt(errors, body.prompt)
      continue
    }
    checkField(errors, body, name, type)
    if (name === 'max_tokens' && 'max_tokens' in body && !errors.some((error) => error.loc[1] === 'max_tokens')) {
      const value = coerceInt(body.max_tokens)
      if (value <= 0) errors.push({ type: 'value_error', loc: ['body', 'max_tokens'], msg: 'Value error, max_tokens must be positive', input: body.max_tokens, ctx: { error: "ValueError('max_tokens must be positive')" } })
    }
  }
  if (errors.length > 0) return { ok: false, errors }

  const get = <T>(name: string, fallback: T, coerce: (value: unknown) => T): T => body[name] === undefined ? fallback : coerce(body[name])
  const optional = (name: string): unknown => body[name] ?? null
  const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop as string[]
  const streamOptions = isObject(body.stream_options) ? body.stream_options : undefined
  const maxTokens = get('max_tokens', 16, coerceInt)
  const samplingParams: Record<string, unknown> = {
    temperature: get('temperature', 1.0, coerceFloat),
    max_new_tokens: maxTokens,
    min_new_tokens: get('min_tokens', 0, coerceInt),
    stop: optional('stop'),
    stop_token_ids: optional('stop_token_ids'),
    stop_regex: optional('stop_regex'),
    top_p: get('top_p', 1.0, coerceFloat),
    top_k: get('top_k', -1, coerceInt),
    min_p: get('min_p', 0.0, coerceFloat),
    presence_penalty: get('presence_penalty', 0.0, coerceFloat),
    frequency_penalty: get('frequency_penalty', 0.0, coerceFloat),
    repetition_penalty: get('repetition_penalty', 1.0, coerceFloat),
    regex: optional('regex'),
    json_schema: optional('json_schema'),
    ebnf: optional('ebnf'),
    n: get('n', 1, coerceInt),
    no_stop_trim: get('no_stop_trim', false, coerceBool),
    ignore_eos: get('ignore_eos', false, coerceBool),
    skip_special_tokens: get('skip_special_tokens', true, coerceBool),
    logit_bias: optional('logit_bias'),
    custom_params: optional('custom_params'),
    sampling_seed: body.seed === undefined || body.seed === null ? null : coerceInt(body.seed)
  }
  // response_format maps onto json_schema as _build_sampling_params does
  const responseFormat = body.response_format
  if (isObject(responseFormat) && responseFormat.type === 'json_object') samplingParams.json_schema = '{"type": "object"}'
  if (isObject(responseFormat) && responseFormat.type === 'json_schema' && isObject(responseFormat.json_schema) && responseFormat.json_schema.schema !== undefined) {
    samplingParams.json_schema = pythonJsonDumps(responseFormat.json_schema.schema)
  }
  const includeUsageAsked = streamOptions !== undefined && streamOptions.include_usage !== undefined && streamOptions.include_usage !== null && coerceBool(streamOptions.include_usage)
  return {
    ok: true,
    request: {
      model: get('model', 'default', String),
      prompt: body.prompt,
      echo: get('echo', false, coerceBool),
      maxTokens,
      stop,
      stopTokenIds: Array.isArray(body.stop_token_ids) ? body.stop_token_ids.map(coerceInt) : [],
      stream: get('stream', false, coerceBool),
      // utils.should_include_usage
      includeUsage: streamOptions !== undefined ? includeUsageAsked || defaultIncludeUsage : defaultIncludeUsage,
      continuousUsage: streamOptions !== undefined && streamOptions.continuous_usage_stats !== undefined && streamOptions.continuous_usage_stats !== null && coerceBool(streamOptions.continuous_usage_stats),
      noStopTrim: samplingParams.no_stop_trim as boolean,
      ignoreEos: samplingParams.ignore_eos as boolean,
      skipSpecialTokens: samplingParams.skip_special_tokens as boolean,
      samplingParams
    }
  }
}

/** SamplingParams.__post_init__ special cases, then verify() (its messages and order). */
function verifySamplingParams (params: Record<string, unknown>): void {
  let temperature = params.temperature as number
  let topK = params.top_k as number
  if (temperature >= 0 && temperature < 1e-6) {
    temperature = 1.0
    topK = 1
  }
  if (topK === -1) topK = TOP_K_ALL
  const topP = params.top_p as number
  const minP = params.min_p as number
  const frequency = params.frequency_penalty as number
  const presence = params.presence_penalty as number
  const repetition = params.repetition_penalty as number
  const minNew = params.min_new_tokens as number
  const maxNew = params.max_new_tokens as number
  if (!Number.isFinite(temperature) || temperature < 0) throw new ServingError(`temperature must be a non-negative finite number, got ${pyFloat(temperature)}.`)
  if (!(topP > 0 && topP <= 1)) throw new ServingError(`top_p must be in (0, 1], got ${pyFloat(topP)}.`)
  if (!(minP >= 0 && minP <= 1)) throw new ServingError(`min_p must be in [0, 1], got ${pyFloat(minP)}.`)
  if (topK < 1 || topK === -1) throw new ServingError(`top_k must be -1 (disable) or at least 1, got ${topK}.`)
  if (!(frequency >= -2 && frequency <= 2)) throw new ServingError(`frequency_penalty must be in [-2, 2], got ${pyFloat(frequency)}.`)
  if (!(presence >= -2 && presence <= 2)) throw new ServingError(`presence_penalty must be in [-2, 2], got ${pyFloat(presence)}.`)
  if (!(repetition > 0 && repetition <= 2)) throw new ServingError(`repetition_penalty must be in (0, 2] (1.0 = no penalty), got ${pyFloat(repetition)}.`)
  if (!(minNew >= 0)) throw new ServingError(`min_new_tokens must be in [0, max_new_tokens], got ${minNew}.`)
  if (maxNew < 0) throw new ServingError(`max_new_tokens must be at least 0, got ${maxNew}.`)
  if (!(minNew <= maxNew)) throw new ServingError(`min_new_tokens must be in [0, max_new_tokens(${maxNew})], got ${minNew}.`)
  if (isObject(params.logit_bias)) {
    for (const key of Object.keys(params.logit_bias)) {
      const id = Number.parseInt(key, 10)
      if (!(id >= 0 && id < VOCAB_SIZE)) throw new ServingError(`logit_bias must has keys in [0, ${VOCAB_SIZE - 1}], got ${key}.`)
    }
  }
  const grammars = [params.json_schema, params.regex, params.ebnf].filter((value) => value !== null && value !== undefined)
  if (grammars.length > 1) throw new ServingError('Only one of regex, json_schema, or ebnf can be set.')
}

function checkPrompt (errors: PydanticError[], value: unknown): void {
  // Union[List[int], List[List[int]], str, List[str]]: pydantic tries each member
  if (typeof value === 'string') return
  if (Array.isArray(value)) {
    if (value.every((item) => isLaxInt(item))) return
    if (value.every((item) => Array.isArray(item) && item.every(isLaxInt))) return
    if (value.every((item) => typeof item === 'string')) return
    const first = value.findIndex((item) => !isLaxInt(item))
    const firstNested = value.findIndex((item) => !Array.isArray(item))
    const firstString = value.findIndex((item) => typeof item !== 'string')
    errors.push({ type: 'int_type', loc: ['body', 'prompt', 'list[int]', first], msg: 'Input should be a valid integer', input: value[first] })
    errors.push({ type: 'list_type', loc: ['body', 'prompt', 'list[list[int]]', Math.max(firstNested, 0)], msg: 'Input should be a valid list', input: value[Math.max(firstNested, 0)] })
    errors.push({ type: 'string_type', loc: ['body', 'prompt', 'str'], msg: 'Input should be a valid string', input: value })
    errors.push({ type: 'string_type', loc: ['body', 'prompt', 'list[str]', firstString], msg: 'Input should be a valid string', input: value[firstString] })
    return
  }
  errors.push({ type: 'list_type', loc: ['body', 'prompt', 'list[int]'], msg: 'Input should be a valid list', input: value })
  errors.push({ type: 'list_type', loc: ['body', 'prompt', 'list[list[int]]'], msg: 'Input should be a valid list', input: value })
  errors.push({ type: 'string_type', loc: ['body', 'prompt', 'str'], msg: 'Input should be a valid string', input: value })
  errors.push({ type: 'list_type', loc: ['body', 'prompt', 'list[str]'], msg: 'Input should be a valid list', input: value })
}

function checkField (errors: PydanticError[], body: Record<string, unknown>, name: string, type: FieldType | 'str|list[str]', nullable = false): void {
  if (!(name in body)) return
  const value = body[name]
  const loc = ['body', name]
  const optional = type.endsWith('?') || nullable
  const base = type.endsWith('?') ? type.slice(0, -1) : type
  if (value === null && optional) return
  switch (base) {
    case 'str':
      if (typeof value !== 'string') errors.push({ type: 'string_type', loc, msg: 'Input should be a valid string', input: value })
      return
    case 'bool': {
      const error = boolError(value)
      if (error !== undefined) errors.push({ ...error, loc, input: value })
      return
    }
    case 'int': {
      const error = intError(value)
      if (error !== undefined) errors.push({ ...error, loc, input: value })
      return
    }
    case 'float': {
      const error = floatError(value)
      if (error !== undefined) errors.push({ ...error, loc, input: value })
      return
    }
    case 'dict':
      if (!isObject(value)) errors.push({ type: 'dict_type', loc, msg: 'Input should be a valid dictionary', input: value })
      return
    case 'list[int]':
      if (!Array.isArray(value)) errors.push({ type: 'list_type', loc, msg: 'Input should be a valid list', input: value })
      else {
        value.forEach((item, index) => {
          const error = intError(item)
          if (error !== undefined) errors.push({ ...error, loc: [...loc, index], input: item })
        })
      }
      return
    case 'list[int]|list[list[int]]':
      if (Array.isArray(value) && (value.every(isLaxInt) || value.every((item) => Array.isArray(item) && item.every(isLaxInt)))) return
      errors.push({ type: 'list_type', loc: [...loc, 'list[int]'], msg: 'Input should be a valid list', input: value })
      errors.push({ type: 'list_type', loc: [...loc, 'list[list[int]]'], msg: 'Input should be a valid list', input: value })
      return
    case 'str|list[str]':
      if (typeof value === 'string') return
      if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return
      errors.push({ type: 'string_type', loc: [...loc, 'str'], msg: 'Input should be a valid string', input: value })
      if (!Array.isArray(value)) errors.push({ type: 'list_type', loc: [...loc, 'list[str]'], msg: 'Input should be a valid list', input: value })
      else {
        value.forEach((item, index) => {
          if (typeof item !== 'string') errors.push({ type: 'string_type', loc: [...loc, 'list[str]', index], msg: 'Input should be a valid string', input: item })
        })
      }
      return
    case 'stream_options':
      if (!isObject(value)) {
        errors.push({ type: 'model_type', loc, msg: 'Input should be a valid dictionary or instance of StreamOptions', input: value, ctx: { class_name: 'StreamOptions' } })
        return
      }
      for (const key of ['include_usage', 'continuous_usage_stats']) {
        if (value[key] === undefined || value[key] === null) continue
        const error = boolError(value[key])
        if (error !== undefined) errors.push({ ...error, loc: [...loc, key], input: value[key] })
      }
  }
}

const TRUE_STRINGS = new Set(['1', 'on', 't', 'true', 'y', 'yes'])
const FALSE_STRINGS = new Set(['0', 'off', 'f', 'false', 'n', 'no'])

function boolError (value: unknown): Omit<PydanticError, 'loc' | 'input'> | undefined {
  if (typeof value === 'boolean') return undefined
  if (typeof value === 'number') return value === 0 || value === 1 ? undefined : { type: 'bool_parsing', msg: 'Input should be a valid boolean, unable to interpret input' }
  if (typeof value === 'string') return TRUE_STRINGS.has(value.toLowerCase()) || FALSE_STRINGS.has(value.toLowerCase()) ? undefined : { type: 'bool_parsing', msg: 'Input should be a valid boolean, unable to interpret input' }
  return { type: 'bool_type', msg: 'Input should be a valid boolean' }
}

function intError (value: unknown): Omit<PydanticError, 'loc' | 'input'> | undefined {
  if (typeof value === 'boolean') return undefined
  if (typeof value === 'number') return Number.isInteger(value) ? undefined : { type: 'int_from_float', msg: 'Input should be a valid integer, got a number with a fractional part' }
  if (typeof value === 'string') return /^\s*[-+]?\d+\s*$/.test(value) ? undefined : { type: 'int_parsing', msg: 'Input should be a valid integer, unable to parse string as an integer' }
  return { type: 'int_type', msg: 'Input should be a valid integer' }
}

function floatError (value: unknown): Omit<PydanticError, 'loc' | 'input'> | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return undefined
  if (typeof value === 'string') return value.trim() !== '' && Number.isFinite(Number(value)) ? undefined : { type: 'float_parsing', msg: 'Input should be a valid number, unable to parse string as a number' }
  return { type: 'float_type', msg: 'Input should be a valid number' }
}

function isLaxInt (value: unknown): boolean {
  return intError(value) === undefined
}

function coerceBool (value: unknown): boolean {
  if (typeof value === 'string') return TRUE_STRINGS.has(value.toLowerCase())
  return value === true || value === 1
}

function coerceInt (value: unknown): number {
  if (typeof value === 'boolean') return value ? 1 : 0
  return Number(value)
}

function coerceFloat (value: unknown): number {
  if (typeof value === 'boolean') return value ? 1 : 0
  return Number(value)
}

function isEmptyPrompt (prompt: unknown): boolean {
  // `not prompt or (isinstance(prompt, list) and all(not p for p in prompt))`
  const falsy = (value: unknown): boolean => value === '' || value === 0 || (Array.isArray(value) && value.length === 0)
  if (falsy(prompt)) return true
  return Array.isArray(prompt) && prompt.every(falsy)
}

function promptList (prompt: unknown): Array<string | number[]> {
  if (typeof prompt === 'string') return [prompt]
  const list = prompt as unknown[]
  if (list.every((item) => typeof item === 'string')) return list as string[]
  if (list.every((item) => Array.isArray(item))) return (list as unknown[][]).map((item) => item.map(coerceInt))
  return [list.map(coerceInt)]
}

// ---- validation messages (FastAPI + Python reprs) ----

function validationMessage (errors: PydanticError[], endpoint: { fn: string, route: string } | undefined): string {
  // http_server.py: message = f"{exc_str} {errors_str}" when they differ (they do with FastAPI's __str__)
  const reprs = errors.map(errorRepr)
  let exc = `${errors.length} validation error${errors.length === 1 ? '' : 's'}:\n`
  for (const repr of reprs) exc += `  ${repr}\n`
  if (endpoint !== undefined) exc += `\n  File "${ENDPOINT_FILE}", line 1, in ${endpoint.fn}\n    ${endpoint.route}`
  exc = exc.trimEnd()
  return `${exc} [${reprs.join(', ')}]`
}

function errorRepr (error: PydanticError): string {
  const parts: string[] = []
  // validate_json_request builds its dict as loc, msg, type; pydantic as type, loc, msg, input[, ctx]
  if (error.loc[0] === 'header') {
    parts.push(`'loc': ${pyRepr(error.loc)}`, `'msg': ${pyRepr(error.msg)}`, `'type': ${pyRepr(error.type)}`)
    return `{${parts.join(', ')}}`
  }
  parts.push(`'type': ${pyRepr(error.type)}`, `'loc': (${error.loc.map(pyRepr).join(', ')}${error.loc.length === 1 ? ',' : ''})`, `'msg': ${pyRepr(error.msg)}`, `'input': ${pyRepr(error.input)}`)
  if (error.ctx !== undefined) {
    const ctx = Object.entries(error.ctx).map(([key, value]) => `${pyRepr(key)}: ${key === 'error' && typeof value === 'string' && value.startsWith('ValueError(') ? value : pyRepr(value)}`)
    parts.push(`'ctx': {${ctx.join(', ')}}`)
  }
  return `{${parts.join(', ')}}`
}

function jsonCtx (ctx: Record<string, unknown>): Record<string, unknown> {
  // FastAPI's jsonable_encoder turns the ValueError in ctx into {}
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(ctx)) out[key] = typeof value === 'string' && value.startsWith('ValueError(') ? {} : value
  return out
}

function pyRepr (value: unknown): string {
  if (value === null || value === undefined) return 'None'
  if (value === true) return 'True'
  if (value === false) return 'False'
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return pyStr(value)
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`
  if (typeof value === 'object') return `{${Object.entries(value as Record<string, unknown>).map(([key, item]) => `${pyStr(key)}: ${pyRepr(item)}`).join(', ')}}`
  return String(value)
}

function pyStr (text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'"
  let out = quote
  for (const char of text) {
    if (char === quote || char === '\\') out += '\\' + char
    else if (char === '\n') out += '\\n'
    else if (char === '\r') out += '\\r'
    else if (char === '\t') out += '\\t'
    else if (char < ' ' || char === '\x7f') out += '\\x' + char.charCodeAt(0).toString(16).padStart(2, '0')
    else out += char
  }
  return out + quote
}

function pyFloat (value: number): string {
  if (Number.isNaN(value)) return 'nan'
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf'
  return Number.isInteger(value) ? value.toFixed(1) : String(value)
}

/** Python json.dumps defaults: ", " / ": " separators, ensure_ascii. */
function pythonJsonDumps (value: unknown): string {
  if (value === null || value === undefined) return 'null'
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (char) => '\\u' + char.charCodeAt(0).toString(16).padStart(4, '0'))
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`
  return `{${Object.entries(value as Record<string, unknown>).map(([key, item]) => `${pythonJsonDumps(key)}: ${pythonJsonDumps(item)}`).join(', ')}}`
}

const HTTP_STATUS_NAMES: Record<number, string> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'REQUEST_ENTITY_TOO_LARGE',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL_SERVER_ERROR',
  503: 'SERVICE_UNAVAILABLE'
}

function jsonErrorPosition (error: unknown, raw: string): number {
  const match = /position (\d+)/.exec((error as Error).message)
  return match === null ? raw.length : Number(match[1])
}

// ---- plumbing ----

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function sendJson (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), server: 'uvicorn', ...headers })
  response.end(text)
}

function sendEmpty (response: ServerResponse, status: number): void {
  response.writeHead(status, { 'content-length': 0, server: 'uvicorn' })
  response.end()
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
