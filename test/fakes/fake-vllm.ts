/**
 * A fake vLLM OpenAI-compatible server (`vllm serve`) for tests: a real loopback
 * HTTP server (node:http only) speaking vLLM's wire protocol, with a scripted
 * "model". It knows nothing of the gateway.
 *
 * Protocol reference (vllm-project/vllm; the 0.11/0.12 line unless said otherwise):
 * - vllm/entrypoints/openai/serving_completion.py at 00463e62 (stream chunks dumped with
 *   exclude_unset=False, the include_usage chunk with exclude_none=True, the in-stream
 *   error then `[DONE]`, "suffix is not currently supported", abort handling)
 * - vllm/entrypoints/renderer.py at 09b5e071 (max_length = max_model_len - max_tokens and
 *   its "maximum context length" message)
 * - vllm/entrypoints/openai/serving_engine.py (the revision holding `_check_model` with
 *   "The model `X` does not exist.", create_error_response / create_streaming_error_response
 *   (json.dumps: ", " and ": " separators, ASCII escapes))
 * - vllm/entrypoints/openai/protocol.py at 0052bed3 (OpenAIBaseModel extra="allow": unknown
 *   fields are ignored with a warning; ErrorInfo; ModelCard/ModelPermission; UsageInfo field
 *   order; StreamOptions include_usage defaults to true)
 * - vllm/entrypoints/openai/completion/protocol.py at 002032ee and serving.py at 030ea52e
 *   (current main, for CompletionRequest fields/validators: max_tokens 16,
 *   add_special_tokens true, skip_special_tokens true, structured_outputs count check)
 * - vllm/entrypoints/openai/server_utils.py at 029329a8 (AuthenticationMiddleware: only
 *   paths starting with /v1, OPTIONS exempt, 401 `{"error":"Unauthorized"}`;
 *   validation_exception_handler: 400 type "Bad Request")
 * - vllm/entrypoints/serve/tokenize/protocol.py at 030ea52e (Tokenize/Detokenize shapes)
 * - vllm/sampling_params.py at 00388f65 (_verify_args messages, StructuredOutputsParams)
 * - vllm/v1/core/sched/utils.py at 018d5dc7 (check_stop: min_tokens, eos, stop_token_ids,
 *   then length) and vllm/v1/engine/detokenizer.py (stop-terminated token not decoded,
 *   check_stop_strings, stream hold-back of max(len(stop)) - 1 chars)
 * - FastAPI/pydantic 2: RequestValidationError message is `str(exc.errors())` (the
 *   Python repr of the error dicts), 404 `{"detail":"Not Found"}`.
 *
 * Deliberate simplifications: a generation is computed up front from the script, then
 * paced out; one reply serves every prompt and every `n` choice of a request; logprobs
 * are not produced (requests asking for them get `logprobs: null`); structured outputs
 * are validated and recorded, never enforced; pydantic messages are close, not exact, for
 * unions; `call.promptTokens` is the first prompt's.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { FakeTokenizer, BOS_ID, EOS_ID } from './fake-tokenizer.js'
import type { FakeToken } from './fake-tokenizer.js'
import { DEFAULT_FAKE_ENGINE_TOKENS } from './fake-engine.js'
import type { FakeEngine, FakeEngineCall, FakeEngineOptions, FakeEngineReply, FakeEngineToken } from './fake-engine.js'

export interface FakeVllmOptions extends FakeEngineOptions {
  /** GET /version; default '0.12.0'. */
  version?: string
  /** `--max-logprobs` (default 20). */
  maxLogprobs?: number
}

export interface FakeVllm extends FakeEngine {
  readonly engine: 'vllm'
  /** The engine's tokenizer (for ids in tests: `tokenizer.idOf(' help')`). */
  readonly tokenizer: FakeTokenizer
  /** How many POST /tokenize calls were answered 200. */
  tokenizeCalls (): number
}

type Reply = FakeEngineReply

interface GenToken { id: number, text: string, special: boolean }

/** One engine step of one sequence: what the stream chunk for it carries. */
interface Step {
  delta: string
  tokenId: number
  finishReason: string | null
  stopReason: string | number | null
}

interface Sequence {
  index: number
  promptIndex: number
  steps: Step[]
  text: string
  tokenIds: number[]
}

interface CallState {
  call: FakeEngineCall
  response: ServerResponse
  finished: boolean
  timer: NodeJS.Timeout | undefined
}

interface Prompt { text: string | undefined, tokens: FakeToken[] }

interface Parsed {
  prompts: Array<{ kind: 'text', text: string } | { kind: 'ids', ids: number[] }>
  maxTokens: number | null
  n: number
  stream: boolean
  includeUsage: boolean
  continuousUsage: boolean
  stop: string[]
  stopTokenIds: number[]
  includeStopStrInOutput: boolean
  ignoreEos: boolean
  minTokens: number
  skipSpecialTokens: boolean
  addSpecialTokens: boolean
  echo: boolean
  returnTokenIds: boolean
  model: string | null
  suffix: string | null
  truncatePromptTokens: number | null
  temperature: number | null
  topP: number | null
  topK: number | null
  minP: number | null
  presencePenalty: number | null
  frequencyPenalty: number | null
  repetitionPenalty: number | null
  logprobs: number | null
  promptLogprobs: number | null
  useBeamSearch: boolean
}

/** A pydantic error dict (as FastAPI's RequestValidationError lists them). */
interface PydanticError {
  type: string
  loc: Array<string | number>
  msg: string
  input: unknown
  ctx?: Record<string, unknown>
}

class BadRequest extends Error {}
class Invalid extends Error {
  readonly errors: PydanticError[]
  constructor (errors: PydanticError[]) {
    super('validation')
    this.errors = errors
  }
}

const DEFAULT_VERSION = '0.12.0'

export async function startFakeVllm (options: FakeVllmOptions = {}): Promise<FakeVllm> {
  const modelPath = options.modelPath ?? 'fake-org/fake-model'
  const servedModelName = options.servedModelName ?? modelPath
  const maxModelLen = options.maxModelLen ?? 4096
  const maxLogprobs = options.maxLogprobs ?? 20
  const version = options.version ?? DEFAULT_VERSION
  const tokenizer = new FakeTokenizer(options.tokenizer)
  const requiredToken = options.requiredToken
  const guardAllRoutes = options.guardAllRoutes === true
  const createdAt = nowSeconds()

  // every id the fake has seen, for /detokenize and token-id prompts
  const vocabulary = new Map<number, { text: string, special: boolean }>()
  if (tokenizer.bosToken !== null) vocabulary.set(BOS_ID, { text: tokenizer.bosToken, special: true })
  vocabulary.set(EOS_ID, { text: tokenizer.eosToken, special: true })

  const calls: FakeEngineCall[] = []
  const requests: string[] = []
  const states: CallState[] = []
  const active = new Set<CallState>()
  const queued: Reply[] = []
  let defaultReply: Reply | ((call: FakeEngineCall) => Reply) = { kind: 'tokens', tokens: [...DEFAULT_FAKE_ENGINE_TOKENS] }
  const abortWaiters = new Map<number, Array<{ settle: (error?: Error) => void }>>()
  let tokenizeCount = 0
  let closing = false

  function encode (text: string, addSpecialTokens: boolean): FakeToken[] {
    const tokens = tokenizer.encode(text, addSpecialTokens)
    for (const token of tokens) if (!vocabulary.has(token.id)) vocabulary.set(token.id, { text: token.text, special: token.special })
    return tokens
  }

  function toGenToken (token: FakeEngineToken): GenToken {
    const text = typeof token === 'string' ? token : token.text
    const special = (typeof token !== 'string' && token.special === true) || tokenizer.isSpecial(text)
    const id = tokenizer.idOf(text)
    if (!vocabulary.has(id)) vocabulary.set(id, { text, special })
    return { id, text, special }
  }

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
    if (!state.call.aborted) settleWaiters(states.indexOf(state), new Error(`fake vLLM call ${states.indexOf(state)} completed without an abort`))
  }

  function onClose (state: CallState): void {
    if (state.finished) return
    // vLLM aborts the request in the engine when the client goes away
    if (!closing) state.call.aborted = true
    state.finished = true
    active.delete(state)
    if (state.timer !== undefined) clearTimeout(state.timer)
    state.timer = undefined
    settleWaiters(states.indexOf(state), closing ? new Error('fake vLLM closed') : undefined)
  }

  function nextReply (call: FakeEngineCall): Reply {
    const once = queued.shift()
    if (once !== undefined) return once
    return typeof defaultReply === 'function' ? defaultReply(call) : defaultReply
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      // FastAPI's exception_handler(Exception) in api_server: ErrorResponse 500
      if (!response.headersSent) sendJson(response, 500, errorBody(String(error), 'InternalServerError', 500))
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

    if (requiredToken !== undefined && method !== 'OPTIONS') {
      if (guardAllRoutes && !verifyToken(request.headers.authorization, requiredToken)) {
        // the Inference Endpoint's proxy answers before vLLM sees the request
        request.resume()
        return sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
      }
      // server_utils.py AuthenticationMiddleware: only paths starting with /v1
      if (path.startsWith('/v1') && !verifyToken(request.headers.authorization, requiredToken)) {
        request.resume()
        return sendJson(response, 401, { error: 'Unauthorized' })
      }
    }

    const route = ROUTES[path]
    if (route === undefined) {
      request.resume()
      return sendJson(response, 404, { detail: 'Not Found' })
    }
    if (!route.includes(method) && !(method === 'HEAD' && route.includes('GET'))) {
      request.resume()
      return sendJson(response, 405, { detail: 'Method Not Allowed' }, { allow: route.join(', ') })
    }

    if (path === '/health') {
      request.resume()
      // api_server.py health: Response(status_code=200), no body
      return sendEmpty(response, 200)
    }
    if (path === '/ping') {
      request.resume()
      return sendEmpty(response, 200)
    }
    if (path === '/version') {
      request.resume()
      return sendJson(response, 200, { version })
    }
    if (path === '/v1/models') {
      request.resume()
      return sendJson(response, 200, modelList())
    }

    const raw = await readBody(request)
    const body = parseJsonBody(raw, request.headers['content-type'])
    if (path === '/tokenize') return handleTokenize(response, body)
    if (path === '/detokenize') return handleDetokenize(response, body)
    return handleCompletion(request, response, body)
  }

  function modelList (): unknown {
    // protocol.py ModelList / ModelCard / ModelPermission, in field order
    return {
      object: 'list',
      data: [{
        id: servedModelName,
        object: 'model',
        created: createdAt,
        owned_by: 'vllm',
        root: modelPath,
        parent: null,
        max_model_len: maxModelLen,
        permission: [{
          id: `modelperm-${randomHex()}`,
          object: 'model_permission',
          created: createdAt,
          allow_create_engine: false,
          allow_sampling: true,
          allow_logprobs: true,
          allow_search_indices: false,
          allow_view: true,
          allow_fine_tuning: false,
          organization: '*',
          group: null,
          is_blocking: false
        }]
      }]
    }
  }

  function modelError (model: unknown): unknown {
    return errorBody(`The model \`${String(model)}\` does not exist.`, 'NotFoundError', 404)
  }

  function isServed (model: unknown): boolean {
    // serving_engine.py _is_model_supported: no model means the served one
    return model === undefined || model === null || model === '' || model === servedModelName
  }

  function handleTokenize (response: ServerResponse, body: BodyResult): void {
    if (!body.ok) return sendValidation(response, body.errors)
    const data = body.value
    if (!isObject(data)) return sendValidation(response, [{ type: 'model_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: data }])
    // TokenizeRequest = TokenizeCompletionRequest | TokenizeChatRequest
    if (!('prompt' in data) && !('messages' in data)) {
      return sendValidation(response, [
        { type: 'missing', loc: ['body', 'TokenizeCompletionRequest', 'prompt'], msg: 'Field required', input: data },
        { type: 'missing', loc: ['body', 'TokenizeChatRequest', 'messages'], msg: 'Field required', input: data }
      ])
    }
    if (!('prompt' in data)) {
      // the fake has no chat template: the gateway renders its own
      return sendJson(response, 400, errorBody('fake vLLM: chat tokenization (messages) is not supported', 'BadRequestError', 400))
    }
    try {
      const prompt = coerce(data.prompt, 'str', false, ['body', 'TokenizeCompletionRequest', 'prompt']) as string
      const addSpecialTokens = data.add_special_tokens === undefined ? true : coerce(data.add_special_tokens, 'bool', false, ['body', 'TokenizeCompletionRequest', 'add_special_tokens']) as boolean
      const returnTokenStrs = data.return_token_strs === undefined ? false : coerce(data.return_token_strs, 'bool', true, ['body', 'TokenizeCompletionRequest', 'return_token_strs']) === true
      if (!isServed(data.model)) return sendJson(response, 404, modelError(data.model))
      const tokens = encode(prompt, addSpecialTokens)
      tokenizeCount++
      sendJson(response, 200, {
        count: tokens.length,
        max_model_len: maxModelLen,
        tokens: tokens.map((token) => token.id),
        token_strs: returnTokenStrs ? tokens.map((token) => token.text) : null
      })
    } catch (error) {
      if (error instanceof Invalid) return sendValidation(response, error.errors)
      throw error
    }
  }

  function handleDetokenize (response: ServerResponse, body: BodyResult): void {
    if (!body.ok) return sendValidation(response, body.errors)
    const data = body.value
    if (!isObject(data)) return sendValidation(response, [{ type: 'model_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: data }])
    try {
      if (!('tokens' in data)) throw new Invalid([{ type: 'missing', loc: ['body', 'tokens'], msg: 'Field required', input: data }])
      const ids = coerce(data.tokens, 'intList', false, ['body', 'tokens']) as number[]
      if (!isServed(data.model)) return sendJson(response, 404, modelError(data.model))
      // tokenizer.decode(ids): HF's default keeps special tokens
      let prompt = ''
      for (const id of ids) prompt += vocabulary.get(id)?.text ?? ''
      sendJson(response, 200, { prompt })
    } catch (error) {
      if (error instanceof Invalid) return sendValidation(response, error.errors)
      throw error
    }
  }

  function handleCompletion (request: IncomingMessage, response: ServerResponse, body: BodyResult): void {
    const call: FakeEngineCall = {
      path: '/v1/completions',
      method: 'POST',
      headers: request.headers,
      body: body.ok ? body.value : undefined,
      aborted: false,
      tokensSent: 0,
      promptTokens: []
    }
    const state: CallState = { call, response, finished: false, timer: undefined }
    calls.push(call)
    states.push(state)
    response.on('close', () => onClose(state))
    const done = (): void => finish(state)

    if (!body.ok) {
      sendValidation(response, body.errors)
      return done()
    }
    let parsed: Parsed
    try {
      parsed = parseCompletionRequest(body.value)
    } catch (error) {
      if (error instanceof Invalid) {
        sendValidation(response, error.errors)
        return done()
      }
      throw error
    }

    // serving_completion.py create_completion, in its order
    if (!isServed(parsed.model)) {
      sendJson(response, 404, modelError(parsed.model))
      return done()
    }
    let prompts: Prompt[]
    let maxTokensList: number[]
    try {
      if (parsed.suffix !== null) throw new BadRequest('suffix is not currently supported')
      if (parsed.stream && parsed.useBeamSearch) throw new BadRequest('Streaming is not currently supported with beam search')
      prompts = renderPrompts(parsed)
      call.promptTokens = prompts[0]?.tokens ?? []
      maxTokensList = prompts.map((prompt) => {
        // utils.py get_max_tokens: the smallest of what is left and what was asked
        const left = maxModelLen - prompt.tokens.length
        return parsed.maxTokens === null ? left : Math.min(left, parsed.maxTokens)
      })
      for (const maxTokens of maxTokensList) verifySamplingParams(parsed, maxTokens)
    } catch (error) {
      if (error instanceof BadRequest) {
        sendJson(response, 400, errorBody(error.message, 'BadRequestError', 400))
        return done()
      }
      throw error
    }

    const reply = nextReply(call)
    if (reply.kind === 'status') {
      const raw = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
      const headers = { 'content-type': typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...reply.headers }
      response.writeHead(reply.status, { ...headers, 'content-length': Buffer.byteLength(raw) })
      response.end(raw)
      return done()
    }
    active.add(state)
    if (reply.kind === 'hang') return

    const requestId = `cmpl-${headerString(request.headers['x-request-id']) ?? randomHex()}`
    const created = nowSeconds()
    const base = { id: requestId, object: 'text_completion', created, model: servedModelName }

    if (reply.kind === 'drop' || reply.kind === 'stream-error') {
      const script = (reply.tokens ?? [...DEFAULT_FAKE_ENGINE_TOKENS]).map(toGenToken)
      const tokens: GenToken[] = []
      for (let index = 0; index < reply.afterTokens && script.length > 0; index++) tokens.push(script[index % script.length]!)
      const status = reply.kind === 'stream-error' ? (reply.status ?? 500) : 500
      if (!parsed.stream) {
        state.timer = setTimeout(() => {
          state.timer = undefined
          if (reply.kind === 'drop') {
            done()
            response.socket?.destroy()
            return
          }
          sendJson(response, status, errorBody(reply.message, errorTypeFor(status), status))
          done()
        }, 0)
        return
      }
      startStream(response)
      const frames = tokens.map((token) => ({
        frame: `data: ${JSON.stringify({ ...base, choices: [streamChoice(0, parsed.skipSpecialTokens && token.special ? '' : token.text, null, null, null, parsed.returnTokenIds ? [token.id] : null)], usage: null })}\n\n`,
        token: true
      }))
      if (reply.kind === 'stream-error') {
        // serving_completion.py: `data: {create_streaming_error_response}` then `data: [DONE]`
        frames.push({ frame: `data: ${pythonJsonDumps(errorBody(reply.message, errorTypeFor(status), status))}\n\n`, token: false })
        frames.push({ frame: 'data: [DONE]\n\n', token: false })
      }
      return pace(state, frames, 0, 0, reply.kind === 'drop')
    }

    // kind: 'tokens'
    const script = reply.tokens.map(toGenToken)
    const endWithEos = reply.endWithEos !== false || script.length === 0
    const source = endWithEos ? [...script, { id: EOS_ID, text: tokenizer.eosToken, special: true }] : script
    const sequences: Sequence[] = []
    prompts.forEach((prompt, promptIndex) => {
      for (let choice = 0; choice < parsed.n; choice++) {
        sequences.push(generate(source, parsed, maxTokensList[promptIndex]!, promptIndex * parsed.n + choice, promptIndex))
      }
    })
    const promptTokenTotal = prompts.reduce((sum, prompt) => sum + prompt.tokens.length, 0)
    const completionTotal = sequences.reduce((sum, sequence) => sum + sequence.tokenIds.length, 0)
    const delayMs = reply.delayMs ?? 0
    const firstTokenDelayMs = reply.firstTokenDelayMs ?? delayMs

    if (!parsed.stream) {
      const longest = Math.max(...sequences.map((sequence) => sequence.steps.length))
      const totalDelay = firstTokenDelayMs + delayMs * Math.max(0, longest - 1)
      const send = (): void => {
        state.timer = undefined
        if (state.finished) return
        // protocol.py CompletionResponse / CompletionResponseChoice, in field order
        const choices = sequences.map((sequence, index) => {
          const prompt = prompts[sequence.promptIndex]!
          const last = sequence.steps[sequence.steps.length - 1]
          const echoed = parsed.echo ? (parsed.returnTokenIds ? '' : (prompt.text ?? decodeIds(prompt.tokens))) : ''
          return {
            index,
            text: echoed + sequence.text,
            logprobs: null,
            finish_reason: last?.finishReason ?? null,
            stop_reason: last?.stopReason ?? null,
            token_ids: parsed.returnTokenIds ? sequence.tokenIds : null,
            prompt_logprobs: null,
            prompt_token_ids: parsed.returnTokenIds ? prompt.tokens.map((token) => token.id) : null
          }
        })
        call.tokensSent = completionTotal
        sendJson(response, 200, {
          ...base,
          choices,
          service_tier: null,
          system_fingerprint: null,
          usage: usage(promptTokenTotal, completionTotal),
          kv_transfer_params: null
        })
        done()
      }
      if (totalDelay > 0) state.timer = setTimeout(send, totalDelay)
      else send()
      return
    }

    // completion_stream_generator: one chunk per sequence per engine step
    startStream(response)
    const frames: Array<{ frame: string, token: boolean }> = []
    const emitted = new Map<number, number>()
    const echoedPrompt = new Set<number>()
    const longest = Math.max(...sequences.map((sequence) => sequence.steps.length))
    for (let step = 0; step < longest; step++) {
      for (const sequence of sequences) {
        const item = sequence.steps[step]
        if (item === undefined) continue
        const prompt = prompts[sequence.promptIndex]!
        let text = item.delta
        let promptIds: number[] | null = null
        if (!echoedPrompt.has(sequence.index)) {
          echoedPrompt.add(sequence.index)
          if (parsed.echo) text = (parsed.returnTokenIds ? '' : (prompt.text ?? decodeIds(prompt.tokens))) + text
          if (parsed.returnTokenIds) promptIds = prompt.tokens.map((token) => token.id)
        }
        const count = (emitted.get(sequence.index) ?? 0) + 1
        emitted.set(sequence.index, count)
        const chunk: Record<string, unknown> = {
          ...base,
          choices: [streamChoice(sequence.index, text, item.finishReason, item.stopReason, promptIds, parsed.returnTokenIds ? [item.tokenId] : null)],
          usage: parsed.continuousUsage ? { ...usage(prompt.tokens.length, count), prompt_tokens_details: null } : null
        }
        frames.push({ frame: `data: ${JSON.stringify(chunk)}\n\n`, token: true })
      }
    }
    let trailer = ''
    if (parsed.includeUsage) {
      // dumped with exclude_none=True: no prompt_tokens_details, no nulls
      const { prompt_tokens_details: _, ...final } = usage(promptTokenTotal, completionTotal)
      trailer += `data: ${JSON.stringify({ ...base, choices: [], usage: final })}\n\n`
    }
    trailer += 'data: [DONE]\n\n'
    const stepsPerPause = sequences.length
    pace(state, frames, firstTokenDelayMs, delayMs, false, trailer, stepsPerPause)
  }

  function renderPrompts (parsed: Parsed): Prompt[] {
    // renderer.py: max_length = max_model_len - (max_tokens or 0)
    const maxLength = maxModelLen - (parsed.maxTokens ?? 0)
    let truncate = parsed.truncatePromptTokens
    if (truncate !== null) {
      if (truncate < 0) truncate = maxModelLen
      if (truncate > maxLength) throw new BadRequest(`truncate_prompt_tokens (${truncate}) cannot be greater than max_length (${maxLength}). Please select a smaller truncation size.`)
    }
    return parsed.prompts.map((prompt) => {
      let tokens: FakeToken[]
      let text: string | undefined
      if (prompt.kind === 'text') {
        text = prompt.text
        tokens = encode(prompt.text, parsed.addSpecialTokens)
      } else {
        tokens = prompt.ids.map((id) => {
          const known = vocabulary.get(id)
          return { id, text: known?.text ?? '', special: known?.special ?? false, start: 0, stop: 0 }
        })
      }
      if (truncate !== null && truncate !== 0 && truncate < tokens.length) {
        tokens = tokens.slice(-truncate)
        if (text !== undefined) text = decodeIds(tokens)
      }
      if (tokens.length > maxLength) {
        throw new BadRequest(`This model's maximum context length is ${maxLength} tokens. However, your request has ${tokens.length} input tokens. Please reduce the length of the input messages.`)
      }
      return { text, tokens }
    })
  }

  function decodeIds (tokens: ReadonlyArray<{ text: string }>): string {
    return tokens.map((token) => token.text).join('')
  }

  function verifySamplingParams (parsed: Parsed, maxTokens: number): void {
    // sampling_params.py _verify_args (ValueError -> 400 BadRequestError), defaults as
    // CompletionRequest._DEFAULT_SAMPLING_PARAMS
    const presence = parsed.presencePenalty ?? 0
    const frequency = parsed.frequencyPenalty ?? 0
    const repetition = parsed.repetitionPenalty ?? 1
    const temperature = parsed.temperature ?? 1
    const topP = parsed.topP ?? 1
    const topK = parsed.topK ?? 0
    const minP = parsed.minP ?? 0
    if (parsed.n < 1) throw new BadRequest(`n must be at least 1, got ${parsed.n}.`)
    if (!(presence >= -2 && presence <= 2)) throw new BadRequest(`presence_penalty must be in [-2, 2], got ${pyFloat(presence)}.`)
    if (!(frequency >= -2 && frequency <= 2)) throw new BadRequest(`frequency_penalty must be in [-2, 2], got ${pyFloat(frequency)}.`)
    if (!(repetition > 0)) throw new BadRequest(`repetition_penalty must be greater than zero, got ${pyFloat(repetition)}.`)
    if (temperature < 0) throw new BadRequest(`temperature must be non-negative, got ${pyFloat(temperature)}.`)
    if (!(topP > 0 && topP <= 1)) throw new BadRequest(`top_p must be in (0, 1], got ${pyFloat(topP)}.`)
    if (topK < -1) throw new BadRequest(`top_k must be 0 (disable), or at least 1, got ${topK}.`)
    if (!(minP >= 0 && minP <= 1)) throw new BadRequest(`min_p must be in [0, 1], got ${pyFloat(minP)}.`)
    if (maxTokens < 1) throw new BadRequest(`max_tokens must be at least 1, got ${maxTokens}.`)
    if (parsed.minTokens < 0) throw new BadRequest(`min_tokens must be greater than or equal to 0, got ${parsed.minTokens}.`)
    if (parsed.minTokens > maxTokens) throw new BadRequest(`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${parsed.minTokens}.`)
    if (parsed.logprobs !== null && parsed.logprobs < 0) throw new BadRequest(`logprobs must be non-negative, got ${parsed.logprobs}.`)
    if (parsed.stop.some((stop) => stop === '')) throw new BadRequest('stop cannot contain an empty string.')
    if (temperature < 1e-5 && parsed.n > 1) throw new BadRequest(`n must be 1 when using greedy sampling, got ${parsed.n}.`)
    // processor.py _validate_logprobs
    if (parsed.logprobs !== null && parsed.logprobs > maxLogprobs) throw new BadRequest(`Requested sample logprobs of ${parsed.logprobs}, which is greater than max allowed: ${maxLogprobs}`)
    if (parsed.promptLogprobs !== null && parsed.promptLogprobs > maxLogprobs) throw new BadRequest(`Requested prompt logprobs of ${parsed.promptLogprobs}, which is greater than max allowed: ${maxLogprobs}`)
  }

  function pace (state: CallState, frames: Array<{ frame: string, token: boolean }>, firstDelay: number, delay: number, drop: boolean, trailer = '', framesPerStep = 1): void {
    const response = state.response
    const close = (): void => {
      if (drop) {
        finish(state)
        response.socket?.destroy()
      } else {
        response.end(trailer)
        finish(state)
      }
    }
    if (firstDelay === 0 && delay === 0) {
      const payload = frames.map((frame) => frame.frame).join('')
      state.call.tokensSent = frames.filter((frame) => frame.token).length
      if (drop) {
        if (payload === '') close()
        else response.write(payload, close)
      } else {
        response.end(payload + trailer)
        finish(state)
      }
      return
    }
    let next = 0
    const step = (): void => {
      state.timer = undefined
      if (state.finished) return
      const batch = frames.slice(next, next + framesPerStep)
      next += framesPerStep
      for (const frame of batch) if (frame.token) state.call.tokensSent++
      const payload = batch.map((frame) => frame.frame).join('')
      const last = next >= frames.length
      if (last) {
        if (drop && payload !== '') response.write(payload, close)
        else {
          if (payload !== '') response.write(payload)
          close()
        }
        return
      }
      response.write(payload)
      state.timer = setTimeout(step, delay)
    }
    state.timer = setTimeout(step, firstDelay)
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
    engine: 'vllm',
    url: `http://127.0.0.1:${address.port}`,
    calls,
    requests,
    tokenizer,
    reply (reply) {
      defaultReply = reply
    },
    replyOnce (reply) {
      queued.push(reply)
    },
    async waitForAbort (callIndex, timeoutMs = 5000) {
      const state = states[callIndex]
      if (state?.call.aborted === true) return
      if (state?.finished === true) throw new Error(`fake vLLM call ${callIndex} completed without an abort`)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const waiters = abortWaiters.get(callIndex)
          if (waiters !== undefined) waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`fake vLLM call ${callIndex} was not aborted within ${timeoutMs} ms`))
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
    tokenizeCalls () {
      return tokenizeCount
    },
    async close () {
      closing = true
      for (const state of states) if (state.timer !== undefined) clearTimeout(state.timer)
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      for (const index of [...abortWaiters.keys()]) settleWaiters(index, new Error('fake vLLM closed'))
    }
  }
}

const ROUTES: Record<string, string[]> = {
  '/health': ['GET'],
  '/ping': ['GET', 'POST'],
  '/version': ['GET'],
  '/v1/models': ['GET'],
  '/tokenize': ['POST'],
  '/detokenize': ['POST'],
  '/v1/completions': ['POST']
}

/**
 * One sequence through the engine: per token, the scheduler's check_stop (min_tokens,
 * then eos, then stop_token_ids, then length), then the detokenizer (a stop-terminated
 * token is not decoded unless include_stop_str_in_output; stop strings are searched in
 * the newly decoded text and cut), then the stream's hold-back of max(len(stop)) - 1
 * characters while unfinished.
 */
function generate (source: GenToken[], parsed: Parsed, maxTokens: number, index: number, promptIndex: number): Sequence {
  const steps: Step[] = []
  const tokenIds: number[] = []
  let text = ''
  let sentOffset = 0
  const holdBack = parsed.stop.length > 0 && !parsed.includeStopStrInOutput ? Math.max(...parsed.stop.map((stop) => stop.length)) - 1 : 0
  for (const token of source) {
    tokenIds.push(token.id)
    const count = tokenIds.length
    let finishReason: string | null = null
    let stopReason: string | number | null = null
    let stopTerminated = false
    if (count >= parsed.minTokens) {
      if (!parsed.ignoreEos && token.id === EOS_ID) {
        finishReason = 'stop'
        stopTerminated = true
      } else if (parsed.stopTokenIds.includes(token.id)) {
        finishReason = 'stop'
        stopReason = token.id
        stopTerminated = true
      }
    }
    // maxTokens is already min(max_tokens, max_model_len - prompt length)
    if (finishReason === null && count >= maxTokens) finishReason = 'length'
    const checkOffset = text.length
    if (!(stopTerminated && !parsed.includeStopStrInOutput)) {
      text += parsed.skipSpecialTokens && token.special ? '' : token.text
    }
    if (parsed.stop.length > 0 && count > parsed.minTokens) {
      const match = checkStopStrings(text, text.length - checkOffset, parsed.stop, parsed.includeStopStrInOutput)
      if (match !== undefined) {
        finishReason = 'stop'
        stopReason = match.stop
        if (match.truncateTo !== -1) text = text.slice(0, match.truncateTo)
      }
    }
    const finished = finishReason !== null
    const visible = text.length - (finished ? 0 : holdBack)
    let delta = ''
    if (sentOffset < visible) {
      delta = text.slice(sentOffset, visible)
      sentOffset = visible
    }
    steps.push({ delta, tokenId: token.id, finishReason, stopReason })
    if (finished) break
  }
  const last = steps[steps.length - 1]
  if (last !== undefined && last.finishReason === null) {
    // the script ran out without eos (endWithEos: false): the engine would go on; cut as length
    last.finishReason = 'length'
    last.delta += text.slice(sentOffset)
  }
  return { index, promptIndex, steps, text, tokenIds }
}

/** detokenizer.py check_stop_strings: the first stop (in list order) found in the new text's window. */
function checkStopStrings (output: string, newCharCount: number, stops: string[], includeInOutput: boolean): { stop: string, truncateTo: number } | undefined {
  if (newCharCount === 0) return undefined
  for (const stop of stops) {
    // Python's find with a negative start counts from the end, floored at 0
    const start = Math.max(0, output.length + (1 - newCharCount - stop.length))
    let index = output.indexOf(stop, start)
    if (index === -1) continue
    if (includeInOutput) {
      index += stop.length
      if (index >= output.length) return { stop, truncateTo: -1 }
    }
    return { stop, truncateTo: index }
  }
  return undefined
}

function streamChoice (index: number, text: string, finishReason: string | null, stopReason: string | number | null, promptTokenIds: number[] | null, tokenIds: number[] | null): unknown {
  // protocol.py CompletionResponseStreamChoice, dumped with exclude_unset=False
  return { index, text, logprobs: null, finish_reason: finishReason, stop_reason: stopReason, prompt_token_ids: promptTokenIds, token_ids: tokenIds }
}

function usage (promptTokens: number, completionTokens: number): { prompt_tokens: number, total_tokens: number, completion_tokens: number, prompt_tokens_details: null } {
  // protocol.py UsageInfo field order
  return { prompt_tokens: promptTokens, total_tokens: promptTokens + completionTokens, completion_tokens: completionTokens, prompt_tokens_details: null }
}

function errorBody (message: string, type: string, code: number, param: string | null = null): { error: { message: string, type: string, param: string | null, code: number } } {
  // protocol.py ErrorResponse { error: ErrorInfo { message, type, param, code } }
  return { error: { message, type, param, code } }
}

function errorTypeFor (status: number): string {
  if (status === 400) return 'BadRequestError'
  if (status === 404) return 'NotFoundError'
  if (status >= 500) return 'InternalServerError'
  return HTTP_PHRASES[status] ?? 'Error'
}

const HTTP_PHRASES: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 408: 'Request Timeout', 413: 'Request Entity Too Large', 422: 'Unprocessable Entity', 429: 'Too Many Requests' }

function verifyToken (header: string | undefined, token: string): boolean {
  // AuthenticationMiddleware.verify_token: scheme compared case-insensitively, then the rest after the first space
  if (header === undefined || header === '') return false
  const space = header.indexOf(' ')
  const scheme = space === -1 ? header : header.slice(0, space)
  const param = space === -1 ? '' : header.slice(space + 1)
  return scheme.toLowerCase() === 'bearer' && param === token
}

function startStream (response: ServerResponse): void {
  // StreamingResponse(media_type="text/event-stream"): chunked, no content-length
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' })
  response.flushHeaders()
}

function sendValidation (response: ServerResponse, errors: PydanticError[]): void {
  // validation_exception_handler: str(exc) equals str(exc.errors()) -> the message is the repr once
  sendJson(response, 400, errorBody(`[${errors.map(pyErrorRepr).join(', ')}]`, 'Bad Request', 400))
}

function sendJson (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // starlette JSONResponse: compact separators, UTF-8
  const raw = JSON.stringify(body)
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw) })
  response.end(raw)
}

function sendEmpty (response: ServerResponse, status: number): void {
  response.writeHead(status, { 'content-length': 0 })
  response.end()
}

function headerString (value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value[0]
  return value === undefined || value === '' ? undefined : value
}

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

function randomHex (): string {
  return randomBytes(16).toString('hex')
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

type BodyResult = { ok: true, value: unknown } | { ok: false, errors: PydanticError[] }

function parseJsonBody (raw: string, contentType: string | undefined): BodyResult {
  // FastAPI reads JSON when the content type is json (or missing); a decode failure is a
  // json_invalid validation error at ('body', position)
  const mime = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  const json = mime === '' || mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'))
  if (!json) return { ok: true, value: raw }
  if (raw === '') return { ok: false, errors: [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }] }
  try {
    return { ok: true, value: JSON.parse(raw) }
  } catch (error) {
    const match = /position (\d+)/.exec((error as Error).message)
    return { ok: false, errors: [{ type: 'json_invalid', loc: ['body', match === null ? 0 : Number(match[1])], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }] }
  }
}

type Kind = 'int' | 'float' | 'bool' | 'str' | 'intList' | 'strList' | 'dict'

/** Pydantic 2 lax-mode coercion of one field, raising its error dict. */
function coerce (value: unknown, kind: Kind, nullable: boolean, loc: Array<string | number>): unknown {
  if (value === null && nullable) return null
  const fail = (type: string, msg: string): never => {
    throw new Invalid([{ type, loc, msg, input: value }])
  }
  switch (kind) {
    case 'int':
      if (typeof value === 'boolean') return value ? 1 : 0
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) return fail('finite_number', 'Input should be a finite number')
        if (!Number.isInteger(value)) return fail('int_from_float', 'Input should be a valid integer, got a number with a fractional part')
        return value
      }
      if (typeof value === 'string') {
        const trimmed = value.trim()
        if (/^[+-]?\d+$/.test(trimmed)) return Number(trimmed)
        return fail('int_parsing', 'Input should be a valid integer, unable to parse string as an integer')
      }
      return fail('int_type', 'Input should be a valid integer')
    case 'float':
      if (typeof value === 'boolean') return value ? 1 : 0
      if (typeof value === 'number') return value
      if (typeof value === 'string') {
        const trimmed = value.trim()
        if (trimmed !== '' && Number.isFinite(Number(trimmed))) return Number(trimmed)
        return fail('float_parsing', 'Input should be a valid number, unable to parse string as a number')
      }
      return fail('float_type', 'Input should be a valid number')
    case 'bool':
      if (typeof value === 'boolean') return value
      if (value === 0 || value === 1) return value === 1
      if (typeof value === 'string') {
        const lowered = value.trim().toLowerCase()
        if (['1', 'on', 't', 'true', 'y', 'yes'].includes(lowered)) return true
        if (['0', 'off', 'f', 'false', 'n', 'no'].includes(lowered)) return false
      }
      if (typeof value === 'string' || typeof value === 'number') return fail('bool_parsing', 'Input should be a valid boolean, unable to interpret input')
      return fail('bool_type', 'Input should be a valid boolean')
    case 'str':
      if (typeof value === 'string') return value
      return fail('string_type', 'Input should be a valid string')
    case 'intList':
    case 'strList': {
      if (!Array.isArray(value)) return fail('list_type', 'Input should be a valid list')
      const errors: PydanticError[] = []
      const items = value.map((item, index) => {
        try {
          return coerce(item, kind === 'intList' ? 'int' : 'str', false, [...loc, index])
        } catch (error) {
          if (error instanceof Invalid) errors.push(...error.errors)
          else throw error
          return undefined
        }
      })
      if (errors.length > 0) throw new Invalid(errors)
      return items
    }
    case 'dict':
      if (isObject(value)) return value
      return fail('dict_type', 'Input should be a valid dictionary')
  }
}

// CompletionRequest's plain fields: pydantic type and whether None is allowed
const COMPLETION_FIELDS: Record<string, [Kind, boolean]> = {
  model: ['str', true],
  echo: ['bool', true],
  frequency_penalty: ['float', true],
  logit_bias: ['dict', true],
  logprobs: ['int', true],
  max_tokens: ['int', true],
  n: ['int', false],
  presence_penalty: ['float', true],
  seed: ['int', true],
  stream: ['bool', true],
  suffix: ['str', true],
  temperature: ['float', true],
  top_p: ['float', true],
  user: ['str', true],
  use_beam_search: ['bool', false],
  top_k: ['int', true],
  min_p: ['float', true],
  repetition_penalty: ['float', true],
  length_penalty: ['float', false],
  stop_token_ids: ['intList', true],
  include_stop_str_in_output: ['bool', false],
  ignore_eos: ['bool', false],
  min_tokens: ['int', false],
  skip_special_tokens: ['bool', false],
  spaces_between_special_tokens: ['bool', false],
  truncate_prompt_tokens: ['int', true],
  allowed_token_ids: ['intList', true],
  prompt_logprobs: ['int', true],
  bad_words: ['strList', false],
  add_special_tokens: ['bool', false],
  priority: ['int', false],
  request_id: ['str', false],
  return_tokens_as_token_ids: ['bool', true],
  return_token_ids: ['bool', true],
  cache_salt: ['str', true],
  kv_transfer_params: ['dict', true],
  vllm_xargs: ['dict', true]
}

const INT64_MAX = 9223372036854775807n

function valueError (message: string, data: unknown): Invalid {
  // a ValueError raised in a model_validator(mode="before")
  return new Invalid([{ type: 'value_error', loc: ['body'], msg: `Value error, ${message}`, input: data, ctx: { error: new PyValueError(message) } }])
}

class PyValueError {
  readonly message: string
  constructor (message: string) {
    this.message = message
  }
}

/**
 * protocol.py CompletionRequest: the mode="before" model validators first (on the raw
 * dict), then the fields (all errors collected), then to the handler.
 */
function parseCompletionRequest (data: unknown): Parsed {
  if (!isObject(data)) {
    throw new Invalid([{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', input: data }])
  }
  // check_structured_outputs_count
  const structured = data.structured_outputs
  if (isObject(structured)) {
    const count = ['json', 'regex', 'choice'].filter((key) => structured[key] !== undefined && structured[key] !== null).length
    if (count > 1) throw valueError("You can only use one kind of constraints for structured outputs ('json', 'regex' or 'choice').", data)
  }
  // check_logprobs
  const promptLogprobs = data.prompt_logprobs
  if (typeof promptLogprobs === 'number') {
    if (data.stream === true && (promptLogprobs > 0 || promptLogprobs === -1)) throw valueError('`prompt_logprobs` are not available when `stream=True`.', data)
    if (promptLogprobs < 0 && promptLogprobs !== -1) throw valueError('`prompt_logprobs` must be a positive value or -1.', data)
  }
  if (typeof data.logprobs === 'number' && data.logprobs < 0 && data.logprobs !== -1) throw valueError('`logprobs` must be a positive value or -1.', data)
  // validate_stream_options (an empty dict is falsy in Python)
  if (isTruthy(data.stream_options) && !isTruthy(data.stream)) throw valueError('Stream options can only be defined when `stream=True`.', data)
  // validate_response_format
  if (isObject(data.response_format) && data.response_format.type === 'json_schema' && (data.response_format.json_schema === undefined || data.response_format.json_schema === null)) {
    throw valueError("When response_format type is 'json_schema', the 'json_schema' field must be provided.", data)
  }
  // validate_prompt_and_prompt_embeds
  const prompt = data.prompt
  const embeds = data.prompt_embeds
  if ((prompt === undefined || prompt === null || prompt === '') && (embeds === undefined || embeds === null || (Array.isArray(embeds) && embeds.length === 0))) {
    throw valueError('Either prompt or prompt_embeds must be provided and non-empty.', data)
  }
  // check_cache_salt_support
  if (data.cache_salt !== undefined && data.cache_salt !== null && (typeof data.cache_salt !== 'string' || data.cache_salt === '')) {
    throw valueError("Parameter 'cache_salt' must be a non-empty string if provided.", data)
  }

  const errors: PydanticError[] = []
  const fields: Record<string, unknown> = {}
  const field = (name: string, run: () => unknown): void => {
    try {
      fields[name] = run()
    } catch (error) {
      if (error instanceof Invalid) errors.push(...error.errors)
      else throw error
    }
  }
  field('prompt', () => parsePrompt(prompt))
  for (const [name, [kind, nullable]] of Object.entries(COMPLETION_FIELDS)) {
    if (!(name in data)) continue
    field(name, () => coerce(data[name], kind, nullable, ['body', name]))
  }
  field('stop', () => {
    const stop = data.stop
    if (stop === undefined || stop === null) return []
    if (typeof stop === 'string') return [stop]
    if (Array.isArray(stop) && stop.every((item) => typeof item === 'string')) return stop
    throw new Invalid([
      { type: 'string_type', loc: ['body', 'stop', 'str'], msg: 'Input should be a valid string', input: stop },
      ...(Array.isArray(stop)
        ? stop.flatMap((item, index) => typeof item === 'string' ? [] : [{ type: 'string_type', loc: ['body', 'stop', 'list[str]', index], msg: 'Input should be a valid string', input: item }])
        : [{ type: 'list_type', loc: ['body', 'stop', 'list[str]'], msg: 'Input should be a valid list', input: stop }])
    ])
  })
  field('stream_options', () => {
    const value = data.stream_options
    if (value === undefined || value === null) return null
    if (!isObject(value)) throw new Invalid([{ type: 'model_type', loc: ['body', 'stream_options'], msg: 'Input should be a valid dictionary or instance of StreamOptions', input: value, ctx: { class_name: 'StreamOptions' } }])
    const includeUsage = value.include_usage === undefined ? true : coerce(value.include_usage, 'bool', true, ['body', 'stream_options', 'include_usage'])
    const continuous = value.continuous_usage_stats === undefined ? false : coerce(value.continuous_usage_stats, 'bool', true, ['body', 'stream_options', 'continuous_usage_stats'])
    return { includeUsage: includeUsage === true, continuous: continuous === true }
  })
  field('structured_outputs', () => validateStructuredOutputs(structured))
  field('response_format', () => validateResponseFormat(data.response_format))
  if (typeof fields.seed === 'number' && (BigInt(fields.seed) > INT64_MAX || BigInt(fields.seed) < -INT64_MAX - 1n)) {
    errors.push({ type: fields.seed > 0 ? 'less_than_equal' : 'greater_than_equal', loc: ['body', 'seed'], msg: fields.seed > 0 ? 'Input should be less than or equal to 9223372036854775807' : 'Input should be greater than or equal to -9223372036854775808', input: data.seed })
  }
  if (typeof fields.truncate_prompt_tokens === 'number' && fields.truncate_prompt_tokens < -1) {
    errors.push({ type: 'greater_than_equal', loc: ['body', 'truncate_prompt_tokens'], msg: 'Input should be greater than or equal to -1', input: data.truncate_prompt_tokens, ctx: { ge: -1 } })
  }
  if (errors.length > 0) throw new Invalid(errors)

  const get = <T>(name: string, fallback: T): T => (fields[name] === undefined || fields[name] === null ? fallback : fields[name] as T)
  const streamOptions = fields.stream_options as { includeUsage: boolean, continuous: boolean } | null
  const stream = get('stream', false)
  // api_utils.py should_include_usage (no --enable-force-include-usage)
  const includeUsage = streamOptions !== null && streamOptions.includeUsage
  return {
    prompts: fields.prompt as Parsed['prompts'],
    // `max_tokens: null` is None: get_max_tokens then leaves the whole context
    maxTokens: 'max_tokens' in data ? (fields.max_tokens as number | null) : 16,
    n: get('n', 1),
    stream,
    includeUsage,
    continuousUsage: includeUsage && streamOptions.continuous,
    stop: fields.stop as string[],
    stopTokenIds: get('stop_token_ids', [] as number[]),
    includeStopStrInOutput: get('include_stop_str_in_output', false),
    ignoreEos: get('ignore_eos', false),
    minTokens: get('min_tokens', 0),
    skipSpecialTokens: get('skip_special_tokens', true),
    addSpecialTokens: get('add_special_tokens', true),
    echo: get('echo', false),
    returnTokenIds: get('return_token_ids', false),
    model: get<string | null>('model', null),
    suffix: get<string | null>('suffix', null),
    truncatePromptTokens: get<number | null>('truncate_prompt_tokens', null),
    temperature: get<number | null>('temperature', null),
    topP: get<number | null>('top_p', null),
    topK: get<number | null>('top_k', null),
    minP: get<number | null>('min_p', null),
    presencePenalty: get<number | null>('presence_penalty', null),
    frequencyPenalty: get<number | null>('frequency_penalty', null),
    repetitionPenalty: get<number | null>('repetition_penalty', null),
    logprobs: get<number | null>('logprobs', null),
    promptLogprobs: get<number | null>('prompt_logprobs', null),
    useBeamSearch: get('use_beam_search', false)
  }
}

/** prompt: list[int >= 0] | list[list[int >= 0]] | str | list[str] | None (each list prompt is one request). */
function parsePrompt (prompt: unknown): Parsed['prompts'] {
  if (typeof prompt === 'string') return [{ kind: 'text', text: prompt }]
  const isId = (item: unknown): item is number => typeof item === 'number' && Number.isInteger(item) && item >= 0
  if (Array.isArray(prompt)) {
    if (prompt.length > 0 && prompt.every(isId)) return [{ kind: 'ids', ids: prompt }]
    if (prompt.length > 0 && prompt.every((item) => Array.isArray(item) && item.every(isId))) return (prompt as number[][]).map((ids) => ({ kind: 'ids', ids }))
    if (prompt.every((item) => typeof item === 'string')) return (prompt as string[]).map((text) => ({ kind: 'text', text }))
  }
  const loc = (member: string): Array<string | number> => ['body', 'prompt', member]
  if (!Array.isArray(prompt)) {
    throw new Invalid([
      { type: 'list_type', loc: loc('list[constrained-int]'), msg: 'Input should be a valid list', input: prompt },
      { type: 'list_type', loc: loc('list[list[constrained-int]]'), msg: 'Input should be a valid list', input: prompt },
      { type: 'string_type', loc: loc('str'), msg: 'Input should be a valid string', input: prompt },
      { type: 'list_type', loc: loc('list[str]'), msg: 'Input should be a valid list', input: prompt }
    ])
  }
  const errors: PydanticError[] = []
  prompt.forEach((item, index) => {
    if (!isId(item)) errors.push({ type: typeof item === 'number' && Number.isInteger(item) ? 'greater_than_equal' : 'int_type', loc: [...loc('list[constrained-int]'), index], msg: typeof item === 'number' && Number.isInteger(item) ? 'Input should be greater than or equal to 0' : 'Input should be a valid integer', input: item })
  })
  prompt.forEach((item, index) => {
    if (typeof item !== 'string') errors.push({ type: 'string_type', loc: [...loc('list[str]'), index], msg: 'Input should be a valid string', input: item })
  })
  errors.push({ type: 'string_type', loc: loc('str'), msg: 'Input should be a valid string', input: prompt })
  throw new Invalid(errors)
}

const STRUCTURED_KINDS = ['json', 'regex', 'choice', 'grammar', 'json_object', 'structural_tag'] as const

/** sampling_params.py StructuredOutputsParams (a pydantic dataclass; extra keys ignored). */
function validateStructuredOutputs (value: unknown): Record<string, unknown> | null {
  if (value === undefined || value === null) return null
  const loc = ['body', 'structured_outputs']
  if (!isObject(value)) throw new Invalid([{ type: 'dataclass_type', loc, msg: 'Input should be a dictionary or an instance of StructuredOutputsParams', input: value, ctx: { class_name: 'StructuredOutputsParams' } }])
  const errors: PydanticError[] = []
  const check = (name: string, run: () => unknown): void => {
    if (value[name] === undefined || value[name] === null) return
    try {
      run()
    } catch (error) {
      if (error instanceof Invalid) errors.push(...error.errors)
      else throw error
    }
  }
  check('json', () => {
    if (typeof value.json !== 'string' && !isObject(value.json)) {
      throw new Invalid([
        { type: 'string_type', loc: [...loc, 'json', 'str'], msg: 'Input should be a valid string', input: value.json },
        { type: 'dict_type', loc: [...loc, 'json', 'dict[any,any]'], msg: 'Input should be a valid dictionary', input: value.json }
      ])
    }
  })
  check('regex', () => coerce(value.regex, 'str', true, [...loc, 'regex']))
  check('choice', () => coerce(value.choice, 'strList', true, [...loc, 'choice']))
  check('grammar', () => coerce(value.grammar, 'str', true, [...loc, 'grammar']))
  check('json_object', () => coerce(value.json_object, 'bool', true, [...loc, 'json_object']))
  check('structural_tag', () => coerce(value.structural_tag, 'str', true, [...loc, 'structural_tag']))
  for (const name of ['disable_fallback', 'disable_any_whitespace', 'disable_additional_properties']) check(name, () => coerce(value[name], 'bool', false, [...loc, name]))
  check('whitespace_pattern', () => coerce(value.whitespace_pattern, 'str', true, [...loc, 'whitespace_pattern']))
  if (errors.length > 0) throw new Invalid(errors)
  const set = STRUCTURED_KINDS.filter((name) => value[name] !== undefined && value[name] !== null)
  if (set.length > 1) {
    // __post_init__: ValueError at the field, the message carrying self.__dict__
    const dict: Record<string, unknown> = {}
    for (const name of STRUCTURED_KINDS) dict[name] = value[name] ?? null
    dict.disable_fallback = value.disable_fallback ?? false
    dict.disable_any_whitespace = value.disable_any_whitespace ?? false
    dict.disable_additional_properties = value.disable_additional_properties ?? false
    dict.whitespace_pattern = value.whitespace_pattern ?? null
    dict._backend = null
    dict._backend_was_auto = false
    const message = `You can only use one kind of structured outputs constraint but multiple are specified: ${pyRepr(dict)}`
    throw new Invalid([{ type: 'value_error', loc, msg: `Value error, ${message}`, input: value, ctx: { error: new PyValueError(message) } }])
  }
  return value
}

/** response_format: ResponseFormat | StructuralTagResponseFormat. */
function validateResponseFormat (value: unknown): unknown {
  if (value === undefined || value === null) return null
  const loc = ['body', 'response_format']
  if (!isObject(value)) {
    throw new Invalid([
      { type: 'model_type', loc: [...loc, 'ResponseFormat'], msg: 'Input should be a valid dictionary or instance of ResponseFormat', input: value, ctx: { class_name: 'ResponseFormat' } },
      { type: 'model_type', loc: [...loc, 'StructuralTagResponseFormat'], msg: 'Input should be a valid dictionary or instance of StructuralTagResponseFormat', input: value, ctx: { class_name: 'StructuralTagResponseFormat' } }
    ])
  }
  if (value.type === 'text' || value.type === 'json_object' || value.type === 'json_schema' || value.type === 'structural_tag') return value
  throw new Invalid([
    { type: 'literal_error', loc: [...loc, 'ResponseFormat', 'type'], msg: "Input should be 'text', 'json_object' or 'json_schema'", input: value.type, ctx: { expected: "'text', 'json_object' or 'json_schema'" } },
    { type: 'literal_error', loc: [...loc, 'StructuralTagResponseFormat', 'type'], msg: "Input should be 'structural_tag'", input: value.type, ctx: { expected: "'structural_tag'" } }
  ])
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isTruthy (value: unknown): boolean {
  // Python truthiness of a JSON value
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false
  if (Array.isArray(value)) return value.length > 0
  if (isObject(value)) return Object.keys(value).length > 0
  return true
}

function pyErrorRepr (error: PydanticError): string {
  const parts = [`'type': ${pyRepr(error.type)}`, `'loc': (${error.loc.map(pyRepr).join(', ')}${error.loc.length === 1 ? ',' : ''})`, `'msg': ${pyRepr(error.msg)}`, `'input': ${pyRepr(error.input)}`]
  if (error.ctx !== undefined) parts.push(`'ctx': ${pyRepr(error.ctx)}`)
  return `{${parts.join(', ')}}`
}

/** Python's repr() of a JSON-decoded value. */
function pyRepr (value: unknown): string {
  if (value === null || value === undefined) return 'None'
  if (value === true) return 'True'
  if (value === false) return 'False'
  if (typeof value === 'number') return Number.isInteger(value) && !Object.is(value, -0) ? String(value) : pyFloat(value)
  if (typeof value === 'string') return pyStr(value)
  if (value instanceof PyValueError) return `ValueError(${pyStr(value.message)})`
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`
  if (isObject(value)) return `{${Object.entries(value).map(([key, item]) => `${pyStr(key)}: ${pyRepr(item)}`).join(', ')}}`
  return String(value)
}

function pyFloat (value: number): string {
  if (Number.isNaN(value)) return 'nan'
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf'
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return `${value}.0`
  return String(value)
}

function pyStr (text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'"
  let out = quote
  for (const char of text) {
    if (char === '\\') out += '\\\\'
    else if (char === quote) out += `\\${quote}`
    else if (char === '\n') out += '\\n'
    else if (char === '\r') out += '\\r'
    else if (char === '\t') out += '\\t'
    else if (char < ' ') out += `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`
    else out += char
  }
  return out + quote
}

/** Python's json.dumps() defaults: ", " and ": " separators, non-ASCII escaped. */
function pythonJsonDumps (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`
  if (isObject(value)) return `{${Object.entries(value).map(([key, item]) => `${asciiJson(key)}: ${pythonJsonDumps(item)}`).join(', ')}}`
  if (typeof value === 'string') return asciiJson(value)
  return JSON.stringify(value ?? null)
}

function asciiJson (text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
