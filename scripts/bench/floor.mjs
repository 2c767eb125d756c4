// The "floor": the least a Node proxy must do to turn TGI into an OpenAI chat
// completion. node:http server, JSON.parse of the body, an undici keep-alive
// Pool to TGI, a fixed zephyr prompt concatenation, a minimal OpenAI mapping.
// No validation, no logging, no metrics, no template engine. The gateway is
// measured against it.
//
// Run as a child of run.mjs (fork, IPC): sends {type:'listening', port}.
// Standalone: node scripts/bench/floor.mjs --upstream http://127.0.0.1:3000 [--port 8090]
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
    const handler = parsed.stream === true ? stream : complete
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
  else process.stdout.write(`floor proxy on http://127.0.0.1:${port}\n`)
})
