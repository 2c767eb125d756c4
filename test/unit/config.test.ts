import test from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig } from '../../src/config.js'

async function withModelsFile (t: test.TestContext, name: string, text: string): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'gateway-config-'))
  t.after(() => rm(directory, { recursive: true, force: true }))
  const path = join(directory, name)
  await writeFile(path, text)
  return path
}

test('defaults and token aliases', async () => {
  const config = await loadConfig({ TGI_URL: 'http://127.0.0.1:3000/', HUGGING_FACE_HUB_TOKEN: 'hf_x', HF_HOME: '/tmp/hf' })
  assert.equal(config.port, 8080)
  assert.equal(config.host, '127.0.0.1')
  assert.equal(config.upstreamTimeoutMs, 300_000)
  assert.equal(config.firstTokenTimeoutMs, 60_000)
  assert.equal(config.bodyLimitBytes, 8 * 1024 * 1024)
  assert.equal(config.hubBaseUrl, 'https://huggingface.co')
  assert.equal(config.hfToken, 'hf_x')
  assert.equal(config.mode, 'single')
  assert.equal(config.models[0]!.url, 'http://127.0.0.1:3000')
  // HF_TOKEN reads the Hub; it is never sent to a plain TGI URL.
  assert.equal(config.models[0]!.hubToken, 'hf_x')
  assert.equal(config.models[0]!.upstreamToken, undefined)
  assert.ok(Object.isFrozen(config.models[0]))
  assert.equal((await loadConfig({ TGI_URL: 'http://x:1', HF_TOKEN: 'a', HUGGINGFACEHUB_API_TOKEN: 'b' })).hfToken, 'a')
  assert.equal((await loadConfig({ TGI_URL: 'http://x:1', HF_HUB_OFFLINE: '1' })).hubOffline, true)
})

test('bad environment values are named', async () => {
  await assert.rejects(loadConfig({ TGI_URL: 'http://x:1', PORT: 'eighty' }), (error: Error) => error instanceof ConfigError && /PORT/.test(error.message))
  await assert.rejects(loadConfig({ TGI_URL: 'ftp://x' }), /TGI_URL/)
  // Neither TGI_URL nor GATEWAY_CONFIG: zero-config, every Hub repo id served serverless.
  const zeroConfig = await loadConfig({ HF_TOKEN: 'hf_z' })
  assert.equal(zeroConfig.mode, 'hub')
  assert.equal(zeroConfig.inferenceBaseUrl, 'https://router.huggingface.co')
  assert.equal((await loadConfig({ HF_INFERENCE_ENDPOINT: 'http://127.0.0.1:5/' })).inferenceBaseUrl, 'http://127.0.0.1:5')
})

test('a models file in YAML or JSON, with paths relative to the file', async (t) => {
  const yamlPath = await withModelsFile(t, 'models.yaml', `models:
  - id: zephyr
    backend: tgi
    url: http://127.0.0.1:3000
    model: HuggingFaceH4/zephyr-7b-beta
    token: hf_model
    chat_template_file: ./zephyr.jinja
    defaults: { max_tokens: 512, temperature: 0.1, top_k: 50, repetition_penalty: 1.03 }
    timeout_ms: 120000
`)
  const config = await loadConfig({ GATEWAY_CONFIG: yamlPath, HF_TOKEN: 'hf_global' })
  const model = config.models[0]!
  assert.equal(config.mode, 'file')
  assert.equal(model.chatTemplateFile, join(yamlPath, '..', 'zephyr.jinja'))
  assert.equal(model.hubToken, 'hf_model')
  assert.equal(model.upstreamToken, 'hf_model')
  assert.equal(model.timeoutMs, 120000)
  assert.deepEqual(model.defaults, { max_tokens: 512, temperature: 0.1, top_k: 50, repetition_penalty: 1.03 })
  const jsonPath = await withModelsFile(t, 'models.json', JSON.stringify({ models: [{ id: 'a', backend: 'tgi', url: 'http://h:1', chat_template: '{{ messages }}' }] }))
  assert.equal((await loadConfig({ GATEWAY_CONFIG: jsonPath })).models[0]!.chatTemplate, '{{ messages }}')
})

test('a bad models file names the file, the entry and the field', async (t) => {
  const path = await withModelsFile(t, 'bad.yaml', `models:
  - { id: good, backend: tgi, url: "http://h:1", model: a/b }
  - { id: broken, backend: tgi, url: "not a url", model: a/b, defaults: { temperature: 9 } }
`)
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: path }), (error: Error) => {
    assert.ok(error instanceof ConfigError)
    assert.match(error.message, /bad\.yaml/)
    assert.match(error.message, /models\[1\] \(id 'broken'\) field 'url'/)
    assert.match(error.message, /models\[1\] \(id 'broken'\) field 'defaults\.temperature'/)
    return true
  })
  const unknownBackend = await withModelsFile(t, 'backend.yaml', 'models:\n  - { id: x, backend: carrier-pigeon, url: "http://h:1", model: a/b }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: unknownBackend }), /models\[0\] \(id 'x'\) field 'backend'/)
  const duplicate = await withModelsFile(t, 'dup.yaml', 'models:\n  - { id: x, backend: tgi, url: "http://h:1", model: a/b }\n  - { id: x, backend: tgi, url: "http://h:2", model: a/b }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: duplicate }), /duplicate model id 'x'/)
  const hubWithoutModel = await withModelsFile(t, 'none.yaml', 'models:\n  - { id: x, backend: hub }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: hubWithoutModel }), /models\[0\] \(id 'x'\) field 'model'/)
  const nativeOnly = await withModelsFile(t, 'native.yaml', 'models:\n  - { id: x, backend: hub, model: a/b, defaults: { top_k: 5 } }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: nativeOnly }), /field 'defaults\.top_k': 'top_k' is not supported by the hub backend/)
  // Named engines are checked against their dialect at start-up; detected ones (endpoint, completions) per request.
  const vllmTypicalP = await withModelsFile(t, 'vllm.yaml', 'models:\n  - { id: x, backend: vllm, url: "http://h:1", defaults: { typical_p: 0.5 } }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: vllmTypicalP }), /field 'defaults\.typical_p': 'typical_p' is not supported by the vllm backend/)
  const tgiMinP = await withModelsFile(t, 'tgi.yaml', 'models:\n  - { id: x, backend: tgi, url: "http://h:1", defaults: { min_p: 0.1 } }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: tgiMinP }), /field 'defaults\.min_p': 'min_p' is not supported by the tgi backend/)
  const notYaml = await withModelsFile(t, 'broken.yaml', 'models: [\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: notYaml }), /broken\.yaml is not valid YAML/)
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: '/nonexistent/models.yaml' }), /cannot read models file/)
})

test('INFERENCE_SERVER_URL: any engine, detected; HF_TOKEN goes to an Inference Endpoint only, INFERENCE_SERVER_TOKEN anywhere', async () => {
  const plain = await loadConfig({ INFERENCE_SERVER_URL: 'http://127.0.0.1:8000/', HF_TOKEN: 'hf_gateway', TGI_URL: 'http://127.0.0.1:3000' })
  assert.equal(plain.mode, 'single')
  assert.equal(plain.models[0]!.backend, 'completions')
  assert.equal(plain.models[0]!.url, 'http://127.0.0.1:8000')
  assert.equal(plain.models[0]!.upstreamToken, undefined)
  const keyed = await loadConfig({ INFERENCE_SERVER_URL: 'http://127.0.0.1:8000', INFERENCE_SERVER_TOKEN: 'vllm-key', HF_TOKEN: 'hf_gateway' })
  assert.equal(keyed.models[0]!.upstreamToken, 'vllm-key')
  const endpoint = await loadConfig({ INFERENCE_SERVER_URL: 'https://abc.us-east-1.aws.endpoints.huggingface.cloud', HF_TOKEN: 'hf_gateway' })
  assert.equal(endpoint.models[0]!.backend, 'endpoint')
  assert.equal(endpoint.models[0]!.upstreamToken, 'hf_gateway')
})

test('engine entries: served_model, and HF_TOKEN never sent to a plain engine URL', async (t) => {
  const path = await withModelsFile(t, 'engines.yaml', `models:
  - { id: a, backend: vllm, url: "http://h:1", served_model: llama }
  - { id: b, backend: sglang, url: "http://h:2", token: own }
  - { id: c, backend: llamacpp, url: "http://h:3" }
  - { id: d, backend: completions, url: "http://h:4" }
  - { id: e, backend: endpoint, url: "https://x.endpoints.huggingface.cloud" }
`)
  const config = await loadConfig({ GATEWAY_CONFIG: path, HF_TOKEN: 'hf_gateway' })
  assert.deepEqual(config.models.map((model) => [model.id, model.backend, model.servedModel, model.upstreamToken]), [
    ['a', 'vllm', 'llama', undefined],
    ['b', 'sglang', undefined, 'own'],
    ['c', 'llamacpp', undefined, undefined],
    ['d', 'completions', undefined, undefined],
    ['e', 'endpoint', undefined, 'hf_gateway']
  ])
  const servedOnTgi = await withModelsFile(t, 'tgi-served.yaml', 'models:\n  - { id: x, backend: tgi, url: "http://h:1", served_model: y }\n')
  await assert.rejects(loadConfig({ GATEWAY_CONFIG: servedOnTgi }), /served_model/)
})
