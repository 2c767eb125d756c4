import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, postJson } from '../helpers/gateway.js'

const MESSAGES = [{ role: 'user', content: 'Hi' }]

function offlineModels (extra: string): string {
  return `models:
  - id: offline
    backend: tgi
    url: "{{TGI_URL}}"
    model: org/never-cached
    chat_template: "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"
${extra}`
}

test('offline, template override, special tokens unknown: /ready and every request name the model and the tokens', async (t) => {
  const { url, tgi } = await startGateway(t, { modelsFile: offlineModels(''), env: { HF_HUB_OFFLINE: '1' } })
  const ready = await fetch(`${url}/ready`)
  assert.equal(ready.status, 503)
  const status = (await ready.json()).models[0]
  assert.match(status.template, /model 'offline'.*bos_token, eos_token.*unknown.*special_tokens/)
  for (let attempt = 0; attempt < 2; attempt++) {
    const response = await postJson(`${url}/v1/chat/completions`, { model: 'offline', messages: MESSAGES })
    assert.equal(response.status, 503)
    const body = await response.json()
    assert.equal(body.error.code, 'special_tokens_unavailable')
    assert.match(body.error.message, /bos_token, eos_token/)
    assert.doesNotMatch(body.error.message, /undefined value/)
  }
  assert.equal(tgi.calls.length, 0)
})

test('offline, template override with special_tokens given: served', async (t) => {
  const { url, tgi } = await startGateway(t, {
    modelsFile: offlineModels('    special_tokens: { bos_token: "<s>", eos_token: "</s>" }\n'),
    env: { HF_HUB_OFFLINE: '1' }
  })
  const response = await postJson(`${url}/v1/chat/completions`, { model: 'offline', messages: MESSAGES })
  assert.equal(response.status, 200)
  assert.equal(tgi.calls[0]?.body.inputs, '<s>Hi</s>')
})

test('offline, template override that prints no special token: served without them', async (t) => {
  const { url } = await startGateway(t, {
    modelsFile: `models:
  - { id: plain, backend: tgi, url: "{{TGI_URL}}", model: org/never-cached, chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" }
`,
    env: { HF_HUB_OFFLINE: '1' }
  })
  assert.equal((await postJson(`${url}/v1/chat/completions`, { model: 'plain', messages: MESSAGES })).status, 200)
})
