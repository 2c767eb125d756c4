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
/** A line, or one event's data, longer than this (in characters) fails the stream. */
export const MAX_SSE_LINE = 1024 * 1024

/** The stream broke the decoder's limits; the caller maps it to its own error. */
export class ServerSentEventLimitError extends Error {
  constructor (what: string, limit = MAX_SSE_LINE) {
    super(`${what} longer than ${limit} characters`)
    this.name = 'ServerSentEventLimitError'
  }
}

/** An `error:` field line, reported in order among the data events when the parser is asked to. */
export interface ServerSentErrorField { error: string }

export class ServerSentEventParser {
  readonly #decoder = new StringDecoder('utf8')
  readonly #limit: number
  readonly #errorFields: boolean
  #pending = ''
  // How much of #pending is already known to hold no line end (only new bytes are scanned).
  #scanned = 0
  // Once a \r was seen, lines may end in it: the slower scan from then on.
  #carriageReturns = false
  #data: string[] = []
  #dataLength = 0

  /** `errorFields`: report `error:` lines (llama.cpp's in-stream errors) as ServerSentErrorField items. */
  constructor (limit = MAX_SSE_LINE, errorFields = false) {
    this.#limit = limit
    this.#errorFields = errorFields
  }

  /** The `data` payloads of the events this chunk completes (often none or one; many under load). Throws ServerSentEventLimitError. */
  push (chunk: Uint8Array | string): Array<string | ServerSentErrorField> {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.write(chunk as Buffer)
    if (!this.#carriageReturns && text.includes('\r')) this.#carriageReturns = true
    const findEnd = this.#carriageReturns ? findLineEnd : findNewline
    let pending: string
    let from: number
    if (this.#pending === '') {
      pending = text
      from = 0
    } else {
      // A long line arriving in pieces: append without rescanning what came before.
      if (findEnd(text, 0) === -1 && this.#pending.charCodeAt(this.#pending.length - 1) !== 13) {
        this.#pending += text
        this.#scanned = this.#pending.length
        if (this.#pending.length > this.#limit) throw new ServerSentEventLimitError('an SSE line', this.#limit)
        return []
      }
      pending = this.#pending + text
      from = this.#scanned
    }
    const events: Array<string | ServerSentErrorField> = []
    let start = 0
    let lineEnd: number
    while ((lineEnd = findEnd(pending, from > start ? from : start)) !== -1) {
      // A lone \r at the end may be the first half of \r\n: wait for more bytes.
      if (pending.charCodeAt(lineEnd) === 13 && lineEnd === pending.length - 1) break
      if (lineEnd - start > this.#limit) throw new ServerSentEventLimitError('an SSE line', this.#limit)
      const line = pending.slice(start, lineEnd)
      start = lineEnd + (pending.charCodeAt(lineEnd) === 13 && pending.charCodeAt(lineEnd + 1) === 10 ? 2 : 1)
      if (line === '') {
        if (this.#data.length > 0) {
          events.push(this.#data.length === 1 ? this.#data[0] as string : this.#data.join('\n'))
          this.#data = []
          this.#dataLength = 0
        }
      } else if (line.startsWith('data:')) {
        const data = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5)
        this.#dataLength += data.length + 1
        if (this.#dataLength > this.#limit) throw new ServerSentEventLimitError("an SSE event's data", this.#limit)
        this.#data.push(data)
      } else if (this.#errorFields && line.startsWith('error:')) {
        events.push({ error: line.charCodeAt(6) === 32 ? line.slice(7) : line.slice(6) })
      }
    }
    // One slice per chunk, not per line: the rest waits for the next chunk.
    if (start > 0) pending = pending.slice(start)
    // (+ 1: a trailing \r waiting for its \n is not part of the line.)
    if (pending.length > this.#limit + 1) throw new ServerSentEventLimitError('an SSE line', this.#limit)
    this.#pending = pending
    // A trailing lone \r is looked at again with the next bytes.
    this.#scanned = lineEnd === -1 ? pending.length : lineEnd - start
    return events
  }

  /** The stream ended: a last event without its blank line still counts. */
  end (): string[] {
    const pending = this.#pending + this.#decoder.end()
    this.#pending = ''
    this.#scanned = 0
    for (const line of pending.split(/\r\n|\r|\n/)) {
      if (line.startsWith('data:')) this.#data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5))
    }
    const events = this.#data.length > 0 ? [this.#data.join('\n')] : []
    this.#data = []
    this.#dataLength = 0
    return events
  }
}

export async function * decodeServerSentEvents (body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const parser = new ServerSentEventParser()
  // (This parser reports no error fields: every event is a data string.)
  for await (const chunk of body) yield * parser.push(chunk) as string[]
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
