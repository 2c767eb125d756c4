import test from 'node:test'
import assert from 'node:assert/strict'
import { assertMatchesOpenAI } from './helpers/openai-spec.js'

// The validator itself must be able to fail, or every shape test below it proves nothing.
test('the OpenAI spec validator rejects a completion missing required nulls', () => {
  const valid = {
    id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hi', refusal: null }, logprobs: null, finish_reason: 'stop' }]
  }
  assertMatchesOpenAI('CreateChatCompletionResponse', valid)
  const withoutRefusal = structuredClone(valid) as { choices: Array<{ message: Record<string, unknown>, logprobs?: unknown }> }
  delete withoutRefusal.choices[0]!.message.refusal
  assert.throws(() => assertMatchesOpenAI('CreateChatCompletionResponse', withoutRefusal), /refusal/)
  const withoutLogprobs = structuredClone(valid) as { choices: Array<{ logprobs?: unknown }> }
  delete withoutLogprobs.choices[0]!.logprobs
  assert.throws(() => assertMatchesOpenAI('CreateChatCompletionResponse', withoutLogprobs), /logprobs/)
  assert.throws(() => assertMatchesOpenAI('CreateChatCompletionStreamResponse', { ...valid, object: 'chat.completion.chunk' }), /delta/)
})
