/**
 * Token-exact prompts. transformers' apply_chat_template(tokenize=True)
 * tokenises the rendered text with add_special_tokens=False: the template's own
 * BOS (Llama 3, Mistral, Gemma, DeepSeek write it) is the only one. Engines
 * given a string add their tokenizer's BOS in front unless told not to: vLLM is
 * told (`add_special_tokens: false`); TGI, SGLang and llama.cpp cannot be, so
 * the BOS text the template wrote is removed from the front and the engine's
 * own BOS takes its place — the same tokens. Whether an engine adds BOS is
 * asked of the engine's tokenizer (its /tokenize route), else read from
 * tokenizer_config's `add_bos_token`, else assumed (what Llama-family
 * tokenizers do, and the case where a doubled BOS would be the bug).
 */
import type { PromptTokens } from '../openai/schemas.js'

export interface PromptPolicy {
  engine: string
  /** The BOS text, when the tokenizer has one. */
  bosToken: string | undefined
  /** Whether the engine adds BOS to a string prompt; null: cannot tell. */
  engineAddsBos: boolean | null
  learnedFrom: PromptTokens['learned_from']
}

/** The text sent to the engine for a rendered prompt. */
export function promptAsSent (policy: PromptPolicy, prompt: string): string {
  const bos = policy.bosToken
  return policy.engineAddsBos === true && bos !== undefined && prompt.startsWith(bos) ? prompt.slice(bos.length) : prompt
}

/** What /v1/chat/render reports about a rendered prompt's special tokens. */
export function describePromptTokens (policy: PromptPolicy, prompt: string): PromptTokens {
  const writesBos = policy.bosToken !== undefined && prompt.startsWith(policy.bosToken)
  const report: PromptTokens = {
    engine: policy.engine,
    engine_adds_bos: policy.engineAddsBos,
    learned_from: policy.learnedFrom,
    template_writes_bos: writesBos,
    sent_as: policy.engineAddsBos === true && writesBos ? 'leading_bos_removed' : 'as_rendered'
  }
  if (policy.engineAddsBos === true && !writesBos) {
    report.note = `${policy.engine} adds ${policy.bosToken ?? 'its BOS token'} in front of this prompt, which the template did not write, and has no switch to leave it out: the model sees one more token than apply_chat_template(tokenize=True) gives`
  } else if (policy.engineAddsBos === null) {
    report.note = `whether ${policy.engine} adds a BOS token to the prompt cannot be told; the prompt is sent as rendered`
  }
  return report
}
