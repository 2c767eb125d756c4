/**
 * Configuration: the environment and the optional models file, validated with
 * zod once at start-up into a frozen, typed Config. Only src/server.ts reads
 * process.env; it hands the environment to loadConfig().
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { homedir } from 'node:os'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { TOOL_CALL_PARSER_NAMES } from './chat/tool-calls/index.js'
import { DIALECTS, EXTRA_PARAMETER_NAMES, type ExtraParameter } from './backends/completions-dialects.js'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const positiveInteger = z.coerce.number().int().positive()

/** Sampling defaults a models-file entry may set; the request wins over them. */
export const generationDefaultsSchema = z.strictObject({
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().positive().optional(),
  min_p: z.number().min(0).max(1).optional(),
  repetition_penalty: z.number().positive().optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  typical_p: z.number().gt(0).lt(1).optional(),
  truncate: z.number().int().positive().optional(),
  seed: z.number().int().nonnegative().optional(),
  stop: z.array(z.string().min(1)).optional()
})
export type GenerationDefaults = z.infer<typeof generationDefaultsSchema>

const httpUrl = z.url({ protocol: /^https?$/ }).transform((url) => url.replace(/\/+$/, ''))

const modelEntryBase = {
  id: z.string().min(1).max(256).regex(/^[^\s]+$/, 'must not contain whitespace'),
  model: z.string().min(1).max(200).optional(),
  token: z.string().min(1).optional(),
  special_tokens: z.record(z.string(), z.string()).optional(),
  tool_parser: z.enum(TOOL_CALL_PARSER_NAMES as [string, ...string[]]).optional(),
  chat_template: z.string().min(1).optional(),
  chat_template_file: z.string().min(1).optional(),
  defaults: generationDefaultsSchema.optional(),
  timeout_ms: z.number().int().positive().optional(),
  first_token_timeout_ms: z.number().int().positive().optional()
}

export const tgiModelEntrySchema = z.strictObject({
  ...modelEntryBase,
  backend: z.literal('tgi'),
  url: httpUrl
})

/** The name the engine serves the model under (the body's `model`); default: the one id in {url}/v1/models. */
const servedModel = z.string().min(1).max(256).optional()

/** An OpenAI-style /v1/completions engine, named (vllm, sglang, llamacpp) or detected (completions). */
export const completionsModelEntrySchema = z.strictObject({
  ...modelEntryBase,
  backend: z.enum(['vllm', 'sglang', 'llamacpp', 'completions']),
  url: httpUrl,
  served_model: servedModel
})

/** A dedicated Inference Endpoint: its engine (TGI, vLLM, SGLang, llama.cpp) is detected; HF_TOKEN is its default token. */
export const endpointModelEntrySchema = z.strictObject({
  ...modelEntryBase,
  backend: z.literal('endpoint'),
  url: httpUrl,
  served_model: servedModel
})

/** A Hub model through Inference Providers (the Hugging Face router). */
export const hubModelEntrySchema = z.strictObject({
  ...modelEntryBase,
  backend: z.literal('hub'),
  model: z.string().min(1).max(200),
  /** `auto`: the first live provider in the Hub's order; or one provider's name. */
  provider: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/, 'a provider name such as featherless-ai, together, novita, or auto').default('auto')
})

/**
 * Sampling fields the Hub's OpenAI-style /v1/completions route does not take;
 * TGI's native routes do. (The engines' own tables are in completions-dialects.ts.)
 */
export const NATIVE_ONLY_PARAMETERS = ['top_k', 'typical_p', 'truncate', 'min_p'] as const

export const BACKENDS = ['tgi', 'vllm', 'sglang', 'llamacpp', 'completions', 'endpoint', 'hub'] as const
export type BackendKind = typeof BACKENDS[number]

/** Defaults an engine has no field for, refused at start-up (detected engines are checked per request). */
function unsupportedDefaults (backend: BackendKind): readonly string[] {
  switch (backend) {
    case 'tgi': return ['min_p']
    case 'hub': return NATIVE_ONLY_PARAMETERS
    case 'vllm': case 'sglang': case 'llamacpp': {
      const fields = DIALECTS[backend].fields
      return (Object.keys(EXTRA_PARAMETER_NAMES) as ExtraParameter[]).filter((name) => fields[name] === undefined).map((name) => EXTRA_PARAMETER_NAMES[name])
    }
    default: return []
  }
}

export const modelEntrySchema = z.discriminatedUnion('backend', [tgiModelEntrySchema, completionsModelEntrySchema, endpointModelEntrySchema, hubModelEntrySchema])
  .refine((entry) => !(entry.chat_template !== undefined && entry.chat_template_file !== undefined), {
    message: 'set chat_template or chat_template_file, not both', path: ['chat_template']
  })
  .superRefine((entry, context) => {
    if (entry.defaults === undefined) return
    for (const name of unsupportedDefaults(entry.backend)) {
      if ((entry.defaults as Record<string, unknown>)[name] !== undefined) {
        context.addIssue({ code: 'custom', message: `'${name}' is not supported by the ${entry.backend} backend`, path: ['defaults', name] })
      }
    }
  })
export type ModelEntryConfig = z.infer<typeof modelEntrySchema>

export const modelsFileSchema = z.strictObject({
  models: z.array(modelEntrySchema).min(1)
}).superRefine((file, context) => {
  const seen = new Set<string>()
  file.models.forEach((entry, index) => {
    if (seen.has(entry.id)) context.addIssue({ code: 'custom', message: `duplicate model id '${entry.id}'`, path: ['models', index, 'id'] })
    seen.add(entry.id)
  })
})

const booleanFlag = z.string().optional().transform((value) => value !== undefined && /^(1|true|yes|on)$/i.test(value.trim()))

export const environmentSchema = z.object({
  PORT: positiveInteger.max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  HF_TOKEN: z.string().min(1).optional(),
  HUGGINGFACEHUB_API_TOKEN: z.string().min(1).optional(),
  HUGGING_FACE_HUB_TOKEN: z.string().min(1).optional(),
  HF_ENDPOINT: httpUrl.default('https://huggingface.co'),
  HF_HUB_OFFLINE: booleanFlag,
  HF_HOME: z.string().min(1).optional(),
  HF_INFERENCE_ENDPOINT: httpUrl.default('https://router.huggingface.co'),
  TGI_URL: httpUrl.optional(),
  INFERENCE_SERVER_URL: httpUrl.optional(),
  INFERENCE_SERVER_TOKEN: z.string().min(1).optional(),
  GATEWAY_CONFIG: z.string().min(1).optional(),
  GATEWAY_API_KEYS: z.string().optional(),
  UPSTREAM_TIMEOUT_MS: positiveInteger.default(300_000),
  UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: positiveInteger.default(60_000),
  BODY_LIMIT_BYTES: positiveInteger.default(8 * 1024 * 1024),
  SHUTDOWN_GRACE_MS: positiveInteger.default(25_000),
  STREAM_WRITE_IDLE_TIMEOUT_MS: positiveInteger.default(30_000),
  REQUEST_TIMEOUT_MS: positiveInteger.default(60_000)
})

export interface ModelConfig {
  id: string
  backend: BackendKind
  /**
   * Engines: the server's base URL. hub: the router's base (HF_INFERENCE_ENDPOINT).
   */
  url: string
  /** Hub repo id the chat template comes from; undefined until the engine names its model. */
  repo?: string
  /** The `model` the engine serves (models-file `served_model`); default: the one id in /v1/models. */
  servedModel?: string
  /** hub: the Inference Provider (`auto` or a name). */
  provider?: string
  /** Token for Hub reads: the entry's `token`, else HF_TOKEN. */
  hubToken?: string
  /**
   * Token sent to the model server. tgi, vllm, sglang, llamacpp, completions: only
   * the entry's own `token` (HF_TOKEN is never sent to a plain engine URL, which
   * may be anyone's server); endpoint and hub (Hugging Face hosted): the entry's
   * `token`, else HF_TOKEN.
   */
  upstreamToken?: string
  /** bos_token, eos_token, ... overriding (or, offline, replacing) the Hub's tokenizer_config. */
  specialTokens?: Record<string, string>
  /** Tool-call parser override (models-file `tool_parser`); else detected from the template. */
  toolParser?: string
  chatTemplate?: string
  chatTemplateFile?: string
  defaults: GenerationDefaults
  timeoutMs: number
  firstTokenTimeoutMs: number
}

export interface Config {
  port: number
  host: string
  logLevel: typeof LOG_LEVELS[number]
  hfToken?: string
  hubBaseUrl: string
  /** Serverless inference base (HF_INFERENCE_ENDPOINT). */
  inferenceBaseUrl: string
  hubOffline: boolean
  /** Where Hub downloads are cached (HF_HOME/hf-chat-gateway). */
  cacheDir: string
  apiKeys: string[]
  upstreamTimeoutMs: number
  firstTokenTimeoutMs: number
  bodyLimitBytes: number
  /** After SIGTERM/SIGINT, how long in-flight requests may run before they are cancelled. */
  shutdownGraceMs: number
  /** A stream whose client has not taken buffered bytes for this long is dropped. */
  streamWriteIdleTimeoutMs: number
  /** Time to receive a whole request (headers and body); responses are not limited by it. */
  requestTimeoutMs: number
  /**
   * `single`: INFERENCE_SERVER_URL or TGI_URL alone; the one model's id comes
   * from the engine and any requested id routes to it. `file`: the models file's entries only.
   * `hub`: zero-config; every requested Hub repo id is served through Inference Providers (`provider: auto`).
   */
  mode: 'single' | 'file' | 'hub'
  models: ModelConfig[]
}

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** Renders zod issues as `where: field: message` lines a person can act on. */
export function describeIssues (error: z.ZodError, describePath: (path: PropertyKey[]) => string): string {
  return error.issues.map((issue) => `  - ${describePath(issue.path)}: ${issue.message}`).join('\n')
}

function describeModelsFilePath (file: z.infer<typeof modelsFileSchema> | unknown, path: PropertyKey[]): string {
  if (path[0] === 'models' && typeof path[1] === 'number') {
    const entries = (file as { models?: Array<{ id?: unknown }> })?.models
    const id = entries?.[path[1]]?.id
    const entry = `models[${path[1]}]${typeof id === 'string' ? ` (id '${id}')` : ''}`
    const field = path.slice(2).join('.')
    return field === '' ? entry : `${entry} field '${field}'`
  }
  return path.length === 0 ? '(file)' : `field '${path.join('.')}'`
}

export async function readModelsFile (path: string): Promise<z.infer<typeof modelsFileSchema>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`GATEWAY_CONFIG: cannot read models file ${path}: ${(error as Error).message}`)
  }
  let raw: unknown
  try {
    raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text)
  } catch (error) {
    throw new ConfigError(`GATEWAY_CONFIG: models file ${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(error as Error).message}`)
  }
  const parsed = modelsFileSchema.safeParse(raw)
  if (!parsed.success) {
    throw new ConfigError(`GATEWAY_CONFIG: invalid models file ${path}:\n${describeIssues(parsed.error, (issuePath) => describeModelsFilePath(raw, issuePath))}`)
  }
  return parsed.data
}

export async function loadConfig (environment: Record<string, string | undefined>): Promise<Config> {
  // Empty variables count as unset, as shells and docker `-e X=` produce them.
  const cleaned = Object.fromEntries(Object.entries(environment).filter(([, value]) => value !== undefined && value !== ''))
  const parsed = environmentSchema.safeParse(cleaned)
  if (!parsed.success) {
    throw new ConfigError(`invalid environment:\n${describeIssues(parsed.error, (path) => path.join('.'))}`)
  }
  const env = parsed.data
  const hfToken = env.HF_TOKEN ?? env.HUGGINGFACEHUB_API_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN
  const hfHome = env.HF_HOME ?? join(homedir(), '.cache', 'huggingface')
  const base = {
    port: env.PORT,
    host: env.HOST,
    logLevel: env.LOG_LEVEL,
    hfToken,
    hubBaseUrl: env.HF_ENDPOINT,
    inferenceBaseUrl: env.HF_INFERENCE_ENDPOINT,
    hubOffline: env.HF_HUB_OFFLINE,
    cacheDir: join(resolve(hfHome), 'hf-chat-gateway'),
    apiKeys: (env.GATEWAY_API_KEYS ?? '').split(',').map((key) => key.trim()).filter((key) => key !== ''),
    upstreamTimeoutMs: env.UPSTREAM_TIMEOUT_MS,
    firstTokenTimeoutMs: env.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    streamWriteIdleTimeoutMs: env.STREAM_WRITE_IDLE_TIMEOUT_MS,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS
  }

  if (env.GATEWAY_CONFIG !== undefined) {
    const file = await readModelsFile(env.GATEWAY_CONFIG)
    const fileDirectory = dirname(resolve(env.GATEWAY_CONFIG))
    const models = file.models.map((entry): ModelConfig => ({
      id: entry.id,
      backend: entry.backend,
      url: entry.backend === 'hub' ? env.HF_INFERENCE_ENDPOINT : entry.url,
      repo: entry.model,
      hubToken: entry.token ?? hfToken,
      servedModel: 'served_model' in entry ? entry.served_model : undefined,
      provider: entry.backend === 'hub' ? entry.provider : undefined,
      upstreamToken: entry.backend === 'endpoint' || entry.backend === 'hub' ? entry.token ?? hfToken : entry.token,
      specialTokens: entry.special_tokens,
      toolParser: entry.tool_parser,
      chatTemplate: entry.chat_template,
      chatTemplateFile: entry.chat_template_file === undefined
        ? undefined
        : isAbsolute(entry.chat_template_file) ? entry.chat_template_file : join(fileDirectory, entry.chat_template_file),
      defaults: entry.defaults ?? {},
      timeoutMs: entry.timeout_ms ?? env.UPSTREAM_TIMEOUT_MS,
      firstTokenTimeoutMs: entry.first_token_timeout_ms ?? env.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS
    }))
    return deepFreeze({ ...base, mode: 'file', models })
  }
  if (env.INFERENCE_SERVER_URL !== undefined) {
    // An Inference Endpoint is Hugging Face hosted: HF_TOKEN is its token. Any other URL gets INFERENCE_SERVER_TOKEN only.
    const endpoint = isInferenceEndpointUrl(env.INFERENCE_SERVER_URL)
    return deepFreeze({
      ...base,
      mode: 'single',
      models: [{
        id: 'default',
        backend: endpoint ? 'endpoint' : 'completions',
        url: env.INFERENCE_SERVER_URL,
        hubToken: hfToken,
        upstreamToken: env.INFERENCE_SERVER_TOKEN ?? (endpoint ? hfToken : undefined),
        defaults: {},
        timeoutMs: env.UPSTREAM_TIMEOUT_MS,
        firstTokenTimeoutMs: env.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS
      }]
    })
  }
  if (env.TGI_URL !== undefined) {
    return deepFreeze({
      ...base,
      mode: 'single',
      models: [{
        id: 'tgi',
        backend: 'tgi',
        url: env.TGI_URL,
        hubToken: hfToken,
        defaults: {},
        timeoutMs: env.UPSTREAM_TIMEOUT_MS,
        firstTokenTimeoutMs: env.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS
      }]
    })
  }
  // Zero-config: every requested Hub repo id is served by the serverless API.
  return deepFreeze({ ...base, mode: 'hub', models: [] })
}

/** Dedicated Inference Endpoints live under *.endpoints.huggingface.cloud. */
export function isInferenceEndpointUrl (url: string): boolean {
  return /\.endpoints\.huggingface\.cloud$/i.test(new URL(url).hostname)
}

/** The models-file-equivalent entry zero-config mode makes for a requested Hub repo id. */
export function serverlessModelConfig (config: Config, repo: string): ModelConfig {
  return {
    id: repo,
    backend: 'hub',
    url: config.inferenceBaseUrl,
    repo,
    provider: 'auto',
    hubToken: config.hfToken,
    upstreamToken: config.hfToken,
    defaults: {},
    timeoutMs: config.upstreamTimeoutMs,
    firstTokenTimeoutMs: config.firstTokenTimeoutMs
  }
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}
