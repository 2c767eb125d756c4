/**
 * A fake Hugging Face Text Generation Inference (TGI) server for tests: a real
 * loopback HTTP server (node:http only) that speaks TGI's wire protocol, while the
 * "model" says whatever the test scripted. It knows nothing of the gateway.
 *
 * Protocol reference: huggingface/text-generation-inference at db931fcf (3.3.6-dev0):
 * router/src/server.rs (routes, headers, SSE; `completions` for /v1/completions),
 * router/src/lib.rs (JSON shapes and field order), router/src/validation.rs (checks, their order and messages),
 * router/src/infer/mod.rs (error texts and types), server/text_generation_server/
 * utils/tokens.py (stopping criteria), and axum 0.7.9 (SSE framing, JSON rejections).
 *
 * Deliberate simplifications: one "generation" is computed up front from the
 * script (stop sequences, max_new_tokens and eos applied exactly like TGI), then
 * paced out; grammar/adapter_id/watermark are accepted and ignored; serde's
 * rejection texts carry no "at line L column C" suffix. On /v1/completions one reply
 * serves every prompt of the request, and choices come back in prompt order (TGI
 * collects them in completion order).
 */
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { FakeTokenizer, type FakeToken, type FakeTokenizerOptions } from './fake-tokenizer.js'

export interface FakeTgiToken { text: string, special?: boolean }

type ScriptToken = string | FakeTgiToken

export type FakeTgiReply =
  /**
   * The model's tokens in order. max_new_tokens and stop sequences cut them exactly like
   * TGI; when they run out the model emits eos (`</s>`, special) unless `endWithEos` is
   * false, in which case the last token ends the generation with finish reason `length`.
   * `firstTokenDelayMs` (default `delayMs`) passes before the first token, `delayMs`
   * (default 0) between tokens.
   */
  | { kind: 'tokens', tokens: ScriptToken[], delayMs?: number, firstTokenDelayMs?: number, endWithEos?: boolean }
  /** A plain HTTP reply, on streams too (for servers that do not behave like TGI). */
  | { kind: 'status', status: number, body: unknown, headers?: Record<string, string> }
  /**
   * A stream that sends `afterTokens` tokens (from `tokens`, default the default script,
   * cycled) then TGI's error event (on /v1/completions the OpenAI-style one, then
   * `[DONE]`). Without streaming it is the matching JSON error status (generation 424,
   * overloaded 429, validation 422, anything else 500).
   */
  | { kind: 'stream-error', afterTokens: number, message: string, errorType?: string, tokens?: ScriptToken[], delayMs?: number }
  /** Accept the request and never answer (the connection stays open). */
  | { kind: 'hang' }
  /** Send `afterTokens` stream tokens, then destroy the socket (without streaming: no reply at all). */
  | { kind: 'drop', afterTokens: number, tokens?: ScriptToken[], delayMs?: number }

export interface FakeTgiOptions {
  modelId?: string
  /** Info.max_stop_sequences and the validation limit (TGI's launcher default: 4). */
  maxStopSequences?: number
  /** Default 4095. */
  maxInputTokens?: number
  /** Default 4096. */
  maxTotalTokens?: number
  /** Default 2 (launcher default). */
  maxBestOf?: number
  /** Default 5 (launcher default). */
  maxTopNTokens?: number
  /** Concurrent generations before 429 "Model is overloaded" (launcher default: 128). */
  maxConcurrentRequests?: number
  /**
   * The prompt's token count (x-prompt-tokens, details.input_length, validation).
   * Default: the number of whitespace-separated words (`'Hello big world'` is 3).
   */
  tokenize?: (prompt: string) => number
  /**
   * The model's tokenizer. TGI tokenises every prompt with add_special_tokens
   * (GenerateRequest.add_special_tokens is `serde(skip)`: clients cannot turn it
   * off), so a prompt starting with the BOS text is fed with two BOS tokens;
   * each call's `promptTokens` records what the model was fed. When set,
   * /tokenize answers this tokenizer's tokens (else one token per word).
   */
  tokenizer?: FakeTokenizerOptions
  /** When set, every route answers 401 without `Authorization: Bearer <it>` (Inference Endpoint behaviour). */
  requiredToken?: string
  port?: number
  /** TGI's `COMPUTE_TYPE` env, echoed in `x-compute-type`; default 'gpu+optimized' as in server.rs. */
  computeType?: string
  /**
   * TGI >= 2.0.5 (axum 0.7) frames events as `data: {...}`; older TGI (axum 0.6) as
   * `data:{...}` with no space. Default false (current framing).
   */
  legacySseFraming?: boolean
  /** Idle interval after which the stream gets axum's keep-alive comment `:\n\n` (default 15000 ms). */
  sseKeepAliveMs?: number
}

export interface FakeTgiCall {
  path: string
  method: string
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON; undefined when the body was not JSON. */
  body: any
  /** The client closed the connection before the reply finished. */
  aborted: boolean
  /** Token events written (stream) or tokens returned (/generate). */
  tokensSent: number
  /** The tokens the model was fed for `inputs` (the tokenizer's encode with special tokens); empty on routes without `inputs`. */
  promptTokens: FakeToken[]
}

export interface FakeTgi {
  /** http://127.0.0.1:PORT */
  url: string
  /** Generation calls only: POST /generate, /generate_stream, / (TGI's compat route) and /v1/completions. */
  calls: FakeTgiCall[]
  /** The reply for later calls (after any queued replyOnce). */
  reply (reply: FakeTgiReply | ((call: FakeTgiCall) => FakeTgiReply)): void
  /** Queues a reply for the next call only (FIFO, before the default). */
  replyOnce (reply: FakeTgiReply): void
  /** Resolves once that call's client disconnected mid-reply; rejects on timeout (default 5000 ms) or if the call completed. */
  waitForAbort (callIndex: number, timeoutMs?: number): Promise<void>
  /** Generations still running (neither finished nor aborted), hanging calls included. */
  activeGenerations (): number
  /** How many POST /tokenize calls were answered. */
  tokenizeCalls (): number
  /** How many GET /info calls were answered (the gateway's readiness probe). */
  infoCalls (): number
  /** Closes the server and destroys open sockets. */
  close (): Promise<void>
}

export const DEFAULT_FAKE_TGI_TOKENS: readonly string[] = ['Hello', '!', ' How', ' can', ' I', ' help', '?']

const TGI_VERSION = '3.3.6-dev0'
// launcher default; server.rs completions rejects more prompts than this
const MAX_CLIENT_BATCH_SIZE = 4
const EOS_TEXT = '</s>'
const EOS_ID = 2
// validation.rs: requests are generated in chunks of at most this many new tokens,
// and the max_total_tokens check uses the chunk, not the requested max_new_tokens
const DEFAULT_GENERATION_LENGTH = 1024
// router payload_limit default (2 MB), enforced by axum's DefaultBodyLimit
const PAYLOAD_LIMIT = 2_000_000
// tokens.py StoppingCriteria: the stop buffer is cut to its last 200 chars past 300
const STOP_BUFFER_MAX = 300
const STOP_BUFFER_KEEP = 200

type FinishReason = 'length' | 'eos_token' | 'stop_sequence'

/** One SSE event; a function renders at write time (the OpenAI routes stamp `created` per event). */
interface StreamEvent {
  frame: string | (() => string)
  /** Counts as a token sent. */
  token: boolean
}

interface PreparedToken {
  text: string
  special: boolean
  eos: boolean
  id: number
  logprob: number
  /** `{"id":..,"text":..,"logprob":..,"special":..}` in lib.rs Token field order. */
  json: string
}

interface ValidRequest {
  inputs: string
  inputLength: number
  maxNewTokens: number
  stop: string[]
  details: boolean
  decoderInputDetails: boolean
  returnFullText: boolean
  seed: number | null
  topNTokens: number
  bestOf: number
}

interface Generation {
  tokens: PreparedToken[]
  finishReason: FinishReason
  /** Special tokens are left out (TGI decodes with skip_special_tokens=True). */
  text: string
}

interface CallState {
  call: FakeTgiCall
  response: ServerResponse
  finished: boolean
  active: boolean
  timer: NodeJS.Timeout | undefined
  keepAlive: NodeJS.Timeout | undefined
}

type ParseResult =
  | { ok: true, inputs: string, parameters: Record<string, unknown>, parametersGiven: boolean, stream: boolean }
  | { ok: false, status: number, text: string }

type GenerateRequest = Extract<ParseResult, { ok: true }>

/** lib.rs CompletionRequest, after serde. */
interface CompletionRequest {
  prompts: string[]
  maxTokens: number | undefined
  temperature: number | undefined
  topP: number | undefined
  stream: boolean
  seed: number | undefined
  suffix: string | undefined
  repetitionPenalty: number | undefined
  frequencyPenalty: number | undefined
  stop: string[] | undefined
}

type CompletionParseResult =
  | { ok: true, request: CompletionRequest }
  | { ok: false, status: number, text: string }

class ValidationFailure extends Error {}

export async function startFakeTgi (options: FakeTgiOptions = {}): Promise<FakeTgi> {
  const modelId = options.modelId ?? 'fake-org/fake-model'
  const maxStopSequences = options.maxStopSequences ?? 4
  const maxInputTokens = options.maxInputTokens ?? 4095
  const maxTotalTokens = options.maxTotalTokens ?? 4096
  const maxBestOf = options.maxBestOf ?? 2
  const maxTopNTokens = options.maxTopNTokens ?? 5
  const maxConcurrentRequests = options.maxConcurrentRequests ?? 128
  const tokenize = options.tokenize ?? countWords
  const tokenizer = new FakeTokenizer(options.tokenizer)
  const computeType = options.computeType ?? 'gpu+optimized'
  const dataPrefix = options.legacySseFraming === true ? 'data:' : 'data: '
  const keepAliveMs = options.sseKeepAliveMs ?? 15_000
  const expectedAuthorization = options.requiredToken === undefined ? undefined : `Bearer ${options.requiredToken}`

  // lib.rs Info, in its field order; the router's defaults where the fake has no say
  const infoBody = JSON.stringify({
    model_id: modelId,
    model_sha: null,
    model_pipeline_tag: 'text-generation',
    max_concurrent_requests: maxConcurrentRequests,
    max_best_of: maxBestOf,
    max_stop_sequences: maxStopSequences,
    max_input_tokens: maxInputTokens,
    max_total_tokens: maxTotalTokens,
    validation_workers: 2,
    max_client_batch_size: MAX_CLIENT_BATCH_SIZE,
    router: 'text-generation-router',
    version: TGI_VERSION,
    sha: null,
    docker_label: null
  })

  const calls: FakeTgiCall[] = []
  let tokenizeCalls = 0
  let infoCalls = 0
  const states: CallState[] = []
  const active = new Set<CallState>()
  const queued: FakeTgiReply[] = []
  const defaultScript: ScriptToken[] = [...DEFAULT_FAKE_TGI_TOKENS]
  let defaultReply: FakeTgiReply | ((call: FakeTgiCall) => FakeTgiReply) = { kind: 'tokens', tokens: defaultScript }
  const abortWaiters = new Map<number, Array<{ settle: (error?: Error) => void }>>()
  const preparedScripts = new WeakMap<ScriptToken[], PreparedToken[]>()
  let closing = false

  function settleWaiters (index: number, error?: Error): void {
    const waiters = abortWaiters.get(index)
    if (waiters === undefined) return
    abortWaiters.delete(index)
    for (const waiter of waiters) waiter.settle(error)
  }

  function stopTimers (state: CallState): void {
    if (state.timer !== undefined) clearTimeout(state.timer)
    if (state.keepAlive !== undefined) clearTimeout(state.keepAlive)
    state.timer = undefined
    state.keepAlive = undefined
  }

  function finish (state: CallState): void {
    if (state.finished) return
    state.finished = true
    active.delete(state)
    stopTimers(state)
    const index = states.indexOf(state)
    if (!state.call.aborted) settleWaiters(index, new Error(`fake TGI call ${index} completed without an abort`))
  }

  function onClose (state: CallState): void {
    if (state.finished) return
    // the connection went away before the reply was complete: the client hung up
    // (unless the fake itself is shutting down, which is nobody's abort)
    if (!closing) state.call.aborted = true
    state.finished = true
    active.delete(state)
    stopTimers(state)
    settleWaiters(states.indexOf(state), closing ? new Error('fake TGI closed') : undefined)
  }

  function prepare (script: ScriptToken[]): PreparedToken[] {
    let prepared = preparedScripts.get(script)
    if (prepared === undefined) {
      prepared = script.map((token) => typeof token === 'string' ? makeToken(token, false) : makeToken(token.text, token.special === true))
      preparedScripts.set(script, prepared)
    }
    return prepared
  }

  function nextReply (call: FakeTgiCall): FakeTgiReply {
    const once = queued.shift()
    if (once !== undefined) return once
    return typeof defaultReply === 'function' ? defaultReply(call) : defaultReply
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) sendJson(response, 500, { error: String(error), error_type: 'fake_tgi' })
      else response.destroy()
    })
  })
  // a gateway keeps upstream connections alive; do not let Node drop them under it
  server.keepAliveTimeout = 65_000

  async function handle (request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? '/'
    const queryStart = url.indexOf('?')
    const path = queryStart === -1 ? url : url.slice(0, queryStart)
    const method = request.method ?? 'GET'

    if (expectedAuthorization !== undefined && request.headers.authorization !== expectedAuthorization) {
      request.resume()
      sendJson(response, 401, { error: 'Invalid credentials in Authorization header' })
      return
    }

    const isGeneration = path === '/generate' || path === '/generate_stream' || path === '/v1/completions'
    if (method === 'GET') {
      request.resume()
      if (path === '/info') {
        infoCalls++
        return sendRawJson(response, 200, infoBody)
      }
      // server.rs routes GET /, /health and /ping to `health`, which answers 200 with an empty body
      if (path === '/health' || path === '/ping' || path === '/') return sendEmpty(response, 200)
      if (isGeneration) return sendEmpty(response, 405, { allow: 'POST' })
      return sendEmpty(response, 404)
    }
    if (method === 'POST' && path === '/tokenize') {
      // server.rs tokenize: `[{id, text, start, stop}, ...]` for the inputs (no generation).
      const raw = await readBody(request)
      let inputs: unknown
      try {
        inputs = raw === undefined ? undefined : (JSON.parse(raw) as { inputs?: unknown }).inputs
      } catch {}
      if (typeof inputs !== 'string') return sendText(response, 422, 'Failed to deserialize the JSON body into the target type: missing field `inputs`')
      tokenizeCalls++
      if (options.tokenizer !== undefined) {
        // server.rs tokenize: offsets into the inputs; an added BOS has none (text "").
        return sendRawJson(response, 200, JSON.stringify(tokenizer.encode(inputs, true).map((token) => ({ id: token.id, text: inputs.slice(token.start, token.stop), start: token.start, stop: token.stop }))))
      }
      const count = tokenize(inputs)
      return sendRawJson(response, 200, JSON.stringify(Array.from({ length: count }, (_, index) => ({ id: index, text: 'x', start: index, stop: index + 1 }))))
    }
    if (method !== 'POST' || !(isGeneration || path === '/')) {
      request.resume()
      if (path === '/info' || path === '/health') return sendEmpty(response, 405, { allow: 'GET,HEAD' })
      return sendEmpty(response, 404)
    }

    // axum's Json extractor checks the content type before reading the body
    if (!isJsonContentType(request.headers['content-type'])) {
      request.resume()
      return sendText(response, 415, 'Expected request with `Content-Type: application/json`')
    }
    const raw = await readBody(request)
    if (raw === undefined) return sendText(response, 413, 'Failed to buffer the request body: length limit exceeded')

    let parsed: unknown
    let parseError: string | undefined
    try {
      parsed = JSON.parse(raw)
    } catch (error) {
      parseError = (error as Error).message
    }
    const inputs = typeof (parsed as { inputs?: unknown } | undefined)?.inputs === 'string' ? (parsed as { inputs: string }).inputs : undefined
    const call: FakeTgiCall = { path, method, headers: request.headers, body: parsed, aborted: false, tokensSent: 0, promptTokens: inputs === undefined ? [] : tokenizer.encode(inputs, true) }
    const state: CallState = { call, response, finished: false, active: false, timer: undefined, keepAlive: undefined }
    calls.push(call)
    states.push(state)
    response.on('close', () => onClose(state))

    if (parseError !== undefined) {
      sendText(response, 400, `Failed to parse the request body as JSON: ${parseError}`)
      return finish(state)
    }
    if (path === '/v1/completions') return handleCompletions(state, parsed)
    const extracted = extractRequest(parsed, path === '/')
    if (!extracted.ok) {
      sendText(response, extracted.status, extracted.text)
      return finish(state)
    }
    const stream = path === '/generate_stream' || (path === '/' && extracted.stream)
    const reply = nextReply(call)
    if (reply.kind === 'status' || reply.kind === 'hang') return answerWithoutGeneration(state, reply)
    if (stream) return runStream(state, reply, extracted, path === '/')
    return runGenerate(state, reply, extracted, path === '/')
  }

  function answerWithoutGeneration (state: CallState, reply: Extract<FakeTgiReply, { kind: 'status' | 'hang' }>): void {
    if (reply.kind === 'hang') {
      state.active = true
      active.add(state)
      return
    }
    const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
    const headers: Record<string, string> = { 'content-type': typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...reply.headers }
    state.response.writeHead(reply.status, { ...headers, 'content-length': Buffer.byteLength(body) })
    state.response.end(body)
    finish(state)
  }

  /**
   * server.rs `completions` (TGI's OpenAI-style /v1/completions): each prompt becomes a
   * GenerateRequest with details on, do_sample off only for temperature 0, no
   * return_full_text (so the text is the generated part only, stop sequence kept).
   */
  function handleCompletions (state: CallState, body: unknown): void {
    const response = state.response
    const extracted = extractCompletionRequest(body)
    if (!extracted.ok) {
      sendText(response, extracted.status, extracted.text)
      return finish(state)
    }
    const request = extracted.request
    // these two answer JSON 422 even when streaming was asked for: nothing has streamed yet
    if (request.suffix !== undefined) {
      sendJson(response, 422, { error: 'Suffix is not supported and can be achieved by preprocessing the prompt.', error_type: 'suffix not supported' })
      return finish(state)
    }
    if (request.prompts.length > MAX_CLIENT_BATCH_SIZE) {
      sendJson(response, 422, { error: `Number of prompts exceeds the maximum allowed batch size of ${MAX_CLIENT_BATCH_SIZE}`, error_type: 'batch size exceeded' })
      return finish(state)
    }
    const generateRequests = request.prompts.map((prompt) => completionToGenerateRequest(prompt, request))
    const reply = nextReply(state.call)
    if (reply.kind === 'status' || reply.kind === 'hang') return answerWithoutGeneration(state, reply)
    if (request.stream) return runCompletionStream(state, reply, generateRequests)
    return runCompletion(state, reply, generateRequests)
  }

  function checkAndValidate (extracted: Extract<ParseResult, { ok: true }>, compat: boolean): ValidRequest {
    // infer/mod.rs: the concurrency permit is taken before validation
    if (active.size >= maxConcurrentRequests) throw new OverloadedFailure()
    return validate(extracted, compat, { maxStopSequences, maxInputTokens, maxTotalTokens, maxTopNTokens, tokenize })
  }

  function runGenerate (state: CallState, reply: Exclude<FakeTgiReply, { kind: 'status' | 'hang' }>, extracted: Extract<ParseResult, { ok: true }>, compat: boolean): void {
    const startedAt = performance.now()
    const response = state.response
    let valid: ValidRequest
    try {
      const bestOf = extracted.parameters.best_of
      // server.rs generate_internal: best_of > 1 goes through validate_best_of first
      if (typeof bestOf === 'number' && bestOf > 1) {
        if (maxBestOf === 1) throw new ValidationFailure('`best_of` != 1 is not allowed for this endpoint')
        if (bestOf > maxBestOf) throw new ValidationFailure(`\`best_of\` must be > 0 and <= ${maxBestOf}. Given: ${bestOf}`)
      }
      valid = checkAndValidate(extracted, compat)
    } catch (error) {
      sendInferError(response, error)
      return finish(state)
    }
    state.active = true
    active.add(state)
    if (reply.kind !== 'tokens') return failUnstreamed(state, reply)

    const generation = generate(prepare(reply.tokens), reply.endWithEos !== false, valid)
    const delayMs = reply.delayMs ?? 0
    const firstTokenDelayMs = reply.firstTokenDelayMs ?? delayMs
    const totalDelay = firstTokenDelayMs + delayMs * (generation.tokens.length - 1)
    const send = (): void => {
      state.timer = undefined
      if (state.finished) return
      const generatedTokens = generation.tokens.length
      const outputText = valid.returnFullText ? valid.inputs + generation.text : generation.text
      let details = ''
      if (valid.details || valid.decoderInputDetails) {
        const tokensJson = generation.tokens.map((token) => token.json).join(',')
        const seed = JSON.stringify(valid.seed)
        const prefill = valid.decoderInputDetails ? prefillJson(valid.inputs, valid.inputLength) : '[]'
        const topTokens = valid.topNTokens > 0 ? `,"top_tokens":[${generation.tokens.map((token) => topTokensJson(token, valid.topNTokens)).join(',')}]` : ''
        const sequence = `"finish_reason":"${generation.finishReason}","generated_tokens":${generatedTokens},"seed":${seed},"prefill":${prefill},"tokens":[${tokensJson}]`
        // lib.rs Details: best_of_sequences only with best_of > 1, top_tokens only when asked
        let bestOfSequences = ''
        if (valid.bestOf > 1) {
          const other = `{"generated_text":${JSON.stringify(outputText)},${sequence}${topTokens}}`
          bestOfSequences = `,"best_of_sequences":[${Array(valid.bestOf - 1).fill(other).join(',')}]`
        }
        details = `,"details":{${sequence}${bestOfSequences}${topTokens}}`
      }
      const single = `{"generated_text":${JSON.stringify(outputText)}${details}}`
      // the compat route wraps the answer in an array, "to match api-inference"
      const body = compat ? `[${single}]` : single
      const totalMs = performance.now() - startedAt
      response.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-compute-type': computeType,
        'x-compute-time': String(totalMs / 1000),
        'x-compute-characters': String(countCodePoints(valid.inputs)),
        'x-total-time': String(Math.floor(totalMs)),
        'x-validation-time': '0',
        'x-queue-time': '0',
        'x-inference-time': String(Math.floor(totalMs)),
        'x-time-per-token': String(Math.floor(totalMs / generatedTokens)),
        'x-prompt-tokens': String(valid.inputLength),
        'x-generated-tokens': String(generatedTokens)
      })
      response.end(body)
      state.call.tokensSent = generatedTokens
      finish(state)
    }
    if (totalDelay > 0) state.timer = setTimeout(send, totalDelay)
    else send()
  }

  /** A `drop` or `stream-error` reply to a request that did not ask for a stream. */
  function failUnstreamed (state: CallState, reply: Extract<FakeTgiReply, { kind: 'drop' | 'stream-error' }>): void {
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (reply.kind === 'drop') {
        // no reply at all: the socket just goes away
        finish(state)
        state.response.socket?.destroy()
        return
      }
      const errorType = reply.errorType ?? 'generation'
      sendJson(state.response, statusForErrorType(errorType), { error: reply.message, error_type: errorType })
      finish(state)
    }, (reply.delayMs ?? 0) * reply.afterTokens)
  }

  function runStream (state: CallState, reply: Exclude<FakeTgiReply, { kind: 'status' | 'hang' }>, extracted: Extract<ParseResult, { ok: true }>, compat: boolean): void {
    const response = state.response
    // server.rs generate_stream_internal: these headers, then axum's Sse ones; errors,
    // validation included, come later as events inside this 200 response
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-compute-type': computeType,
      'x-compute-characters': String(countCodePoints(extracted.inputs)),
      'x-accel-buffering': 'no'
    })
    response.flushHeaders()

    const failWith = (message: string, errorType: string): void => {
      response.end(`${dataPrefix}${JSON.stringify({ error: message, error_type: errorType })}\n\n`)
      finish(state)
    }
    const bestOf = extracted.parameters.best_of
    if (typeof bestOf === 'number' && bestOf !== 1) return failWith('Input validation error: `best_of` != 1 is not supported when streaming tokens', 'validation')
    if (extracted.parameters.decoder_input_details === true) return failWith('Input validation error: `decoder_input_details` == true is not supported when streaming tokens', 'validation')
    let valid: ValidRequest
    try {
      valid = checkAndValidate(extracted, compat)
    } catch (error) {
      const { message, errorType } = describeFailure(error)
      return failWith(message, errorType)
    }
    state.active = true
    active.add(state)

    let events: StreamEvent[]
    const delayMs = reply.delayMs ?? 0
    let firstTokenDelayMs = delayMs
    if (reply.kind === 'tokens') {
      firstTokenDelayMs = reply.firstTokenDelayMs ?? delayMs
      const generation = generate(prepare(reply.tokens), reply.endWithEos !== false, valid)
      events = streamEvents(generation, valid)
    } else {
      events = scriptedTokens(reply).map((token, index) => ({ frame: intermediateEvent(index + 1, token, valid.topNTokens), token: true }))
      if (reply.kind === 'stream-error') {
        events.push({ frame: `${dataPrefix}${JSON.stringify({ error: reply.message, error_type: reply.errorType ?? 'generation' })}\n\n`, token: false })
      }
    }
    paceStream(state, events, { drop: reply.kind === 'drop', delayMs, firstTokenDelayMs })
  }

  /** The first `afterTokens` tokens of a `drop`/`stream-error` script, cycled. */
  function scriptedTokens (reply: Extract<FakeTgiReply, { kind: 'drop' | 'stream-error' }>): PreparedToken[] {
    const script = prepare(reply.tokens ?? defaultScript)
    const tokens: PreparedToken[] = []
    for (let index = 0; index < reply.afterTokens; index++) {
      const token = script[index % script.length]
      if (token === undefined) break
      tokens.push(token)
    }
    return tokens
  }

  /**
   * Writes the events `delayMs` apart (the first after `firstTokenDelayMs`), then ends the
   * response with `trailer` right after the last one, or with `drop` destroys the socket.
   */
  function paceStream (state: CallState, events: StreamEvent[], pacing: { drop: boolean, delayMs: number, firstTokenDelayMs: number, trailer?: string }): void {
    const response = state.response
    const { drop, delayMs, firstTokenDelayMs } = pacing
    const trailer = pacing.trailer ?? ''
    const render = (event: StreamEvent): string => typeof event.frame === 'string' ? event.frame : event.frame()
    const close = (): void => {
      if (drop) {
        finish(state)
        response.socket?.destroy()
      } else {
        response.end(trailer)
        finish(state)
      }
    }
    if (delayMs === 0 && firstTokenDelayMs === 0) {
      // nothing to pace: one write keeps the fake cheap under benchmark load
      const payload = events.map(render).join('')
      state.call.tokensSent = events.filter((event) => event.token).length
      if (drop) {
        // let the tokens reach the client before the socket goes
        if (payload === '') close()
        else response.write(payload, close)
      } else {
        response.end(payload + trailer)
        finish(state)
      }
      return
    }

    const armKeepAlive = (): void => {
      if (keepAliveMs <= 0 || state.finished) return
      if (state.keepAlive === undefined) {
        state.keepAlive = setTimeout(function ping () {
          if (state.finished) return
          // axum KeepAlive::default(): a comment event after 15 s without events
          response.write(':\n\n')
          state.keepAlive = setTimeout(ping, keepAliveMs)
        }, keepAliveMs)
      } else {
        state.keepAlive.refresh()
      }
    }
    let next = 0
    const step = (): void => {
      state.timer = undefined
      if (state.finished) return
      const event = events[next]
      next++
      const last = next >= events.length
      if (event !== undefined) {
        if (event.token) state.call.tokensSent++
        if (last && drop) {
          response.write(render(event), close)
          return
        }
        response.write(render(event))
      }
      if (last) return close()
      armKeepAlive()
      state.timer = setTimeout(step, delayMs)
    }
    armKeepAlive()
    state.timer = setTimeout(step, firstTokenDelayMs)
  }

  function streamEvents (generation: Generation, valid: ValidRequest): StreamEvent[] {
    const events: StreamEvent[] = []
    const count = generation.tokens.length
    for (let index = 0; index < count - 1; index++) {
      const token = generation.tokens[index]
      if (token !== undefined) events.push({ frame: intermediateEvent(index + 1, token, valid.topNTokens), token: true })
    }
    const lastToken = generation.tokens[count - 1]
    if (lastToken !== undefined) {
      const outputText = valid.returnFullText ? valid.inputs + generation.text : generation.text
      // lib.rs StreamDetails; the stream carries details only when `details` was asked for
      const details = valid.details
        ? `{"finish_reason":"${generation.finishReason}","generated_tokens":${count},"seed":${JSON.stringify(valid.seed)},"input_length":${valid.inputLength}}`
        : 'null'
      const topTokens = valid.topNTokens > 0 ? `,"top_tokens":${topTokensJson(lastToken, valid.topNTokens)}` : ''
      events.push({ frame: `${dataPrefix}{"index":${count},"token":${lastToken.json}${topTokens},"generated_text":${JSON.stringify(outputText)},"details":${details}}\n\n`, token: true })
    }
    return events
  }

  function intermediateEvent (index: number, token: PreparedToken, topNTokens: number): string {
    // lib.rs StreamResponse field order; top_tokens is skipped when empty (not null)
    const topTokens = topNTokens > 0 ? `,"top_tokens":${topTokensJson(token, topNTokens)}` : ''
    return `${dataPrefix}{"index":${index},"token":${token.json}${topTokens},"generated_text":null,"details":null}\n\n`
  }

  // lib.rs CompletionFinal/Chunk: `#[serde(tag = "object")]` writes "object" first, then
  // the struct's fields in declaration order (Chunk has choices before model)
  const modelJson = JSON.stringify(modelId)
  // server.rs: "{version}-{docker_label or native}"
  const fingerprintJson = JSON.stringify(`${TGI_VERSION}-native`)

  function completionChoice (index: number, text: string, finishReason: string): string {
    // lib.rs CompletionComplete; logprobs is always None
    return `{"index":${index},"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":${JSON.stringify(finishReason)}}`
  }

  function completionFinal (created: number, choices: string[], promptTokens: number, completionTokens: number): string {
    return `{"object":"text_completion","id":"","created":${created},"model":${modelJson},"system_fingerprint":${fingerprintJson},"choices":[${choices.join(',')}],` +
      `"usage":{"prompt_tokens":${promptTokens},"completion_tokens":${completionTokens},"total_tokens":${promptTokens + completionTokens}}}`
  }

  function completionChunk (index: number, text: string): StreamEvent {
    // intermediate chunks carry finish_reason "" (String::new()), not null
    return {
      frame: () => `${dataPrefix}{"object":"text_completion","id":"","created":${nowSeconds()},"choices":[${completionChoice(index, text, '')}],"model":${modelJson},"system_fingerprint":${fingerprintJson}}\n\n`,
      token: true
    }
  }

  function openaiErrorEvent (message: string): StreamEvent {
    // infer/mod.rs into_openai_event: always 422, whatever the error was
    return { frame: `${dataPrefix}${JSON.stringify({ error: { message, http_status_code: 422 } })}\n\n`, token: false }
  }

  function runCompletion (state: CallState, reply: Exclude<FakeTgiReply, { kind: 'status' | 'hang' }>, requests: GenerateRequest[]): void {
    const startedAt = performance.now()
    // server.rs stamps `created` before generating
    const created = nowSeconds()
    const response = state.response
    let valid: ValidRequest[]
    try {
      valid = requests.map((request) => checkAndValidate(request, false))
    } catch (error) {
      // the first failing prompt fails the whole request, as generate_internal's error
      sendInferError(response, error)
      return finish(state)
    }
    state.active = true
    active.add(state)
    if (reply.kind !== 'tokens') return failUnstreamed(state, reply)

    const script = prepare(reply.tokens)
    const generations = valid.map((request) => generate(script, reply.endWithEos !== false, request))
    const delayMs = reply.delayMs ?? 0
    const firstTokenDelayMs = reply.firstTokenDelayMs ?? delayMs
    // the prompts generate side by side: the longest one decides
    const totalDelay = Math.max(...generations.map((generation) => firstTokenDelayMs + delayMs * (generation.tokens.length - 1)))
    const send = (): void => {
      state.timer = undefined
      if (state.finished) return
      const totalMs = Math.floor(performance.now() - startedAt)
      let promptTokens = 0
      let completionTokens = 0
      let timePerToken = 0
      let characters = 0
      const choices = generations.map((generation, index) => {
        const request = valid[index] as ValidRequest
        promptTokens += request.inputLength
        completionTokens += generation.tokens.length
        timePerToken += Math.floor(totalMs / generation.tokens.length)
        characters += countCodePoints(request.inputs)
        // the non-streamed answer says "stop" for eos (FinishReason::format(true))
        return completionChoice(index, generation.text, generation.finishReason === 'eos_token' ? 'stop' : generation.finishReason)
      })
      const body = completionFinal(created, choices, promptTokens, completionTokens)
      // server.rs sums generate_internal's headers as u32: x-compute-time (a float) does
      // not parse and is left out, as is x-accel-buffering
      response.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-compute-type': computeType,
        'x-compute-characters': String(characters),
        'x-total-time': String(totalMs * generations.length),
        'x-validation-time': '0',
        'x-queue-time': '0',
        'x-inference-time': String(totalMs * generations.length),
        'x-time-per-token': String(timePerToken),
        'x-prompt-tokens': String(promptTokens),
        'x-generated-tokens': String(completionTokens)
      })
      response.end(body)
      state.call.tokensSent = completionTokens
      finish(state)
    }
    if (totalDelay > 0) state.timer = setTimeout(send, totalDelay)
    else send()
  }

  function runCompletionStream (state: CallState, reply: Exclude<FakeTgiReply, { kind: 'status' | 'hang' }>, requests: GenerateRequest[]): void {
    const response = state.response
    // server.rs completions: the first prompt's x-compute-type and x-accel-buffering, the
    // summed x-compute-characters, then axum's Sse headers; errors come as events
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-compute-type': computeType,
      'x-compute-characters': String(requests.reduce((sum, request) => sum + countCodePoints(request.inputs), 0)),
      'x-accel-buffering': 'no'
    })
    response.flushHeaders()

    const delayMs = reply.delayMs ?? 0
    const firstTokenDelayMs = reply.kind === 'tokens' ? (reply.firstTokenDelayMs ?? delayMs) : delayMs
    let generating = false
    const perPrompt = requests.map((request, index): StreamEvent[] => {
      let valid: ValidRequest
      try {
        valid = checkAndValidate(request, false)
      } catch (error) {
        return [openaiErrorEvent(describeFailure(error).message)]
      }
      generating = true
      if (reply.kind !== 'tokens') {
        const events = scriptedTokens(reply).map((token) => completionChunk(index, token.text))
        if (reply.kind === 'stream-error') events.push(openaiErrorEvent(reply.message))
        return events
      }
      const generation = generate(prepare(reply.tokens), reply.endWithEos !== false, valid)
      const events = generation.tokens.slice(0, -1).map((token) => completionChunk(index, token.text))
      const last = generation.tokens.at(-1)
      if (last !== undefined) {
        // the last event is a CompletionFinal with usage; its text is the last token's,
        // special or not (eos shows up as "</s>"), and finish_reason is the plain
        // Display form: "eos_token", not "stop"
        const choice = completionChoice(index, last.text, generation.finishReason)
        events.push({ frame: () => `${dataPrefix}${completionFinal(nowSeconds(), [choice], valid.inputLength, generation.tokens.length)}\n\n`, token: true })
      }
      return events
    })
    if (generating) {
      state.active = true
      active.add(state)
    }
    // the router polls each prompt's channel in turn: one event from each per round
    const events: StreamEvent[] = []
    const longest = Math.max(...perPrompt.map((list) => list.length))
    for (let round = 0; round < longest; round++) {
      for (const list of perPrompt) {
        const event = list[round]
        if (event !== undefined) events.push(event)
      }
    }
    // after every prompt's stream, errors included, server.rs chains `data: [DONE]`;
    // validation errors come at once, with no generation to wait for
    paceStream(state, events, {
      drop: reply.kind === 'drop' && generating,
      delayMs: generating ? delayMs : 0,
      firstTokenDelayMs: generating ? firstTokenDelayMs : 0,
      trailer: `${dataPrefix}[DONE]\n\n`
    })
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
    calls,
    reply (reply) {
      defaultReply = reply
    },
    replyOnce (reply) {
      queued.push(reply)
    },
    async waitForAbort (callIndex, timeoutMs = 5000) {
      const state = states[callIndex]
      if (state?.call.aborted === true) return
      if (state?.finished === true) throw new Error(`fake TGI call ${callIndex} completed without an abort`)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const waiters = abortWaiters.get(callIndex)
          if (waiters !== undefined) waiters.splice(waiters.indexOf(waiter), 1)
          reject(new Error(`fake TGI call ${callIndex} was not aborted within ${timeoutMs} ms`))
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
    infoCalls () {
      return infoCalls
    },
    tokenizeCalls () {
      return tokenizeCalls
    },
    async close () {
      closing = true
      for (const state of states) stopTimers(state)
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      for (const index of [...abortWaiters.keys()]) settleWaiters(index, new Error('fake TGI closed'))
    }
  }
}

class OverloadedFailure extends Error {}

function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

// lib.rs CompletionRequest: Option<T> fields take null; `stream` is a plain bool
const COMPLETION_FIELDS: Record<string, { type: FieldType, nullable: boolean }> = {
  model: { type: 'string', nullable: true },
  max_tokens: { type: 'u32', nullable: true },
  temperature: { type: 'f32', nullable: true },
  top_p: { type: 'f32', nullable: true },
  stream: { type: 'bool', nullable: false },
  seed: { type: 'u64', nullable: true },
  suffix: { type: 'string', nullable: true },
  repetition_penalty: { type: 'f32', nullable: true },
  frequency_penalty: { type: 'f32', nullable: true },
  stop: { type: 'strings', nullable: true }
}

/** axum's Json extractor over lib.rs CompletionRequest: 422 text/plain serde messages. */
function extractCompletionRequest (body: unknown): CompletionParseResult {
  const rejection = (message: string): CompletionParseResult => ({ ok: false, status: 422, text: `Failed to deserialize the JSON body into the target type: ${message}` })
  if (!isObject(body)) return rejection(`invalid type: ${describeValue(body)}, expected struct CompletionRequest`)
  if (!('prompt' in body)) return rejection('missing field `prompt`')
  // lib.rs Prompt: an untagged string-or-strings, then TryFrom refuses an empty array
  let prompts: string[]
  if (typeof body.prompt === 'string') prompts = [body.prompt]
  else if (Array.isArray(body.prompt) && body.prompt.every((item) => typeof item === 'string')) prompts = body.prompt as string[]
  else return rejection('prompt: data did not match any variant of untagged enum PromptDeserializer')
  if (prompts.length === 0) return rejection('prompt: Empty array detected. Do not use an empty array for the prompt.')
  for (const [name, field] of Object.entries(COMPLETION_FIELDS)) {
    const value = body[name]
    if (value === undefined || (value === null && field.nullable)) continue
    const problem = checkField(value, field.type, name)
    if (problem !== undefined) return rejection(problem)
  }
  const number = (name: string): number | undefined => typeof body[name] === 'number' ? body[name] : undefined
  const string = (name: string): string | undefined => typeof body[name] === 'string' ? body[name] : undefined
  return {
    ok: true,
    request: {
      prompts,
      maxTokens: number('max_tokens'),
      temperature: number('temperature'),
      topP: number('top_p'),
      stream: body.stream === true,
      seed: number('seed'),
      suffix: string('suffix'),
      repetitionPenalty: number('repetition_penalty'),
      frequencyPenalty: number('frequency_penalty'),
      stop: Array.isArray(body.stop) ? body.stop as string[] : undefined
    }
  }
}

/**
 * server.rs completions builds this GenerateRequest per prompt; `model` only becomes an
 * adapter_id, which a model without LoRA adapters ignores.
 */
function completionToGenerateRequest (prompt: string, request: CompletionRequest): GenerateRequest {
  // "enable greedy only when temperature is 0"; otherwise always sampling
  const greedy = request.temperature === 0
  const parameters: Record<string, unknown> = { do_sample: !greedy, details: true, decoder_input_details: !request.stream }
  if (!greedy && request.temperature !== undefined) parameters.temperature = request.temperature
  if (request.repetitionPenalty !== undefined) parameters.repetition_penalty = request.repetitionPenalty
  if (request.frequencyPenalty !== undefined) parameters.frequency_penalty = request.frequencyPenalty
  if (request.topP !== undefined) parameters.top_p = request.topP
  if (request.maxTokens !== undefined) parameters.max_new_tokens = request.maxTokens
  if (request.stop !== undefined) parameters.stop = request.stop
  if (request.seed !== undefined) parameters.seed = request.seed
  return { ok: true, inputs: prompt, parameters, parametersGiven: true, stream: request.stream }
}

interface Limits {
  maxStopSequences: number
  maxInputTokens: number
  maxTotalTokens: number
  maxTopNTokens: number
  tokenize: (prompt: string) => number
}

/**
 * validation.rs `validate` and `validate_input`, in their order, with their messages.
 * Throws ValidationFailure (422 / `validation`).
 */
function validate (extracted: Extract<ParseResult, { ok: true }>, compat: boolean, limits: Limits): ValidRequest {
  const parameters = extracted.parameters
  const number = (name: string): number | undefined => {
    const value = parameters[name]
    return typeof value === 'number' ? value : undefined
  }
  // lib.rs default_parameters(): an absent `parameters` object means do_sample: true
  const doSample = extracted.parametersGiven ? parameters.do_sample === true : true
  const temperature = number('temperature')
  const topK = number('top_k')
  const topP = number('top_p')
  const typicalP = number('typical_p')
  const bestOf = number('best_of') ?? 1
  const sampling = doSample || temperature !== undefined || topK !== undefined || topP !== undefined || typicalP !== undefined
  if (bestOf > 1 && !sampling) throw new ValidationFailure('you must use sampling when `best_of` is > 1')
  if ((temperature ?? 1) <= 0) throw new ValidationFailure('`temperature` must be strictly positive')
  if ((number('repetition_penalty') ?? 1) <= 0) throw new ValidationFailure('`repetition_penalty` must be strictly positive')
  const frequencyPenalty = number('frequency_penalty') ?? 0
  if (frequencyPenalty < -2 || frequencyPenalty > 2) throw new ValidationFailure('`frequency_penalty` must be >= -2.0 and <= 2.0')
  if (topP !== undefined && (topP <= 0 || topP >= 1)) throw new ValidationFailure('`top_p` must be > 0.0 and < 1.0')
  if (typicalP !== undefined && (typicalP <= 0 || typicalP >= 1)) throw new ValidationFailure('`typical_p` must be > 0.0 and < 1.0')
  if (topK !== undefined && topK <= 0) throw new ValidationFailure('`top_k` must be strictly positive')
  const maxNewTokens = number('max_new_tokens')
  if (maxNewTokens === 0) throw new ValidationFailure('`max_new_tokens` must be strictly positive')
  const stop = (parameters.stop as string[] | undefined) ?? []
  if (stop.length > limits.maxStopSequences) throw new ValidationFailure(`\`stop\` supports up to ${limits.maxStopSequences} stop sequences. Given: ${stop.length}`)
  const givenSeed = number('seed')
  if (givenSeed !== undefined && bestOf > 1) throw new ValidationFailure('`seed` must not be set when `best_of` > 1')
  const topNTokens = number('top_n_tokens') ?? 0
  if (topNTokens > limits.maxTopNTokens) throw new ValidationFailure(`\`top_n_tokens\` must be >= 0 and <= ${limits.maxTopNTokens}. Given: ${topNTokens}`)
  if (extracted.inputs === '') throw new ValidationFailure('`inputs` cannot be empty')
  validateGrammar(parameters.grammar)
  const truncate = number('truncate')
  if (truncate !== undefined && (truncate === 0 || truncate > limits.maxInputTokens)) {
    throw new ValidationFailure(`\`truncate\` must be strictly positive and less than ${limits.maxInputTokens}. Given: ${truncate}`)
  }

  const tokens = limits.tokenize(extracted.inputs)
  const inputLength = truncate === undefined ? tokens : Math.min(tokens, truncate)
  // no max_new_tokens: whatever room max_total_tokens leaves (saturating at 0)
  const maxTotalNewTokens = maxNewTokens ?? Math.max(0, limits.maxTotalTokens - inputLength)
  const chunk = Math.min(maxTotalNewTokens, DEFAULT_GENERATION_LENGTH)
  if (inputLength + chunk > limits.maxTotalTokens) {
    throw new ValidationFailure(`\`inputs\` tokens + \`max_new_tokens\` must be <= ${limits.maxTotalTokens}. Given: ${inputLength} \`inputs\` tokens and ${chunk} \`max_new_tokens\``)
  }
  if (inputLength > limits.maxInputTokens) throw new ValidationFailure(`\`inputs\` must have less than ${limits.maxInputTokens} tokens. Given: ${inputLength}`)

  // flash_causal_lm.py reports `seed if do_sample else None`, and tokens.py turns
  // do_sample on for any non-default warper; the router picks a random seed when none is given
  const sampled = doSample || (temperature !== undefined && temperature !== 1) || (topK !== undefined && topK !== 0) ||
    (topP !== undefined && topP < 1) || (typicalP !== undefined && typicalP < 1)
  const seed = sampled ? (givenSeed ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER)) : null
  // the compat route defaults return_full_text to true for text-generation models
  const returnFullText = typeof parameters.return_full_text === 'boolean' ? parameters.return_full_text : compat
  return {
    inputs: extracted.inputs,
    inputLength,
    maxNewTokens: maxTotalNewTokens,
    stop,
    details: parameters.details === true,
    decoderInputDetails: parameters.decoder_input_details === true,
    returnFullText,
    seed,
    topNTokens,
    bestOf
  }
}

/**
 * validation.rs: a `json` grammar's value is an object or a string holding JSON
 * (else "grammar is not supported"), must be a JSON Schema (the meta-schema
 * check is not reproduced here), and must have a root `properties` field, which
 * outlines needs; `json_schema` carries the schema in `value.schema`, same rule.
 * `regex` grammars pass as given.
 */
function validateGrammar (grammar: unknown): void {
  if (!isObject(grammar)) return
  let schema: unknown
  if (grammar.type === 'json') {
    schema = grammar.value
    if (typeof schema === 'string') {
      try {
        schema = JSON.parse(schema)
      } catch (error) {
        throw new ValidationFailure(`grammar is not valid: ${(error as Error).message}`)
      }
    } else if (!isObject(schema)) {
      throw new ValidationFailure('grammar is not supported')
    }
  } else if (grammar.type === 'json_schema') {
    schema = isObject(grammar.value) ? grammar.value.schema : undefined
  } else {
    return
  }
  if (!isObject(schema) || !('properties' in schema)) throw new ValidationFailure("grammar is not valid: Grammar must have a 'properties' field")
}

/**
 * Runs the script through TGI's StoppingCriteria (tokens.py): per token, first
 * `current_tokens >= max_new_tokens` (length, even when that token is eos or
 * completes a stop), then eos, then the stop sequences against the accumulated text.
 */
function generate (script: PreparedToken[], endWithEos: boolean, valid: ValidRequest): Generation {
  const tokens: PreparedToken[] = []
  let finishReason: FinishReason | undefined
  let buffer = ''
  const source = script.length === 0 || endWithEos ? [...script, EOS_TOKEN] : script
  for (const token of source) {
    tokens.push(token)
    if (tokens.length >= valid.maxNewTokens) {
      finishReason = 'length'
      break
    }
    if (token.eos) {
      finishReason = 'eos_token'
      break
    }
    if (valid.stop.length > 0) {
      buffer += token.text
      if (buffer.length > STOP_BUFFER_MAX) buffer = buffer.slice(-STOP_BUFFER_KEEP)
      if (valid.stop.some((stop) => matchesStop(buffer, stop))) {
        finishReason = 'stop_sequence'
        break
      }
    }
  }
  let text = ''
  for (const token of tokens) if (!token.special) text += token.text
  return { tokens, finishReason: finishReason ?? 'length', text }
}

/**
 * tokens.py StopSequenceCriteria is `re.compile(re.escape(stop) + '$').findall(output)`;
 * Python's `$` also matches just before one trailing newline, so "Observation"
 * stops "…Observation\n" as well. The matched stop stays in the output.
 */
function matchesStop (buffer: string, stop: string): boolean {
  if (buffer.endsWith(stop)) return true
  return buffer.endsWith('\n') && buffer.endsWith(stop, buffer.length - 1)
}

function makeToken (text: string, special: boolean): PreparedToken {
  const eos = special && text === EOS_TEXT
  const id = eos ? EOS_ID : 100 + hash(text) % 31_900
  // deterministic, negative and exactly representable as f32 (Rust prints the same digits)
  const logprob = eos ? -0.0625 : -((hash(text) % 64) + 1) / 64
  return { text, special, eos, id, logprob, json: JSON.stringify({ id, text, logprob, special }) }
}

const EOS_TOKEN = makeToken(EOS_TEXT, true)

function topTokensJson (token: PreparedToken, count: number): string {
  // the chosen token first, then made-up runners-up with lower logprobs
  const entries = [token.json]
  for (let rank = 1; rank < count; rank++) {
    entries.push(JSON.stringify({ id: (token.id + rank * 7919) % 32_000, text: `<alt${rank}>`, logprob: token.logprob - rank, special: false }))
  }
  return `[${entries.join(',')}]`
}

function prefillJson (inputs: string, inputLength: number): string {
  // the first prompt token has no logprob: TGI's NaN serialises as null
  const words = inputs.split(/\s+/).filter((word) => word !== '')
  const entries: string[] = []
  for (let index = 0; index < inputLength; index++) {
    const text = words[index] ?? '<unk>'
    entries.push(JSON.stringify({ id: 100 + hash(text) % 31_900, text, logprob: index === 0 ? null : -1 }))
  }
  return `[${entries.join(',')}]`
}

function hash (text: string): number {
  // FNV-1a: cheap and stable across runs
  let value = 0x811c9dc5
  for (let index = 0; index < text.length; index++) {
    value ^= text.charCodeAt(index)
    value = Math.imul(value, 0x01000193) >>> 0
  }
  return value
}

function countWords (text: string): number {
  let count = 0
  let inWord = false
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    const space = code === 32 || (code >= 9 && code <= 13)
    if (!space && !inWord) count++
    inWord = !space
  }
  return count
}

function countCodePoints (text: string): number {
  // Rust's chars().count(): surrogate pairs are one char
  let count = text.length
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code >= 0xd800 && code <= 0xdbff) count--
  }
  return count
}

function statusForErrorType (errorType: string): number {
  // server.rs From<InferError> for (StatusCode, Json<ErrorResponse>)
  switch (errorType) {
    case 'generation': return 424
    case 'overloaded': return 429
    case 'validation':
    case 'template_error':
    case 'missing_template_variable':
    case 'tool_error': return 422
    default: return 500
  }
}

function describeFailure (error: unknown): { message: string, errorType: string } {
  // infer/mod.rs InferError: validation texts are prefixed "Input validation error: "
  if (error instanceof OverloadedFailure) return { message: 'Model is overloaded', errorType: 'overloaded' }
  if (error instanceof ValidationFailure) return { message: `Input validation error: ${error.message}`, errorType: 'validation' }
  throw error
}

function sendInferError (response: ServerResponse, error: unknown): void {
  const { message, errorType } = describeFailure(error)
  sendJson(response, statusForErrorType(errorType), { error: message, error_type: errorType })
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

function sendEmpty (response: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...headers, 'content-length': 0 })
  response.end()
}

function isJsonContentType (value: string | undefined): boolean {
  // axum json_content_type: application/json or application/*+json, parameters allowed
  if (value === undefined) return false
  const mime = (value.split(';')[0] ?? '').trim().toLowerCase()
  return mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json'))
}

async function readBody (request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  let tooLarge = false
  for await (const chunk of request) {
    const buffer = chunk as Buffer
    size += buffer.length
    if (size > PAYLOAD_LIMIT) tooLarge = true
    if (!tooLarge) chunks.push(buffer)
  }
  if (tooLarge) return undefined
  return chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')
}

type FieldType = 'f32' | 'u32' | 'u64' | 'usize' | 'i32' | 'bool' | 'string' | 'strings' | 'grammar'

// lib.rs GenerateParameters: Option<T> fields take null, plain bool and Vec fields do not
const PARAMETER_FIELDS: Record<string, { type: FieldType, nullable: boolean }> = {
  best_of: { type: 'usize', nullable: true },
  temperature: { type: 'f32', nullable: true },
  repetition_penalty: { type: 'f32', nullable: true },
  frequency_penalty: { type: 'f32', nullable: true },
  top_k: { type: 'i32', nullable: true },
  top_p: { type: 'f32', nullable: true },
  typical_p: { type: 'f32', nullable: true },
  do_sample: { type: 'bool', nullable: false },
  max_new_tokens: { type: 'u32', nullable: true },
  return_full_text: { type: 'bool', nullable: true },
  stop: { type: 'strings', nullable: false },
  truncate: { type: 'usize', nullable: true },
  watermark: { type: 'bool', nullable: false },
  details: { type: 'bool', nullable: false },
  decoder_input_details: { type: 'bool', nullable: false },
  seed: { type: 'u64', nullable: true },
  top_n_tokens: { type: 'u32', nullable: true },
  grammar: { type: 'grammar', nullable: true },
  adapter_id: { type: 'string', nullable: true }
}

const INTEGER_RANGES: Record<string, [number, number]> = {
  u32: [0, 4_294_967_295],
  u64: [0, Number.MAX_SAFE_INTEGER],
  usize: [0, Number.MAX_SAFE_INTEGER],
  i32: [-2_147_483_648, 2_147_483_647]
}

/**
 * axum's Json extractor over serde: a body that is JSON but not a GenerateRequest
 * is a 422 with a text/plain serde message (not TGI's JSON error), before any handler
 * runs, so /generate_stream answers it that way too.
 */
function extractRequest (body: unknown, compat: boolean): ParseResult {
  const rejection = (message: string): ParseResult => ({ ok: false, status: 422, text: `Failed to deserialize the JSON body into the target type: ${message}` })
  const target = compat ? 'struct CompatGenerateRequest' : 'struct GenerateRequest'
  if (!isObject(body)) return rejection(`invalid type: ${describeValue(body)}, expected ${target}`)
  if (!('inputs' in body)) return rejection('missing field `inputs`')
  if (typeof body.inputs !== 'string') return rejection(`inputs: invalid type: ${describeValue(body.inputs)}, expected a string`)
  let stream = false
  if (compat && 'stream' in body) {
    if (typeof body.stream !== 'boolean') return rejection(`stream: invalid type: ${describeValue(body.stream)}, expected a boolean`)
    stream = body.stream
  }
  if (!('parameters' in body)) return { ok: true, inputs: body.inputs, parameters: {}, parametersGiven: false, stream }
  const parameters = body.parameters
  if (!isObject(parameters)) return rejection(`parameters: invalid type: ${describeValue(parameters)}, expected struct GenerateParameters`)
  for (const [name, field] of Object.entries(PARAMETER_FIELDS)) {
    const value = parameters[name]
    if (value === undefined || (value === null && field.nullable)) continue
    const problem = checkField(value, field.type, `parameters.${name}`)
    if (problem !== undefined) return rejection(problem)
  }
  // null in an Option<T> means "not given"
  const cleaned: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(parameters)) if (value !== null) cleaned[name] = value
  return { ok: true, inputs: body.inputs, parameters: cleaned, parametersGiven: true, stream }
}

function checkField (value: unknown, type: FieldType, path: string): string | undefined {
  const invalidType = (expected: string): string => `${path}: invalid type: ${describeValue(value)}, expected ${expected}`
  switch (type) {
    case 'f32':
      return typeof value === 'number' ? undefined : invalidType('f32')
    case 'bool':
      return typeof value === 'boolean' ? undefined : invalidType('a boolean')
    case 'string':
      return typeof value === 'string' ? undefined : invalidType('a string')
    case 'strings':
      if (!Array.isArray(value)) return invalidType('a sequence')
      for (let index = 0; index < value.length; index++) {
        const item: unknown = value[index]
        if (typeof item !== 'string') return `${path}[${index}]: invalid type: ${describeValue(item)}, expected a string`
      }
      return undefined
    case 'grammar':
      if (!isObject(value)) return invalidType('internally tagged enum GrammarType')
      if (!('type' in value)) return `${path}: missing field \`type\``
      if (value.type !== 'json' && value.type !== 'regex' && value.type !== 'json_schema') {
        return `${path}: unknown variant \`${String(value.type)}\`, expected one of \`json\`, \`regex\`, \`json_schema\``
      }
      return 'value' in value ? undefined : `${path}: missing field \`value\``
    default: {
      if (typeof value !== 'number' || !Number.isInteger(value)) return invalidType(type)
      const range = INTEGER_RANGES[type]
      if (range !== undefined && (value < range[0] || value > range[1])) return `${path}: invalid value: integer \`${value}\`, expected ${type}`
      return undefined
    }
  }
}

function describeValue (value: unknown): string {
  // serde's Unexpected wording
  if (value === null) return 'null'
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`
  if (typeof value === 'boolean') return `boolean \`${value}\``
  if (typeof value === 'number') return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``
  if (Array.isArray(value)) return 'sequence'
  return 'map'
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
