/**
 * Search for the example agents. The agents take any `SearchFunction`; tests inject a
 * stub. The command-line entries use `searchFromEnvironment()`: Wikipedia's search API
 * (no key needed) by default, or `SEARCH=ask` to type each observation yourself.
 */
import { createInterface } from 'node:readline'

export type SearchFunction = (query: string) => Promise<string> | string

/** The first results' snippets from Wikipedia's search API (https://www.mediawiki.org/wiki/API:Search). */
export async function wikipediaSearch (query: string): Promise<string> {
  const url = new URL('https://en.wikipedia.org/w/api.php')
  url.search = new URLSearchParams({ action: 'query', list: 'search', srsearch: query, srlimit: '3', format: 'json', formatversion: '2' }).toString()
  const response = await fetch(url, { headers: { 'user-agent': 'hf-chat-gateway-examples/0.1' } })
  if (!response.ok) throw new Error(`Wikipedia search answered ${response.status}`)
  const body = await response.json() as { query?: { search?: Array<{ title: string, snippet: string }> } }
  const results = body.query?.search ?? []
  if (results.length === 0) return 'No results.'
  return results.map((result) => `${result.title}: ${result.snippet.replace(/<[^>]*>/g, '').replace(/&quot;/g, '"').replace(/&amp;/g, '&')}`).join('\n')
}

let terminal: { lines: AsyncIterator<string>, close: () => void } | undefined

/** Asks on the terminal (or reads from piped stdin, one line per search) for each search result. */
export async function askSearch (query: string): Promise<string> {
  if (terminal === undefined) {
    const lines = createInterface({ input: process.stdin, terminal: false })
    terminal = { lines: lines[Symbol.asyncIterator](), close: () => lines.close() }
  }
  process.stderr.write(`search(${JSON.stringify(query)}) → `)
  const line = await terminal.lines.next()
  if (line.done === true) throw new Error('stdin ended before the search result was given')
  return line.value
}

/** Lets the process end after `askSearch` was used. */
export function closeSearch (): void {
  terminal?.close()
  terminal = undefined
}

export function searchFromEnvironment (environment: NodeJS.ProcessEnv = process.env): SearchFunction {
  return environment.SEARCH === 'ask' ? askSearch : wikipediaSearch
}
