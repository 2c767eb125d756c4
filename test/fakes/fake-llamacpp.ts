/**
 * A fake llama.cpp server (`llama-server`) for tests: a real loopback HTTP server
 * (node:http only) that speaks llama-server's wire protocol, while the "model" says
 * whatever the test scripted. It knows nothing of the gateway.
 *
 * Protocol reference: ggml-org/llama.cpp, tools/server/ as stored in the source index:
 * server.cpp @ 00dd0816 (route table, ex_wrapper: invalid_argument -> 400, any other
 * exception -> 500 server_error), server-http.cpp @ 00dd0816 (middlewares: the
 * "Loading model" 503 runs before the API-key check and covers every route; public
 * paths /health /v1/health /models /v1/models /; `Authorization: Bearer <key>` or
 * `X-Api-Key`; the 401 and 404 bodies; chunked SSE), server-context.cpp @ 001d906a
 * (handle_completions_impl: string prompts tokenised with add_special=true and
 * parse_special=true; in a stream the first error is a plain HTTP error, later ones are
 * `data: {"error":{...}}` and the stream ends without `[DONE]`; /props, /v1/models,
 * /tokenize, /detokenize, /health shapes; send_final_response: stream final content ""),
 * server-schema.cpp @ 0177c342 (request fields: n_predict with aliases
 * max_completion_tokens and max_tokens, hard limits and their "Field '...'" messages,
 * stop, json_schema/grammar, n_cmpl alias n; no response_format on /v1/completions),
 * server-task.cpp @ 00efb3e1 (OAI completion final/partial JSON, usage, stop_type_to_str,
 * task_params::to_json) and server-common.cpp (format_error_response, format_oai_sse,
 * tokenize_input_prompts messages). process_token/find_stopping_strings (stop words
 * removed, partial-stop holding, the EOS piece rendered without special text) follow
 * server-context.cpp as well.
 *
 * Older llama-server builds (before the server-http.cpp refactor, 2025) framed an
 * in-stream error as `error: {"code":..,"message":..,"type":..}\n\n` followed by
 * `data: [DONE]\n\n`; `legacyStreamErrors: true` reproduces that.
 *
 * Deliberate simplifications: one scripted reply serves every prompt/choice of a request;
 * lengths are UTF-16 units, not bytes; `parse_special: false` on /tokenize is ignored;
 * nlohmann's parse-error texts are abridged; /props default_generation_settings carries
 * the only_metrics field set with llama-server's CLI defaults; timings are synthetic.
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DEFAULT_FAKE_ENGINE_TOKENS } from './fake-engine.js'
import type { FakeEngine, FakeEngineCall, FakeEngineOptions, FakeEngineReply, FakeEngineToken } from './fake-engine.js'
import { FakeTokenizer } from './fake-tokenizer.js'
import type { FakeToken } from './fake-tokenizer.js'

export interface FakeLlamacppOptions extends FakeEngineOptions {
  /** The server answers the "Loading model" 503 on every route for this long after start (default 0). */
  loadingMs?: number
  /** `--parallel` (the /props total_slots and the `n` limit); llama-server's auto default is 4. */
  totalSlots?: number
  /** `--special`: render special tokens' text in the output (default false, as llama-server). */
  special?: boolean
  /** llama_build_info(), the `system_fingerprint` and /props build_info. */
  buildInfo?: string
  /** Frame in-stream errors as older builds did: `error: {...}` then `data: [DONE]`. */
  legacyStreamErrors?: boolean
}

export interface FakeLlamacpp extends FakeEngine {
  readonly engine: 'llamacpp'
  /** Puts the server into (or out of) its loading state: every route answers the 503. */
  setLoading (loading: boolean): void
}

type StopType = 'none' | 'eos' | 'word' | 'limit'

interface ScriptToken { text: string, special: boolean, id: number, eog: boolean }

interface TokenEvent { text: string, id: number }

interface Generation {
  events: TokenEvent[]
  content: string
  stop: StopType
  stoppingWord: string
  truncated: boolean
  nDecoded: number
}

interface Task {
  index: number
  prompt: FakeToken[]
  cached: number
}

interface Params {
  stream: boolean
  nPredict: number
  stop: string[]
  nCmpl: number
  cachePrompt: boolean
  returnTokens: boolean
  settings: Record<string, unknown>
}

interface CallState {
  call: FakeEngineCall
  response: ServerResponse
  finished: boolean
  timer: NodeJS.Timeout | undefined
}

class RequestError extends Error {
  readonly type: ErrorType
  constructor (message: string, type: ErrorType) {
    super(message)
    this.type = type
  }
}

type ErrorType = 'invalid_request_error' | 'authentication_error' | 'server_error' | 'not_found_error' | 'permission_error' | 'unavailable_error' | 'not_supported_error' | 'exceed_context_size_error'

const ERROR_CODES: Record<ErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  server_error: 500,
  not_found_error: 404,
  permission_error: 403,
  unavailable_error: 503,
  not_supported_error: 501,
  exceed_context_size_error: 400
}

const JSON_TYPE = 'application/json; charset=utf-8'
const INT32_MAX = 2_147_483_647
const LLAMA_DEFAULT_SEED = 4_294_967_295
// server-http.cpp get_public_endpoints (the web UI assets aside)
const PUBLIC_PATHS = new Set(['/health', '/v1/health', '/models', '/v1/models', '/'])

/** format_error_response: {code, message, type} in that order. */
function errorJson (message: string, type: ErrorType, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { code: ERROR_CODES[type], message, type, ...extra }
}

function typeForStatus (status: number): ErrorType {
  for (const [type, code] of Object.entries(ERROR_CODES) as Array<[ErrorType, number]>) if (code === status) return type
  return 'server_error'
}

export async function startFakeLlamacpp (options: FakeLlamacppOptions = {}): Promise<FakeLlamacpp> {
  const modelPath = options.modelPath ?? '/models/llama-3.2-1b-instruct-q4_k_m.gguf'
  const modelName = options.servedModelName ?? modelPath
  const nCtx = options.maxModelLen ?? 4096
  const totalSlots = options.totalSlots ?? 4
  const special = options.special === true
  const buildInfo = options.buildInfo ?? 'b7100-fake0000'
  const legacyStreamErrors = options.legacyStreamErrors === true
  const tokenizer = new FakeTokenizer(options.tokenizer)
  const chatTemplate = options.chatTemplate ?? ''
  const guardAll = options.guardAllRoutes === true && options.requiredToken !== undefined
  let loadingUntil = Date.now() + (options.loadingMs ?? 0)
  let loadingForced = false

  const calls: FakeEngineCall[] = []
  const requests: string[] = []
  const states: CallState[] = []
  const active = new Set<CallState>()
  const queued: FakeEngineReply[] = []
  let defaultReply: FakeEngineReply | ((call: FakeEngineCall) => FakeEngineReply) = { kind: 'tokens', tokens: [...DEFAULT_FAKE_ENGINE_TOKENS] }
  const abortWaiters = new Map<number, Array<(error?: Error) => void>>()
  // the texts behind every id the fake has handed out, for /detokenize
  const pieces = new Map<number, string>()
  // one slot's KV cache: the previous prompt, for cache_prompt's prompt_tokens_details.cached_tokens
  let slotCache: FakeToken[] = []
  let closing = false

  const defaultSettings = (): Record<string, unknown> => ({
    // task_params::to_json(only_metrics = true) with common_params_sampling defaults
    seed: LLAMA_DEFAULT_SEED,
    temperature: 0.8,
    dynatemp_range: 0,
    dynatemp_exponent: 1,
    top_k: 40,
    top_p: 0.95,
    min_p: 0.05,
    top_n_sigma: -1,
    xtc_probability: 0,
    xtc_threshold: 0.1,
    typical_p: 1,
    repeat_last_n: 64,
    repeat_penalty: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    dry_multiplier: 0,
    dry_base: 1.75,
    dry_allowed_length: 2,
    dry_penalty_last_n: -1,
    mirostat: 0,
    mirostat_tau: 5,
    mirostat_eta: 0.1,
    max_tokens: -1,
    n_predict: -1,
    n_keep: 0,
    n_discard: 0,
    ignore_eos: false,
    stream: false,
    n_probs: 0,
    min_keep: 0,
    chat_format: 'Content-only',
    reasoning_format: 'auto',
    samplers: ['penalties', 'dry', 'top_n_sigma', 'top_k', 'typ_p', 'top_p', 'min_p', 'xtc', 'temperature'],
    timings_per_token: false,
    post_sampling_probs: false,
    lora: []
  })

  function remember (tokens: ReadonlyArray<{ id: number, text: string }>): void {
    for (const token of tokens) pieces.set(token.id, token.text)
  }

  function isLoading (): boolean {
    return loadingForced || Date.now() < loadingUntil
  }

  function settleWaiters (index: number, error?: Error): void {
    const waiters = abortWaiters.get(index)
    if (waiters === undefined) return
    abortWaiters.delete(index)
    for (const settle of waiters) settle(error)
  }

  function finish (state: CallState): void {
    if (state.finished) return
    state.finished = true
    active.delete(state)
    if (state.timer !== undefined) clearTimeout(state.timer)
    state.timer = undefined
    if (!state.call.aborted) settleWaiters(states.indexOf(state), new Error(`fake llama.cpp call ${states.indexOf(state)} completed without an abort`))
  }

  function onClose (state: CallState): void {
    if (state.finished) return
    // the connection went away before the reply was complete: the client hung up, and
    // llama-server's should_stop() cancels the task
    if (!closing) state.call.aborted = true
    state.finished = true
    active.delete(state)
    if (state.timer !== undefined) clearTimeout(state.timer)
    state.timer = undefined
    settleWaiters(states.indexOf(state), closing ? new Error('fake llama.cpp closed') : undefined)
  }

  function nextReply (call: FakeEngineCall): FakeEngineReply {
    const once = queued.shift()
    if (once !== undefined) return once
    return typeof defaultReply === 'function' ? defaultReply(call) : defaultReply
  }

  function scriptToken (token: FakeEngineToken): ScriptToken {
    const text = typeof token === 'string' ? token : token.text
    const isSpecial = typeof token === 'string' ? false : token.special === true
    const id = tokenizer.idOf(text)
    pieces.set(id, text)
    return { text, special: isSpecial, id, eog: isSpecial && text === tokenizer.eosToken }
  }

  function script (tokens: readonly FakeEngineToken[], endWithEos: boolean): ScriptToken[] {
    const prepared = tokens.map(scriptToken)
    if (endWithEos) prepared.push({ text: tokenizer.eosToken, special: true, id: tokenizer.eos.id, eog: true })
    return prepared
  }

  /** process_token over the script, for one slot. */
  function generate (tokens: ScriptToken[], params: Params, promptLength: number): Generation {
    let text = ''
    let nSent = 0
    let nDecoded = 0
    let stop: StopType = 'none'
    let stoppingWord = ''
    let truncated = false
    const events: TokenEvent[] = []
    if (params.nPredict === 0) return { events, content: '', stop: 'limit', stoppingWord, truncated, nDecoded }
    for (const token of tokens) {
      nDecoded++
      // common_token_to_piece(ctx, tok, accept_special_token): special text only with --special
      const piece = token.special && !special ? '' : token.text
      text += piece
      let hasNext = true
      let pos = Math.min(nSent, text.length)
      const test = text.slice(pos)
      let sendText = true
      const full = findStoppingStrings(params.stop, test, piece.length, true)
      if (full.pos !== -1) {
        text = text.slice(0, pos + full.pos)
        pos = Math.min(nSent, text.length)
        stop = 'word'
        stoppingWord = full.word
        hasNext = false
      } else if (!token.eog) {
        sendText = findStoppingStrings(params.stop, test, piece.length, false).pos === -1
      }
      let toSend = ''
      if (sendText) {
        toSend = text.slice(pos)
        nSent += toSend.length
      }
      events.push({ text: toSend, id: token.id })
      // context shift is off by default: the slot stops when the context is full
      if (hasNext && promptLength + nDecoded >= nCtx) {
        truncated = true
        stop = 'limit'
        hasNext = false
      }
      if (hasNext && params.nPredict !== -1 && params.nPredict - nDecoded <= 0) {
        stop = 'limit'
        hasNext = false
      }
      if (token.eog) {
        stop = 'eos'
        hasNext = false
      }
      if (!hasNext) break
    }
    // the script ran out without EOS: the fake's "length"
    if (stop === 'none') stop = 'limit'
    return { events, content: text, stop, stoppingWord, truncated, nDecoded }
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: errorJson(String(error), 'server_error') })
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
    response.setHeader('Server', 'llama.cpp')
    response.setHeader('Access-Control-Allow-Origin', request.headers.origin ?? '')

    if (guardAll && request.headers.authorization !== `Bearer ${options.requiredToken!}`) {
      request.resume()
      sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
      return
    }
    // server-http.cpp pre-routing handler: OPTIONS, then the loading state, then the API key
    if (method === 'OPTIONS') {
      request.resume()
      response.writeHead(200, {
        'Access-Control-Allow-Credentials': 'true',
        'Access-Control-Allow-Methods': 'GET, POST',
        'Access-Control-Allow-Headers': '*',
        'Content-Type': 'text/html',
        'Content-Length': 0
      })
      response.end()
      return
    }
    if (isLoading()) {
      request.resume()
      sendJson(response, 503, { error: { message: 'Loading model', type: 'unavailable_error', code: 503 } })
      return
    }
    if (options.requiredToken !== undefined && !PUBLIC_PATHS.has(path) && !apiKeyValid(request, options.requiredToken)) {
      request.resume()
      sendJson(response, 401, { error: { message: 'Invalid API Key', type: 'authentication_error', code: 401 } })
      return
    }

    const route = `${method} ${path}`
    switch (route) {
      case 'GET /health':
      case 'GET /v1/health':
        request.resume()
        return sendJson(response, 200, { status: 'ok' })
      case 'GET /models':
      case 'GET /v1/models':
        request.resume()
        return sendJson(response, 200, modelsBody())
      case 'GET /props':
        request.resume()
        return sendJson(response, 200, propsBody())
      case 'POST /props':
        request.resume()
        return sendError(response, errorJson('This server does not support changing global properties. Start it with `--props`', 'not_supported_error'))
      case 'POST /tokenize':
      case 'POST /detokenize':
      case 'POST /completion':
      case 'POST /completions':
      case 'POST /v1/completions':
        break
      default:
        request.resume()
        // httplib finds no handler; the error handler writes this body
        return sendJson(response, 404, { error: { message: 'File Not Found', type: 'not_found_error', code: 404 } })
    }

    const raw = await readBody(request)
    let body: unknown
    let parseError: string | undefined
    try {
      body = JSON.parse(raw)
    } catch (error) {
      parseError = raw.trim() === ''
        ? '[json.exception.parse_error.101] parse error at line 1, column 1: attempting to parse an empty input; check that your input string or stream contains the expected input'
        : `[json.exception.parse_error.101] parse error: syntax error while parsing value - ${(error as Error).message}`
    }

    if (path === '/tokenize' || path === '/detokenize') {
      // json::parse outside any try: ex_wrapper turns it into a 500 server_error
      if (parseError !== undefined) return sendError(response, errorJson(parseError, 'server_error'))
      return path === '/tokenize' ? tokenizeRoute(response, body) : detokenizeRoute(response, body)
    }

    const call: FakeEngineCall = { path, method, headers: request.headers, body, aborted: false, tokensSent: 0, promptTokens: [] }
    const state: CallState = { call, response, finished: false, timer: undefined }
    calls.push(call)
    states.push(state)
    response.on('close', () => onClose(state))
    if (parseError !== undefined) {
      sendError(response, errorJson(parseError, 'server_error'))
      return finish(state)
    }
    completions(state, body, path === '/v1/completions')
  }

  function apiKeyValid (request: IncomingMessage, key: string): boolean {
    let given = request.headers.authorization ?? ''
    if (given === '') {
      const alt = request.headers['x-api-key']
      given = typeof alt === 'string' ? alt : ''
    }
    if (given.startsWith('Bearer ')) given = given.slice('Bearer '.length)
    return given === key
  }

  function modelsBody (): unknown {
    // get_res_models: the ollama-style `models` list, then the OpenAI `data` list
    return {
      models: [{
        name: modelName,
        model: modelName,
        modified_at: '',
        size: '',
        digest: '',
        type: 'model',
        description: '',
        tags: [''],
        capabilities: ['completion'],
        parameters: '',
        details: { parent_model: '', format: 'gguf', family: '', families: [''], parameter_size: '', quantization_level: '' }
      }],
      object: 'list',
      data: [{
        id: modelName,
        aliases: options.servedModelName === undefined ? [] : [options.servedModelName],
        tags: [],
        object: 'model',
        created: nowSeconds(),
        owned_by: 'llamacpp',
        meta: {
          vocab_type: 2,
          n_vocab: 128256,
          n_ctx: nCtx,
          n_ctx_train: 131072,
          n_embd: 2048,
          n_params: 1235814432,
          size: 799862912,
          ftype: 'Q4_K - Medium'
        }
      }]
    }
  }

  function propsBody (): unknown {
    return {
      default_generation_settings: { params: defaultSettings(), n_ctx: nCtx },
      total_slots: totalSlots,
      model_alias: modelName,
      model_ftype: 'Q4_K - Medium',
      model_path: modelPath,
      modalities: { vision: false, video: false, audio: false },
      media_marker: '<__media__>',
      endpoint_slots: true,
      endpoint_props: false,
      endpoint_metrics: false,
      ui: true,
      ui_settings: {},
      chat_template: chatTemplate,
      chat_template_caps: {},
      bos_token: tokenizer.bosToken ?? '',
      eos_token: tokenizer.eosToken,
      build_info: buildInfo,
      is_sleeping: false,
      cors_proxy_enabled: false
    }
  }

  function tokenizeRoute (response: ServerResponse, body: unknown): void {
    const data = isObject(body) ? body : {}
    let tokens: unknown[] = []
    if ('content' in data) {
      try {
        const addSpecial = boolField(data, 'add_special', false)
        boolField(data, 'parse_special', true)
        const withPieces = boolField(data, 'with_pieces', false)
        const content = data.content
        if (typeof content !== 'string') throw new RequestError('[json.exception.type_error.302] type must be string, but is ' + jsonTypeName(content), 'server_error')
        const encoded = tokenizer.encode(content, addSpecial)
        remember(encoded)
        tokens = withPieces ? encoded.map((token) => ({ id: token.id, piece: token.text })) : encoded.map((token) => token.id)
      } catch (error) {
        return sendError(response, errorJson((error as Error).message, 'server_error'))
      }
    }
    sendJson(response, 200, { tokens })
  }

  function detokenizeRoute (response: ServerResponse, body: unknown): void {
    const data = isObject(body) ? body : {}
    let content = ''
    if ('tokens' in data) {
      if (!Array.isArray(data.tokens) || !data.tokens.every((id) => Number.isInteger(id))) {
        return sendError(response, errorJson('[json.exception.type_error.302] type must be number, but is ' + jsonTypeName(data.tokens), 'server_error'))
      }
      // tokens_to_str: common_token_to_piece with special=true
      content = (data.tokens as number[]).map((id) => pieces.get(id) ?? '').join('')
    }
    sendJson(response, 200, { content })
  }

  function tokenizePrompt (prompt: unknown): FakeToken[][] {
    // tokenize_input_prompts(vocab, mctx, prompt, add_special=true, parse_special=true)
    const mixed = (value: unknown): FakeToken[] | undefined => {
      if (typeof value === 'string') return tokenizer.encode(value, true)
      if (Array.isArray(value) && value.every((part) => typeof part === 'string' || Number.isInteger(part))) {
        const out: FakeToken[] = []
        value.forEach((part, index) => {
          if (typeof part === 'string') out.push(...tokenizer.encode(part, index === 0))
          else out.push({ id: part as number, text: pieces.get(part as number) ?? '', special: (part as number) < 1000, start: 0, stop: 0 })
        })
        return out
      }
      return undefined
    }
    if (typeof prompt === 'string' || (Array.isArray(prompt) && prompt.every((part) => Number.isInteger(part)))) return [mixed(prompt)!]
    if (Array.isArray(prompt) && prompt.length > 0) {
      if (prompt.some((part) => typeof part === 'string') && prompt.every((part) => typeof part === 'string' || Number.isInteger(part)) && prompt.some((part) => Number.isInteger(part))) return [mixed(prompt)!]
      return prompt.map((part) => {
        const tokens = mixed(part)
        if (tokens === undefined) throw new RequestError('element of "prompt" must be a string, a list of tokens, or a list of mixed strings & tokens', 'invalid_request_error')
        return tokens
      })
    }
    throw new RequestError('"prompt" must be a string, a list of tokens, a list of mixed strings & tokens, or a list of prompts', 'invalid_request_error')
  }

  /** server_schema::eval_llama_cmpl_schema, for the fields the fake models. */
  function parseParams (data: Record<string, unknown>): Params {
    const settings = defaultSettings()
    const stream = fieldBool(data, ['stream'], false)
    const streamOptions = data.stream_options
    if (isObject(streamOptions)) fieldBool(streamOptions, ['include_usage'], false)
    const cachePrompt = fieldBool(data, ['cache_prompt'], true)
    const returnTokens = fieldBool(data, ['return_tokens'], false)
    fieldBool(data, ['return_progress'], false)
    const nPredict = fieldInt(data, ['n_predict', 'max_completion_tokens', 'max_tokens'], -1, [-1, INT32_MAX])
    fieldInt(data, ['n_indent'], 0, [0, INT32_MAX])
    const nKeep = fieldInt(data, ['n_keep'], 0, [-1, INT32_MAX])
    const nCmpl = fieldInt(data, ['n_cmpl', 'n'], 1, [1, totalSlots])
    settings.top_k = fieldNumber(data, 'top_k', settings.top_k as number, [0, INT32_MAX], true)
    settings.top_p = fieldNumber(data, 'top_p', settings.top_p as number, [0, 1])
    settings.min_p = fieldNumber(data, 'min_p', settings.min_p as number, [0, 1])
    settings.typical_p = fieldNumber(data, 'typical_p', settings.typical_p as number)
    settings.temperature = fieldNumber(data, 'temperature', settings.temperature as number, [0, Infinity])
    settings.repeat_last_n = fieldInt(data, ['repeat_last_n'], settings.repeat_last_n as number, [0, INT32_MAX])
    settings.repeat_penalty = fieldNumber(data, 'repeat_penalty', settings.repeat_penalty as number)
    settings.frequency_penalty = fieldNumber(data, 'frequency_penalty', settings.frequency_penalty as number)
    settings.presence_penalty = fieldNumber(data, 'presence_penalty', settings.presence_penalty as number)
    settings.seed = fieldNumber(data, 'seed', settings.seed as number)
    settings.n_probs = fieldNumber(data, 'n_probs', settings.n_probs as number, undefined, false, 'logprobs')
    let stop: string[] = []
    if (has(data, 'stop')) {
      const value = data.stop
      if (Array.isArray(value)) {
        for (const word of value) {
          if (typeof word !== 'string') throw new RequestError(`Field 'stop': [json.exception.type_error.302] type must be string, but is ${jsonTypeName(word)}`, 'invalid_request_error')
          if (word !== '') stop.push(word)
        }
      } else if (typeof value === 'string') {
        stop = [value]
      }
    }
    // json_schema (an object; json_value falls back to {} otherwise) becomes a grammar via
    // json_schema_to_grammar; the fake accepts it and the test reads it from call.body.
    // response_format is not a field of this schema: /v1/completions ignores it.
    Object.assign(settings, { max_tokens: nPredict, n_predict: nPredict, n_keep: nKeep, stream, stop })
    return { stream, nPredict, stop, nCmpl, cachePrompt, returnTokens, settings }
  }

  function completions (state: CallState, body: unknown, oai: boolean): void {
    const response = state.response
    let tasks: Task[]
    let params: Params
    try {
      if (!isObject(body)) throw new RequestError(`[json.exception.type_error.304] cannot use at() with ${jsonTypeName(body)}`, 'invalid_request_error')
      if (!('prompt' in body)) throw new RequestError("[json.exception.out_of_range.403] key 'prompt' not found", 'invalid_request_error')
      const prompts = tokenizePrompt(body.prompt)
      params = parseParams(body)
      tasks = []
      for (const prompt of prompts) {
        for (let copy = 0; copy < params.nCmpl; copy++) tasks.push({ index: tasks.length, prompt, cached: 0 })
      }
    } catch (error) {
      const failure = error instanceof RequestError ? error : new RequestError(String(error), 'invalid_request_error')
      sendError(response, errorJson(failure.message, failure.type === 'server_error' ? 'invalid_request_error' : failure.type))
      return finish(state)
    }
    const first = tasks[0]!
    state.call.promptTokens = first.prompt
    remember(first.prompt)
    // launch_slot / update_slots: a prompt that does not fit the slot's context is refused
    for (const task of tasks) {
      if (task.prompt.length >= nCtx) {
        sendError(response, errorJson(`request (${task.prompt.length} tokens) exceeds the available context size (${nCtx} tokens), try increasing it`, 'exceed_context_size_error', { n_prompt_tokens: task.prompt.length, n_ctx: nCtx }))
        return finish(state)
      }
    }
    for (const task of tasks) {
      if (params.cachePrompt) {
        let common = 0
        while (common < slotCache.length && common < task.prompt.length && slotCache[common]!.id === task.prompt[common]!.id) common++
        // at least one prompt token is always evaluated
        task.cached = Math.min(common, task.prompt.length - 1)
      }
      slotCache = task.prompt
    }

    const reply = nextReply(state.call)
    if (reply.kind === 'status') {
      const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
      response.writeHead(reply.status, { 'Content-Type': typeof reply.body === 'string' ? 'text/plain' : JSON_TYPE, ...reply.headers, 'Content-Length': Buffer.byteLength(text) })
      response.end(text)
      return finish(state)
    }
    active.add(state)
    if (reply.kind === 'hang') return
    const completionId = `chatcmpl-${randomString()}`
    const created = nowSeconds()

    if (reply.kind === 'stream-error' || reply.kind === 'drop') {
      const tokens = script(reply.tokens ?? DEFAULT_FAKE_ENGINE_TOKENS, false)
      const sent: ScriptToken[] = []
      for (let index = 0; index < reply.afterTokens && tokens.length > 0; index++) sent.push(tokens[index % tokens.length]!)
      const errorStatus = reply.kind === 'stream-error' ? (reply.status ?? 500) : 500
      const error = reply.kind === 'stream-error' ? { ...errorJson(reply.message, typeForStatus(errorStatus)), code: errorStatus } : undefined
      if (!params.stream) {
        state.timer = setTimeout(() => {
          state.timer = undefined
          if (error === undefined) {
            finish(state)
            response.socket?.destroy()
            return
          }
          sendError(response, error)
          finish(state)
        }, 0)
        return
      }
      startStream(response)
      const frames = sent.map((token, index) => ({ frame: chunk(oai, first, { text: token.special && !special ? '' : token.text, id: token.id }, index + 1, completionId, created), token: true }))
      if (error !== undefined) {
        frames.push({ frame: legacyStreamErrors ? `error: ${JSON.stringify(error)}\n\n${oai ? 'data: [DONE]\n\n' : ''}` : `data: ${JSON.stringify({ error })}\n\n`, token: false })
      }
      return pace(state, frames, { drop: reply.kind === 'drop', delayMs: 0, firstTokenDelayMs: 0 })
    }

    const tokens = script(reply.tokens, reply.endWithEos !== false)
    const generations = tasks.map((task) => generate(tokens, params, task.prompt.length))
    const delayMs = reply.delayMs ?? 0
    const firstTokenDelayMs = reply.firstTokenDelayMs ?? delayMs
    if (!params.stream) {
      const body = tasks.map((task, index) => finalJson(oai, task, generations[index]!, params, false, completionId, created))
      let result: Record<string, unknown>
      if (body.length === 1 || !oai) {
        result = body.length === 1 ? body[0]! : body as unknown as Record<string, unknown>
      } else {
        // several OAI results: the first object gets every choice
        result = body[0]!
        result.choices = body.flatMap((item) => item.choices as unknown[])
      }
      const total = firstTokenDelayMs + delayMs * Math.max(0, Math.max(...generations.map((g) => g.events.length)) - 1)
      const send = (): void => {
        state.timer = undefined
        state.call.tokensSent = generations.reduce((sum, g) => sum + g.events.length, 0)
        sendJson(response, 200, result)
        finish(state)
      }
      if (total > 0) state.timer = setTimeout(send, total)
      else send()
      return
    }
    startStream(response)
    const frames: Array<{ frame: string, token: boolean }> = []
    tasks.forEach((task, index) => {
      const generation = generations[index]!
      generation.events.forEach((event, n) => frames.push({ frame: chunk(oai, task, event, n + 1, completionId, created), token: true }))
    })
    tasks.forEach((task, index) => {
      const final = finalJson(oai, task, generations[index]!, params, true, completionId, created)
      frames.push({ frame: `data: ${JSON.stringify(final)}\n\n`, token: false })
    })
    // the OAI routes end with [DONE]; the native /completion stream just ends
    if (oai) frames.push({ frame: 'data: [DONE]\n\n', token: false })
    pace(state, frames, { drop: false, delayMs, firstTokenDelayMs })
  }

  function startStream (response: ServerResponse): void {
    // process_handler_response: status, X-Accel-Buffering, chunked text/event-stream
    response.writeHead(200, { 'Content-Type': 'text/event-stream', 'X-Accel-Buffering': 'no' })
    response.flushHeaders()
  }

  function chunk (oai: boolean, task: Task, event: TokenEvent, nDecoded: number, id: string, created: number): string {
    if (oai) {
      // server_task_result_cmpl_partial::to_json_oaicompat
      return `data: ${JSON.stringify({
        choices: [{ text: event.text, index: task.index, logprobs: null, finish_reason: null }],
        created,
        model: modelName,
        system_fingerprint: buildInfo,
        object: 'text_completion',
        id
      })}\n\n`
    }
    // to_json_non_oaicompat of a partial result
    return `data: ${JSON.stringify({
      index: task.index,
      content: event.text,
      tokens: [event.id],
      stop: false,
      id_slot: 0,
      tokens_predicted: nDecoded,
      tokens_evaluated: task.prompt.length
    })}\n\n`
  }

  function timings (task: Task, generation: Generation): Record<string, number> {
    const promptN = task.prompt.length - task.cached
    const predictedN = generation.nDecoded
    return {
      cache_n: task.cached,
      prompt_n: promptN,
      prompt_ms: promptN * 0.5,
      prompt_per_token_ms: 0.5,
      prompt_per_second: 2000,
      predicted_n: predictedN,
      predicted_ms: predictedN * 10,
      predicted_per_token_ms: 10,
      predicted_per_second: 100
    }
  }

  function finalJson (oai: boolean, task: Task, generation: Generation, params: Params, stream: boolean, id: string, created: number): Record<string, unknown> {
    // send_final_response: in a stream the content was already sent in the partials
    const content = stream ? '' : generation.content
    const nPrompt = task.prompt.length
    if (oai) {
      // server_task_result_cmpl_final::to_json_oaicompat: no stop_type/stopping_word here
      return {
        choices: [{ text: content, index: task.index, logprobs: null, finish_reason: generation.stop === 'word' || generation.stop === 'eos' ? 'stop' : 'length' }],
        created,
        model: modelName,
        system_fingerprint: buildInfo,
        object: 'text_completion',
        usage: {
          completion_tokens: generation.nDecoded,
          prompt_tokens: nPrompt,
          total_tokens: generation.nDecoded + nPrompt,
          prompt_tokens_details: { cached_tokens: task.cached }
        },
        id,
        timings: timings(task, generation)
      }
    }
    return {
      index: task.index,
      content,
      tokens: stream || !params.returnTokens ? [] : generation.events.map((event) => event.id),
      id_slot: 0,
      stop: true,
      model: modelName,
      tokens_predicted: generation.nDecoded,
      tokens_evaluated: nPrompt,
      generation_settings: params.settings,
      prompt: tokenizer.decode(task.prompt, false),
      has_new_line: generation.content.includes('\n'),
      truncated: generation.truncated,
      stop_type: generation.stop,
      stopping_word: generation.stoppingWord,
      tokens_cached: nPrompt + generation.nDecoded,
      timings: timings(task, generation)
    }
  }

  function pace (state: CallState, frames: Array<{ frame: string, token: boolean }>, pacing: { drop: boolean, delayMs: number, firstTokenDelayMs: number }): void {
    const response = state.response
    const close = (): void => {
      if (pacing.drop) {
        finish(state)
        response.socket?.destroy()
      } else {
        response.end()
        finish(state)
      }
    }
    let next = 0
    const step = (): void => {
      state.timer = undefined
      if (state.finished) return
      // without pacing, everything goes out in one write
      const batch = pacing.delayMs === 0 ? frames.length - next : 1
      let payload = ''
      for (let index = 0; index < batch && next < frames.length; index++) {
        const frame = frames[next++]!
        if (frame.token) state.call.tokensSent++
        payload += frame.frame
      }
      if (next >= frames.length) {
        if (payload === '') return close()
        response.write(payload, close)
        return
      }
      response.write(payload)
      state.timer = setTimeout(step, pacing.delayMs)
    }
    if (pacing.firstTokenDelayMs > 0) state.timer = setTimeout(step, pacing.firstTokenDelayMs)
    else step()
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const address = server.address() as AddressInfo

  return {
    engine: 'llamacpp',
    url: `http://127.0.0.1:${address.port}`,
    calls,
    requests,
    reply (reply) {
      defaultReply = reply
    },
    replyOnce (reply) {
      queued.push(reply)
    },
    setLoading (loading) {
      loadingForced = loading
      if (!loading) loadingUntil = 0
    },
    async waitForAbort (callIndex, timeoutMs = 5000) {
      const state = states[callIndex]
      if (state?.call.aborted === true) return
      if (state?.finished === true) throw new Error(`fake llama.cpp call ${callIndex} completed without an abort`)
      await new Promise<void>((resolve, reject) => {
        const settle = (error?: Error): void => {
          clearTimeout(timer)
          if (error === undefined) resolve()
          else reject(error)
        }
        const timer = setTimeout(() => {
          const waiters = abortWaiters.get(callIndex)
          if (waiters !== undefined) waiters.splice(waiters.indexOf(settle), 1)
          reject(new Error(`fake llama.cpp call ${callIndex} was not aborted within ${timeoutMs} ms`))
        }, timeoutMs)
        const waiters = abortWaiters.get(callIndex) ?? []
        waiters.push(settle)
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
      for (const index of [...abortWaiters.keys()]) settleWaiters(index, new Error('fake llama.cpp closed'))
    }
  }
}

/**
 * find_stopping_strings: a full stop word is searched from where the last token could
 * have started it; a partial one is a prefix of a stop word at the very end of the text.
 */
function findStoppingStrings (words: string[], text: string, lastTokenSize: number, full: boolean): { pos: number, word: string } {
  let best = -1
  let bestWord = ''
  for (const word of words) {
    let pos: number
    if (full) {
      const span = word.length + lastTokenSize
      pos = text.indexOf(word, text.length > span ? text.length - span : 0)
    } else {
      pos = findPartialStop(word, text)
    }
    if (pos !== -1 && (best === -1 || pos < best)) {
      best = pos
      bestWord = word
    }
  }
  return { pos: best, word: bestWord }
}

function findPartialStop (stop: string, text: string): number {
  if (text === '' || stop === '') return -1
  const last = text[text.length - 1]
  for (let index = stop.length - 1; index >= 0; index--) {
    if (stop[index] === last) {
      const partial = stop.slice(0, index + 1)
      if (text.endsWith(partial)) return text.length - index - 1
    }
  }
  return -1
}

function has (data: Record<string, unknown>, name: string): boolean {
  return name in data && data[name] !== null
}

function fieldBool (data: Record<string, unknown>, names: string[], fallback: boolean): boolean {
  for (const name of names) {
    if (!has(data, name)) continue
    const value = data[name]
    if (typeof value !== 'boolean') throw new RequestError(`Field '${name}': [json.exception.type_error.302] type must be boolean, but is ${jsonTypeName(value)}`, 'invalid_request_error')
    return value
  }
  return fallback
}

function fieldInt (data: Record<string, unknown>, names: string[], fallback: number, hard: [number, number]): number {
  for (const name of names) {
    if (!has(data, name)) continue
    const value = data[name]
    if (typeof value !== 'number') throw new RequestError(`Field '${name}': [json.exception.type_error.302] type must be number, but is ${jsonTypeName(value)}`, 'invalid_request_error')
    const truncated = Math.trunc(value)
    if (truncated < hard[0] || truncated > hard[1]) {
      throw new RequestError(`Field '${name}': Value must be between ${hard[0]} <= value <= ${hard[1]}, but got ${truncated}`, 'invalid_request_error')
    }
    return truncated
  }
  return fallback
}

/** A soft-limited field_num: out-of-range values are clamped, not refused. */
function fieldNumber (data: Record<string, unknown>, name: string, fallback: number, limits?: [number, number], integer = false, alias?: string): number {
  for (const key of alias === undefined ? [name] : [name, alias]) {
    if (!has(data, key)) continue
    const value = data[key]
    if (typeof value !== 'number') throw new RequestError(`Field '${key}': [json.exception.type_error.302] type must be number, but is ${jsonTypeName(value)}`, 'invalid_request_error')
    const number = integer ? Math.trunc(value) : value
    return limits === undefined ? number : Math.max(limits[0], Math.min(limits[1], number))
  }
  return fallback
}

function boolField (data: Record<string, unknown>, name: string, fallback: boolean): boolean {
  // json_value: a value of the wrong type falls back to the default
  const value = data[name]
  return typeof value === 'boolean' ? value : fallback
}

function jsonTypeName (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'object') return 'object'
  if (typeof value === 'boolean') return 'boolean'
  return typeof value
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

function randomString (): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
  let value = ''
  for (let index = 0; index < 24; index++) value += alphabet[Math.floor(Math.random() * alphabet.length)]
  return value
}

function sendJson (response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(text) })
  response.end(text)
}

/** server_res_generator::error: the status is the error's code. */
function sendError (response: ServerResponse, error: Record<string, unknown>): void {
  sendJson(response, typeof error.code === 'number' ? error.code : 500, { error })
}

async function readBody (request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of request) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
