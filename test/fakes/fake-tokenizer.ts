/**
 * A deterministic stand-in for a Hugging Face tokenizer, shared by the engine
 * fakes so that each can reproduce its engine's BOS behaviour exactly:
 * - `encode(text, addSpecialTokens)` is `tokenizer.encode(text, add_special_tokens=...)`:
 *   special-token texts inside the text (bos, eos and `specialTokens`) become one
 *   special token each, as HF tokenizers parse added tokens; the rest splits into
 *   words (a word keeps its leading whitespace); with `addSpecialTokens` and
 *   `addBos` (tokenizer_config `add_bos_token`, the Llama/Mistral/Gemma default)
 *   a BOS token is prepended — even when the text already starts with the BOS
 *   text, which is how a doubled BOS happens.
 * - `decode(tokens, skipSpecialTokens)` joins texts, dropping special tokens
 *   when asked (vLLM's and TGI's default).
 * Ids: bos 1, eos 2, the extra special tokens 3, 4, ... in order, words 1000+.
 */

export interface FakeTokenizerOptions {
  /** The BOS text; null: the tokenizer has none (Qwen). Default `<s>`. */
  bosToken?: string | null
  /** Default `</s>`. */
  eosToken?: string
  /** Whether encode(add_special_tokens=true) prepends BOS. Default true. */
  addBos?: boolean
  /** More texts that are single special tokens (`<|im_start|>`, `[INST]`, `<|python_tag|>`...). */
  specialTokens?: string[]
}

export interface FakeToken {
  id: number
  text: string
  special: boolean
  /** Character offsets in the encoded text ([0, 0] for an added BOS). */
  start: number
  stop: number
}

export const BOS_ID = 1
export const EOS_ID = 2

export class FakeTokenizer {
  readonly bosToken: string | null
  readonly eosToken: string
  readonly addBos: boolean
  readonly #special: Map<string, number>
  readonly #pattern: RegExp

  constructor (options: FakeTokenizerOptions = {}) {
    this.bosToken = options.bosToken === undefined ? '<s>' : options.bosToken
    this.eosToken = options.eosToken ?? '</s>'
    this.addBos = (options.addBos ?? true) && this.bosToken !== null
    this.#special = new Map()
    if (this.bosToken !== null) this.#special.set(this.bosToken, BOS_ID)
    this.#special.set(this.eosToken, EOS_ID)
    let next = 3
    for (const text of options.specialTokens ?? []) if (!this.#special.has(text)) this.#special.set(text, next++)
    // Longest special texts first, so `<s>` does not match inside `<start>`.
    const alternatives = [...this.#special.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp)
    const specials = alternatives.join('|')
    this.#pattern = new RegExp(`(${specials})|\\s*(?:(?!${specials})\\S)+|\\s+`, 'gu')
  }

  get bosTokenInfo (): FakeToken | undefined {
    return this.bosToken === null ? undefined : { id: BOS_ID, text: this.bosToken, special: true, start: 0, stop: 0 }
  }

  get eos (): FakeToken {
    return { id: EOS_ID, text: this.eosToken, special: true, start: 0, stop: 0 }
  }

  /** Whether `text` is one of this tokenizer's special tokens. */
  isSpecial (text: string): boolean {
    return this.#special.has(text)
  }

  idOf (text: string): number {
    return this.#special.get(text) ?? 1000 + (hash(text) % 50_000)
  }

  encode (text: string, addSpecialTokens: boolean): FakeToken[] {
    const tokens: FakeToken[] = []
    if (addSpecialTokens && this.addBos) tokens.push(this.bosTokenInfo!)
    for (const match of text.matchAll(this.#pattern)) {
      const piece = match[0]
      const start = match.index
      const special = match[1] !== undefined
      tokens.push({ id: this.idOf(piece), text: piece, special, start, stop: start + piece.length })
    }
    return tokens
  }

  decode (tokens: ReadonlyArray<{ text: string, special: boolean }>, skipSpecialTokens: boolean): string {
    let text = ''
    for (const token of tokens) if (!(skipSpecialTokens && token.special)) text += token.text
    return text
  }
}

/** Whether a token sequence the model was fed starts with two BOS tokens: the bug every adapter must avoid. */
export function startsWithDoubledBos (tokens: ReadonlyArray<{ id: number }>): boolean {
  return tokens.length >= 2 && tokens[0]!.id === BOS_ID && tokens[1]!.id === BOS_ID
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function hash (text: string): number {
  let value = 2166136261
  for (let index = 0; index < text.length; index++) {
    value ^= text.charCodeAt(index)
    value = Math.imul(value, 16777619) >>> 0
  }
  return value
}
