/**
 * Applies stop sequences to generated text the way OpenAI does: the output ends
 * right before the first occurrence of any stop, and the stop itself is removed.
 *
 * TGI keeps a matched stop inside `generated_text` and only notices a stop that
 * ends exactly at a token boundary, so the gateway always cuts the text itself.
 * A stop may arrive split across tokens ("\n" + "Observation"): while streaming,
 * only the tail that could still be the beginning of a stop is held back; all
 * text before it is released at once.
 */
export class StopSequenceMatcher {
  readonly #stops: string[]
  #held = ''
  #stopped = false
  /** The stop that matched, once one has. */
  matchedStop: string | undefined

  constructor (stops: readonly string[]) {
    this.#stops = [...new Set(stops.filter((stop) => stop.length > 0))]
  }

  get stopped (): boolean {
    return this.#stopped
  }

  /** Feeds generated text; returns the text that can be released now. */
  push (text: string): string {
    if (this.#stopped) return ''
    if (this.#stops.length === 0) return text
    const buffer = this.#held + text
    let cut = -1
    for (const stop of this.#stops) {
      const index = buffer.indexOf(stop)
      if (index !== -1 && (cut === -1 || index < cut)) {
        cut = index
        this.matchedStop = stop
      }
    }
    if (cut !== -1) {
      this.#stopped = true
      this.#held = ''
      return buffer.slice(0, cut)
    }
    const hold = this.#longestStopPrefixAtEnd(buffer)
    this.#held = hold === 0 ? '' : buffer.slice(buffer.length - hold)
    return hold === 0 ? buffer : buffer.slice(0, buffer.length - hold)
  }

  /** The generation ended without a stop: release what was held back. */
  flush (): string {
    const rest = this.#held
    this.#held = ''
    return this.#stopped ? '' : rest
  }

  /** Length of the longest buffer suffix that is a proper prefix of some stop. */
  #longestStopPrefixAtEnd (buffer: string): number {
    let longest = 0
    for (const stop of this.#stops) {
      for (let length = Math.min(stop.length - 1, buffer.length); length > longest; length--) {
        if (buffer.endsWith(stop.slice(0, length))) {
          longest = length
          break
        }
      }
    }
    return longest
  }
}

/** The whole text cut at the first stop (non-streaming). */
export function applyStopSequences (text: string, stops: readonly string[]): { text: string, stopped: boolean } {
  const matcher = new StopSequenceMatcher(stops)
  const released = matcher.push(text)
  return matcher.stopped ? { text: released, stopped: true } : { text: released + matcher.flush(), stopped: false }
}
