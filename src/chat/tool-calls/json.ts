/**
 * Finding where a JSON value written by a model ends, a token at a time, and
 * turning the call objects models write into a name and an arguments string.
 */

export type JsonScanState = 'incomplete' | 'complete' | 'invalid'

const QUOTE = 0x22
const BACKSLASH = 0x5c

function isSpace (code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09
}

function isJsonStructureCharacter (code: number): boolean {
  // Outside strings JSON has only whitespace, punctuation, numbers and the
  // letters of true/false/null: anything else (a '<' of closing markup, Python's
  // single quotes) shows early that this is not JSON.
  return isSpace(code) ||
    (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) ||
    code === 0x2c || code === 0x3a || code === 0x2e || code === 0x2d || code === 0x2b
}

/**
 * Brackets and strings of one JSON object, array or string starting at `start`, scanned
 * incrementally: the text may grow between calls to scan() (never change), and
 * each character is looked at once.
 */
export class JsonScanner {
  readonly start: number
  #index: number
  readonly #closers: number[] = []
  #inString = false
  #escaped = false
  #expectKey = false
  #state: JsonScanState = 'incomplete'
  #end = -1

  constructor (start: number) {
    this.start = start
    this.#index = start
  }

  /** Exclusive end of the value once complete. */
  get end (): number {
    return this.#end
  }

  get state (): JsonScanState {
    return this.#state
  }

  scan (text: string): JsonScanState {
    return this.feed(text, 0)
  }

  /**
   * Scans on through `chunk`, the part of the text that starts at `chunkStart`.
   * Feeding a stream's new pieces this way never touches the text before them
   * (indexing a string built by appending makes V8 flatten it: a copy per token).
   */
  feed (chunk: string, chunkStart: number): JsonScanState {
    if (this.#state !== 'incomplete') return this.#state
    const stop = chunkStart + chunk.length
    for (let index = Math.max(this.#index, chunkStart); index < stop; index++) {
      const code = chunk.charCodeAt(index - chunkStart)
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false
        else if (code === BACKSLASH) this.#escaped = true
        else if (code === QUOTE) {
          this.#inString = false
          // A string on its own (Mistral Small 3.2 writes string arguments back that way) ends here.
          if (this.#closers.length === 0) return this.#settle('complete', index + 1)
        }
        continue
      }
      if (index === this.start && code !== 0x7b && code !== 0x5b && code !== QUOTE) return this.#settle('invalid', index)
      if (this.#expectKey && !isSpace(code)) {
        // An object's keys are strings: '{x' or "{'a'" is prose or Python, not JSON.
        if (code !== QUOTE && code !== 0x7d) return this.#settle('invalid', index)
        this.#expectKey = false
      }
      if (code === QUOTE) this.#inString = true
      else if (code === 0x7b) {
        this.#closers.push(0x7d)
        this.#expectKey = true
      } else if (code === 0x5b) this.#closers.push(0x5d)
      else if (code === 0x2c && this.#closers[this.#closers.length - 1] === 0x7d) this.#expectKey = true
      else if (code === 0x7d || code === 0x5d) {
        if (this.#closers.pop() !== code) return this.#settle('invalid', index)
        if (this.#closers.length === 0) return this.#settle('complete', index + 1)
      } else if (!isJsonStructureCharacter(code)) return this.#settle('invalid', index)
    }
    this.#index = Math.max(this.#index, stop)
    return 'incomplete'
  }

  #settle (state: JsonScanState, end: number): JsonScanState {
    this.#state = state
    this.#end = end
    return state
  }
}

/** Raw newlines and tabs inside strings, as Llama and Qwen write multi-line code arguments, escaped. */
function escapeControlCharactersInStrings (text: string): string {
  let result = ''
  let inString = false
  let escaped = false
  for (const character of text) {
    const code = character.charCodeAt(0)
    if (inString && !escaped && code < 0x20) {
      result += code === 0x0a ? '\\n' : code === 0x0d ? '\\r' : code === 0x09 ? '\\t' : '\\u' + code.toString(16).padStart(4, '0')
      continue
    }
    if (inString) {
      if (escaped) escaped = false
      else if (code === BACKSLASH) escaped = true
      else if (code === QUOTE) inString = false
    } else if (code === QUOTE) inString = true
    result += character
  }
  return result
}

export type JsonParseResult = { ok: true, value: unknown } | { ok: false }

export function parseJsonLeniently (text: string): JsonParseResult {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch {
    try {
      return { ok: true, value: JSON.parse(escapeControlCharactersInStrings(text)) }
    } catch {
      return { ok: false }
    }
  }
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Arguments as an OpenAI arguments string: an object is serialised, a string must
 * hold a JSON object (some models double-encode) and is normalised the same way,
 * none is '{}'. Anything else (an array, a number, a string that is not an
 * object) is not a call: undefined.
 */
export function argumentsJson (value: unknown): string | undefined {
  if (value === undefined || value === null) return '{}'
  if (typeof value === 'string') {
    if (value.trim() === '') return '{}'
    const parsed = parseJsonLeniently(value.trim())
    return parsed.ok && isPlainObject(parsed.value) ? JSON.stringify(parsed.value) : undefined
  }
  return isPlainObject(value) ? JSON.stringify(value) : undefined
}

export interface CallText {
  name: string
  arguments: string
}

export interface CallShape {
  /** Where the arguments may be, first found wins. */
  argumentKeys: readonly string[]
  /** Llama's bare JSON reply is only a call when it has its arguments key (a JSON answer with a "name" is not). */
  requireArguments: boolean
}

/** {"name": ..., "arguments": {...}} (or OpenAI's {"type": "function", "function": {...}}) → a call; undefined when it is not one. */
export function callFromObject (value: unknown, shape: CallShape): CallText | undefined {
  if (!isPlainObject(value)) return undefined
  const target = value.name === undefined && isPlainObject(value.function) ? value.function : value
  const name = target.name
  if (typeof name !== 'string' || name.trim() === '') return undefined
  const key = shape.argumentKeys.find((candidate) => target[candidate] !== undefined)
  if (key === undefined && shape.requireArguments) return undefined
  const args = argumentsJson(key === undefined ? undefined : target[key])
  return args === undefined ? undefined : { name: name.trim(), arguments: args }
}

/** A JSON text holding one call object or a non-empty list of them → the calls; undefined unless every one is a call. */
export function callsFromJson (text: string, shape: CallShape): CallText[] | undefined {
  const parsed = parseJsonLeniently(text)
  if (!parsed.ok) return undefined
  const items = Array.isArray(parsed.value) ? parsed.value : [parsed.value]
  if (items.length === 0) return undefined
  const calls: CallText[] = []
  for (const item of items) {
    const call = callFromObject(item, shape)
    if (call === undefined) return undefined
    calls.push(call)
  }
  return calls
}
