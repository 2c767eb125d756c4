import test from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { Writable } from 'node:stream'
import pino from 'pino'
import { startGateway, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'

test('GATEWAY_API_KEYS guards /v1/* and leaves operations open; keys never reach logs or bodies', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _encoding, callback) { lines.push(String(chunk)); callback() } })
  const { url, openai } = await startGateway(t, {
    env: { GATEWAY_API_KEYS: 'key-one,key-two-secret', HF_TOKEN: 'hf_gateway_secret' },
    apiKey: 'key-two-secret',
    overrides: { loggerInstance: pino({ level: 'trace' }, sink) }
  })
  const completion = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(completion.choices[0]!.finish_reason, 'stop')

  const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'key-three', maxRetries: 0 })
  await assert.rejects(wrong.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES }), OpenAI.AuthenticationError)
  await assert.rejects(wrong.models.list(), OpenAI.AuthenticationError)
  const missing = await fetch(`${url}/v1/models`)
  assert.equal(missing.status, 401)
  const body = await missing.text()
  assert.doesNotMatch(body, /key-one|key-two/)
  for (const path of ['/health', '/ready', '/metrics', '/openapi.json', '/docs']) {
    const response = await fetch(url + path)
    assert.notEqual(response.status, 401, path)
  }
  const logs = lines.join('')
  assert.ok(logs.length > 0)
  assert.doesNotMatch(logs, /key-two-secret|key-one|hf_gateway_secret/)
})
