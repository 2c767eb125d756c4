/**
 * Reasoning models think between <think> and </think> before answering; the
 * part inside becomes `reasoning_content`, the rest `content`.
 *
 * - Qwen3 (thinking on), SmolLM3 /think, the older DeepSeek-R1 template: the
 *   output itself starts with '<think>' and closes it.
 * - DeepSeek-R1 (newer template), R1 distills, QwQ, DeepSeek-V3.1 thinking: the
 *   generation prompt already ends with '<think>\n', so the output starts INSIDE
 *   the block and only '</think>' appears (startsInside).
 *
 * Trimming, as Qwen3's template does when it renders reasoning back: the
 * reasoning loses its surrounding whitespace, the content the whitespace right
 * after '</think>'. Output without a think block is content, unchanged. While
 * streaming, only text that could be the start of '<think>' / '</think>' is held
 * back (and the reasoning's trailing whitespace, until more reasoning shows it
 * is not the end).
 */
import type { TemplateSource } from './types.js'
import { templateText } from './detect.js'

export interface ReasoningSplit {
  reasoning: string
  content: string
}

export interface ReasoningOptions {
  /** The prompt ended inside a think block. */
  startsInside?: boolean
}

const OPEN = '<think>'
const CLOSE = '</think>'

function lastNonWhitespace (text: string): number {
  let index = text.length - 1
  while (index >= 0 && /\s/.test(text[index]!)) index--
  return index
}

function withoutLeadingWhitespace (text: string): string {
  return text.replace(/^\s+/, '')
}

/** Where the longest end of `text` that is a proper prefix of `marker` begins; text.length when none. */
function heldFrom (text: string, marker: string): number {
  for (let start = Math.max(0, text.length - marker.length + 1); start < text.length; start++) {
    if (marker.startsWith(text.slice(start))) return start
  }
  return text.length
}

export class ReasoningStream {
  #mode: 'deciding' | 'reasoning' | 'content'
  #held = ''
  /** Trailing whitespace of the reasoning so far. */
  #pendingWhitespace = ''
  #reasoningStarted = false
  #contentStarted = false
  #finished = false

  constructor (options: ReasoningOptions = {}) {
    this.#mode = options.startsInside === true ? 'reasoning' : 'deciding'
  }

  push (text: string): ReasoningSplit {
    if (this.#finished) throw new Error('push() after finish()')
    this.#held += text
    return this.#drain(false)
  }

  finish (): ReasoningSplit {
    if (this.#finished) throw new Error('finish() called twice')
    this.#finished = true
    return this.#drain(true)
  }

  #drain (final: boolean): ReasoningSplit {
    const out: ReasoningSplit = { reasoning: '', content: '' }
    while (true) {
      if (this.#mode === 'deciding') {
        const body = withoutLeadingWhitespace(this.#held)
        if (body.startsWith(OPEN)) {
          this.#held = body.slice(OPEN.length)
          this.#mode = 'reasoning'
          continue
        }
        if (!final && OPEN.startsWith(body)) return out
        // No think block: everything is content, exactly as written.
        this.#mode = 'content'
        this.#contentStarted = true
        continue
      }
      if (this.#mode === 'reasoning') {
        if (!this.#reasoningStarted) {
          this.#held = withoutLeadingWhitespace(this.#held)
          // Some R1 builds repeat the '<think>' their prompt already opened.
          if (this.#held.startsWith(OPEN)) {
            this.#held = this.#held.slice(OPEN.length)
            continue
          }
          if (!final && this.#held !== '' && OPEN.startsWith(this.#held)) return out
        }
        const close = this.#held.indexOf(CLOSE)
        if (close >= 0) {
          out.reasoning += this.#reasoning(this.#held.slice(0, close))
          this.#pendingWhitespace = ''
          this.#held = this.#held.slice(close + CLOSE.length)
          this.#mode = 'content'
          continue
        }
        const keep = final ? this.#held.length : heldFrom(this.#held, CLOSE)
        out.reasoning += this.#reasoning(this.#held.slice(0, keep))
        this.#held = this.#held.slice(keep)
        return out
      }
      if (!this.#contentStarted) {
        this.#held = withoutLeadingWhitespace(this.#held)
        if (this.#held === '') return out
        this.#contentStarted = true
      }
      out.content += this.#held
      this.#held = ''
      return out
    }
  }

  #reasoning (text: string): string {
    let combined = this.#pendingWhitespace + text
    if (!this.#reasoningStarted) combined = withoutLeadingWhitespace(combined)
    const last = lastNonWhitespace(combined)
    if (last < 0) {
      this.#pendingWhitespace = combined
      return ''
    }
    this.#reasoningStarted = true
    this.#pendingWhitespace = combined.slice(last + 1)
    return combined.slice(0, last + 1)
  }
}

export function splitReasoning (text: string, options: ReasoningOptions = {}): ReasoningSplit {
  const stream = new ReasoningStream(options)
  const first = stream.push(text)
  const last = stream.finish()
  return { reasoning: first.reasoning + last.reasoning, content: first.content + last.content }
}

/**
 * Whether a model reasons in think blocks (its template mentions them, or
 * reasoning_content), and whether this prompt already opened one.
 */
export function detectReasoning (templateSource: TemplateSource, renderedPrompt: string): { enabled: boolean, startsInside: boolean } {
  const text = templateText(templateSource)
  const startsInside = /<think>\n?$/.test(renderedPrompt)
  const enabled = startsInside || text.includes(OPEN) || text.includes(CLOSE) || text.includes('reasoning_content')
  return { enabled, startsInside }
}
