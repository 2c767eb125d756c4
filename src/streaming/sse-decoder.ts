/**
 * Decodes a server-sent-events byte stream into `data` payloads. Bytes may be
 * split anywhere (mid-line, mid-UTF-8 character); lines end in \n, \r\n or \r.
 * TGI before 2.0.5 (axum 0.6) wrote `data:{...}` with no space after the colon; current TGI (and
 * OpenAI-style servers) write `data: {...}`. One optional leading space is
 * dropped, as the spec says. Comments (`:`) and other fields are ignored; an
 * event is dispatched at a blank line, and a last event without its blank line
 * is dispatched at the end of the stream.
 */
import { StringDecoder } from 'node:string_decoder'

/**
 * The decoder as a synchronous push parser: feed it chunks as they arrive and
 * get back the events they complete. Synchronous so a caller that already has
 * a chunk in hand (an undici dispatch handler) pays no promise per event.
 */
export class ServerSentEventParser {
  readonly #decoder = new StringDecoder('utf8')
  #pending = ''
  #data: string[] = []

  /** The `data` payloads of the events this chunk completes (often none or one; many under load). */
  push (chunk: Uint8Array | string): string[] {
    this.#pending += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk as Buffer)
    const events: string[] = []
    let pending = this.#pending
    let start = 0
    let lineEnd: number
    // Servers end lines with \n; only a text holding a \r needs the slower scan.
    const findEnd = pending.includes('\r') ? findLineEnd : findNewline
    while ((lineEnd = findEnd(pending, start)) !== -1) {
      // A lone \r at the end may be the first half of \r\n: wait for more bytes.
      if (pending.charCodeAt(lineEnd) === 13 && lineEnd === pending.length - 1) break
      const line = pending.slice(start, lineEnd)
      start = lineEnd + (pending.charCodeAt(lineEnd) === 13 && pending.charCodeAt(lineEnd + 1) === 10 ? 2 : 1)
      if (line === '') {
        if (this.#data.length > 0) {
          events.push(this.#data.length === 1 ? this.#data[0] as string : this.#data.join('\n'))
          this.#data = []
        }
      } else if (line.startsWith('data:')) {
        this.#data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5))
      }
    }
    // One slice per chunk, not per line: the rest waits for the next chunk.
    if (start > 0) pending = pending.slice(start)
    this.#pending = pending
    return events
  }

  /** The stream ended: a last event without its blank line still counts. */
  end (): string[] {
    const pending = this.#pending + this.#decoder.end()
    this.#pending = ''
    for (const line of pending.split(/\r\n|\r|\n/)) {
      if (line.startsWith('data:')) this.#data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5))
    }
    const events = this.#data.length > 0 ? [this.#data.join('\n')] : []
    this.#data = []
    return events
  }
}

export async function * decodeServerSentEvents (body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const parser = new ServerSentEventParser()
  for await (const chunk of body) yield * parser.push(chunk)
  yield * parser.end()
}

function findNewline (text: string, from: number): number {
  return text.indexOf('\n', from)
}

function findLineEnd (text: string, from: number): number {
  for (let index = from; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code === 10 || code === 13) return index
  }
  return -1
}
