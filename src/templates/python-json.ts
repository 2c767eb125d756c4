/**
 * JSON numbers as Python's json module reads them. Python keeps `1.0` a float
 * (printed `1.0` by tojson and str()), JavaScript reads it as the integer 1, so
 * a template printing a tool schema's `"default": 1.0` or an argument
 * `{"amount": 100.0}` would differ by two characters. The render route parses
 * its body with `markPythonFloats` / `revivePythonFloats`: such numbers arrive
 * as `PythonFloat`, which the template engine turns into a float.
 *
 * Not covered (JavaScript cannot hold them in plain JSON values): integers
 * beyond 2^53 and the insertion order of integer-like object keys.
 */
import { randomBytes } from 'node:crypto'

/** A JSON number written as a float (`1.0`, `2e3`, `-0.0`) whose value is integral. */
export class PythonFloat {
  readonly value: number
  constructor (value: number) {
    this.value = value
  }

  toJSON (): number {
    return this.value
  }
}

// A cheap test first: a float-written number where JSON puts values. Most
// bodies have none, and then nothing is scanned or rewritten.
const MAYBE_FLOAT_TOKEN = /[:[,]\s*-?\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)\s*[,\]}]/

const QUOTE = 0x22
const BACKSLASH = 0x5c
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const LOWER_E = 0x65
const UPPER_E = 0x45

function isNumberChar (code: number): boolean {
  return (code >= ZERO && code <= NINE) || code === MINUS || code === PLUS || code === DOT || code === LOWER_E || code === UPPER_E
}

/**
 * Replaces each integral float token outside strings with a string token
 * `"<nonce><number>"`, so the standard (prototype-safe) JSON parser can read
 * the text; `revivePythonFloats` then turns those strings into PythonFloat. The
 * random nonce keeps client strings from ever being taken for a marker.
 * Undefined when the text holds no integral float.
 */
export function markPythonFloats (text: string): { text: string, nonce: string } | undefined {
  if (!MAYBE_FLOAT_TOKEN.test(text)) return undefined
  const nonce = `pyfloat-${randomBytes(12).toString('hex')}:`
  const pieces: string[] = []
  let copied = 0
  let index = 0
  const length = text.length
  while (index < length) {
    const code = text.charCodeAt(index)
    if (code === QUOTE) {
      // Skip the string, escapes included.
      index++
      while (index < length) {
        const inner = text.charCodeAt(index)
        if (inner === QUOTE) break
        index += inner === BACKSLASH ? 2 : 1
      }
      index++
    } else if (code === MINUS || (code >= ZERO && code <= NINE)) {
      const start = index
      let floatWritten = false
      while (index < length && isNumberChar(text.charCodeAt(index))) {
        const inner = text.charCodeAt(index)
        if (inner === DOT || inner === LOWER_E || inner === UPPER_E) floatWritten = true
        index++
      }
      if (floatWritten) {
        const token = text.slice(start, index)
        if (Number.isInteger(Number(token))) {
          pieces.push(text.slice(copied, start), `"${nonce}${token}"`)
          copied = index
        }
      }
    } else {
      index++
    }
  }
  if (pieces.length === 0) return undefined
  pieces.push(text.slice(copied))
  return { text: pieces.join(''), nonce }
}

/**
 * The parsed value with every marker string from `markPythonFloats` replaced
 * by a PythonFloat, in place. Iterative: the body is not depth-checked yet.
 */
export function revivePythonFloats (value: unknown, nonce: string): unknown {
  const revive = (item: unknown): unknown => typeof item === 'string' && item.startsWith(nonce) ? new PythonFloat(Number(item.slice(nonce.length))) : item
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const node = pending.pop()
    if (typeof node !== 'object' || node === null) continue
    const record = node as Record<string, unknown>
    for (const key of Object.keys(record)) {
      const item = record[key]
      if (typeof item === 'object' && item !== null) pending.push(item)
      else record[key] = revive(item)
    }
  }
  return revive(value)
}

/** The same value with PythonFloat back to plain numbers (what /v1/chat/completions would have read). */
export function withoutPythonFloats<T> (value: T): T {
  if (value instanceof PythonFloat) return value.value as T
  if (Array.isArray(value)) return value.map(withoutPythonFloats) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutPythonFloats(item)])) as T
  }
  return value
}
