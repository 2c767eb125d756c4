import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, postJson, ZEPHYR } from '../helpers/gateway.js'

const BASE = { model: ZEPHYR, messages: [{ role: 'user', content: 'Hi' }] }

// field → values OpenAI's CreateChatCompletionRequest rejects (wrong type, out of range, unknown enum value).
const INVALID: Record<string, unknown[]> = {
  top_logprobs: ['x', -1, 1.5, 21],
  logit_bias: ['x', [1], { 50256: 'x' }, { 50256: 101 }, { 50256: 1.5 }],
  store: ['yes', 1],
  metadata: ['x', { a: 1 }, { ['k'.repeat(65)]: 'v' }, { a: 'v'.repeat(513) }, Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`k${index}`, 'v']))],
  service_tier: ['fast', 1],
  modalities: ['text', ['video']],
  audio: ['x', { voice: 'alloy' }, { voice: 'alloy', format: 'ogg' }],
  prediction: ['x', { type: 'other', content: 'a' }, { type: 'content' }],
  reasoning_effort: ['extreme', 1],
  verbosity: ['loud'],
  web_search_options: ['x', { search_context_size: 'huge' }],
  safety_identifier: [1, 'x'.repeat(65)],
  prompt_cache_key: [1],
  prompt_cache_retention: ['1h'],
  moderation: ['x', {}],
  function_call: ['sometimes', { name: 1 }],
  functions: ['x', [], [{ description: 'no name' }]],
  n: ['x', 0, 1.5, 2],
  logprobs: ['x'],
  temperature: ['x', -0.1, 2.1],
  top_p: [1.1, 'x'],
  max_tokens: [0, 1.5, 'x'],
  max_completion_tokens: [0, 'x'],
  frequency_penalty: [3, 'x'],
  presence_penalty: [-3],
  seed: [1.5, 'x'],
  user: [1],
  stream: ['yes'],
  parallel_tool_calls: ['no']
}

// Valid, but would change the answer in a way the gateway cannot honour: refused, naming the field.
const UNSUPPORTED: Record<string, unknown> = {
  top_logprobs: 2,
  logit_bias: { 50256: -100 },
  modalities: ['text', 'audio'],
  audio: { voice: 'alloy', format: 'mp3' },
  web_search_options: {},
  moderation: { model: 'omni-moderation-latest' },
  function_call: 'auto',
  functions: [{ name: 'f' }]
}

// Valid and only tuning OpenAI's own service: accepted (and ignored).
const IGNORED: Record<string, unknown> = {
  store: false,
  metadata: { team: 'a' },
  service_tier: 'auto',
  modalities: ['text'],
  prediction: { type: 'content', content: 'Hello' },
  reasoning_effort: 'low',
  verbosity: 'low',
  safety_identifier: 'user-1',
  prompt_cache_key: 'k',
  prompt_cache_retention: 'in_memory',
  logit_bias: {},
  top_logprobs: null
}

test('every OpenAI request field is type- and range-checked, supported or not: 400 naming it, nothing upstream', async (t) => {
  const { url, tgi } = await startGateway(t)
  let checked = 0
  for (const [field, values] of Object.entries(INVALID)) {
    for (const value of values) {
      const response = await postJson(`${url}/v1/chat/completions`, { ...BASE, [field]: value })
      const body = await response.json()
      assert.equal(response.status, 400, `${field}: ${JSON.stringify(value)} was accepted`)
      assert.equal(body.error.type, 'invalid_request_error')
      assert.ok(typeof body.error.param === 'string' && body.error.param.startsWith(field), `${field}: param was ${body.error.param}`)
      checked++
    }
  }
  assert.ok(checked > 60)
  assert.equal(tgi.calls.length, 0)
})

test('valid fields the gateway cannot honour are refused with 400 naming them; service-tuning ones are accepted', async (t) => {
  const { url, tgi } = await startGateway(t)
  for (const [field, value] of Object.entries(UNSUPPORTED)) {
    const response = await postJson(`${url}/v1/chat/completions`, { ...BASE, [field]: value })
    const body = await response.json()
    assert.equal(response.status, 400, field)
    assert.equal(body.error.param, field)
    assert.match(body.error.message, /not supported/)
  }
  assert.equal(tgi.calls.length, 0)
  const accepted = await postJson(`${url}/v1/chat/completions`, { ...BASE, ...IGNORED })
  assert.equal(accepted.status, 200, JSON.stringify(await accepted.clone().json()))
  assert.equal(tgi.calls.length, 1)
})
