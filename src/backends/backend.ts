/**
 * The backend contract: prompt in, tokens out. Backends know nothing of OpenAI
 * shapes; the chat service owns that mapping. Every method takes an AbortSignal
 * that cancels the upstream request (client gone, timeout, or a stop sequence the
 * gateway applied itself).
 */
import type { StructuredOutput } from './structured-output.js'

export interface GenerationParameters {
  maxNewTokens?: number
  /** Never 0: greedy decoding is `doSample: false` with no temperature. */
  temperature?: number
  doSample?: boolean
  /** Omitted when 1 (TGI rejects top_p >= 1). */
  topP?: number
  topK?: number
  seed?: number
  frequencyPenalty?: number
  repetitionPenalty?: number
  typicalP?: number
  truncate?: number
  /** min_p (vLLM, SGLang, llama.cpp). */
  minP?: number
  /** Constrained generation; only for backends with supportsGrammar (each maps it to its engine's field). */
  structuredOutput?: StructuredOutput
  /** Stop sequences the upstream should apply itself (already capped to its limit). */
  stop: string[]
}

export interface GenerationRequest {
  prompt: string
  parameters: GenerationParameters
  /**
   * The client's own Hugging Face token (`Authorization: Bearer hf_...` when
   * GATEWAY_API_KEYS is unset), used instead of the gateway's for Hugging Face
   * hosted backends. Never logged.
   */
  clientToken?: string
}

/** TGI's finish reasons; other backends map onto them. */
export type UpstreamFinishReason = 'length' | 'eos_token' | 'stop_sequence'

export interface GenerationResult {
  text: string
  finishReason: UpstreamFinishReason
  /** Token counts when the backend reports them. */
  promptTokens?: number
  generatedTokens?: number
}

export interface GenerationEnd {
  finishReason: UpstreamFinishReason
  promptTokens?: number
  generatedTokens?: number
}

/**
 * One generated token. The last one carries `end` (TGI sends the final token
 * and the generation's details in one event); a backend whose end arrives
 * separately yields a delta with empty text and `end`.
 */
export interface TokenDelta {
  text: string
  /** Special tokens (eos, ...) are not part of the generated text. */
  special: boolean
  end?: GenerationEnd
}

/**
 * A token stream that also hands over the deltas it already holds without a
 * promise each. Under load one upstream chunk carries many tokens; the chat
 * layer then turns all of them into one write instead of one await per token.
 */
export interface BufferedTokenStream extends AsyncIterableIterator<TokenDelta> {
  /** The next delta when one is already buffered; undefined means: await next(). */
  takeBuffered (): TokenDelta | undefined
}

export function isBufferedTokenStream (stream: AsyncIterator<TokenDelta>): stream is BufferedTokenStream {
  return typeof (stream as Partial<BufferedTokenStream>).takeBuffered === 'function'
}

export type EngineKind = 'tgi' | 'vllm' | 'sglang' | 'llamacpp' | 'openai' | 'hub'

export interface BackendInfo {
  /** The engine that answered (detected, or as configured). */
  engine?: EngineKind
  /** The model the upstream serves, when it says (TGI /info `model_id`, vLLM/SGLang the model path, llama.cpp the GGUF path). */
  modelId?: string
  /** What the engine loaded (vLLM `root`, SGLang `model_path`, llama.cpp `model_path`). */
  modelPath?: string
  /** The `model` name sent in /v1/completions bodies. */
  servedModel?: string
  /** How many stop sequences the upstream accepts (TGI /info `max_stop_sequences`). */
  maxStopSequences?: number
  /** Context length in tokens (vLLM max_model_len, llama.cpp n_ctx). */
  contextLength?: number
  /** The chat template the engine itself holds (llama.cpp: the GGUF's). */
  chatTemplate?: string
  /** bos/eos token texts the engine reports (llama.cpp /props). */
  specialTokens?: Record<string, string>
}

/**
 * How the engine tokenises a string prompt: `verbatim` adds no special tokens
 * (vLLM with add_special_tokens false); `tokenizer-default` adds what its
 * tokenizer adds (BOS, for Llama, Mistral, Gemma: TGI, SGLang, llama.cpp);
 * `unknown`: a route that cannot be asked.
 */
export type PromptSpecialTokens = 'verbatim' | 'tokenizer-default' | 'unknown'

export interface Backend {
  readonly kind: string
  /** A short description for logs and /ready (never includes tokens). */
  readonly description: string
  /** Whether GenerationParameters.grammar is honoured (TGI's native routes). */
  readonly supportsGrammar: boolean
  generate (request: GenerationRequest, signal: AbortSignal): Promise<GenerationResult>
  /**
   * Opens the upstream stream. The returned promise settles once the upstream has
   * accepted the request (status and headers known) so errors before the first
   * token can still become a proper HTTP error response; the iterable then yields deltas.
   */
  stream (request: GenerationRequest, signal: AbortSignal): Promise<AsyncIterable<TokenDelta>>
  /** Counts the prompt's tokens (TGI /tokenize), for usage when a stream was cut before its final event. */
  countTokens? (prompt: string, signal: AbortSignal): Promise<number>
  /** Checks the upstream answers and returns what it says about itself. */
  probe (signal: AbortSignal): Promise<BackendInfo>
  /** How the upstream tokenises a string prompt (default `unknown`). */
  readonly promptSpecialTokens?: PromptSpecialTokens
  /** Asks the engine's tokenizer whether it adds BOS to a string prompt; undefined when it cannot say. */
  addsBos? (bosToken: string, signal: AbortSignal): Promise<boolean | undefined>
  /**
   * For upstreams that may take messages instead of a prompt (Hub models whose
   * providers are conversational only): where this request's messages go, or
   * undefined when it takes the gateway's prompt.
   */
  messagesRoute? (clientToken: string | undefined): Promise<MessagesRoute | undefined>
}

/**
 * The second contract, beside the prompt one: messages in, OpenAI chat
 * completions and chunks out (the upstream renders the template). Bodies are
 * OpenAI chat-completion requests; replies are the upstream's parsed JSON.
 */
export interface ChatBackend {
  complete (body: Record<string, unknown>, clientToken: string | undefined, signal: AbortSignal): Promise<Record<string, unknown>>
  /** Chunks up to `[DONE]`; an in-stream error rejects. Leaving early cancels the request. */
  stream (body: Record<string, unknown>, clientToken: string | undefined, signal: AbortSignal): Promise<AsyncIterable<Record<string, unknown>>>
}

export interface MessagesRoute {
  chat: ChatBackend
  /** The `model` the request is sent as (`org/name`, or `org/name:provider`). */
  model: string
}
