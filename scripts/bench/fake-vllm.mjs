// A minimal, fast fake of vLLM's OpenAI-compatible server for the benchmark
// (not the test fake, test/fakes/fake-vllm.ts: no validation, no parsing of
// the request beyond looking for `"stream":true`). Every reply is serialised
// once, at start-up or when the orchestrator reconfigures it over IPC, so per
// request it only reads the body and writes prepared bytes.
//
//   GET  /health          200, empty body
//   GET  /version         {"version":"0.12.0"}
//   GET  /v1/models       one model, max_model_len 4096
//   POST /tokenize        {"count":23,"max_model_len":4096,"tokens":[...]}
//   POST /v1/completions  text_completion (generate-tokens × " tok"), or with
//                         "stream":true: stream-tokens chunks, the include_usage
//                         chunk (choices: []) and data: [DONE]
//
// Run as a child of run.mjs (fork, IPC): it sends {type:'listening', port}
// and accepts {type:'config', ...} and {type:'capture'} (return the next
// /v1/completions request's body, used to check that floor and gateway send
// the same prompt). Same IPC as fake-tgi.mjs.
// Standalone: node scripts/bench/fake-vllm.mjs [--port 8000] [--delay 20]
import http from 'node:http'

const args = process.argv.slice(2)
function flag (name, fallback) {
  const index = args.indexOf(`--${name}`)
  return index === -1 ? fallback : args[index + 1]
}

const MODEL_ID = 'HuggingFaceH4/zephyr-7b-beta'
const PROMPT_TOKENS = 23
const MAX_MODEL_LEN = 4096
const STARTED = Math.floor(Date.now() / 1000)
const config = {
  generateTokens: Number(flag('generate-tokens', 16)),
  streamTokens: Number(flag('stream-tokens', 64)),
  delayMs: Number(flag('delay', 0))
}

let versionBody, modelsBody, tokenizeBody, completionBody, completionHeaders, streamEvents, streamAll
const jsonHeaders = ['content-type', 'application/json']
// vLLM's StreamingResponse(media_type="text/event-stream"): chunked, no content-length.
const sseHeaders = ['content-type', 'text/event-stream; charset=utf-8']
const STREAM_MARK = Buffer.from('"stream":true')

const json = (value) => Buffer.from(JSON.stringify(value))
const usage = (completionTokens) => ({ prompt_tokens: PROMPT_TOKENS, total_tokens: PROMPT_TOKENS + completionTokens, completion_tokens: completionTokens, prompt_tokens_details: null })

function prepare () {
  versionBody = json({ version: '0.12.0' })
  modelsBody = json({
    object: 'list',
    data: [{ id: MODEL_ID, object: 'model', created: STARTED, owned_by: 'vllm', root: MODEL_ID, parent: null, max_model_len: MAX_MODEL_LEN, permission: [] }]
  })
  tokenizeBody = json({ count: PROMPT_TOKENS, max_model_len: MAX_MODEL_LEN, tokens: Array.from({ length: PROMPT_TOKENS }, (_, id) => id + 1) })
  const created = Math.floor(Date.now() / 1000)
  const id = 'cmpl-0123456789abcdef0123456789abcdef'
  completionBody = json({
    id,
    object: 'text_completion',
    created,
    model: MODEL_ID,
    choices: [{ index: 0, text: ' tok'.repeat(config.generateTokens), logprobs: null, finish_reason: 'length', stop_reason: null, prompt_logprobs: null }],
    usage: usage(config.generateTokens),
    system_fingerprint: null
  })
  completionHeaders = [...jsonHeaders, 'content-length', String(completionBody.length)]
  streamEvents = []
  const n = config.streamTokens
  for (let index = 0; index < n; index++) {
    const last = index === n - 1
    const chunk = {
      id,
      object: 'text_completion',
      created,
      model: MODEL_ID,
      choices: [{ index: 0, text: ' tok', logprobs: null, finish_reason: last ? 'length' : null, stop_reason: null }],
      usage: null
    }
    let event = `data: ${JSON.stringify(chunk)}\n\n`
    // The last token goes out with the include_usage chunk and [DONE].
    if (last) event += `data: ${JSON.stringify({ id, object: 'text_completion', created, model: MODEL_ID, choices: [], usage: usage(n) })}\n\ndata: [DONE]\n\n`
    streamEvents.push(Buffer.from(event))
  }
  streamAll = Buffer.concat(streamEvents)
}
prepare()

let capture = false

/** Reads the body; `then(isStream)`. Bodies are small: usually one chunk, concatenated otherwise. */
function onBody (request, captureThis, then) {
  const chunks = []
  request.on('data', (chunk) => { chunks.push(chunk) })
  request.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
    if (captureThis) process.send?.({ type: 'captured', method: request.method, url: request.url, body: body.toString('utf8') })
    then(body.indexOf(STREAM_MARK) !== -1)
  })
}
function noop () {}

function stream (response) {
  response.writeHead(200, sseHeaders)
  const events = streamEvents
  if (config.delayMs <= 0) {
    // No pacing: everything in one write (one chunk), so the fake costs as little as possible.
    response.end(streamAll)
    return
  }
  // Paced: the first token at once, then one every delayMs, driven by one re-armed timer per stream.
  let next = 0
  response.write(events[next++])
  if (next === events.length) {
    response.end()
    return
  }
  const timer = setTimeout(function tick () {
    if (response.destroyed) return
    const event = events[next++]
    if (next === events.length) {
      response.end(event)
    } else {
      response.write(event)
      timer.refresh()
    }
  }, config.delayMs)
  response.on('close', () => clearTimeout(timer))
}

const server = http.createServer((request, response) => {
  const url = request.url
  if (request.method === 'POST') {
    if (url === '/v1/completions') {
      const captureThis = capture
      capture = false
      return onBody(request, captureThis, (isStream) => {
        if (isStream) return stream(response)
        response.writeHead(200, completionHeaders)
        response.end(completionBody)
      })
    }
    if (url === '/tokenize') {
      request.on('data', noop)
      request.on('end', () => { response.writeHead(200, jsonHeaders); response.end(tokenizeBody) })
      return
    }
  } else if (url === '/v1/models') {
    response.writeHead(200, jsonHeaders)
    response.end(modelsBody)
    return
  } else if (url === '/version') {
    response.writeHead(200, jsonHeaders)
    response.end(versionBody)
    return
  } else if (url === '/health') {
    response.writeHead(200)
    response.end()
    return
  }
  request.resume()
  response.writeHead(404, jsonHeaders)
  response.end('{"error":{"message":"Not Found","type":"NotFoundError","param":null,"code":404}}')
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000
server.requestTimeout = 0
server.maxRequestsPerSocket = 0

process.on('message', (message) => {
  if (message?.type === 'config') {
    for (const key of ['generateTokens', 'streamTokens', 'delayMs']) if (typeof message[key] === 'number') config[key] = message[key]
    prepare()
    process.send?.({ type: 'configured', config })
  } else if (message?.type === 'capture') {
    capture = true
  }
})
// The orchestrator went away (even by SIGKILL): do not linger.
process.on('disconnect', () => process.exit(0))

server.listen(Number(flag('port', 0)), flag('host', '127.0.0.1'), 4096, () => {
  const { port } = server.address()
  if (process.send !== undefined) process.send({ type: 'listening', port })
  else process.stdout.write(`fake vLLM on http://127.0.0.1:${port}\n`)
})
