/**
 * What differs between the OpenAI-style `/v1/completions` engines, as data: the
 * completions adapter (completions.ts) is one piece of code, and each engine is
 * one row here. Sources: vLLM `entrypoints/openai/completion/protocol.py`,
 * SGLang `srt/entrypoints/openai/protocol.py`, llama.cpp `tools/server/README.md`.
 */
import type { StructuredOutput } from './structured-output.js'
import { isRecord } from './upstream-replies.js'

export type CompletionsEngine = 'vllm' | 'sglang' | 'llamacpp' | 'openai'

/** The GenerationParameters an engine may lack, with their OpenAI-request names. */
export type ExtraParameter = 'topK' | 'minP' | 'repetitionPenalty' | 'typicalP' | 'truncate' | 'frequencyPenalty' | 'seed'
export const EXTRA_PARAMETER_NAMES: Record<ExtraParameter, string> = {
  topK: 'top_k', minP: 'min_p', repetitionPenalty: 'repetition_penalty', typicalP: 'typical_p', truncate: 'truncate', frequencyPenalty: 'frequency_penalty', seed: 'seed'
}

export interface CompletionsDialect {
  readonly engine: CompletionsEngine
  /** The engine's own body field for each extra it has (absent: 400 naming the param). */
  readonly fields: Partial<Record<ExtraParameter, string>>
  /**
   * Fields that make the engine tokenise the prompt as given, adding no special
   * tokens (vLLM's `add_special_tokens: false`); absent: the engine adds its
   * tokenizer's BOS to a string prompt, and the gateway removes the template's own.
   */
  readonly verbatimPrompt?: Readonly<Record<string, unknown>>
  /** The body fields for constrained output; absent: the engine has none (400). */
  structuredOutput?: (output: StructuredOutput) => Record<string, unknown>
  /** The stop the engine matched (text or a token id) from a finished choice. */
  matchedStop: (choice: Record<string, unknown>) => unknown
  /** A request for the engine's tokenizer with its special tokens added, and the token ids of its reply. */
  readonly tokenize?: {
    path: string
    body: (text: string, servedModel: string | undefined) => Record<string, unknown>
    ids: (reply: unknown) => number[] | undefined
  }
  /** Whether the engine needs `model` in the body (llama.cpp serves one model and ignores it). */
  readonly needsModel: boolean
}

function idsOf (value: unknown): number[] | undefined {
  if (!Array.isArray(value)) return undefined
  const ids: number[] = []
  for (const item of value) {
    // llama.cpp with_pieces answers [{id, piece}].
    const id = typeof item === 'number' ? item : isRecord(item) ? item.id : undefined
    if (typeof id !== 'number') return undefined
    ids.push(id)
  }
  return ids
}

export const DIALECTS: Readonly<Record<CompletionsEngine, CompletionsDialect>> = {
  vllm: {
    engine: 'vllm',
    fields: { topK: 'top_k', minP: 'min_p', repetitionPenalty: 'repetition_penalty', frequencyPenalty: 'frequency_penalty', seed: 'seed', truncate: 'truncate_prompt_tokens' },
    // CompletionRequest.add_special_tokens defaults to true, which would add a BOS the template already wrote.
    verbatimPrompt: { add_special_tokens: false },
    // vLLM 0.12 removed guided_json/guided_regex (extra fields are ignored with a warning): structured_outputs only.
    structuredOutput: (output) => ({ structured_outputs: output.type === 'json_object' ? { json_object: true } : { json: output.schema } }),
    matchedStop: (choice) => choice.stop_reason,
    tokenize: {
      path: '/tokenize',
      body: (text, servedModel) => ({ model: servedModel, prompt: text, add_special_tokens: true }),
      ids: (reply) => isRecord(reply) ? idsOf(reply.tokens) : undefined
    },
    needsModel: true
  },
  sglang: {
    engine: 'sglang',
    fields: { topK: 'top_k', minP: 'min_p', repetitionPenalty: 'repetition_penalty', frequencyPenalty: 'frequency_penalty', seed: 'seed' },
    // SGLang's json_schema is the schema as a JSON string.
    structuredOutput: (output) => ({ json_schema: JSON.stringify(output.type === 'json_object' ? { type: 'object' } : output.schema) }),
    matchedStop: (choice) => choice.matched_stop,
    tokenize: {
      path: '/tokenize',
      body: (text, servedModel) => ({ model: servedModel, prompt: text, add_special_tokens: true }),
      ids: (reply) => isRecord(reply) ? idsOf(reply.tokens) : undefined
    },
    needsModel: true
  },
  llamacpp: {
    engine: 'llamacpp',
    fields: { topK: 'top_k', minP: 'min_p', repetitionPenalty: 'repeat_penalty', typicalP: 'typical_p', frequencyPenalty: 'frequency_penalty', seed: 'seed' },
    // /v1/completions ignores response_format; json_schema is an object.
    structuredOutput: (output) => ({ json_schema: output.type === 'json_object' ? { type: 'object' } : output.schema }),
    matchedStop: (choice) => choice.stopping_word,
    tokenize: {
      path: '/tokenize',
      // add_special defaults to false on /tokenize; string prompts on /v1/completions get it true.
      body: (text) => ({ content: text, add_special: true, parse_special: true }),
      ids: (reply) => isRecord(reply) ? idsOf(reply.tokens) : undefined
    },
    needsModel: false
  },
  // Any other OpenAI-style /v1/completions server: only OpenAI's own fields.
  openai: {
    engine: 'openai',
    fields: { frequencyPenalty: 'frequency_penalty', seed: 'seed' },
    matchedStop: () => undefined,
    needsModel: true
  }
}
