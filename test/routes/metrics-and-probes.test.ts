import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, postJson, ZEPHYR, ZEPHYR_MESSAGES } from '../helpers/gateway.js'

function modelLabels (metricsText: string): Set<string> {
  const labels = new Set<string>()
  for (const match of metricsText.matchAll(/^gateway_[a-z_]+\{[^}]*model="([^"]*)"/gm)) labels.add(match[1] as string)
  return labels
}

test('metrics: ids that do not resolve to a model are labelled `unknown`, not with the client\'s string', async (t) => {
  const { url } = await startGateway(t, {
    modelsFile: `models:
  - { id: zephyr, backend: tgi, url: "{{TGI_URL}}", model: ${ZEPHYR} }
`
  })
  const served = await postJson(`${url}/v1/chat/completions`, { model: 'zephyr', messages: ZEPHYR_MESSAGES })
  assert.equal(served.status, 200)
  for (let index = 0; index < 200; index++) {
    const response = await postJson(`${url}/v1/chat/completions`, { model: `made-up-${index}`, messages: ZEPHYR_MESSAGES })
    assert.equal(response.status, 404)
    await response.arrayBuffer()
  }
  // Rejected by validation before resolution: still not a series of its own.
  const invalid = await postJson(`${url}/v1/chat/completions`, { model: 'another-made-up-id', messages: 'not a list' })
  assert.equal(invalid.status, 400)
  const text = await (await fetch(`${url}/metrics`)).text()
  // '' is the fixed label of requests answered before any model was looked up.
  assert.deepEqual([...modelLabels(text)].sort(), ['', 'unknown', 'zephyr'])
  assert.match(text, /gateway_requests_total\{route="\/v1\/chat\/completions",model="",status="400"\} 1/)
  assert.match(text, /gateway_requests_total\{route="\/v1\/chat\/completions",model="unknown",status="404"\} 200/)
  assert.match(text, /gateway_requests_total\{route="\/v1\/chat\/completions",model="zephyr",status="200"\} 1/)
})

test('metrics: single-model mode labels every request with the served model id', async (t) => {
  const { url } = await startGateway(t)
  await (await postJson(`${url}/v1/chat/completions`, { model: 'whatever-the-client-says', messages: ZEPHYR_MESSAGES })).arrayBuffer()
  await (await postJson(`${url}/v1/chat/completions`, { model: 'x'.repeat(200), messages: [] })).arrayBuffer()
  const text = await (await fetch(`${url}/metrics`)).text()
  assert.deepEqual([...modelLabels(text)].sort(), ['', ZEPHYR])
})

test('/ready: concurrent probes share one upstream probe per backend, and a fresh result is reused', async (t) => {
  const { url, tgi } = await startGateway(t)
  const before = tgi.infoCalls()
  const responses = await Promise.all(Array.from({ length: 100 }, async () => await fetch(`${url}/ready`)))
  assert.deepEqual(new Set(responses.map((response) => response.status)), new Set([200]))
  await Promise.all(responses.map(async (response) => await response.arrayBuffer()))
  for (let index = 0; index < 20; index++) assert.equal((await fetch(`${url}/ready`)).status, 200)
  assert.equal(tgi.infoCalls() - before, 1, 'one /info probe for 120 /ready calls within the cache window')
})

test('/ready: a cached result expires, so a backend that went away is reported', async (t) => {
  let now = 0
  const { url, tgi } = await startGateway(t, {
    modelsFile: `models:
  - { id: zephyr, backend: tgi, url: "{{TGI_URL}}", model: ${ZEPHYR} }
`,
    overrides: { monotonicNow: () => now, readinessCacheMs: 1000 }
  })
  assert.equal((await fetch(`${url}/ready`)).status, 200)
  const probes = tgi.infoCalls()
  await tgi.close()
  now = 500
  assert.equal((await fetch(`${url}/ready`)).status, 200, 'within the window: the cached answer')
  assert.equal(tgi.infoCalls(), probes)
  now = 1600
  const stale = await fetch(`${url}/ready`)
  assert.equal(stale.status, 503)
  assert.match((await stale.json()).models[0].backend, /unreachable/)
})

test('metrics: past MAX_MODEL_LABELS distinct ids (zero-config serves any Hub repo), new ones count as `other`', async () => {
  const { createMetrics, MAX_MODEL_LABELS, OVERFLOW_MODEL_LABEL } = await import('../../src/metrics.js')
  const metrics = createMetrics({ defaultMetrics: false })
  for (let index = 0; index < MAX_MODEL_LABELS + 100; index++) {
    metrics.countRequest('/v1/chat/completions', `org/model-${index}`, 200)
    metrics.forModel(`org/model-${index}`).generatedTokens.inc(1)
  }
  const text = await metrics.registry.metrics()
  assert.equal(modelLabels(text).size, MAX_MODEL_LABELS + 1)
  assert.match(text, new RegExp(`gateway_requests_total\\{route="/v1/chat/completions",model="${OVERFLOW_MODEL_LABEL}",status="200"\\} 100`))
  assert.match(text, new RegExp(`gateway_generated_tokens_total\\{model="${OVERFLOW_MODEL_LABEL}"\\} 100`))
})
