import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startFakeHub } from './fake-hub.js'
import type { FakeHub } from './fake-hub.js'

const EXPAND = 'expand[]=inferenceProviderMapping'

describe('fake hub: model info with inferenceProviderMapping', () => {
  let hub: FakeHub

  before(async () => {
    hub = await startFakeHub({
      repos: {
        'acme/plain': { tokenizerConfig: { chat_template: 'x' } },
        'acme/chat': {
          inferenceProviderMapping: [
            { provider: 'together', task: 'conversational', providerId: 'acme/chat-turbo' },
            { provider: 'featherless-ai', task: 'text-generation', status: 'staging' }
          ]
        },
        'acme/none': { inferenceProviderMapping: [] },
        'acme/gated': { token: 'hf_gate', inferenceProviderMapping: [{ provider: 'novita', task: 'conversational' }] }
      }
    })
  })
  after(async () => { await hub.close() })

  test('a repo without a mapping is served by hf-inference as text generation', async () => {
    const response = await fetch(`${hub.url}/api/models/acme/plain?${EXPAND}`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), 'application/json')
    const body = await response.json() as any
    assert.deepEqual(Object.keys(body), ['_id', 'id', 'inferenceProviderMapping'], 'only the expanded field besides the ids')
    assert.match(body._id, /^[0-9a-f]{24}$/)
    assert.equal(body.id, 'acme/plain')
    assert.deepEqual(body.inferenceProviderMapping, [
      { provider: 'hf-inference', hfModelId: 'acme/plain', providerId: 'acme/plain', status: 'live', task: 'text-generation' }
    ])
  })

  test('entries carry hfModelId, providerId (default the repo) and status (default live)', async () => {
    const body = await (await fetch(`${hub.url}/api/models/acme/chat?${EXPAND}`)).json() as any
    assert.deepEqual(body.inferenceProviderMapping, [
      { provider: 'together', hfModelId: 'acme/chat', providerId: 'acme/chat-turbo', status: 'live', task: 'conversational' },
      { provider: 'featherless-ai', hfModelId: 'acme/chat', providerId: 'acme/chat', status: 'staging', task: 'text-generation' }
    ])
    const none = await (await fetch(`${hub.url}/api/models/acme/none?${EXPAND}`)).json() as any
    assert.deepEqual(none.inferenceProviderMapping, [])
  })

  test('the URL-encoded expand%5B%5D= and huggingface_hub\'s expand= work too; no expand: no mapping', async () => {
    const encoded = await (await fetch(`${hub.url}/api/models/acme/chat?expand%5B%5D=inferenceProviderMapping`)).json() as any
    assert.equal(encoded.inferenceProviderMapping.length, 2)
    const plain = await (await fetch(`${hub.url}/api/models/acme/chat?expand=inferenceProviderMapping`)).json() as any
    assert.equal(plain.inferenceProviderMapping.length, 2)
    const bare = await (await fetch(`${hub.url}/api/models/acme/chat`)).json() as any
    assert.equal(bare.id, 'acme/chat')
    assert.equal(bare.inferenceProviderMapping, undefined)
    const other = await (await fetch(`${hub.url}/api/models/acme/chat?expand[]=inference`)).json() as any
    assert.deepEqual(Object.keys(other), ['_id', 'id'])
  })

  test('an unknown repo: 404 RepoNotFound JSON', async () => {
    const response = await fetch(`${hub.url}/api/models/nobody/nothing?${EXPAND}`)
    assert.equal(response.status, 404)
    assert.equal(response.headers.get('x-error-code'), 'RepoNotFound')
    assert.equal(response.headers.get('content-type'), 'application/json')
    assert.deepEqual(await response.json(), { error: 'Repository not found' })
  })

  test('a gated repo: 401 without its token, 403 with a wrong one, 200 with it', async () => {
    const anonymous = await fetch(`${hub.url}/api/models/acme/gated?${EXPAND}`)
    assert.equal(anonymous.status, 401)
    assert.equal(anonymous.headers.get('x-error-code'), 'GatedRepo')
    assert.match((await anonymous.json() as any).error, /restricted/)
    const wrong = await fetch(`${hub.url}/api/models/acme/gated?${EXPAND}`, { headers: { authorization: 'Bearer hf_wrong' } })
    assert.equal(wrong.status, 403)
    assert.equal(wrong.headers.get('x-error-code'), 'GatedRepo')
    await wrong.text()
    const ok = await fetch(`${hub.url}/api/models/acme/gated?${EXPAND}`, { headers: { authorization: 'Bearer hf_gate' } })
    assert.equal(ok.status, 200)
    assert.equal((await ok.json() as any).inferenceProviderMapping[0].provider, 'novita')
  })

  test('requests are recorded and failNext applies', async () => {
    const index = hub.requests.length
    hub.failNext(503)
    const failed = await fetch(`${hub.url}/api/models/acme/chat?${EXPAND}`, { headers: { authorization: 'Bearer hf_x' } })
    assert.equal(failed.status, 503)
    await failed.text()
    hub.failNext(0)
    await assert.rejects(fetch(`${hub.url}/api/models/acme/chat?${EXPAND}`))
    assert.equal((await fetch(`${hub.url}/api/models/acme/chat?${EXPAND}`)).status, 200)
    const recorded = hub.requests.slice(index)
    assert.equal(recorded.length, 3)
    assert.deepEqual(recorded.map((request) => [request.method, request.url]), [
      ['GET', `/api/models/acme/chat?${EXPAND}`],
      ['GET', `/api/models/acme/chat?${EXPAND}`],
      ['GET', `/api/models/acme/chat?${EXPAND}`]
    ])
    assert.equal(recorded[0]?.headers.authorization, 'Bearer hf_x')
  })

  test('setRepo changes the mapping; the file route is unchanged', async () => {
    hub.setRepo('acme/new', { inferenceProviderMapping: [{ provider: 'groq', task: 'conversational' }] })
    const body = await (await fetch(`${hub.url}/api/models/acme/new?${EXPAND}`)).json() as any
    assert.equal(body.inferenceProviderMapping[0].provider, 'groq')
    hub.setRepo('acme/new', undefined)
    assert.equal((await fetch(`${hub.url}/api/models/acme/new?${EXPAND}`)).status, 404)
    const file = await fetch(`${hub.url}/acme/plain/resolve/main/tokenizer_config.json`)
    assert.deepEqual(await file.json(), { chat_template: 'x' })
    const missing = await fetch(`${hub.url}/nobody/nothing/resolve/main/tokenizer_config.json`)
    assert.deepEqual(await missing.json(), { error: 'Repository Not Found' })
  })
})

test('fake hub: legacyProviderMapping answers the object keyed by provider; unknownRepoStatus applies', async () => {
  const hub = await startFakeHub({
    legacyProviderMapping: true,
    unknownRepoStatus: 401,
    repos: { 'acme/chat': { inferenceProviderMapping: [{ provider: 'together', task: 'conversational', providerId: 'acme/chat-turbo' }] }, 'acme/plain': {} }
  })
  try {
    const body = await (await fetch(`${hub.url}/api/models/acme/chat?${EXPAND}`)).json() as any
    assert.deepEqual(body.inferenceProviderMapping, { together: { status: 'live', providerId: 'acme/chat-turbo', task: 'conversational', isModelAuthor: false } })
    const plain = await (await fetch(`${hub.url}/api/models/acme/plain?${EXPAND}`)).json() as any
    assert.deepEqual(plain.inferenceProviderMapping, { 'hf-inference': { status: 'live', providerId: 'acme/plain', task: 'text-generation', isModelAuthor: false } })
    const unknown = await fetch(`${hub.url}/api/models/nobody/nothing?${EXPAND}`)
    assert.equal(unknown.status, 401)
    assert.equal(unknown.headers.get('x-error-code'), 'RepoNotFound')
    await unknown.text()
  } finally {
    await hub.close()
  }
})
