// A minimal, fast fake of Text Generation Inference for the benchmark (not the
// test fake: no validation, no parsing of the request). Every reply is
// serialised once, at start-up or when the orchestrator reconfigures it over
// IPC, so per request it only reads the body and writes prepared bytes.
//
//   GET  /info             model_id, max_stop_sequences
//   POST /generate         {"generated_text", "details"} + x-prompt-tokens
//   POST /generate_stream  N token events, the last one with details
//   POST /tokenize         PROMPT_TOKENS entries
//
// Run as a child of run.mjs (fork, IPC): it sends {type:'listening', port}
// and accepts {type:'config', ...} and {type:'capture'} (return the next
// /generate or /generate_stream request's body, used to check that floor and gateway send the same prompt).
// Standalone: node scripts/bench/fake-tgi.mjs [--port 3000] [--delay 20]
import http from 'node:http'

const args = process.argv.slice(2)
function flag (name, fallback) {
  const index = args.indexOf(`--${name}`)
  return index === -1 ? fallback : args[index + 1]
}

const MODEL_ID = 'HuggingFaceH4/zephyr-7b-beta'
const PROMPT_TOKENS = 23
const config = {
  generateTokens: Number(flag('generate-tokens', 16)),
  streamTokens: Number(flag('stream-tokens', 64)),
  delayMs: Number(flag('delay', 0))
}

let infoBody, generateBody, generateHeaders, streamEvents, streamAll, tokenizeBody
const infoHeaders = ['content-type', 'application/json']
const sseHeaders = ['content-type', 'text/event-stream', 'cache-control', 'no-cache']

function prepare () {
  infoBody = Buffer.from(JSON.stringify({
    model_id: MODEL_ID,
    model_sha: null,
    model_pipeline_tag: 'text-generation',
    max_concurrent_requests: 128,
    max_best_of: 2,
    max_stop_sequences: 4,
    max_input_tokens: 4095,
    max_total_tokens: 4096,
    validation_workers: 2,
    version: '3.0.0',
    router: 'text-generation-router'
  }))
  const generated = ' tok'.repeat(config.generateTokens)
  generateBody = Buffer.from(JSON.stringify({
    generated_text: generated,
    details: { finish_reason: 'length', generated_tokens: config.generateTokens, seed: null, prefill: [], tokens: [] }
  }))
  generateHeaders = [
    'content-type', 'application/json',
    'content-length', String(generateBody.length),
    'x-prompt-tokens', String(PROMPT_TOKENS),
    'x-generated-tokens', String(config.generateTokens)
  ]
  streamEvents = []
  const n = config.streamTokens
  for (let index = 0; index < n; index++) {
    const last = index === n - 1
    const event = {
      index,
      token: { id: index, text: ' tok', logprob: -0.1, special: false },
      generated_text: last ? ' tok'.repeat(n) : null,
      details: last ? { finish_reason: 'length', generated_tokens: n, seed: null, input_length: PROMPT_TOKENS } : null
    }
    streamEvents.push(Buffer.from(`data: ${JSON.stringify(event)}\n\n`))
  }
  streamAll = Buffer.concat(streamEvents)
  tokenizeBody = Buffer.from(JSON.stringify(Array.from({ length: PROMPT_TOKENS }, (_, id) => ({ id, text: 'x', start: id, stop: id + 1 }))))
}
prepare()

let capture = false

// Only a generation request is captured (the gateway's first request may be preceded by a /tokenize BOS probe).
function onBody (request, then, capturable = false) {
  if (capture && capturable) {
    capture = false
    let text = ''
    request.setEncoding('utf8')
    request.on('data', (chunk) => { text += chunk })
    request.on('end', () => {
      process.send?.({ type: 'captured', method: request.method, url: request.url, body: text })
      then()
    })
    return
  }
  request.on('data', noop)
  request.on('end', then)
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
    if (url === '/generate') return onBody(request, () => { response.writeHead(200, generateHeaders); response.end(generateBody) }, true)
    if (url === '/generate_stream') return onBody(request, () => stream(response), true)
    if (url === '/tokenize') return onBody(request, () => { response.writeHead(200, infoHeaders); response.end(tokenizeBody) })
  } else if (url === '/info') {
    response.writeHead(200, infoHeaders)
    response.end(infoBody)
    return
  } else if (url === '/health') {
    response.writeHead(200)
    response.end()
    return
  }
  request.resume()
  response.writeHead(404, infoHeaders)
  response.end('{"error":"not found","error_type":"not_found"}')
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
  else process.stdout.write(`fake TGI on http://127.0.0.1:${port}\n`)
})
