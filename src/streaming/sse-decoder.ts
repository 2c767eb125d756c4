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

export async function * decodeServerSentEvents (body: AsyncIterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let data: string[] = []
  for await (const chunk of body) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer)
    let lineEnd: number
    while ((lineEnd = findLineEnd(pending)) !== -1) {
      const line = pending.slice(0, lineEnd)
      // A lone \r at the end may be the first half of \r\n: wait for more bytes.
      if (pending[lineEnd] === '\r' && lineEnd === pending.length - 1) break
      const skip = pending[lineEnd] === '\r' && pending[lineEnd + 1] === '\n' ? 2 : 1
      pending = pending.slice(lineEnd + skip)
      if (line === '') {
        if (data.length > 0) {
          yield data.join('\n')
          data = []
        }
      } else if (line.startsWith('data:')) {
        data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5))
      }
    }
  }
  pending += decoder.end()
  for (const line of pending.split(/\r\n|\r|\n/)) {
    if (line.startsWith('data:')) data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5))
  }
  if (data.length > 0) yield data.join('\n')
}

function findLineEnd (text: string): number {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code === 10 || code === 13) return index
  }
  return -1
}
