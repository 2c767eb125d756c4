/**
 * The streaming machinery every format shares. A format (a Grammar) names the
 * markers that may open a call and, given text starting at one, says whether it
 * is a call, not a call, or cannot tell yet. The stream releases text as content
 * as soon as it cannot be the start of a marker, holds the rest, and emits each
 * call once its markup is complete. parse() runs the same stream over the whole
 * text, so streamed and non-streamed answers agree by construction.
 *
 * Whitespace rules (what "trimmed of the whitespace the markup leaves" means):
 * whitespace right before a call's markup and right after it is dropped, except
 * that when text follows calls that text came before, the two are joined by the
 * whitespace the model wrote before the calls (or else after them): "Sure.\n\n
 * <call>\nDone." gives "Sure.\n\nDone.". All other text, including a plain
 * answer's own leading and trailing whitespace, is kept exactly. So while
 * streaming, trailing whitespace is held until the next non-whitespace text shows
 * whether a call follows (it is never more than the whitespace of a token or so).
 */
import type { ParsedOutput, ToolCallParser, ToolCallStream, ToolStreamEvent } from './types.js'
import { JsonScanner } from './json.js'
import type { CallText, JsonScanState } from './json.js'

export type ScanResult =
  /** More text is needed to decide. Never returned when `final`. */
  | { kind: 'incomplete' }
  /** The first `length` characters are markup holding these calls (none for closing markup such as DeepSeek's calls-end). */
  | { kind: 'calls', calls: CallText[], length: number }
  /** The first `length` (> 0) characters are not a call after all: ordinary output. */
  | { kind: 'text', length: number }

/**
 * Scratch space for one scan attempt, kept while it is incomplete. It also tells
 * the stream what an incomplete scan waits for, so that a long call is not
 * rescanned (nor its text even joined) on every token: while `json` is
 * incomplete, or while `marker` has not appeared, the answer cannot change and
 * the stream only feeds new text to them.
 */
export interface ScanMemo {
  json?: JsonScanner
  marker?: string
  /** The calls read from `json` once it completed (undefined inside: not calls), while the scan waits on after it. */
  calls?: { value: CallText[] | undefined }
}

export interface ScanContext {
  /** No more text will come. */
  readonly final: boolean
  readonly memo: ScanMemo
}

export interface Opening {
  readonly marker: string
  /**
   * anywhere: wherever it appears; start: only as the first non-whitespace of
   * the whole output; after-call: only as the first non-whitespace after a call.
   */
  readonly where: 'anywhere' | 'start' | 'after-call'
}

export interface Grammar {
  readonly name: string
  readonly openings: readonly Opening[]
  readonly newId: () => string
  /** `text` starts with one of the openings allowed there. */
  scan (text: string, context: ScanContext): ScanResult
}

export const INCOMPLETE: ScanResult = { kind: 'incomplete' }

export function textResult (length: number): ScanResult {
  return { kind: 'text', length }
}

export function callsResult (calls: CallText[], length: number): ScanResult {
  return { kind: 'calls', calls, length }
}

export function isWhitespace (character: string | undefined): boolean {
  return character !== undefined && /\s/.test(character)
}

export function skipWhitespace (text: string, from: number): number {
  let index = from
  while (index < text.length && isWhitespace(text[index])) index++
  return index
}

/** Whether `marker` is at `at`: fully, only partly because the text ends there (or is empty there), or not. */
export function markerAt (text: string, at: number, marker: string): 'yes' | 'partial' | 'no' {
  if (text.startsWith(marker, at)) return 'yes'
  const rest = text.slice(at)
  return rest.length < marker.length && marker.startsWith(rest) ? 'partial' : 'no'
}

/** The JSON object or array starting at `start`, scanned incrementally across pushes. */
export function scanJsonAt (text: string, start: number, memo: ScanMemo): { state: JsonScanState, end: number } {
  if (memo.json === undefined || memo.json.start !== start) memo.json = new JsonScanner(start)
  const state = memo.json.scan(text)
  return { state, end: memo.json.end }
}

function lastNonWhitespace (text: string): number {
  let index = text.length - 1
  while (index >= 0 && isWhitespace(text[index])) index--
  return index
}

function leadingWhitespace (text: string): number {
  return skipWhitespace(text, 0)
}

export class MarkupStream implements ToolCallStream {
  readonly #grammar: Grammar
  readonly #newId: () => string
  #buffer = ''
  /** Text pushed while a scan waits (see ScanMemo); the buffer continues with it. */
  #waiting: string[] = []
  #waitingLength = 0
  /** The end of the text so far, as long as a marker could straddle into the next push. */
  #markerTail = ''
  /** Whitespace after the last released text: dropped if markup follows, released otherwise. */
  #pendingWhitespace = ''
  /** Only whitespace so far. */
  #atStart = true
  /** Only whitespace since the last markup that held calls or closed them. */
  #afterCall = false
  /** The buffer starts with markup whose scan needs more text. */
  #scanning = false
  #memo: ScanMemo = {}
  /** Some non-whitespace content has been released. */
  #contentSeen = false
  /** Markup came since the last content: the next content is joined to the previous with #whitespaceBefore or #whitespaceAfter. */
  #markupSinceContent = false
  #whitespaceBefore = ''
  #whitespaceAfter = ''
  #calls = 0
  #finished = false
  #events: ToolStreamEvent[] = []

  constructor (grammar: Grammar, newId: () => string) {
    this.#grammar = grammar
    this.#newId = newId
  }

  push (text: string): ToolStreamEvent[] {
    if (this.#finished) throw new Error('push() after finish()')
    if (this.#scanning && this.#stillWaiting(text)) return []
    this.#buffer += this.#takeWaiting() + text
    this.#drain(false)
    return this.#take()
  }

  finish (): ToolStreamEvent[] {
    if (this.#finished) throw new Error('finish() called twice')
    this.#finished = true
    this.#buffer += this.#takeWaiting()
    this.#drain(true)
    if (this.#pendingWhitespace !== '') this.#content(this.#pendingWhitespace)
    this.#pendingWhitespace = ''
    return this.#take()
  }

  /** Whether the scan in progress still cannot decide with `text` added; if so `text` is kept aside. */
  #stillWaiting (text: string): boolean {
    const { json, marker } = this.#memo
    if (json !== undefined && json.state === 'incomplete') {
      if (json.feed(text, this.#buffer.length + this.#waitingLength) !== 'incomplete') return false
    } else if (marker !== undefined) {
      const window = this.#markerTail + text
      if (window.includes(marker)) return false
      this.#markerTail = window.slice(Math.max(0, window.length - marker.length + 1))
    } else return false
    this.#waiting.push(text)
    this.#waitingLength += text.length
    return true
  }

  #takeWaiting (): string {
    const text = this.#waiting.join('')
    this.#waiting = []
    this.#waitingLength = 0
    return text
  }

  #take (): ToolStreamEvent[] {
    const events = this.#events
    this.#events = []
    return events
  }

  #content (text: string): void {
    const last = this.#events[this.#events.length - 1]
    if (last?.type === 'content') last.text += text
    else this.#events.push({ type: 'content', text })
  }

  /** Ordinary output: released up to its trailing whitespace, which waits for what follows. */
  #release (text: string): void {
    const combined = this.#pendingWhitespace + text
    const last = lastNonWhitespace(combined)
    if (last < 0) {
      this.#pendingWhitespace = combined
      return
    }
    let separator = ''
    if (this.#markupSinceContent) {
      if (this.#contentSeen) separator = this.#whitespaceBefore !== '' ? this.#whitespaceBefore : this.#whitespaceAfter
      this.#markupSinceContent = false
      this.#whitespaceBefore = ''
      this.#whitespaceAfter = ''
    }
    this.#content(separator + combined.slice(0, last + 1))
    this.#contentSeen = true
    this.#pendingWhitespace = combined.slice(last + 1)
    this.#atStart = false
    this.#afterCall = false
  }

  #emit (calls: CallText[]): void {
    for (const call of calls) {
      const index = this.#calls++
      this.#events.push({ type: 'tool_call', index, id: this.#newId(), name: call.name })
      this.#events.push({ type: 'tool_call_arguments', index, text: call.arguments })
    }
  }

  #drain (final: boolean): void {
    while (true) {
      if (!this.#scanning && (this.#atStart || this.#afterCall)) {
        const whitespace = leadingWhitespace(this.#buffer)
        if (whitespace > 0) {
          if (this.#atStart) this.#pendingWhitespace += this.#buffer.slice(0, whitespace)
          else this.#whitespaceAfter += this.#buffer.slice(0, whitespace)
          this.#buffer = this.#buffer.slice(whitespace)
        }
      }
      if (this.#buffer === '') return
      if (!this.#scanning) {
        const found = this.#findOpening(final)
        if (found.hold !== undefined) {
          this.#release(this.#buffer.slice(0, found.hold))
          this.#buffer = this.#buffer.slice(found.hold)
          return
        }
        if (found.at === undefined) {
          this.#release(this.#buffer)
          this.#buffer = ''
          return
        }
        if (found.at > 0) {
          this.#release(this.#buffer.slice(0, found.at))
          this.#buffer = this.#buffer.slice(found.at)
        }
      }
      const result = this.#grammar.scan(this.#buffer, { final, memo: this.#memo })
      if (result.kind === 'incomplete') {
        if (final) throw new Error(`${this.#grammar.name}: scan left a call undecided at the end`)
        this.#scanning = true
        const marker = this.#memo.marker
        if (marker !== undefined) this.#markerTail = this.#buffer.slice(Math.max(0, this.#buffer.length - marker.length + 1))
        return
      }
      this.#scanning = false
      this.#memo = {}
      if (result.kind === 'calls') {
        this.#emit(result.calls)
        if (!this.#markupSinceContent) {
          this.#markupSinceContent = true
          this.#whitespaceBefore = this.#pendingWhitespace
        }
        this.#whitespaceAfter = ''
        this.#pendingWhitespace = ''
        this.#atStart = false
        // Whitespace after markup is dropped, and a continuation (Llama's '; ', DeepSeek's next call) may follow.
        this.#afterCall = true
      } else {
        if (result.length <= 0) throw new Error(`${this.#grammar.name}: empty text result`)
        // Markup that is not a call is output like any other text (whitespace before it included).
        const text = this.#buffer.slice(0, result.length)
        this.#atStart = false
        this.#afterCall = false
        this.#release(text)
      }
      this.#buffer = this.#buffer.slice(result.length)
    }
  }

  /**
   * The first opening in the buffer (`at`), unless text from `hold` on could
   * still become one, in which case everything before `hold` can be released.
   */
  #findOpening (final: boolean): { at?: number, hold?: number } {
    const buffer = this.#buffer
    let at: number | undefined
    let hold: number | undefined
    for (const opening of this.#grammar.openings) {
      const marker = opening.marker
      if (opening.where !== 'anywhere') {
        const allowed = opening.where === 'start' ? this.#atStart : this.#afterCall
        if (!allowed) continue
        if (buffer.startsWith(marker)) at = 0
        else if (!final && marker.startsWith(buffer)) hold = 0
        continue
      }
      const index = buffer.indexOf(marker)
      if (index >= 0 && (at === undefined || index < at)) at = index
      if (!final) {
        for (let start = Math.max(0, buffer.length - marker.length + 1); start < buffer.length; start++) {
          if (hold !== undefined && start >= hold) break
          if (marker.startsWith(buffer.slice(start))) {
            hold = start
            break
          }
        }
      }
    }
    // A marker may be the beginning of a longer one ('[' and '[TOOL_CALLS]'): wait.
    if (hold !== undefined && (at === undefined || hold <= at)) return { hold }
    return at === undefined ? {} : { at }
  }
}

export function collectOutput (events: readonly ToolStreamEvent[]): ParsedOutput {
  let content = ''
  const toolCalls: ParsedOutput['toolCalls'] = []
  for (const event of events) {
    if (event.type === 'content') content += event.text
    else if (event.type === 'tool_call') toolCalls[event.index] = { id: event.id, name: event.name, arguments: '' }
    else {
      const call = toolCalls[event.index]
      if (call === undefined) throw new Error(`arguments for call ${event.index} before its start`)
      call.arguments += event.text
    }
  }
  return { content: content === '' ? null : content, toolCalls }
}

export function parserFor (grammar: Grammar, newId: () => string = grammar.newId): ToolCallParser {
  return {
    name: grammar.name,
    parse (text: string): ParsedOutput {
      const stream = new MarkupStream(grammar, newId)
      return collectOutput([...stream.push(text), ...stream.finish()])
    },
    stream (): ToolCallStream {
      return new MarkupStream(grammar, newId)
    }
  }
}
