// The "floor": the least a Node proxy must do to turn an engine into an OpenAI
// chat completion. node:http server, JSON.parse of the body, an undici
// keep-alive Pool to the engine, a fixed zephyr prompt concatenation, a minimal
// OpenAI mapping. No validation, no logging, no metrics, no template engine.
// The gateway is measured against it.
//
//   --protocol tgi   (default) TGI's /generate and /generate_stream
//   --protocol vllm  an OpenAI-style /v1/completions engine (vLLM): body
//                    {model, prompt, max_tokens, add_special_tokens: false[, stream,
//                    stream_options: {include_usage: true}]}; choices[0].text,
//                    finish_reason and usage mapped; each stream chunk rewritten
//                    into a chat.completion.chunk, [DONE] passed on
//
// Run as a child of run.mjs (fork, IPC): sends {type:'listening', port}.
// Standalone: node scripts/bench/floor.mjs --upstream http://127.0.0.1:3000 [--protocol tgi|vllm] [--port 8090]
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { Pool } from 'undici'

const args = process.argv.slice(2)
function flag (name, fallback) {
  const index = args.indexOf(`--${name}`)
  return index === -1 ? fallback : args[index + 1]
}
const upstream = flag('upstream', process.env.TGI_URL)
if (upstream === undefined) {
  process.stderr.write('floor: --upstream <url> is required\n')
  process.exit(2)
}
const protocol = flag('protocol', 'tgi')
if (protocol !== 'tgi' && protocol !== 'vllm') {
  process.stderr.write(`floor: --protocol must be tgi or vllm, not ${protocol}\n`)
  process.exit(2)
}
const MODEL = 'HuggingFaceH4/zephyr-7b-beta'

// Unlimited connections (undici's default for a Pool), keep-alive, no per-request timeouts.
const pool = new Pool(upstream, { pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0 })
const upstreamHeaders = { 'content-type': 'application/json' }

function zephyrPrompt (messages) {
  let prompt = ''
  for (const message of messages) prompt += `<|${message.role}|>\n${message.content}</s>\n`
  return `${prompt}<|assistant|>\n`
}

function fail (response, status, message) {
  if (response.headersSent) {
    response.destroy()
    return
  }
  const body = JSON.stringify({ error: { message, type: 'server_error', param: null, code: null } })
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

async function complete (request, response) {
  const upstreamBody = JSON.stringify({ inputs: zephyrPrompt(request.messages), parameters: { max_new_tokens: request.max_tokens, details: true } })
  const { statusCode, headers, body } = await pool.request({ path: '/generate', method: 'POST', headers: upstreamHeaders, body: upstreamBody })
  const text = await body.text()
  if (statusCode !== 200) return fail(response, 502, `upstream ${statusCode}`)
  const tgi = JSON.parse(text)
  const promptTokens = Number(headers['x-prompt-tokens'])
  const completionTokens = tgi.details.generated_tokens
  const out = JSON.stringify({
    id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: tgi.generated_text, refusal: null }, logprobs: null, finish_reason: tgi.details.finish_reason === 'length' ? 'length' : 'stop' }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
  })
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) })
  response.end(out)
}

async function stream (request, response) {
  const upstreamBody = JSON.stringify({ inputs: zephyrPrompt(request.messages), parameters: { max_new_tokens: request.max_tokens, details: true } })
  const { statusCode, body } = await pool.request({ path: '/generate_stream', method: 'POST', headers: upstreamHeaders, body: upstreamBody })
  if (statusCode !== 200) {
    await body.text()
    return fail(response, 502, `upstream ${statusCode}`)
  }
  response.on('close', () => { if (!response.writableFinished) body.destroy() })
  const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta, finishReason) => `data: ${JSON.stringify({
    id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }]
  })}\n\n`
  let out = chunk({ role: 'assistant', content: '' }, null)
  let pending = ''
  body.setEncoding('utf8')
  for await (const data of body) {
    pending += data
    let end
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const event = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (!event.startsWith('data:')) continue
      const tgi = JSON.parse(event.slice(5))
      if (!tgi.token.special) out += chunk({ content: tgi.token.text }, null)
      if (tgi.details != null) out += chunk({}, tgi.details.finish_reason === 'length' ? 'length' : 'stop') + 'data: [DONE]\n\n'
    }
    if (out !== '') {
      if (!response.headersSent) response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
      response.write(out)
      out = ''
    }
  }
  response.end()
}

// ---------------------------------------------------------------- vLLM (/v1/completions)
const finishReason = (reason) => reason === 'length' ? 'length' : 'stop'
const vllmBody = (request, stream) => JSON.stringify(stream
  ? { model: MODEL, prompt: zephyrPrompt(request.messages), max_tokens: request.max_tokens, add_special_tokens: false, stream: true, stream_options: { include_usage: true } }
  : { model: MODEL, prompt: zephyrPrompt(request.messages), max_tokens: request.max_tokens, add_special_tokens: false })

async function completeVllm (request, response) {
  const { statusCode, body } = await pool.request({ path: '/v1/completions', method: 'POST', headers: upstreamHeaders, body: vllmBody(request, false) })
  const text = await body.text()
  if (statusCode !== 200) return fail(response, 502, `upstream ${statusCode}`)
  const vllm = JSON.parse(text)
  const choice = vllm.choices[0]
  const out = JSON.stringify({
    id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: choice.text, refusal: null }, logprobs: null, finish_reason: finishReason(choice.finish_reason) }],
    usage: { prompt_tokens: vllm.usage.prompt_tokens, completion_tokens: vllm.usage.completion_tokens, total_tokens: vllm.usage.total_tokens }
  })
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) })
  response.end(out)
}

async function streamVllm (request, response) {
  const { statusCode, body } = await pool.request({ path: '/v1/completions', method: 'POST', headers: upstreamHeaders, body: vllmBody(request, true) })
  if (statusCode !== 200) {
    await body.text()
    return fail(response, 502, `upstream ${statusCode}`)
  }
  response.on('close', () => { if (!response.writableFinished) body.destroy() })
  const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta, reason) => `data: ${JSON.stringify({
    id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta, logprobs: null, finish_reason: reason }]
  })}\n\n`
  let out = chunk({ role: 'assistant', content: '' }, null)
  let pending = ''
  body.setEncoding('utf8')
  for await (const data of body) {
    pending += data
    let end
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const event = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (!event.startsWith('data:')) continue
      const payload = event.slice(5).trim()
      if (payload === '[DONE]') {
        out += 'data: [DONE]\n\n'
        continue
      }
      const choice = JSON.parse(payload).choices[0]
      // The include_usage chunk (choices: []) is not asked for by the client: dropped.
      if (choice === undefined) continue
      if (choice.text !== '') out += chunk({ content: choice.text }, null)
      if (choice.finish_reason != null) out += chunk({}, finishReason(choice.finish_reason))
    }
    if (out !== '') {
      if (!response.headersSent) response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
      response.write(out)
      out = ''
    }
  }
  response.end()
}

const handlers = protocol === 'vllm' ? { complete: completeVllm, stream: streamVllm } : { complete, stream }

const server = http.createServer((request, response) => {
  if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
    request.resume()
    return fail(response, 404, 'unknown route')
  }
  let raw = ''
  request.setEncoding('utf8')
  request.on('data', (data) => { raw += data })
  request.on('end', () => {
    let parsed
    try {
      parsed = JSON.parse(raw)
    } catch {
      return fail(response, 400, 'invalid JSON')
    }
    const handler = parsed.stream === true ? handlers.stream : handlers.complete
    handler(parsed, response).catch((error) => fail(response, 502, error.message))
  })
})
server.keepAliveTimeout = 120_000
server.headersTimeout = 121_000
server.requestTimeout = 0

process.on('disconnect', () => process.exit(0))
process.on('SIGINT', () => server.close(() => process.exit(0)))

server.listen(Number(flag('port', 0)), flag('host', '127.0.0.1'), () => {
  const { port } = server.address()
  if (process.send !== undefined) process.send({ type: 'listening', port })
  else process.stdout.write(`floor proxy (${protocol}) on http://127.0.0.1:${port}\n`)
})
