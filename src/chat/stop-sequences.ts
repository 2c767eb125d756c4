/**
 * Applies stop sequences to generated text the way OpenAI does: the output ends
 * right before the first stop to appear, and the stop itself is removed.
 *
 * TGI keeps a matched stop inside `generated_text` and only notices a stop that
 * ends exactly at a token boundary, so the gateway always cuts the text itself.
 * A stop may arrive split across tokens ("\n" + "Observation"): while streaming,
 * only the tail that could still be the beginning of a stop is held back; all
 * text before it is released at once.
 *
 * Each stop runs a Knuth-Morris-Pratt automaton whose state is the length of the
 * longest stop prefix the text currently ends with, so every generated character
 * costs O(1) amortised per stop, even for hostile stops like "aaaa…a". "First"
 * means first to complete, which is what a streaming client can observe, and is
 * the same for streamed and non-streamed answers.
 */
interface StopAutomaton {
  stop: string
  /** failure[i]: length of the longest proper prefix of stop[0..i] that is also its suffix. */
  failure: Int32Array
  state: number
}

function failureTable (stop: string): Int32Array {
  const failure = new Int32Array(stop.length)
  let length = 0
  for (let index = 1; index < stop.length; index++) {
    while (length > 0 && stop.charCodeAt(index) !== stop.charCodeAt(length)) length = failure[length - 1]!
    if (stop.charCodeAt(index) === stop.charCodeAt(length)) length++
    failure[index] = length
  }
  return failure
}

export class StopSequenceMatcher {
  readonly #automata: StopAutomaton[]
  /** Text received but not released: it may be the start of a stop. */
  #held = ''
  #stopped = false
  /** The stop that matched, once one has. */
  matchedStop: string | undefined

  constructor (stops: readonly string[]) {
    this.#automata = [...new Set(stops)].filter((stop) => stop.length > 0)
      .map((stop) => ({ stop, failure: failureTable(stop), state: 0 }))
  }

  get stopped (): boolean {
    return this.#stopped
  }

  /** Feeds generated text; returns the text that can be released now. */
  push (text: string): string {
    if (this.#stopped) return ''
    const automata = this.#automata
    if (automata.length === 0) return text
    let longestPartial = 0
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index)
      longestPartial = 0
      for (const automaton of automata) {
        let state = automaton.state
        const stop = automaton.stop
        while (state > 0 && stop.charCodeAt(state) !== code) state = automaton.failure[state - 1]!
        if (stop.charCodeAt(state) === code) state++
        if (state === stop.length) {
          // Cut right before this stop: it began `stop.length - 1` characters before this one.
          this.#stopped = true
          this.matchedStop = stop
          const buffer = this.#held + text.slice(0, index + 1)
          this.#held = ''
          return buffer.slice(0, buffer.length - stop.length)
        }
        automaton.state = state
        if (state > longestPartial) longestPartial = state
      }
    }
    const buffer = this.#held + text
    this.#held = longestPartial === 0 ? '' : buffer.slice(buffer.length - longestPartial)
    return longestPartial === 0 ? buffer : buffer.slice(0, buffer.length - longestPartial)
  }

  /** The generation ended without a stop: release what was held back. */
  flush (): string {
    const rest = this.#held
    this.#held = ''
    return this.#stopped ? '' : rest
  }
}

/** The whole text cut at the first stop (non-streaming). */
export function applyStopSequences (text: string, stops: readonly string[]): { text: string, stopped: boolean } {
  const matcher = new StopSequenceMatcher(stops)
  const released = matcher.push(text)
  return matcher.stopped ? { text: released, stopped: true } : { text: released + matcher.flush(), stopped: false }
}
