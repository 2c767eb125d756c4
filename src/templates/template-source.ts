/**
 * Where chat templates come from: the Hugging Face Hub (tokenizer_config.json
 * plus the optional chat_template.jinja), a local cache of the last good answer
 * (used offline and when the Hub is unreachable), or a file given in config.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { TemplateLoadError } from '../errors.js'
import type { NamedTemplate, SpecialTokens } from './chat-template.js'

export interface TemplateSource {
  chatTemplate: string | NamedTemplate[]
  specialTokens: SpecialTokens
  /** tokenizer_config's `add_bos_token` when it says (whether the tokenizer adds BOS to a text); the fallback when an engine cannot be asked. */
  addBosToken?: boolean
  /** e.g. 'hub:org/name', 'cache:/path/file.json', 'inline', 'file:path' */
  origin: string
}

export interface HubTemplateLoaderOptions {
  /** HF_ENDPOINT, e.g. https://huggingface.co */
  hubBaseUrl: string
  /** Under HF_HOME, e.g. `${HF_HOME}/hf-chat-gateway/templates` */
  cacheDir: string
  /** HF_HUB_OFFLINE: only the cache, never the network */
  offline: boolean
  fetch?: typeof globalThis.fetch
  /** Per load, both files together; default 30000 */
  timeoutMs?: number
  /** Told (once) when the cache cannot be written. */
  logger?: { warn (object: object, message: string): void }
}

export const SPECIAL_TOKEN_NAMES = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const

const namedTemplateSchema = z.object({ name: z.string(), template: z.string() })
const chatTemplateSchema = z.union([z.string(), z.array(namedTemplateSchema)])
// Special tokens are plain strings or serialised AddedToken objects ({content, lstrip, ...}).
const specialTokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })])
const tokenizerConfigSchema = z.looseObject({ chat_template: chatTemplateSchema.nullish() })

const cacheEntrySchema = z.object({
  version: z.literal(1),
  repo: z.string(),
  fetchedAt: z.string(),
  chatTemplate: chatTemplateSchema,
  specialTokens: z.record(z.string(), z.string()),
  addBosToken: z.boolean().optional()
})
type CacheEntry = z.infer<typeof cacheEntrySchema>

/** bos/eos/unk/sep/pad/cls/mask tokens as plain strings; unset, null, empty or malformed ones are left out. */
export function specialTokensFromTokenizerConfig (config: Record<string, unknown>): SpecialTokens {
  const tokens: SpecialTokens = {}
  for (const name of SPECIAL_TOKEN_NAMES) {
    const parsed = specialTokenSchema.safeParse(config[name])
    if (!parsed.success) continue
    const token = typeof parsed.data === 'string' ? parsed.data : parsed.data.content
    if (token !== '') tokens[name] = token
  }
  return tokens
}

/** Reads a chat_template_file override. */
export async function loadTemplateFile (path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    throw new TemplateLoadError(`cannot read the chat template file ${path}: ${reason}`, 500, 'chat_template_unavailable', error)
  }
}

// Hub rules (huggingface_hub's validate_repo_id): word characters, '-' and '.',
// starting and ending with a word character, no '--' or '..', at most 96 per part.
const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/

export function isValidRepoId (repo: string): boolean {
  const parts = repo.split('/')
  if (parts.length > 2) return false
  if (repo.includes('--') || repo.includes('..') || repo.endsWith('.git')) return false
  return parts.every((part) => REPO_PART.test(part))
}

/** The Hub could not be asked (network, timeout, 5xx): the cache may stand in. */
class HubUnavailableError extends Error {}

interface HubFile { status: number, errorCode: string | null, body: string | null }

export class HubTemplateLoader {
  readonly #hubBaseUrl: string
  readonly #cacheDir: string
  readonly #offline: boolean
  readonly #fetch: typeof globalThis.fetch
  readonly #timeoutMs: number
  readonly #inFlight = new Map<string, Promise<TemplateSource>>()
  readonly #logger: HubTemplateLoaderOptions['logger']
  #cacheWriteWarned = false

  constructor (options: HubTemplateLoaderOptions) {
    this.#hubBaseUrl = options.hubBaseUrl.replace(/\/+$/, '')
    this.#cacheDir = options.cacheDir
    this.#offline = options.offline
    this.#fetch = options.fetch ?? globalThis.fetch
    this.#timeoutMs = options.timeoutMs ?? 30_000
    this.#logger = options.logger
  }

  /**
   * The model's chat template and special tokens. Concurrent loads of one repo
   * (with the same token) share one Hub round trip; `signal` only stops this
   * caller's wait, never the shared request.
   */
  async load (repo: string, token?: string, signal?: AbortSignal): Promise<TemplateSource> {
    if (!isValidRepoId(repo)) {
      throw new TemplateLoadError(`invalid model id ${JSON.stringify(repo.slice(0, 200))}: expected a Hub repo id like "org/name"`, 400, 'invalid_model_id')
    }
    // Keyed by token too, so a caller without access never receives a gated answer fetched with someone else's token.
    const key = token === undefined || token === '' ? repo : `${repo}\n${createHash('sha256').update(token).digest('hex')}`
    let pending = this.#inFlight.get(key)
    if (pending === undefined) {
      pending = this.#load(repo, token === '' ? undefined : token).finally(() => { this.#inFlight.delete(key) })
      this.#inFlight.set(key, pending)
    }
    return await waitWithSignal(pending, signal)
  }

  #cacheFile (repo: string): string {
    // '~' cannot occur in a repo id, so the flat name is unambiguous.
    return join(this.#cacheDir, `${repo.replace('/', '~')}.json`)
  }

  async #load (repo: string, token: string | undefined): Promise<TemplateSource> {
    if (this.#offline) {
      const cached = await this.#readCache(repo)
      if (cached !== undefined) return cached
      throw new TemplateLoadError(`HF_HUB_OFFLINE=1 and no chat template is cached for ${repo} (looked for ${this.#cacheFile(repo)}); load it once online or set a chat template in the models file`, 503, 'chat_template_unavailable')
    }
    let fetched: { chatTemplate: string | NamedTemplate[], specialTokens: SpecialTokens, addBosToken?: boolean }
    try {
      fetched = await this.#fetchFromHub(repo, token)
    } catch (error) {
      if (!(error instanceof HubUnavailableError)) throw error
      const cached = await this.#readCache(repo)
      if (cached !== undefined) return cached
      throw new TemplateLoadError(`cannot fetch the chat template of ${repo} from the Hugging Face Hub (${this.#hubBaseUrl}): ${error.message}; nothing is cached for it`, 502, 'chat_template_unavailable', error)
    }
    await this.#writeCache({ version: 1, repo, fetchedAt: new Date().toISOString(), ...fetched })
    return { ...fetched, origin: `hub:${repo}` }
  }

  async #fetchFromHub (repo: string, token: string | undefined): Promise<{ chatTemplate: string | NamedTemplate[], specialTokens: SpecialTokens, addBosToken?: boolean }> {
    const signal = AbortSignal.timeout(this.#timeoutMs)
    const base = `${this.#hubBaseUrl}/${repo.split('/').map(encodeURIComponent).join('/')}/resolve/main`
    const [config, jinja] = await Promise.all([
      this.#fetchFile(`${base}/tokenizer_config.json`, token, signal),
      this.#fetchFile(`${base}/chat_template.jinja`, token, signal)
    ])
    for (const file of [config, jinja]) {
      if (file.status === 401 || file.status === 403) throw accessDenied(repo, file, token !== undefined)
    }
    for (const [name, file] of [['tokenizer_config.json', config], ['chat_template.jinja', jinja]] as const) {
      if (file.status !== 200 && file.status !== 404) throw new HubUnavailableError(`the Hub answered ${file.status} for ${name}`)
    }
    // A missing file in an existing repo is EntryNotFound; anything else means no such repo.
    if (config.status === 404 && config.errorCode !== 'EntryNotFound' && jinja.status !== 200) {
      throw new TemplateLoadError(`model not found on the Hub: ${repo}`, 404, 'model_not_found')
    }

    let configObject: Record<string, unknown> = {}
    let fromConfig: string | NamedTemplate[] | undefined
    if (config.status === 200) {
      let json: unknown
      try {
        json = JSON.parse(config.body ?? '')
      } catch (error) {
        throw new TemplateLoadError(`tokenizer_config.json of ${repo} is not valid JSON`, 502, 'chat_template_unavailable', error)
      }
      const parsed = tokenizerConfigSchema.safeParse(json)
      if (!parsed.success) {
        throw new TemplateLoadError(`tokenizer_config.json of ${repo} is invalid: ${z.prettifyError(parsed.error)}`, 500, 'chat_template_invalid', parsed.error)
      }
      configObject = parsed.data
      fromConfig = parsed.data.chat_template ?? undefined
    }
    // As in transformers, a chat_template.jinja file wins over tokenizer_config's chat_template.
    const chatTemplate = jinja.status === 200 ? jinja.body ?? '' : fromConfig
    if (chatTemplate === undefined || (Array.isArray(chatTemplate) && chatTemplate.length === 0)) {
      throw new TemplateLoadError(`${repo} has no chat template (neither tokenizer_config.json's chat_template nor chat_template.jinja); set one in the models file`, 400, 'chat_template_missing')
    }
    const addBosToken = typeof configObject.add_bos_token === 'boolean' ? configObject.add_bos_token : undefined
    return { chatTemplate, specialTokens: specialTokensFromTokenizerConfig(configObject), ...(addBosToken === undefined ? {} : { addBosToken }) }
  }

  async #fetchFile (url: string, token: string | undefined, signal: AbortSignal): Promise<HubFile> {
    const headers: Record<string, string> = { accept: '*/*' }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    let response: Response
    try {
      response = await this.#fetch(url, { headers, signal, redirect: 'follow' })
    } catch (error) {
      throw new HubUnavailableError(describeNetworkError(error, signal, this.#timeoutMs))
    }
    const errorCode = response.headers.get('x-error-code')
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {})
      return { status: response.status, errorCode, body: null }
    }
    try {
      return { status: 200, errorCode, body: await response.text() }
    } catch (error) {
      throw new HubUnavailableError(describeNetworkError(error, signal, this.#timeoutMs))
    }
  }

  async #readCache (repo: string): Promise<TemplateSource | undefined> {
    const file = this.#cacheFile(repo)
    let entry: CacheEntry
    try {
      const parsed = cacheEntrySchema.safeParse(JSON.parse(await readFile(file, 'utf8')))
      if (!parsed.success || parsed.data.repo !== repo) return undefined
      entry = parsed.data
    } catch {
      return undefined // missing or unreadable: the same as not cached
    }
    return { chatTemplate: entry.chatTemplate, specialTokens: entry.specialTokens, ...(entry.addBosToken === undefined ? {} : { addBosToken: entry.addBosToken }), origin: `cache:${file}` }
  }

  async #writeCache (entry: CacheEntry): Promise<void> {
    const file = this.#cacheFile(entry.repo)
    // Write then rename, so a concurrent reader or a crash never sees half a file.
    const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
    try {
      await mkdir(this.#cacheDir, { recursive: true })
      await writeFile(temporary, JSON.stringify(entry), 'utf8')
      await rename(temporary, file)
    } catch (error) {
      // The cache is an optimisation for later offline/outage use; the template in hand is still good.
      // But an unwritable cache (a root-owned volume) means a restart during a Hub outage fails: say so, once.
      await rm(temporary, { force: true }).catch(() => {})
      if (!this.#cacheWriteWarned) {
        this.#cacheWriteWarned = true
        this.#logger?.warn({ cacheDir: this.#cacheDir, reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message }, 'chat template cache is not writable: templates will not survive a restart offline (check HF_HOME and its owner)')
      }
    }
  }
}

function accessDenied (repo: string, file: HubFile, hadToken: boolean): TemplateLoadError {
  // Reported as 404 like OpenAI's "does not exist or you do not have access": the Hub
  // itself answers 401 for private and missing repos alike, so we cannot tell them apart.
  if (file.errorCode === 'GatedRepo') {
    const advice = hadToken ? 'the token given has no access to it (accept its conditions on the Hub)' : 'a Hugging Face token with access to it is needed'
    return new TemplateLoadError(`model not found on the Hub: ${repo} is gated; ${advice}`, 404, 'model_not_found')
  }
  const advice = hadToken ? 'or the token given has no access to it' : 'or it is gated/private and a Hugging Face token with access to it is needed'
  return new TemplateLoadError(`model not found on the Hub: ${repo} (it does not exist, ${advice})`, 404, 'model_not_found')
}

function describeNetworkError (error: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `no answer within ${timeoutMs} ms`
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error))
}

async function waitWithSignal<T> (promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await promise
  signal.throwIfAborted()
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}
