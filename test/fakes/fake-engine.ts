/**
 * The shape every OpenAI-style engine fake shares (fake-vllm.ts, fake-sglang.ts,
 * fake-llamacpp.ts): a real loopback HTTP server speaking that engine's own
 * protocol, with a scripted "model". Each fake follows its engine's source;
 * only the test-facing controls below are common.
 */
import type { FakeToken, FakeTokenizerOptions } from './fake-tokenizer.js'

/** A generated token: plain text, or a special one (decoded away with skip_special_tokens). */
export type FakeEngineToken = string | { text: string, special?: boolean }

export type FakeEngineReply =
  /**
   * The model's tokens in order; the engine applies max_tokens, stop strings and
   * stop token ids exactly as it does. When the tokens run out the model emits
   * EOS (special) unless `endWithEos` is false (then: finish `length`).
   * `firstTokenDelayMs` (default `delayMs`) passes before the first token,
   * `delayMs` (default 0) between tokens.
   */
  | { kind: 'tokens', tokens: FakeEngineToken[], delayMs?: number, firstTokenDelayMs?: number, endWithEos?: boolean }
  /** A plain HTTP reply, on streams too. */
  | { kind: 'status', status: number, body: unknown, headers?: Record<string, string> }
  /**
   * A stream that sends `afterTokens` tokens, then the engine's own in-stream
   * error (its shape and framing); without streaming the engine's error status.
   * `status` is the error's code where the engine carries one (default 500).
   */
  | { kind: 'stream-error', afterTokens: number, message: string, status?: number, tokens?: FakeEngineToken[] }
  /** Accept the request and never answer. */
  | { kind: 'hang' }
  /** Send `afterTokens` stream tokens, then destroy the socket. */
  | { kind: 'drop', afterTokens: number, tokens?: FakeEngineToken[] }

export interface FakeEngineOptions {
  /**
   * The model name the engine serves (vLLM/SGLang `--served-model-name`, default
   * `modelPath`; llama.cpp: its alias, default the GGUF path).
   */
  servedModelName?: string
  /** What the engine loaded: a Hub repo id (vLLM/SGLang) or a GGUF file path (llama.cpp). */
  modelPath?: string
  /** The engine's tokenizer, which decides its BOS behaviour (default: `<s>` added to string prompts). */
  tokenizer?: FakeTokenizerOptions
  /** Context length (vLLM max_model_len, SGLang context_length, llama.cpp n_ctx); default 4096. */
  maxModelLen?: number
  /** `--api-key`: without `Authorization: Bearer <it>` the engine's guarded routes answer 401 (an Endpoint guards every route). */
  requiredToken?: string
  /** Guard every route with requiredToken, as an Inference Endpoint does (default false: the engine's own guard). */
  guardAllRoutes?: boolean
  /** llama.cpp: the GGUF's chat template, reported by /props. */
  chatTemplate?: string
  port?: number
}

export interface FakeEngineCall {
  path: string
  method: string
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON; undefined when the body was not JSON. */
  body: any
  /** The client closed the connection before the reply finished. */
  aborted: boolean
  /** Token events written (stream) or tokens returned. */
  tokensSent: number
  /** The token sequence the model was fed for this prompt (after the engine's own BOS handling). */
  promptTokens: FakeToken[]
}

export interface FakeEngine {
  readonly engine: 'vllm' | 'sglang' | 'llamacpp'
  /** http://127.0.0.1:PORT */
  readonly url: string
  /** Completion calls only (POST /v1/completions, and the engine's native generate route if it has one). */
  readonly calls: FakeEngineCall[]
  /** Every request's `METHOD path`, detection and probes included, in order. */
  readonly requests: string[]
  reply (reply: FakeEngineReply | ((call: FakeEngineCall) => FakeEngineReply)): void
  replyOnce (reply: FakeEngineReply): void
  /** Resolves once that call's client disconnected mid-reply; rejects on timeout (default 5000 ms) or if the call completed. */
  waitForAbort (callIndex: number, timeoutMs?: number): Promise<void>
  /** Generations neither finished nor aborted. */
  activeGenerations (): number
  close (): Promise<void>
}

export const DEFAULT_FAKE_ENGINE_TOKENS: readonly string[] = ['Hello', '!', ' How', ' can', ' I', ' help', '?']
