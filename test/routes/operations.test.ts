import test from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startGateway, postJson, ZEPHYR, ZEPHYR_MESSAGES, ZEPHYR_PROMPT } from '../helpers/gateway.js'
import { assertMatchesOpenAI } from '../helpers/openai-spec.js'
import { generateOpenApiYaml } from '../../scripts/openapi-document.js'

test('single-model mode: /v1/models lists the id TGI reports, and any id routes to it', async (t) => {
  const { openai, url } = await startGateway(t)
  const list = await openai.models.list()
  assert.deepEqual(list.data.map((model) => model.id), [ZEPHYR])
  assertMatchesOpenAI('ListModelsResponse', await (await fetch(`${url}/v1/models`)).json())
  const model = await openai.models.retrieve(ZEPHYR)
  assert.equal(model.owned_by, 'HuggingFaceH4')
  assertMatchesOpenAI('Model', await (await fetch(`${url}/v1/models/${ZEPHYR}`)).json())
  const other = await openai.chat.completions.create({ model: 'anything', messages: ZEPHYR_MESSAGES })
  assert.equal(other.model, ZEPHYR)
  assert.equal((await fetch(`${url}/v1/models/nope`)).status, 404)
})

test('POST /v1/chat/render returns the exact prompt completions would send', async (t) => {
  const { url, tgi } = await startGateway(t)
  const response = await postJson(`${url}/v1/chat/render`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  assert.equal(response.status, 200)
  const body = await response.json()
  assert.equal(body.model, ZEPHYR)
  assert.equal(body.prompt, ZEPHYR_PROMPT)
  // The zephyr template writes no BOS: the prompt goes out as rendered.
  assert.equal(body.sent_prompt, ZEPHYR_PROMPT)
  assert.equal(body.prompt_tokens.template_writes_bos, false)
  assert.equal(body.prompt_tokens.sent_as, 'as_rendered')
  const without = await postJson(`${url}/v1/chat/render`, { model: ZEPHYR, messages: ZEPHYR_MESSAGES, add_generation_prompt: false })
  assert.equal((await without.json()).prompt, ZEPHYR_PROMPT.slice(0, -'<|assistant|>\n'.length))
  assert.equal(tgi.calls.length, 0)
})

test('/health is always 200; /ready is 503 until the backend answers and the template loads', async (t) => {
  const { url, tgi, hub } = await startGateway(t, {
    modelsFile: `models:
  - { id: up, backend: tgi, url: "{{TGI_URL}}", model: ${ZEPHYR} }
  - { id: down, backend: tgi, url: "http://127.0.0.1:9", model: ${ZEPHYR} }
`
  })
  assert.equal((await fetch(`${url}/health`)).status, 200)
  const notReady = await fetch(`${url}/ready`)
  assert.equal(notReady.status, 503)
  const body = await notReady.json()
  assert.equal(body.status, 'not_ready')
  assert.deepEqual(body.models.map((model: { id: string, ready: boolean }) => [model.id, model.ready]), [['up', true], ['down', false]])
  assert.match(body.models[1].backend, /unreachable/)
  assert.ok(hub.requests.length > 0)
  void tgi
})

test('/ready is 200 when every model is ready', async (t) => {
  const { url } = await startGateway(t)
  const response = await fetch(`${url}/ready`)
  assert.equal(response.status, 200)
  assert.equal((await response.json()).status, 'ready')
})

test('/metrics exposes requests, upstream latency, time to first token, tokens and in-flight streams', async (t) => {
  const { url, openai } = await startGateway(t)
  await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES })
  const stream = await openai.chat.completions.create({ model: ZEPHYR, messages: ZEPHYR_MESSAGES, stream: true })
  for await (const chunk of stream) void chunk
  const response = await fetch(`${url}/metrics`)
  assert.match(response.headers.get('content-type') ?? '', /text\/plain/)
  const text = await response.text()
  assert.match(text, /gateway_requests_total\{route="\/v1\/chat\/completions",model="HuggingFaceH4\/zephyr-7b-beta",status="200"\} 2/)
  assert.match(text, /gateway_upstream_duration_seconds_count\{model="HuggingFaceH4\/zephyr-7b-beta",outcome="ok"\} 2/)
  assert.match(text, /gateway_time_to_first_token_seconds_count\{model="HuggingFaceH4\/zephyr-7b-beta"\} 1/)
  assert.match(text, /gateway_generated_tokens_total\{model="HuggingFaceH4\/zephyr-7b-beta"\} 16/)
  assert.match(text, /gateway_in_flight_streams\{model="HuggingFaceH4\/zephyr-7b-beta"\} 0/)
})

test('/openapi.json and /docs are served', async (t) => {
  const { url } = await startGateway(t)
  const document = await (await fetch(`${url}/openapi.json`)).json()
  assert.equal(document.openapi, '3.1.0')
  assert.ok(document.paths['/v1/chat/completions'].post)
  assert.ok(document.components.schemas.CreateChatCompletionRequest)
  const docs = await fetch(`${url}/docs`, { redirect: 'follow' })
  assert.equal(docs.status, 200)
  assert.match(await docs.text(), /swagger/i)
})

test('the committed openapi.yaml matches the route schemas (run `npm run openapi:write` after changing them)', async () => {
  const committed = await readFile(new URL('../../openapi.yaml', import.meta.url), 'utf8')
  assert.equal(committed, await generateOpenApiYaml())
})
