// `npm run bench`: the gateway side by side with a bare "floor" proxy, both in
// front of the same fast fake engine, driven by a load generator in its own
// process; once per engine: TGI (fake-tgi.mjs, its native /generate routes) and
// vLLM (fake-vllm.mjs, OpenAI-style /v1/completions). See README.md § Benchmark
// and `node scripts/bench/run.mjs --help`.
//
// Processes: this orchestrator (also serves the fake Hub, idle while measuring),
// load generator, and per engine in turn: its fake, its floor proxy (floor.mjs
// --protocol tgi|vllm), a gateway (node dist/src/server.js; TGI_URL for TGI, a
// models file with `backend: vllm` for vLLM). One engine's trio runs at a time
// and only one server is loaded at a time. Every child is killed on exit, error
// or SIGINT; the forked ones also exit by themselves when this process disappears.
import { fork, spawn } from 'node:child_process'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, cpus, totalmem } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connectionsTo, cpuMs, formatNumber, machineJiffies, memoryKb, sleep, table } from './lib.mjs'
import { analyseProfile, printProfile } from './profile.mjs'

const HELP = `usage: npm run bench -- [options]    (or: node scripts/bench/run.mjs [options] after npm run build)

  --duration <s>        measured seconds per scenario and server (default 5)
  --warmup <s>          discarded warm-up seconds before each measurement (default 2; slow streams ≥ 3)
  --quick               smoke run: 0.5 s warm-up, 1 s measurement, one round (slow streams: 2 s + 1.5 s)
  --rounds <n>          measure each scenario (but slow streams) n times, floor and gateway back to back
                        each round (default 3); the table shows each server's median run, and the
                        throughput targets use the median of the per-round gateway/floor ratios
  --engines <list>      engines to measure, in order, each with its own fake, floor and gateway:
                        tgi (fake TGI, /generate) and/or vllm (fake vLLM, /v1/completions, gateway
                        with a models file entry backend: vllm); default tgi,vllm
  --scenarios <list>    comma-separated subset of: ns1,ns32,ns256,st1,st32,slow (TGI: all of them;
                        vLLM: ns1,ns32,st1,st32); a bare name selects it on every engine, a prefixed
                        one on that engine only (tgi-slow, vllm-ns32) (default: all)
  --slow-streams <n>    concurrent slow streams (default 1000)
  --soak <minutes>      instead of the comparison: repeat non-stream + stream rounds against the
                        gateway for that long, sampling its RSS each round, and say whether it grows
                        (the first engine of --engines only: --engines vllm to soak over vLLM)
  --cpu-prof            run each gateway with --cpu-prof (profile in bench-results/profiles) and print
                        the top 25 self-time functions when it exits
  --gateway-log <file>  where the gateway's stdout (pino, LOG_LEVEL=info) goes (default /dev/null)
  --gateway-entry <js>  gateway entry point (default dist/src/server.js)
  --gateway-node-flags "<flags>"  node flags for the gateway (default "--max-semi-space-size=32", as npm start runs it)
  --help
`

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const HERE = fileURLToPath(new URL('./', import.meta.url))
// zephyr's real template from the corpus beside the repo (what earlier figures used); on a
// fresh clone without it, the project's own template of the same format (test/fixtures).
const ZEPHYR_FILE = new URL('../../../shared/chat-templates/models/HuggingFaceH4__zephyr-7b-beta.json', import.meta.url)
const ZEPHYR_FIXTURE = new URL('../../test/fixtures/zephyr-style-tokenizer-config.json', import.meta.url)
const MODEL = 'HuggingFaceH4/zephyr-7b-beta'
const MESSAGES = [
  { role: 'system', content: "You're a helpful assistant" },
  { role: 'user', content: 'What happens when an unstoppable force meets an immovable object?' }
]
const NON_STREAM_TOKENS = 16
const STREAM_TOKENS = 64
const SLOW_DELAY_MS = 20
const SCENARIO_NAMES = ['ns1', 'ns32', 'ns256', 'st1', 'st32', 'slow']

// Each engine: its fake, the floor's protocol, how the gateway is pointed at it, its scenarios.
const ENGINES = {
  tgi: {
    label: 'TGI', fakeName: 'fake TGI', fakeScript: 'fake-tgi.mjs', floorProtocol: 'tgi',
    gatewaySetup: 'TGI_URL', scenarios: SCENARIO_NAMES
  },
  vllm: {
    label: 'vLLM', fakeName: 'fake vLLM', fakeScript: 'fake-vllm.mjs', floorProtocol: 'vllm',
    gatewaySetup: `GATEWAY_CONFIG models file: { id: ${MODEL}, backend: vllm, url, model: ${MODEL} }`, scenarios: ['ns1', 'ns32', 'st1', 'st32']
  }
}

// ---------------------------------------------------------------- arguments
function parseArgs (argv) {
  const options = {
    duration: 5, warmup: 2, quick: false, rounds: 3, engines: Object.keys(ENGINES), scenarios: undefined, slowStreams: 1000, soak: undefined,
    cpuProf: false, gatewayLog: '/dev/null', gatewayEntry: 'dist/src/server.js',
    // The gateway as `npm start` and the Docker image run it.
    gatewayNodeFlags: ['--max-semi-space-size=32']
  }
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]
    const value = () => {
      const next = argv[++index]
      if (next === undefined) throw new Error(`${arg} needs a value`)
      return next
    }
    const number = () => {
      const parsed = Number(value())
      if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${arg} needs a positive number`)
      return parsed
    }
    switch (arg) {
      case '--duration': options.duration = number(); break
      case '--warmup': options.warmup = Number(value()); break
      case '--quick': options.quick = true; break
      case '--rounds': options.rounds = Math.round(number()); break
      case '--engines': options.engines = value().split(',').map((name) => name.trim().toLowerCase()).filter(Boolean); break
      case '--scenarios': options.scenarios = value().split(',').map((name) => name.trim()).filter(Boolean); break
      case '--slow-streams': options.slowStreams = Math.round(number()); break
      case '--soak': options.soak = number(); break
      case '--cpu-prof': options.cpuProf = true; break
      case '--gateway-log': options.gatewayLog = value(); break
      case '--gateway-entry': options.gatewayEntry = value(); break
      case '--gateway-node-flags': options.gatewayNodeFlags = value().split(/\s+/).filter(Boolean); break
      case '--help': case '-h': process.stdout.write(HELP); process.exit(0); break
      default: throw new Error(`unknown option ${arg} (see --help)`)
    }
  }
  if (options.engines.length === 0) throw new Error('--engines needs at least one engine')
  for (const engine of options.engines) {
    if (ENGINES[engine] === undefined) throw new Error(`unknown engine ${engine} (--engines takes ${Object.keys(ENGINES).join(', ')})`)
  }
  options.engines = [...new Set(options.engines)]
  for (const name of options.scenarios ?? []) {
    const [engine, scenario] = name.includes('-') ? name.split('-', 2) : [undefined, name]
    if (!SCENARIO_NAMES.includes(scenario) || (engine !== undefined && !ENGINES[engine]?.scenarios.includes(scenario))) {
      throw new Error(`unknown scenario ${name} (see --help)`)
    }
  }
  if (options.quick) {
    options.duration = Math.min(options.duration, 1)
    options.warmup = Math.min(options.warmup, 0.5)
  }
  return options
}

let options
try {
  options = parseArgs(process.argv.slice(2))
} catch (error) {
  process.stderr.write(`bench: ${error.message}\n`)
  process.exit(2)
}

const log = (text) => process.stderr.write(`${text}\n`)

// ---------------------------------------------------------------- child processes
const children = new Map() // ChildProcess -> name
let shuttingDown = false
const expectedExits = new Set()

function killAll () {
  shuttingDown = true
  for (const child of children.keys()) {
    try { child.kill('SIGKILL') } catch {}
  }
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    log(`\nbench: ${signal}, stopping`)
    killAll()
    process.exit(130)
  })
}
process.on('uncaughtException', (error) => fatal(error.stack ?? String(error)))
process.on('unhandledRejection', (error) => fatal(error?.stack ?? String(error)))

let gatewayStderr = ''
function fatal (message) {
  if (shuttingDown) return
  log(`\nbench: ${message}`)
  if (gatewayStderr.trim() !== '') log(`gateway stderr (tail):\n${gatewayStderr.slice(-4000)}`)
  killAll()
  process.exit(1)
}

function track (child, name) {
  children.set(child, name)
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (!shuttingDown && !expectedExits.has(child)) fatal(`${name} (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})`)
  })
  return child
}

function waitForMessage (child, type, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage)
      reject(new Error(`timed out waiting for ${what}`))
    }, timeoutMs)
    const onMessage = (message) => {
      if (message?.type !== type) return
      clearTimeout(timer)
      child.off('message', onMessage)
      resolve(message)
    }
    child.on('message', onMessage)
  })
}

function forkChild (name, script, args = []) {
  const child = fork(join(HERE, script), args, { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return track(child, name)
}

function freePort () {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// ---------------------------------------------------------------- fake Hub (in this process; used at gateway start only)
function startFakeHub () {
  const fromCorpus = existsSync(ZEPHYR_FILE)
  if (!fromCorpus) process.stderr.write(`bench: ${fileURLToPath(ZEPHYR_FILE)} is not present (no ../shared corpus); serving the project's zephyr-format template instead\n`)
  const zephyr = JSON.parse(readFileSync(fromCorpus ? ZEPHYR_FILE : ZEPHYR_FIXTURE, 'utf8'))
  const tokenizerConfig = JSON.stringify({ chat_template: zephyr.chat_template, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: '</s>' })
  const requests = []
  const server = createHttpServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]
    requests.push(`${request.method} ${path}`)
    request.resume()
    if (path === `/${MODEL}/resolve/main/tokenizer_config.json`) {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(tokenizerConfig) })
      response.end(request.method === 'HEAD' ? undefined : tokenizerConfig)
      return
    }
    response.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' })
    response.end('Entry not found')
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`, requests, close: () => server.close()
  })))
}

// ---------------------------------------------------------------- gateway
/** The gateway's environment for an engine: TGI_URL for TGI, a models file (written to `dir`) for vLLM. */
function gatewayEngineEnv (engine, upstreamUrl, dir) {
  if (engine === 'tgi') return { TGI_URL: upstreamUrl }
  const file = join(dir, 'models.yaml')
  writeFileSync(file, `models:\n  - { id: ${MODEL}, backend: ${engine}, url: "${upstreamUrl}", model: ${MODEL} }\n`)
  return { GATEWAY_CONFIG: file }
}

async function startGateway ({ engineEnv, hubUrl, hfHome, profileDir }) {
  const port = await freePort()
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    NODE_ENV: 'production',
    ...engineEnv,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    HF_HOME: hfHome,
    HF_ENDPOINT: hubUrl
  }
  const flags = [...options.gatewayNodeFlags, ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`])]
  const stdout = openSync(options.gatewayLog, 'a')
  const child = spawn(process.execPath, [...flags, options.gatewayEntry], { cwd: REPO, env, stdio: ['ignore', stdout, 'pipe'] })
  closeSync(stdout)
  track(child, 'gateway')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (text) => { gatewayStderr = (gatewayStderr + text).slice(-20_000) })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  let last = ''
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/ready`)
      last = `${response.status} ${await response.text()}`
      if (response.status === 200) return { child, url, pid: child.pid }
    } catch (error) {
      last = error.cause?.code ?? error.message
    }
    await sleep(100)
  }
  throw new Error(`gateway not ready after 30 s (last /ready: ${last.slice(0, 500)})`)
}

// ---------------------------------------------------------------- measurement
const requestBody = (stream, maxTokens) => JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: maxTokens, ...(stream ? { stream: true } : {}) })

/** An engine's scenarios; `name` is the scenario (ns32), `id` names the engine too (vllm-ns32), `label` starts with the engine. */
function scenarioList (engine, slowStreams) {
  const { label: engineLabel, scenarios } = ENGINES[engine]
  const ns = (c) => ({ name: `ns${c}`, label: `non-stream c=${c}`, kind: 'json', connections: c, body: requestBody(false, NON_STREAM_TOKENS) })
  const st = (c) => ({ name: `st${c}`, label: `stream 64 tok c=${c}`, kind: 'stream', connections: c, body: requestBody(true, STREAM_TOKENS) })
  return [
    ns(1), ns(32), ns(256), st(1), st(32),
    { name: 'slow', label: `slow streams c=${slowStreams}`, kind: 'slow', connections: slowStreams, body: requestBody(true, STREAM_TOKENS), delayMs: SLOW_DELAY_MS }
  ].filter((scenario) => scenarios.includes(scenario.name))
    .map((scenario) => ({ ...scenario, engine, id: `${engine}-${scenario.name}`, label: `${engineLabel} ${scenario.label}` }))
}

/** The scenarios --scenarios selects on an engine (a bare name on every engine, `engine-name` on that one). */
function wantedScenarios (engine) {
  const wanted = options.scenarios
  return scenarioList(engine, options.slowStreams).filter((scenario) => wanted === undefined || wanted.includes(scenario.name) || wanted.includes(scenario.id))
}

let runCounter = 0
async function measure ({ loadgen, fake, server, scenario, warmupMs, durationMs }) {
  const id = ++runCounter
  const pids = { server: server.pid, fake: fake.pid, loadgen: loadgen.pid }
  const snapshot = () => ({ at: performance.now(), machine: machineJiffies(), self: cpuMs(process.pid), cpu: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMs(pid)])) })
  let before
  let after
  let peakRssKb = 0
  const startRss = memoryKb(server.pid).rssKb
  const sampler = setInterval(() => {
    const { rssKb } = memoryKb(server.pid)
    if (rssKb > peakRssKb) peakRssKb = rssKb
  }, 50)
  // Slow streams: how many connections the server holds to the fake TGI (its upstream pool) at most.
  let peakUpstreamConnections
  const connectionSampler = scenario.kind === 'slow'
    ? setInterval(() => {
      const count = connectionsTo(server.pid, fake.port)
      if (!(count <= peakUpstreamConnections)) peakUpstreamConnections = count
    }, 1000)
    : undefined
  const onPhase = (message) => {
    if (message?.type !== 'phase' || message.id !== id) return
    if (message.phase === 'measure-start') before = { ...snapshot(), us: monotonicUs() }
    if (message.phase === 'measure-end') after = { ...snapshot(), us: monotonicUs() }
  }
  const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)
  loadgen.on('message', onPhase)
  const stream = scenario.kind !== 'json'
  const resultPromise = waitForMessage(loadgen, 'result', warmupMs + durationMs + 120_000, `load generator result (${scenario.name})`)
  loadgen.send({
    type: 'run',
    id,
    url: `${server.url}/v1/chat/completions`,
    path: '/v1/chat/completions',
    body: scenario.body,
    stream,
    expectChunks: STREAM_TOKENS,
    connections: scenario.connections,
    warmupMs,
    durationMs,
    // Connections open gradually; slow streams are also spread over one stream's length so they do not run in lock-step waves.
    rampMs: scenario.kind === 'slow' ? Math.min(warmupMs * 0.6, STREAM_TOKENS * scenario.delayMs) : Math.min(500, warmupMs / 2),
    drainMs: scenario.kind === 'slow' ? 15_000 : 5_000
  })
  const message = await resultPromise
  loadgen.off('message', onPhase)
  clearInterval(sampler)
  clearInterval(connectionSampler)
  const { rssKb: endRssKb, hwmKb } = memoryKb(server.pid)
  peakRssKb = Math.max(peakRssKb, endRssKb)
  if (message.error !== undefined) throw new Error(`load generator failed: ${message.error}`)
  server.windows?.push([before.us, after.us])
  if (server.windows !== undefined) server.windowRequests = (server.windowRequests ?? 0) + message.result.completed
  const result = message.result
  const windowMs = after.at - before.at
  const cpu = {}
  for (const name of Object.keys(pids)) {
    const ms = after.cpu[name] - before.cpu[name]
    cpu[name] = { ms, pctOfCore: (100 * ms) / windowMs, msPerRequest: result.completed > 0 ? ms / result.completed : NaN }
  }
  const machineBusyPct = (100 * (after.machine.busy - before.machine.busy)) / Math.max(1, after.machine.total - before.machine.total)
  // CPU used by anything else on the machine (other users' jobs, the idle server, kernel threads), in % of one core.
  const ours = Object.values(cpu).reduce((sum, entry) => sum + entry.ms, 0) + (after.self - before.self)
  const otherPctOfCore = Math.max(0, machineBusyPct * cpus().length - (100 * ours) / windowMs)
  return { engine: scenario.engine, scenario: scenario.name, id: scenario.id, label: scenario.label, server: server.name, connections: scenario.connections, ...result, cpu, machineBusyPct, otherPctOfCore, windowMs, peakUpstreamConnections, rss: { startKb: startRss, peakKb: peakRssKb, hwmKb } }
}

function progressLine (run) {
  const parts = [`${run.label.padEnd(29)} ${run.server.padEnd(7)}`]
  parts.push(`${formatNumber(run.throughput, 1).padStart(7)} /s`)
  if (run.ttftMs !== undefined) parts.push(`ttft p50 ${formatNumber(run.ttftMs.p50)} ms`)
  parts.push(`p50 ${formatNumber(run.latencyMs.p50)} p99 ${formatNumber(run.latencyMs.p99)} ms`)
  parts.push(`ok ${(100 * run.successRatio).toFixed(2)}%`)
  if (run.scenario === 'slow') parts.push(`in flight ${run.meanInFlight.toFixed(0)}, upstream conns ≤ ${run.peakUpstreamConnections}`)
  parts.push(`cpu srv ${run.cpu.server.pctOfCore.toFixed(0)}% fake ${run.cpu.fake.pctOfCore.toFixed(0)}% lg ${run.cpu.loadgen.pctOfCore.toFixed(0)}% machine ${run.machineBusyPct.toFixed(0)}%`)
  if (Object.keys(run.failures).length > 0) parts.push(`failures ${JSON.stringify(run.failures)}`)
  return parts.join('  ')
}

// Other processes on the machine (this box is shared) disturb the figures: wait for a quiet moment
// before each run, and repeat a run once when others used more than DISTURBED % of a core during it.
const QUIET_PCT = 20
const DISTURBED_PCT = 25
let quietBudgetMs = 40_000
async function waitQuiet () {
  const until = Date.now() + Math.min(15_000, quietBudgetMs)
  let busyPct = 0
  for (;;) {
    const before = machineJiffies()
    await sleep(500)
    const after = machineJiffies()
    busyPct = (100 * cpus().length * (after.busy - before.busy)) / Math.max(1, after.total - before.total)
    if (busyPct < QUIET_PCT || Date.now() >= until) break
  }
  return busyPct
}

async function measureQuietly (args) {
  let waitedFrom = Date.now()
  let busy = await waitQuiet()
  quietBudgetMs -= Date.now() - waitedFrom
  if (busy >= QUIET_PCT) log(`bench: machine still busy (${busy.toFixed(0)} % of a core) before ${args.scenario.id}/${args.server.name}; measuring anyway`)
  let run = await measure(args)
  if (run.otherPctOfCore > DISTURBED_PCT && quietBudgetMs > 0) {
    log(`bench: ${args.scenario.id}/${args.server.name} disturbed (other processes ${run.otherPctOfCore.toFixed(0)} % of a core); repeating it once`)
    waitedFrom = Date.now()
    busy = await waitQuiet()
    quietBudgetMs -= Date.now() - waitedFrom
    const again = await measure(args)
    again.repeatedAfterDisturbance = { firstOtherPctOfCore: run.otherPctOfCore }
    if (again.otherPctOfCore < run.otherPctOfCore) run = again
  }
  return run
}

async function configureFake (fake, config) {
  const configured = waitForMessage(fake, 'configured', 5000, `${fake.name} reconfiguration`)
  fake.send({ type: 'config', ...config })
  await configured
}

/** Sends one request of each kind through a server, returning the prompt the fake received and checking the answers. */
async function checkServer (engine, fake, server) {
  const captured = waitForMessage(fake, 'captured', 10_000, `captured upstream request from ${server.name}`)
  fake.send({ type: 'capture' })
  const response = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: requestBody(false, NON_STREAM_TOKENS) })
  const completion = await response.json()
  const upstream = JSON.parse((await captured).body)
  const problems = []
  if (response.status !== 200) problems.push(`non-stream HTTP ${response.status}: ${JSON.stringify(completion).slice(0, 300)}`)
  else if (completion.choices?.[0]?.message?.content !== ' tok'.repeat(NON_STREAM_TOKENS)) problems.push(`unexpected content ${JSON.stringify(completion.choices?.[0]?.message)}`)
  const streamResponse = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: requestBody(true, STREAM_TOKENS) })
  const events = (await streamResponse.text()).split('\n\n').filter((event) => event.startsWith('data: ')).map((event) => event.slice(6))
  const content = events.filter((event) => event !== '[DONE]').map((event) => JSON.parse(event)).filter((chunk) => typeof chunk.choices?.[0]?.delta?.content === 'string' && chunk.choices[0].delta.content !== '')
  if (streamResponse.status !== 200 || content.length !== STREAM_TOKENS || events.at(-1) !== '[DONE]') {
    problems.push(`stream: HTTP ${streamResponse.status}, ${content.length} content chunks, last event ${events.at(-1)}`)
  }
  if (engine === 'tgi') return { prompt: upstream.inputs, parameters: upstream.parameters, usage: completion.usage, problems }
  // /v1/completions: the prompt, and the rest of the body as the parameters.
  const { prompt, ...parameters } = upstream
  if (typeof prompt !== 'string') problems.push(`upstream body without a string prompt: ${JSON.stringify(upstream).slice(0, 300)}`)
  return { prompt, parameters, usage: completion.usage, problems }
}

// ---------------------------------------------------------------- report
const ratio = (numerator, denominator, direction) => {
  const value = numerator / denominator
  return Number.isFinite(value) ? `${value.toFixed(2)} ${direction}` : 'n/a'
}
const signed = (value) => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)}`
const mark = (ok) => ok === undefined ? '' : ok ? '✓' : '✗'

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]
}

/**
 * Each server's median run per scenario (by throughput), and the per-round
 * gateway/floor throughput ratios with their median.
 */
function summariseRounds (runs) {
  const byKey = new Map()
  const ratios = new Map()
  const scenarios = [...new Set(runs.map((run) => run.scenario))]
  for (const scenario of scenarios) {
    for (const server of ['floor', 'gateway']) {
      const own = runs.filter((run) => run.scenario === scenario && run.server === server)
      if (own.length === 0) continue
      const middle = median(own.map((run) => run.throughput))
      byKey.set(`${scenario}/${server}`, own.find((run) => run.throughput === middle))
    }
    const pairs = runs.filter((run) => run.scenario === scenario && run.server === 'gateway').flatMap((gateway) => {
      const floor = runs.find((run) => run.scenario === scenario && run.server === 'floor' && run.round === gateway.round)
      return floor === undefined ? [] : [{ floor, gateway }]
    })
    const perRound = pairs.map(({ floor, gateway }) => gateway.throughput / floor.throughput)
    // Streams: the gateway's TTFT p50 minus the floor's, per round.
    const ttftPerRound = pairs.filter(({ floor }) => floor.ttftMs !== undefined).map(({ floor, gateway }) => gateway.ttftMs.p50 - floor.ttftMs.p50)
    ratios.set(scenario, { perRound, median: median(perRound), ttftPerRound, ttftMedian: median(ttftPerRound) })
  }
  return { byKey, ratios }
}

/** One engine's table rows and targets (target names start with the engine: "vLLM non-stream req/s ..."). */
function buildReport (engine, runs) {
  const { byKey, ratios } = summariseRounds(runs)
  const roundsNote = (name) => {
    const { perRound } = ratios.get(name)
    return perRound.length > 1 ? ` (median of rounds ${perRound.map((value) => value.toFixed(2)).join(', ')})` : ''
  }
  const rows = []
  const targets = []
  const target = (name, ok, detail) => {
    targets.push({ engine, name: `${ENGINES[engine].label} ${name}`, ok, detail })
    return `${name}: ${detail} ${mark(ok)}`
  }
  const ms = (value) => formatNumber(value, 2)
  for (const name of ['ns1', 'ns32', 'ns256', 'st1', 'st32', 'slow']) {
    const floor = byKey.get(`${name}/floor`)
    const gateway = byKey.get(`${name}/gateway`)
    if (floor === undefined || gateway === undefined) continue
    const label = floor.label
    const row = (scenario, metric, f, g, r, goal = '') => rows.push([scenario, metric, f, g, r, goal])
    if (name.startsWith('ns')) {
      const goal = name === 'ns32'
        ? target('non-stream req/s at 32 ≥ 0.5× floor', ratios.get(name).median >= 0.5, `${ratios.get(name).median.toFixed(2)}×${roundsNote(name)}`)
        : ''
      row(label, 'req/s', formatNumber(floor.throughput, 1), formatNumber(gateway.throughput, 1), ratio(gateway.throughput, floor.throughput, 'g/f'), goal)
      row('', 'latency p50 ms', ms(floor.latencyMs.p50), ms(gateway.latencyMs.p50), ratio(floor.latencyMs.p50, gateway.latencyMs.p50, 'f/g'))
      row('', 'latency p99 ms', ms(floor.latencyMs.p99), ms(gateway.latencyMs.p99), ratio(floor.latencyMs.p99, gateway.latencyMs.p99, 'f/g'))
      row('', 'server CPU ms/req', ms(floor.cpu.server.msPerRequest), ms(gateway.cpu.server.msPerRequest), ratio(gateway.cpu.server.msPerRequest, floor.cpu.server.msPerRequest, 'g/f'))
    } else if (name.startsWith('st')) {
      const goal = name === 'st32'
        ? target('64-token streams/s at 32 ≥ 0.5× floor', ratios.get(name).median >= 0.5, `${ratios.get(name).median.toFixed(2)}×${roundsNote(name)}`)
        : ''
      row(label, 'streams/s', formatNumber(floor.throughput, 1), formatNumber(gateway.throughput, 1), ratio(gateway.throughput, floor.throughput, 'g/f'), goal)
      const { ttftPerRound, ttftMedian } = ratios.get(name)
      const ttftOk = ttftMedian <= 1
      const ttftRounds = ttftPerRound.length > 1 ? ` (median of rounds ${ttftPerRound.map((value) => signed(value)).join(', ')})` : ''
      row('', 'TTFT p50 ms', ms(floor.ttftMs.p50), ms(gateway.ttftMs.p50), ratio(floor.ttftMs.p50, gateway.ttftMs.p50, 'f/g'),
        target(`TTFT p50 ≤ floor + 1 ms (c=${floor.connections})`, ttftOk, `${signed(ttftMedian)} ms${ttftRounds}`))
      row('', 'TTFT p99 ms', ms(floor.ttftMs.p99), ms(gateway.ttftMs.p99), ratio(floor.ttftMs.p99, gateway.ttftMs.p99, 'f/g'))
      row('', 'stream time p99 ms', ms(floor.latencyMs.p99), ms(gateway.latencyMs.p99), ratio(floor.latencyMs.p99, gateway.latencyMs.p99, 'f/g'))
      row('', 'server CPU ms/stream', ms(floor.cpu.server.msPerRequest), ms(gateway.cpu.server.msPerRequest), ratio(gateway.cpu.server.msPerRequest, floor.cpu.server.msPerRequest, 'g/f'))
    } else {
      const pct = (run) => `${(100 * run.successRatio).toFixed(2)}% of ${run.startedInWindow}`
      row(label, 'complete (64 chunks+[DONE])', pct(floor), pct(gateway), ratio(gateway.successRatio, floor.successRatio, 'g/f'),
        target('slow streams 100 % complete', gateway.successRatio === 1, `${(100 * gateway.successRatio).toFixed(2)}%`))
      row('', 'streams/s', formatNumber(floor.throughput, 1), formatNumber(gateway.throughput, 1), ratio(gateway.throughput, floor.throughput, 'g/f'))
      row('', 'streams in flight (mean)', formatNumber(floor.meanInFlight, 0), formatNumber(gateway.meanInFlight, 0), '')
      row('', 'upstream connections (peak)', String(floor.peakUpstreamConnections), String(gateway.peakUpstreamConnections), '')
      row('', 'TTFT p50 ms', ms(floor.ttftMs.p50), ms(gateway.ttftMs.p50), ratio(floor.ttftMs.p50, gateway.ttftMs.p50, 'f/g'))
      row('', 'stream time p50 ms', ms(floor.startedMs.p50), ms(gateway.startedMs.p50), ratio(floor.startedMs.p50, gateway.startedMs.p50, 'f/g'))
      row('', 'stream time p99 ms', ms(floor.startedMs.p99), ms(gateway.startedMs.p99), ratio(floor.startedMs.p99, gateway.startedMs.p99, 'f/g'),
        target('slow stream p99 ≤ 1.2× floor', gateway.startedMs.p99 <= 1.2 * floor.startedMs.p99, `${(gateway.startedMs.p99 / floor.startedMs.p99).toFixed(2)}×`))
      row('', 'RSS at scenario start MB', formatNumber(floor.rss.startKb / 1024, 1), formatNumber(gateway.rss.startKb / 1024, 1), ratio(gateway.rss.startKb, floor.rss.startKb, 'g/f'))
      row('', 'peak RSS MB', formatNumber(floor.rss.peakKb / 1024, 1), formatNumber(gateway.rss.peakKb / 1024, 1), ratio(gateway.rss.peakKb, floor.rss.peakKb, 'g/f'),
        target('gateway peak RSS ≤ 250 MB', gateway.rss.peakKb / 1024 <= 250, `${(gateway.rss.peakKb / 1024).toFixed(0)} MB`))
      row('', 'server CPU ms/stream', ms(floor.cpu.server.msPerRequest), ms(gateway.cpu.server.msPerRequest), ratio(gateway.cpu.server.msPerRequest, floor.cpu.server.msPerRequest, 'g/f'))
    }
  }
  return { rows, targets, roundRatios: Object.fromEntries(ratios) }
}

function diagnosticsRows (runs) {
  return runs.map((run) => [
    run.label, run.server, String(run.round ?? 1), String(run.completed),
    String(run.failedInWindow + Object.values(run.failures).reduce((sum, count) => sum + count, 0)),
    `${run.cpu.server.pctOfCore.toFixed(0)}%`, `${run.cpu.fake.pctOfCore.toFixed(0)}%`, `${run.cpu.loadgen.pctOfCore.toFixed(0)}%`,
    formatNumber(run.cpu.fake.msPerRequest, 3), formatNumber(run.cpu.loadgen.msPerRequest, 3),
    `${run.machineBusyPct.toFixed(0)}%`, `${run.otherPctOfCore.toFixed(0)}%`, formatNumber(run.eventLoopLagMs.p99, 1)
  ])
}

function warnings (runs) {
  const notes = []
  for (const run of runs) {
    if (run.cpu.loadgen.pctOfCore > 90) notes.push(`${run.label} (${run.server}): load generator at ${run.cpu.loadgen.pctOfCore.toFixed(0)}% of a core, it may be the limit`)
    if (run.cpu.fake.pctOfCore > 90) notes.push(`${run.label} (${run.server}): ${ENGINES[run.engine].fakeName} at ${run.cpu.fake.pctOfCore.toFixed(0)}% of a core, it may be the limit`)
    if (Object.keys(run.failures).length > 0) notes.push(`${run.label} (${run.server}): failures ${JSON.stringify(run.failures)}`)
  }
  const disturbed = runs.filter((run) => run.otherPctOfCore > 15).map((run) => `${run.id}/${run.server} ${run.otherPctOfCore.toFixed(0)}%`)
  if (disturbed.length > 0) notes.push(`other processes used CPU during: ${disturbed.join(', ')} (of one core) — those figures are disturbed; re-run on a quiet machine`)
  if (runs.some((run) => run.scenario === 'slow')) {
    notes.push(`slow streams: an unhindered stream takes ${(STREAM_TOKENS - 1) * SLOW_DELAY_MS} ms (first token at once, then ${STREAM_TOKENS - 1} × ${SLOW_DELAY_MS} ms); ` +
      `${options.slowStreams} of them make ${Math.round((options.slowStreams * STREAM_TOKENS) / (((STREAM_TOKENS - 1) * SLOW_DELAY_MS) / 1000))} token events/s that the fake, the server and the load generator each handle`)
  }
  const saturated = runs.filter((run) => run.machineBusyPct > 95).map((run) => `${run.id}/${run.server}`)
  if (saturated.length > 0) {
    notes.push(`machine CPU (${cpus().length} cores) was ≥ 95 % busy in: ${saturated.join(', ')} — there, req/s is bounded by the whole box (server + fake + load generator share the cores); CPU ms/req is the robust comparison`)
  }
  return notes
}

// ---------------------------------------------------------------- soak
async function metricsOf (url) {
  try {
    const text = await (await fetch(`${url}/metrics`)).text()
    const value = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)
    return { heapUsedBytes: value('nodejs_heap_size_used_bytes'), inFlightStreams: value('gateway_in_flight_streams') }
  } catch {
    return { heapUsedBytes: NaN, inFlightStreams: NaN }
  }
}

async function soak ({ engine, loadgen, fake, gateway, minutes }) {
  const roundMs = options.duration * 1000
  const deadline = Date.now() + minutes * 60_000
  const scenarios = scenarioList(engine, options.slowStreams).filter((scenario) => scenario.name === 'ns32' || scenario.name === 'st32')
  const rounds = []
  log(`soak: ${minutes} min of rounds (non-stream c=32 then stream c=32, ${options.duration} s each) against the gateway over ${ENGINES[engine].fakeName}`)
  while (Date.now() < deadline || rounds.length < 3) {
    const round = { index: rounds.length + 1 }
    for (const scenario of scenarios) {
      const run = await measure({ loadgen, fake, server: gateway, scenario, warmupMs: rounds.length === 0 ? options.warmup * 1000 : 0, durationMs: roundMs })
      round[scenario.name] = { throughput: run.throughput, failures: run.failures, successRatio: run.successRatio }
    }
    await sleep(200)
    const memory = memoryKb(gateway.pid)
    const metrics = await metricsOf(gateway.url)
    Object.assign(round, { elapsedS: (minutes * 60_000 - (deadline - Date.now())) / 1000, rssMb: memory.rssKb / 1024, hwmMb: memory.hwmKb / 1024, heapUsedMb: metrics.heapUsedBytes / 2 ** 20, inFlightStreams: metrics.inFlightStreams })
    rounds.push(round)
    log(`round ${String(round.index).padStart(3)}  t=${round.elapsedS.toFixed(0).padStart(5)} s  non-stream ${formatNumber(round.ns32.throughput, 1).padStart(7)}/s  streams ${formatNumber(round.st32.throughput, 1).padStart(7)}/s  RSS ${round.rssMb.toFixed(1)} MB  heap ${round.heapUsedMb.toFixed(1)} MB  in-flight ${round.inFlightStreams}`)
  }
  // The first round (JIT warm-up, heap sizing) is left out of the comparison when there are enough rounds.
  const considered = rounds.length >= 4 ? rounds.slice(1) : rounds
  const third = Math.max(1, Math.floor(considered.length / 3))
  const mean = (list, key) => list.reduce((sum, round) => sum + round[key], 0) / list.length
  const first = considered.slice(0, third)
  const last = considered.slice(-third)
  const verdict = {
    rounds: rounds.length,
    firstThirdRssMb: mean(first, 'rssMb'),
    lastThirdRssMb: mean(last, 'rssMb'),
    firstThirdHeapMb: mean(first, 'heapUsedMb'),
    lastThirdHeapMb: mean(last, 'heapUsedMb')
  }
  verdict.rssGrowthPct = (100 * (verdict.lastThirdRssMb - verdict.firstThirdRssMb)) / verdict.firstThirdRssMb
  // Growth means more than 10 % AND more than 5 MB between the first and the last third of the rounds.
  verdict.rssGrows = verdict.rssGrowthPct > 10 && verdict.lastThirdRssMb - verdict.firstThirdRssMb > 5
  verdict.leakedInFlightStreams = rounds.at(-1).inFlightStreams
  process.stdout.write(`\nSoak (${ENGINES[engine].label}): ${rounds.length} rounds over ${minutes} min. RSS first third ${verdict.firstThirdRssMb.toFixed(1)} MB → last third ${verdict.lastThirdRssMb.toFixed(1)} MB ` +
    `(${verdict.rssGrowthPct >= 0 ? '+' : ''}${verdict.rssGrowthPct.toFixed(1)} %); heap ${verdict.firstThirdHeapMb.toFixed(1)} → ${verdict.lastThirdHeapMb.toFixed(1)} MB; ` +
    `gateway_in_flight_streams after the last round: ${verdict.leakedInFlightStreams}\n`)
  process.stdout.write(verdict.rssGrows ? 'RSS GROWS (> 10 % and > 5 MB from the first to the last third): look for a leak (heap snapshot).\n' : 'RSS is stable (no growth above 10 % / 5 MB).\n')
  return { engine, rounds, verdict }
}

// ---------------------------------------------------------------- engines
/** Starts an engine's fake, its floor proxy (unless soaking) and a gateway in front of the fake. */
async function startEngine ({ engine, hub, hfHome, profileDir, withFloor }) {
  const spec = ENGINES[engine]
  const fake = forkChild(spec.fakeName, spec.fakeScript, ['--stream-tokens', String(STREAM_TOKENS), '--generate-tokens', String(NON_STREAM_TOKENS)])
  fake.name = spec.fakeName
  fake.port = (await waitForMessage(fake, 'listening', 10_000, spec.fakeName)).port
  const upstreamUrl = `http://127.0.0.1:${fake.port}`
  let floor
  if (withFloor) {
    const child = forkChild(`floor proxy (${engine})`, 'floor.mjs', ['--upstream', upstreamUrl, '--protocol', spec.floorProtocol])
    floor = { name: 'floor', child, pid: child.pid, url: `http://127.0.0.1:${(await waitForMessage(child, 'listening', 10_000, `floor proxy (${engine})`)).port}` }
  }
  // Each engine's gateway starts with an empty Hub cache, and so fetches the template from the fake Hub.
  const home = join(hfHome, engine)
  mkdirSync(home, { recursive: true })
  const hubSeen = hub.requests.length
  const gatewayProcess = await startGateway({ engineEnv: gatewayEngineEnv(engine, upstreamUrl, home), hubUrl: hub.url, hfHome: home, profileDir })
  const gateway = { name: 'gateway', ...gatewayProcess, windows: [] }
  const hubRequests = hub.requests.slice(hubSeen)
  log(`${spec.label}: ${spec.fakeName} ${upstreamUrl} (pid ${fake.pid}), ${floor ? `floor --protocol ${spec.floorProtocol} ${floor.url} (pid ${floor.pid}), ` : ''}gateway ${gateway.url} (pid ${gateway.pid}${profileDir !== undefined ? ', --cpu-prof' : ''}; ${spec.gatewaySetup}); fake Hub served: ${hubRequests.join(', ') || 'nothing'}`)
  return { engine, fake, floor, gateway, upstreamUrl, hubRequests }
}

/** Stops an engine's processes (those still running) and waits for them to exit. */
async function stopEngine ({ fake, floor, gateway }) {
  const running = [fake, floor?.child, gateway.child].filter((child) => child !== undefined && child.exitCode === null && child.signalCode === null)
  await Promise.all(running.map((child) => {
    expectedExits.add(child)
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    return exited
  }))
}

/** --cpu-prof: stops the gateway (SIGINT writes its profile) and summarises the profile. */
async function profileGateway (gateway, profileDir) {
  expectedExits.add(gateway.child)
  const exited = new Promise((resolve) => gateway.child.once('exit', resolve))
  gateway.child.kill('SIGINT')
  await Promise.race([exited, sleep(20_000)])
  const files = readdirSync(profileDir).filter((file) => file.endsWith('.cpuprofile') && file.includes(`.${gateway.pid}.`))
  if (files.length === 0) {
    log(`bench: no CPU profile for gateway pid ${gateway.pid} in ${profileDir}`)
    return undefined
  }
  const summary = analyseProfile(join(profileDir, files.sort().at(-1)), 25, gateway.windows.length > 0 ? gateway.windows : undefined)
  summary.requests = gateway.windowRequests
  return summary
}

// ---------------------------------------------------------------- main
async function main () {
  const started = new Date()
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const resultsDir = join(REPO, 'bench-results')
  const profileDir = join(resultsDir, 'profiles')
  mkdirSync(options.cpuProf ? profileDir : resultsDir, { recursive: true })
  const hfHome = mkdtempSync(join(tmpdir(), 'bench-hf-home-'))
  process.on('exit', () => rmSync(hfHome, { recursive: true, force: true }))

  const soakOnly = options.soak !== undefined
  // Soak: the first engine only. Comparison: the engines with at least one selected scenario.
  const engines = soakOnly ? options.engines.slice(0, 1) : options.engines.filter((engine) => wantedScenarios(engine).length > 0)
  if (engines.length === 0) throw new Error(`no scenario of ${options.engines.join(', ')} matches ${options.scenarios}`)

  const idleBefore = machineJiffies()
  await sleep(1000)
  const idleAfter = machineJiffies()
  const backgroundPct = (100 * cpus().length * (idleAfter.busy - idleBefore.busy)) / Math.max(1, idleAfter.total - idleBefore.total)
  if (backgroundPct > 15) log(`bench: warning: the machine is already busy (${backgroundPct.toFixed(0)} % of one core used by other processes); figures will be disturbed`)

  const hub = await startFakeHub()
  const loadgen = forkChild('load generator', 'loadgen.mjs')
  await waitForMessage(loadgen, 'ready', 10_000, 'load generator')
  log(`load generator pid ${loadgen.pid}, fake Hub ${hub.url}; engines: ${engines.join(', ')}`)

  const output = {
    startedAt: started.toISOString(),
    options,
    environment: { backgroundCpuPctOfCore: +backgroundPct.toFixed(1), node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: +(totalmem() / 2 ** 30).toFixed(1) },
    setup: {
      fake: { generateTokens: NON_STREAM_TOKENS, streamTokens: STREAM_TOKENS, slowDelayMs: SLOW_DELAY_MS },
      requestBodies: { nonStream: requestBody(false, NON_STREAM_TOKENS), stream: requestBody(true, STREAM_TOKENS) },
      gateway: { entry: options.gatewayEntry, nodeFlags: options.gatewayNodeFlags, logLevel: 'info', log: options.gatewayLog, cpuProf: options.cpuProf },
      // Per engine: its fake, floor and gateway set-up, the upstream requests' check.
      engines: {}
    }
  }
  const runs = []
  const tables = {}
  const targets = []
  const roundRatios = {}
  const profiles = {}

  for (const engine of engines) {
    const spec = ENGINES[engine]
    const running = await startEngine({ engine, hub, hfHome, profileDir: options.cpuProf ? profileDir : undefined, withFloor: !soakOnly })
    const { fake, floor, gateway } = running

    const checks = {}
    for (const server of floor ? [floor, gateway] : [gateway]) {
      checks[server.name] = await checkServer(engine, fake, server)
      if (checks[server.name].problems.length > 0) throw new Error(`${spec.label}: ${server.name} answers wrongly: ${checks[server.name].problems.join('; ')}`)
    }
    const samePrompt = floor === undefined || checks.floor.prompt === checks.gateway.prompt
    log(`${spec.label} prompt check: ${floor === undefined ? 'gateway only' : samePrompt ? 'floor and gateway send the same prompt ✓' : 'PROMPTS DIFFER ✗'} ${JSON.stringify(checks.gateway.prompt)}; gateway parameters ${JSON.stringify(checks.gateway.parameters)}${floor ? `; floor parameters ${JSON.stringify(checks.floor.parameters)}` : ''}`)
    if (!samePrompt) log(`  floor: ${JSON.stringify(checks.floor.prompt)}`)
    output.setup.engines[engine] = {
      fake: spec.fakeScript, floor: soakOnly ? undefined : `floor.mjs --protocol ${spec.floorProtocol}`, gateway: spec.gatewaySetup, hubRequests: running.hubRequests, checks, samePrompt
    }

    if (soakOnly) {
      output.soak = await soak({ engine, loadgen, fake, gateway, minutes: options.soak })
    } else {
      for (const scenario of wantedScenarios(engine)) {
        const slow = scenario.kind === 'slow'
        if (slow) await configureFake(fake, { delayMs: scenario.delayMs })
        // Slow streams: 1000 connections must be open and cycling before the window starts.
        const warmupMs = slow ? (options.quick ? 2000 : Math.max(3000, options.warmup * 1000)) : options.warmup * 1000
        const durationMs = slow && options.quick ? 1500 : options.duration * 1000
        // The host's speed drifts over minutes (other tenants): floor and gateway are
        // measured back to back each round, so each round's ratio compares like with like.
        const rounds = slow || options.quick ? 1 : options.rounds
        for (let round = 1; round <= rounds; round++) {
          for (const server of [floor, gateway]) {
            const run = await measureQuietly({ loadgen, fake, server, scenario, warmupMs, durationMs })
            run.round = round
            runs.push(run)
            log(progressLine(run))
            await sleep(300)
          }
        }
        if (slow) await configureFake(fake, { delayMs: 0 })
      }
      const report = buildReport(engine, runs.filter((run) => run.engine === engine))
      tables[engine] = report.rows
      targets.push(...report.targets)
      roundRatios[engine] = report.roundRatios
    }

    if (options.cpuProf) profiles[engine] = await profileGateway(gateway, profileDir)
    await stopEngine(running)
  }

  const out = (text) => process.stdout.write(text)
  if (!soakOnly) {
    output.runs = runs
    output.table = tables
    output.targets = targets
    output.roundRatios = roundRatios

    out(`\nhf-chat-gateway benchmark — ${started.toISOString()} — node ${process.version}, ${cpus().length} CPUs; ${options.quick ? 'QUICK, ' : ''}` +
      `${options.warmup} s warm-up + ${options.duration} s per scenario and server, ${options.quick ? 1 : options.rounds} round(s) (slow streams: 1); table: each server's median run; gateway LOG_LEVEL=info${options.cpuProf ? ', under --cpu-prof (slower)' : ''}\n`)
    out('ratio: g/f = gateway ÷ floor (throughput, success, CPU and RSS costs); f/g = floor ÷ gateway (latencies). For throughput and latency ratios, 1.00 = parity and lower = gateway worse; for CPU and RSS, higher = gateway costs more.\n')
    for (const engine of engines) {
      const spec = ENGINES[engine]
      out(`\n${spec.label} — ${spec.fakeName} (${spec.fakeScript}); floor: floor.mjs --protocol ${spec.floorProtocol}; gateway: ${spec.gatewaySetup}\n`)
      out(table(['scenario', 'metric', 'floor', 'gateway', 'ratio', 'target'], tables[engine], [0, 1, 5]) + '\n')
    }
    out('\nLoad and CPU per run (measurement window; CPU in % of one core; fake = the engine\'s fake; machine = all cores busy %; other = CPU of processes outside the benchmark, % of one core):\n')
    out(table(['scenario', 'server', 'round', 'ok', 'failed', 'srv CPU', 'fake CPU', 'loadgen CPU', 'fake ms/req', 'lg ms/req', 'machine', 'other', 'lg lag p99 ms'], diagnosticsRows(runs)) + '\n')
    const notes = warnings(runs)
    for (const engine of engines) {
      if (!output.setup.engines[engine].samePrompt) notes.unshift(`${ENGINES[engine].label}: floor and gateway sent DIFFERENT prompts upstream (see setup.engines.${engine}.checks in the JSON): the comparison is not like for like`)
    }
    if (notes.length > 0) out(`\nNotes:\n${notes.map((note) => `  - ${note}`).join('\n')}\n`)
    out(`\nTargets:\n${targets.map((entry) => `  ${mark(entry.ok)} ${entry.name}: ${entry.detail}`).join('\n')}\n`)
    out(`  ${targets.every((entry) => entry.ok) ? 'all targets met' : `${targets.filter((entry) => !entry.ok).length} of ${targets.length} targets missed`}\n`)
  }

  if (options.cpuProf) {
    output.profiles = {}
    for (const engine of engines) {
      const summary = profiles[engine]
      if (summary === undefined) continue
      out(`\n${ENGINES[engine].label} gateway:`)
      printProfile(summary)
      output.profiles[engine] = summary
    }
  }

  const file = join(resultsDir, `bench-${stamp}${soakOnly ? '-soak' : ''}.json`)
  writeFileSync(file, JSON.stringify(output, null, 2))
  process.stdout.write(`\nresults: ${relative(process.cwd(), file)}\n`)
  hub.close()
}

main().then(() => {
  killAll()
  process.exit(0)
}, (error) => fatal(error.stack ?? String(error)))
