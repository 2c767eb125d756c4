// Closed-loop HTTP load generator, run as its own process (fork, IPC) so it
// never shares an event loop with a server under test. Each of `connections`
// workers sends one request, waits for the whole answer, and sends the next,
// over its own undici keep-alive Client (one socket per worker, all opened before
// the warm-up starts). It uses undici's
// low-level dispatch() handler (no Readable per response) to stay cheap.
//
// IPC in:  {type:'run', id, url, path, body, stream, expectChunks, connections, warmupMs, durationMs, drainMs, rampMs}
// IPC out: {type:'phase', id, phase:'measure-start'|'measure-end'} then {type:'result', id, result}
//
// Accounting: throughput and latency use successful requests that END inside
// the measurement window; the success ratio and `startedStats` use every
// request STARTED inside the window (in-flight ones are drained afterwards).
import { performance, monitorEventLoopDelay } from 'node:perf_hooks'
import { Client } from 'undici'
import { summarise } from './lib.mjs'

const CONTENT_MARK = '"delta":{"content":'
const DONE_MARK = 'data: [DONE]'
const LAG_RESOLUTION_MS = 10

class Exchange {
  constructor (stream, started, resolve) {
    this.stream = stream
    this.started = started
    this.resolve = resolve
    this.status = 0
    this.ttft = -1
    this.chunks = 0
    this.done = false
    this.pending = ''
    this.body = ''
  }

  onConnect () {}
  onResponseStarted () {}
  onHeaders (statusCode) {
    this.status = statusCode
    return true
  }

  onData (chunk) {
    if (!this.stream) {
      if (this.body.length < 65536) this.body += chunk.toString('latin1')
      return true
    }
    let pending = this.pending + chunk.toString('latin1')
    let end
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const event = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (event.startsWith(DONE_MARK)) {
        this.done = true
      } else if (event.includes(CONTENT_MARK)) {
        if (this.chunks === 0) this.ttft = performance.now() - this.started
        this.chunks++
      }
    }
    this.pending = pending
    return true
  }

  onComplete () {
    this.resolve(this)
  }

  onError (error) {
    this.error = error.code ?? error.name ?? 'error'
    this.resolve(this)
  }

  onBodySent () {}
}

function send (dispatcher, options, stream) {
  return new Promise((resolve) => {
    const exchange = new Exchange(stream, performance.now(), resolve)
    try {
      dispatcher.dispatch(options, exchange)
    } catch (error) {
      exchange.onError(error)
    }
  })
}

function verdict (exchange, stream, expectChunks) {
  if (exchange.error !== undefined) return `error ${exchange.error}`
  if (exchange.status !== 200) return `HTTP ${exchange.status}`
  if (stream) {
    if (!exchange.done) return 'no [DONE]'
    if (exchange.chunks !== expectChunks) return `${exchange.chunks} content chunks`
    return undefined
  }
  if (!exchange.body.includes('"chat.completion"') || !exchange.body.includes('"finish_reason"')) return 'bad body'
  return undefined
}

async function run (spec) {
  const origin = new URL(spec.url).origin
  const clientOptions = { pipelining: 1, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0 }
  // One keep-alive connection per worker (a Client each: exactly `connections` sockets, no pool scan).
  const clients = Array.from({ length: spec.connections }, () => new Client(origin, clientOptions))
  const options = {
    path: spec.path, method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from(spec.body)
  }
  const stream = spec.stream === true

  // Open every connection first, at most CONNECTING at a time, so a burst of SYNs never overflows
  // the server's accept queue (backlog 511 in Node) and stalls workers for TCP's 1 s / 3 s / 7 s
  // SYN retransmits. A GET to an unknown path answers at once (404) on both servers.
  const CONNECTING = 64
  const connectStarted = performance.now()
  const probe = { path: '/__bench/connect', method: 'GET' }
  for (let from = 0; from < clients.length; from += CONNECTING) {
    await Promise.all(clients.slice(from, from + CONNECTING).map((client) => send(client, probe, false)))
  }
  const connectMs = performance.now() - connectStarted

  const started = performance.now()
  const windowStart = started + spec.warmupMs
  const windowEnd = windowStart + spec.durationMs
  const latencies = []
  const ttfts = []
  const startedTimes = []
  const failures = {}
  let completed = 0
  let failedInWindow = 0
  let startedInWindow = 0
  let okStartedInWindow = 0
  let stopping = false
  let total = 0
  const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS })

  const phase = (name) => process.send({ type: 'phase', id: spec.id, phase: name })
  const measureStart = setTimeout(() => { lag.enable(); phase('measure-start') }, spec.warmupMs)
  const measureEnd = new Promise((resolve) => setTimeout(() => {
    stopping = true
    lag.disable()
    phase('measure-end')
    resolve()
  }, spec.warmupMs + spec.durationMs))

  let inFlight = 0
  let warmedWorkers = 0
  let inFlightSum = 0
  let inFlightSamples = 0
  const inFlightSampler = setInterval(() => {
    const now = performance.now()
    if (now >= windowStart && now < windowEnd) {
      inFlightSum += inFlight
      inFlightSamples++
    }
  }, 50)
  // Workers start spread over rampMs so that they do not run in lock-step.
  const rampMs = spec.rampMs ?? 0
  async function worker (index) {
    if (rampMs > 0 && spec.connections > 1) await new Promise((resolve) => setTimeout(resolve, (index * rampMs) / spec.connections))
    const client = clients[index]
    let first = true
    while (!stopping) {
      inFlight++
      const exchange = await send(client, options, stream)
      inFlight--
      const ended = performance.now()
      if (first) {
        first = false
        if (ended < windowStart) warmedWorkers++
      }
      total++
      const elapsed = ended - exchange.started
      const problem = verdict(exchange, stream, spec.expectChunks)
      if (exchange.started >= windowStart && exchange.started < windowEnd) {
        startedInWindow++
        if (problem === undefined) {
          okStartedInWindow++
          startedTimes.push(elapsed)
        } else {
          failures[problem] = (failures[problem] ?? 0) + 1
        }
      }
      if (ended >= windowStart && ended < windowEnd) {
        if (problem === undefined) {
          completed++
          latencies.push(elapsed)
          if (stream) ttfts.push(exchange.ttft)
        } else {
          failedInWindow++
        }
      }
    }
  }

  const workers = Array.from({ length: spec.connections }, (_, index) => worker(index))
  await measureEnd
  clearInterval(inFlightSampler)
  clearTimeout(measureStart)
  // Let requests started inside the window finish (they count for the success ratio).
  let drained = false
  const all = Promise.all(workers).then(() => { drained = true })
  await Promise.race([all, new Promise((resolve) => setTimeout(resolve, spec.drainMs).unref())])
  if (!drained) {
    // Whatever is still running after the drain time fails: destroying the clients errors it.
    await Promise.all(clients.map((client) => client.destroy().catch(() => {})))
    await all
  } else {
    await Promise.all(clients.map((client) => client.close().catch(() => {})))
  }
  const seconds = spec.durationMs / 1000
  return {
    completed,
    failedInWindow,
    total,
    throughput: completed / seconds,
    latencyMs: summarise(latencies),
    ttftMs: stream ? summarise(ttfts) : undefined,
    startedInWindow,
    okStartedInWindow,
    successRatio: startedInWindow === 0 ? NaN : okStartedInWindow / startedInWindow,
    startedMs: summarise(startedTimes),
    failures,
    drained,
    connectMs,
    // Workers whose first answer came back before the window, and the mean number of requests in flight during it.
    warmedWorkers,
    meanInFlight: inFlightSamples === 0 ? NaN : inFlightSum / inFlightSamples,
    // monitorEventLoopDelay records each timer turn including its resolution: subtract it to get the lag.
    eventLoopLagMs: {
      p50: Math.max(0, lag.percentile(50) / 1e6 - LAG_RESOLUTION_MS),
      p99: Math.max(0, lag.percentile(99) / 1e6 - LAG_RESOLUTION_MS),
      max: Math.max(0, lag.max / 1e6 - LAG_RESOLUTION_MS)
    }
  }
}

process.on('message', (message) => {
  if (message?.type !== 'run') return
  run(message).then(
    (result) => process.send({ type: 'result', id: message.id, result }),
    (error) => process.send({ type: 'result', id: message.id, error: error.stack ?? String(error) })
  )
})
process.on('disconnect', () => process.exit(0))
process.send({ type: 'ready' })
