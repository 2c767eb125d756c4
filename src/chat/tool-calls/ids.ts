import { randomInt } from 'node:crypto'

const ALPHANUMERICS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

export function randomAlphanumerics (length: number): string {
  let text = ''
  for (let index = 0; index < length; index++) text += ALPHANUMERICS[randomInt(ALPHANUMERICS.length)]
  return text
}

/** OpenAI's shape: 'call_' + 24 alphanumerics. */
export function newToolCallId (): string {
  return 'call_' + randomAlphanumerics(24)
}

/**
 * Mistral's templates (Nemo, Small 3.x) raise "Tool call IDs should be
 * alphanumeric strings with length 9!" when the conversation comes back with the
 * calls in it, so ids for Mistral models are 9 alphanumerics, as mistral_common
 * and vLLM make them.
 */
export function newMistralToolCallId (): string {
  return randomAlphanumerics(9)
}
