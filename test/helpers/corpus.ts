/**
 * The third-party corpus beside the repository (`../shared`: real models' chat
 * templates and goldens, the tool-call peer cases, OpenAI's and TGI's OpenAPI
 * documents). It is never copied into the repo, so a fresh clone does not have
 * it: suites that compare against it are skipped there, with the reason, and
 * `GATEWAY_REQUIRE_CORPUS=1` (set by .ci/run) makes a missing corpus a failure.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const SHARED = new URL('../../../shared/', import.meta.url)

const required = process.env.GATEWAY_REQUIRE_CORPUS === '1'

/** Whether every given path (relative to ../shared) exists; throws when missing and the corpus is required. */
export function hasCorpus (...paths: string[]): boolean {
  const missing = paths.filter((path) => !existsSync(new URL(path, SHARED)))
  if (missing.length === 0) return true
  if (required) throw new Error(`GATEWAY_REQUIRE_CORPUS=1 but the corpus is missing: ${missing.map((path) => fileURLToPath(new URL(path, SHARED))).join(', ')}`)
  return false
}

/** For node:test's `skip` option: false when the paths exist, else the reason the test is skipped. */
export function skipWithoutCorpus (...paths: string[]): string | false {
  return hasCorpus(...paths) ? false : `corpus not present (${paths.map((path) => `../shared/${path}`).join(', ')}); a fresh clone skips the comparisons against third-party data`
}
