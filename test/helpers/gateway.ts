/**
 * Test harness: starts loopback fakes (TGI, Hub) and a gateway listening on a
 * real port, wired to them only through its config. Everything is closed via
 * t.after, so a failing test leaves nothing running.
 */
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import OpenAI from 'openai'
import { buildApp, type AppOverrides } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startFakeTgi, type FakeTgi, type FakeTgiOptions } from '../fakes/fake-tgi.js'
import { startFakeHub, type FakeHub } from '../fakes/fake-hub.js'

import { SHARED } from './corpus.js'
import { MISTRAL_STYLE_CONFIG, ZEPHYR_STYLE_CONFIG } from '../fixtures/tokenizer-configs.js'
export { SHARED }
export const ZEPHYR = 'HuggingFaceH4/zephyr-7b-beta'
/** A repo whose (project-written) template writes `<s>` itself (see MISTRAL_STYLE_CONFIG). */
export const MISTRAL_STYLE = 'gateway-fixtures/mistral-style'

/**
 * tokenizer_config.json for a repo: zephyr's format is the project's own
 * fixture; any other model's real template comes from the corpus
 * (shared/chat-templates/models), so tests using one run only where it is.
 */
export async function tokenizerConfigOf (repo: string): Promise<Record<string, unknown>> {
  if (repo === ZEPHYR) return { ...ZEPHYR_STYLE_CONFIG }
  if (repo === MISTRAL_STYLE) return { ...MISTRAL_STYLE_CONFIG }
  const file = JSON.parse(await readFile(new URL(`chat-templates/models/${repo.replace('/', '__')}.json`, SHARED), 'utf8'))
  return { ...file.special_tokens, chat_template: file.chat_template, tokenizer_class: 'LlamaTokenizer' }
}

export interface GatewayHarness {
  app: FastifyInstance
  url: string
  tgi: FakeTgi
  hub: FakeHub
  openai: OpenAI
  cacheDir: string
}

export interface HarnessOptions {
  tgi?: FakeTgiOptions
  /** Hub repos to serve (default: zephyr). */
  repos?: string[]
  /** Extra environment for loadConfig (TGI_URL is set to the fake unless GATEWAY_CONFIG is given). */
  env?: Record<string, string>
  /** A models file (YAML); `{{TGI_URL}}` is replaced with the fake's URL. */
  modelsFile?: string
  overrides?: AppOverrides
  apiKey?: string
}

export async function startGateway (t: TestContext, options: HarnessOptions = {}): Promise<GatewayHarness> {
  const tgi = await startFakeTgi({ modelId: ZEPHYR, ...options.tgi })
  t.after(() => tgi.close())
  const repos: Record<string, { tokenizerConfig: Record<string, unknown> }> = {}
  for (const repo of options.repos ?? [ZEPHYR]) repos[repo] = { tokenizerConfig: await tokenizerConfigOf(repo) }
  const hub = await startFakeHub({ repos })
  t.after(() => hub.close())
  const cacheDir = await mkdtemp(join(tmpdir(), 'gateway-test-'))
  t.after(() => rm(cacheDir, { recursive: true, force: true }))
  const env: Record<string, string> = { HF_ENDPOINT: hub.url, HF_HOME: cacheDir, LOG_LEVEL: 'silent', ...options.env }
  if (options.modelsFile !== undefined) {
    const path = join(cacheDir, 'models.yaml')
    await writeFile(path, options.modelsFile.replaceAll('{{TGI_URL}}', tgi.url))
    env.GATEWAY_CONFIG = path
  } else {
    env.TGI_URL ??= tgi.url
  }
  const config = await loadConfig(env)
  const app = await buildApp(config, { logger: false, now: () => new Date('2025-01-15T12:00:00Z'), ...options.overrides })
  t.after(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : ''
  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 10_000 })
  return { app, url, tgi, hub, openai, cacheDir }
}

/** Reads an SSE response body into its `data:` payloads. */
export async function readSse (response: Response): Promise<string[]> {
  const text = await response.text()
  return text.split('\n\n').filter((event) => event.startsWith('data: ')).map((event) => event.slice(6))
}

export async function postJson (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

export const ZEPHYR_MESSAGES = [
  { role: 'system' as const, content: "You're a helpful assistant" },
  { role: 'user' as const, content: 'What happens when an unstoppable force meets an immovable object?' }
]
export const ZEPHYR_PROMPT = "<|system|>\nYou're a helpful assistant</s>\n<|user|>\nWhat happens when an unstoppable force meets an immovable object?</s>\n<|assistant|>\n"
