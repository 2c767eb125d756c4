// Summarises a V8 .cpuprofile (from node --cpu-prof): self time per function
// (functionName + url:line), self time per package/file, and inclusive time of
// the gateway's own functions. Compiled dist/*.js locations are mapped back to
// the TypeScript sources through their .js.map files.
//
// Standalone: node scripts/bench/profile.mjs <file.cpuprofile> [top=25]
import { readFileSync, existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { relative } from 'node:path'
import { SourceMap } from 'node:module'
import { table } from './lib.mjs'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
/** The compiled gateway (src/ and routes/), as profile URLs spell it. */
const GATEWAY_DIST = new URL('../../dist/', import.meta.url).href
const isGateway = (url) => url.startsWith(GATEWAY_DIST)
const sourceMaps = new Map()

function mapLocation (url, line, column) {
  if (!isGateway(url)) return undefined
  let map = sourceMaps.get(url)
  if (map === undefined) {
    const path = `${fileURLToPath(url)}.map`
    map = null
    if (existsSync(path)) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(path, 'utf8')))
      } catch {}
    }
    sourceMaps.set(url, map)
  }
  if (map === null) return undefined
  const entry = map.findEntry(line, column)
  if (entry?.originalSource === undefined) return undefined
  const source = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : new URL(entry.originalSource, url).pathname
  return `${relative(REPO, source)}:${entry.originalLine + 1}`
}

function shortUrl (url) {
  if (url === '') return ''
  if (url.startsWith('node:')) return url
  let path = url.startsWith('file://') ? fileURLToPath(url) : url
  const modules = path.lastIndexOf('/node_modules/')
  if (modules !== -1) return path.slice(modules + '/node_modules/'.length)
  if (path.startsWith(REPO)) path = path.slice(REPO.length)
  return path
}

/** The package (node_modules/<pkg>), gateway file, node internals or V8 pseudo-frame a frame belongs to. */
function bucketOf (callFrame) {
  const url = callFrame.url
  if (url === '') return callFrame.functionName.startsWith('(') ? callFrame.functionName : '(native/builtin)'
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, url.startsWith('node:internal') ? 2 : 1).join('/')}`
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const modules = path.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const parts = path.slice(modules + '/node_modules/'.length).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  return `gateway ${shortUrl(url)}`
}

/**
 * `windows`: optional [startUs, endUs] pairs on the monotonic clock (process.hrtime, which is
 * also V8's profile clock on Linux); when given, only samples inside them count, so start-up
 * and idle gaps between scenarios stay out of the figures.
 */
export function analyseProfile (file, top = 25, windows = undefined) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  // Time per sample: the gap to the next sample (as DevTools does); the last gets the mean gap.
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  const meanGap = samples.length > 1 ? (profile.endTime - profile.startTime) / samples.length : 0
  const selfByNode = new Map()
  const sorted = windows === undefined ? undefined : [...windows].sort((a, b) => a[0] - b[0])
  let at = profile.startTime
  let windowIndex = 0
  for (let index = 0; index < samples.length; index++) {
    at += deltas[index] ?? 0
    if (sorted !== undefined) {
      while (windowIndex < sorted.length && sorted[windowIndex][1] < at) windowIndex++
      if (windowIndex === sorted.length || at < sorted[windowIndex][0]) continue
    }
    const gap = index + 1 < deltas.length ? Math.max(0, deltas[index + 1]) : meanGap
    selfByNode.set(samples[index], (selfByNode.get(samples[index]) ?? 0) + gap)
  }
  if (samples.length === 0) {
    for (const node of profile.nodes) selfByNode.set(node.id, (node.hitCount ?? 0) * 1000)
  }

  const keyOf = (node) => {
    const frame = node.callFrame
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
    return frame.url === '' ? name : `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
  }
  const functions = new Map()
  const buckets = new Map()
  let totalUs = 0
  let idleUs = 0
  for (const [id, us] of selfByNode) {
    const node = nodes.get(id)
    if (node === undefined) continue
    totalUs += us
    if (node.callFrame.functionName === '(idle)') idleUs += us
    const key = keyOf(node)
    const entry = functions.get(key) ?? { key, us: 0, frame: node.callFrame }
    entry.us += us
    functions.set(key, entry)
    const bucket = bucketOf(node.callFrame)
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us)
  }
  const busyUs = totalUs - idleUs

  // Inclusive time of the gateway's own functions (dist/src, dist/routes) and of each npm package,
  // each counted once per sample however deep it recurs.
  const inclusive = new Map()
  const packageInclusive = new Map()
  const gatewayKeys = new Map()
  const packageOf = new Map()
  for (const node of profile.nodes) {
    if (isGateway(node.callFrame.url)) gatewayKeys.set(node.id, keyOf(node))
    else if (node.callFrame.url.includes('/node_modules/')) packageOf.set(node.id, bucketOf(node.callFrame))
  }
  for (const [id, us] of selfByNode) {
    const seen = new Set()
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const key = gatewayKeys.get(at) ?? packageOf.get(at)
      if (key !== undefined && !seen.has(key)) {
        seen.add(key)
        const target = gatewayKeys.has(at) ? inclusive : packageInclusive
        target.set(key, (target.get(key) ?? 0) + us)
      }
    }
  }
  const frameOfKey = new Map(Array.from(functions.values(), (entry) => [entry.key, entry.frame]))
  for (const node of profile.nodes) if (!frameOfKey.has(keyOf(node))) frameOfKey.set(keyOf(node), node.callFrame)
  const source = (frame) => mapLocation(frame.url, frame.lineNumber, frame.columnNumber) ?? ''

  const ms = (us) => us / 1000
  return {
    file,
    windowed: sorted !== undefined,
    windowsMs: sorted === undefined ? undefined : ms(sorted.reduce((sum, [start, end]) => sum + end - start, 0)),
    durationMs: ms(profile.endTime - profile.startTime),
    sampledMs: ms(totalUs),
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    topSelf: Array.from(functions.values()).filter((entry) => entry.key !== '(idle)').sort((a, b) => b.us - a.us).slice(0, top).map((entry) => ({
      function: entry.key, selfMs: ms(entry.us), pctOfBusy: (100 * entry.us) / busyUs, source: source(entry.frame)
    })),
    byPackage: Array.from(buckets.entries()).sort((a, b) => b[1] - a[1]).slice(0, 20).map(([bucket, us]) => ({
      bucket, selfMs: ms(us), pctOfBusy: bucket === '(idle)' ? NaN : (100 * us) / busyUs
    })),
    packageInclusive: Array.from(packageInclusive.entries()).sort((a, b) => b[1] - a[1]).slice(0, 15).map(([bucket, us]) => ({
      bucket, totalMs: ms(us), pctOfBusy: (100 * us) / busyUs
    })),
    gatewayInclusive: Array.from(inclusive.entries()).sort((a, b) => b[1] - a[1]).slice(0, 20).map(([key, us]) => ({
      function: key, totalMs: ms(us), pctOfBusy: (100 * us) / busyUs, source: source(frameOfKey.get(key))
    }))
  }
}

export function printProfile (summary, write = (text) => process.stdout.write(text)) {
  const pct = (value) => Number.isNaN(value) ? '' : `${value.toFixed(1)}%`
  const scope = summary.windowed
    ? `samples inside the gateway's measurement windows only (${(summary.windowsMs / 1000).toFixed(1)} s of ${(summary.durationMs / 1000).toFixed(1)} s profiled)`
    : `${(summary.durationMs / 1000).toFixed(1)} s profiled`
  write(`\nCPU profile ${relative(process.cwd(), summary.file)}: ${scope}; ` +
    `main thread on CPU ${(summary.busyMs / 1000).toFixed(1)} s, idle ${(summary.idleMs / 1000).toFixed(1)} s` +
    (summary.requests > 0 ? `; ${summary.requests} requests completed in the windows, ${((1000 * summary.busyMs) / summary.requests).toFixed(0)} µs main-thread time each` : '') + '\n')
  write(`\nTop ${summary.topSelf.length} functions by self time (% of non-idle samples; (garbage collector) and (program) are V8's own):\n`)
  write(table(['#', 'function  file:line (dist)', 'self ms', '%', 'source'],
    summary.topSelf.map((entry, index) => [String(index + 1), entry.function, entry.selfMs.toFixed(0), pct(entry.pctOfBusy), entry.source]), [0, 1, 4]) + '\n')
  write('\nSelf time by package / file:\n')
  write(table(['bucket', '', 'self ms', '%'], summary.byPackage.map((entry) => [entry.bucket, '', entry.selfMs.toFixed(0), pct(entry.pctOfBusy)])) + '\n')
  write('\nnpm packages, inclusive time (their code and everything it calls):\n')
  write(table(['package', '', 'total ms', '%'], summary.packageInclusive.map((entry) => [entry.bucket, '', entry.totalMs.toFixed(0), pct(entry.pctOfBusy)])) + '\n')
  write('\nGateway code, inclusive time (self + callees):\n')
  write(table(['function  file:line (dist)', '', 'total ms', '%', 'source'],
    summary.gatewayInclusive.map((entry) => [entry.function, '', entry.totalMs.toFixed(0), pct(entry.pctOfBusy), entry.source]), [0, 1, 4]) + '\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write('usage: node scripts/bench/profile.mjs <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  printProfile(analyseProfile(file, Number(process.argv[3] ?? 25)))
}
