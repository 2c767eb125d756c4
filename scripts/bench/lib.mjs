// Shared helpers for the benchmark: /proc readers, percentiles, formatting.
// Plain ESM JavaScript so it runs without a build step.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every mainstream Linux build). */
const CLOCK_TICKS = 100

/** utime + stime of a whole process (all threads), in ms; undefined when the process is gone. */
export function cpuMs (pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 2 (comm) may contain spaces; everything after the last ')' is space separated from field 3 on.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** { rssKb, hwmKb } from /proc/<pid>/status. */
export function memoryKb (pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return {
      rssKb: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
      hwmKb: Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? NaN)
    }
  } catch {
    return { rssKb: NaN, hwmKb: NaN }
  }
}

/** Whole-machine busy and total jiffies from /proc/stat's first line. */
export function machineJiffies () {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
  const values = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (values[3] ?? 0) + (values[4] ?? 0)
  const total = values.reduce((sum, value) => sum + value, 0)
  return { busy: total - idle, total }
}

/** Percentile (nearest-rank) of an already sorted Float64Array. */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

export function summarise (values) {
  const sorted = Float64Array.from(values).sort()
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1] : NaN,
    mean: sorted.length > 0 ? sorted.reduce((sum, value) => sum + value, 0) / sorted.length : NaN
  }
}

export function formatNumber (value, digits = 2) {
  if (value === undefined || value === null || Number.isNaN(value)) return 'n/a'
  if (!Number.isFinite(value)) return String(value)
  const abs = Math.abs(value)
  if (abs >= 1000) return Math.round(value).toString()
  if (abs >= 100) return value.toFixed(Math.max(0, digits - 2))
  if (abs >= 10) return value.toFixed(Math.max(0, digits - 1))
  return value.toFixed(digits)
}

/** Renders rows (arrays of strings) as a fixed-width table; `left` lists the left-aligned columns. */
export function table (header, rows, left = [0, 1]) {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => String(row[column] ?? '').length)))
  const line = (row) => row.map((cell, column) => {
    const text = String(cell ?? '')
    return left.includes(column) ? text.padEnd(widths[column]) : text.padStart(widths[column])
  }).join('  ').trimEnd()
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n')
}

export function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Established TCP connections that process `pid` holds to 127.0.0.1:`port` (its upstream pool's size). */
export function connectionsTo (pid, port) {
  const inodes = new Set()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`)
        if (link.startsWith('socket:[')) inodes.add(link.slice(8, -1))
      } catch {}
    }
  } catch {
    return NaN
  }
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  let count = 0
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    // sl local_address rem_address st ... inode(9); state 01 = ESTABLISHED
    if (fields.length > 9 && fields[3] === '01' && fields[2].endsWith(suffix) && inodes.has(fields[9])) count++
  }
  return count
}
