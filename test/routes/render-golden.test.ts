/**
 * POST /v1/chat/render over HTTP against the Python reference
 * (shared/chat-templates/render_reference.py → golden.json): every model ×
 * every case, byte for byte, errors included. One gateway serves all 50
 * models: single-template models inline from the models file (with the model
 * file's special tokens), models with a list of named templates through the
 * fake Hub, so the list form goes through the real loader.
 *
 * Other case sets in the same format (e.g. the hidden acceptance set) run with
 *   RENDER_CASES=path/cases.json RENDER_GOLDEN=path/golden.json node scripts/run-tests.mjs render-golden
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SHARED, startGateway } from '../helpers/gateway.js'
import { markPythonFloats } from '../../src/templates/python-json.js'
import type { GoldenResult, OracleCase, OracleModel } from '../helpers/oracle.js'
import { skipWithoutCorpus } from '../helpers/corpus.js'

const TEMPLATES = new URL('chat-templates/', SHARED)


async function readJson<T> (path: string | URL): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T
}

/**
 * The cases file, with each integral float (`1.0`) kept as written: JSON.parse
 * would make it 1, but Python reads a float, and the request must carry `1.0`.
 * Such numbers are parsed as marker strings, which `toJsonText` writes back raw.
 */
async function readCases (path: string): Promise<{ value: unknown, toJsonText: (body: unknown) => string }> {
  const text = await readFile(path, 'utf8')
  const marked = markPythonFloats(text)
  if (marked === undefined) return { value: JSON.parse(text), toJsonText: (body) => JSON.stringify(body) }
  const marker = new RegExp(`"${marked.nonce}([^"]*)"`, 'g')
  return { value: JSON.parse(marked.text), toJsonText: (body) => JSON.stringify(body).replace(marker, '$1') }
}

/** The body the case format maps to (render_reference.py's apply_chat_template call). */
function requestBody (model: string, item: OracleCase): Record<string, unknown> {
  const body: Record<string, unknown> = { model, messages: item.messages }
  if (item.tools !== undefined) body.tools = item.tools
  if (item.documents !== undefined) body.documents = item.documents
  if (item.add_generation_prompt !== undefined) body.add_generation_prompt = item.add_generation_prompt
  if (item.continue_final_message !== undefined) body.continue_final_message = item.continue_final_message
  if (item.template_name !== undefined) body.chat_template_name = item.template_name
  if (item.kwargs !== undefined) body.chat_template_kwargs = item.kwargs
  return body
}

test('POST /v1/chat/render agrees with the Python reference on every model × case', { skip: process.env.RENDER_CASES !== undefined ? false : skipWithoutCorpus('chat-templates/cases.json', 'chat-templates/golden.json', 'chat-templates/models/') }, async (t) => {
  const casesPath = process.env.RENDER_CASES ?? fileURLToPath(new URL('cases.json', TEMPLATES))
  const goldenPath = process.env.RENDER_GOLDEN ?? fileURLToPath(new URL('golden.json', TEMPLATES))
  const { value, toJsonText } = await readCases(casesPath)
  const casesFile = value as { now?: string, cases: OracleCase[] } | OracleCase[]
  const cases = Array.isArray(casesFile) ? casesFile : casesFile.cases
  const defaultNow = (Array.isArray(casesFile) ? undefined : casesFile.now) ?? '2025-01-15T12:00:00'
  const golden = await readJson<{ now?: string, results: Record<string, Record<string, GoldenResult>> }>(goldenPath)

  const modelNames = (await readdir(new URL('models/', TEMPLATES))).filter((name) => name.endsWith('.json')).sort()
  const models = await Promise.all(modelNames.map(async (name) => await readJson<OracleModel>(new URL(`models/${name}`, TEMPLATES))))
  const namedTemplateRepos = models.filter((model) => Array.isArray(model.chat_template)).map((model) => model.model_id)
  const entries = models.map((model) => {
    // The render route never calls the backend; port 9 (discard) is never listened on.
    const entry: Record<string, unknown> = { id: model.model_id, backend: 'tgi', url: 'http://127.0.0.1:9' }
    if (typeof model.chat_template === 'string') {
      entry.chat_template = model.chat_template
      entry.special_tokens = Object.fromEntries(Object.entries(model.special_tokens ?? {}).filter(([, token]) => typeof token === 'string'))
    } else {
      entry.model = model.model_id
    }
    return entry
  })
  // JSON, not YAML: template text reaches the gateway byte for byte.
  const directory = await mkdtemp(join(tmpdir(), 'render-golden-'))
  t.after(async () => { await rm(directory, { recursive: true, force: true }) })
  const modelsPath = join(directory, 'models.json')
  await writeFile(modelsPath, JSON.stringify({ models: entries }))

  // strftime_now reads naive local time, as Python's datetime.now(); the case's `now` is naive too.
  let now = new Date(defaultNow)
  const { url, hub } = await startGateway(t, { repos: namedTemplateRepos, env: { GATEWAY_CONFIG: modelsPath }, overrides: { now: () => now } })

  const work = models.flatMap((model) => cases.map((item) => ({ model: model.model_id, item, expected: golden.results[model.model_id]?.[item.id] })))
  let agreeing = 0
  const divergences: string[] = []
  // Requests sharing a frozen clock run concurrently; the clock changes only between groups.
  const groups = new Map<string, typeof work>()
  for (const job of work) {
    const key = job.item.now ?? defaultNow
    groups.set(key, [...groups.get(key) ?? [], job])
  }
  for (const [groupNow, jobs] of groups) {
    now = new Date(groupNow)
    for (let start = 0; start < jobs.length; start += 32) {
      await Promise.all(jobs.slice(start, start + 32).map(async ({ model, item, expected }) => {
        const label = `${model} × ${item.id}`
        if (expected === undefined) {
          divergences.push(`${label}: not in the golden file`)
          return
        }
        const response = await fetch(`${url}/v1/chat/render`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: toJsonText(requestBody(model, item)) })
        const body = await response.json() as { prompt?: string, error?: { message: string } }
        if (expected.error === undefined) {
          if (response.status === 200 && body.prompt === expected.output) agreeing++
          else divergences.push(`${label}: expected the reference output, got ${response.status} ${JSON.stringify(body).slice(0, 300)}`)
        } else if (response.status !== 400) {
          divergences.push(`${label}: expected 400 (${expected.error_type ?? 'raise_exception'}: ${expected.error}), got ${response.status}`)
        } else if (expected.error_type === undefined && body.error?.message !== expected.error) {
          // The template's own raise_exception message must be exact; Python-internal messages need not be.
          divergences.push(`${label}: expected message ${JSON.stringify(expected.error)}, got ${JSON.stringify(body.error?.message)}`)
        } else {
          agreeing++
        }
      }))
    }
  }
  t.diagnostic(`HTTP agreement: ${agreeing}/${work.length} (${models.length} models × ${cases.length} cases)`)
  assert.deepEqual(divergences, [])
  assert.equal(agreeing, work.length)
  assert.ok(namedTemplateRepos.every((repo) => hub.requests.some((request) => request.url.startsWith(`/${repo}/resolve/main/`))), 'named-template models came through the Hub loader')
})
