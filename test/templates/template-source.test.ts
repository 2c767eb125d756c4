import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HubTemplateLoader, isValidRepoId, loadTemplateFile, specialTokensFromTokenizerConfig } from '../../src/templates/template-source.js'
import type { HubTemplateLoaderOptions } from '../../src/templates/template-source.js'
import { TemplateLoadError } from '../../src/errors.js'
import { startFakeHub } from '../fakes/fake-hub.js'
import type { FakeHub, FakeHubOptions } from '../fakes/fake-hub.js'

const ZEPHYR_TEMPLATE = '{% for message in messages %}{{ message.content }}{{ eos_token }}{% endfor %}'
const ZEPHYR_CONFIG = {
  chat_template: ZEPHYR_TEMPLATE,
  bos_token: '<s>',
  eos_token: { content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false, __type: 'AddedToken' },
  unk_token: '<unk>',
  pad_token: null,
  sep_token: '',
  tokenizer_class: 'LlamaTokenizer'
}

interface Setup { hub: FakeHub, cacheDir: string, loader: (overrides?: Partial<HubTemplateLoaderOptions>) => HubTemplateLoader }

async function setup (t: TestContext, options: FakeHubOptions = { repos: { 'HuggingFaceH4/zephyr-7b-beta': { tokenizerConfig: ZEPHYR_CONFIG } } }): Promise<Setup> {
  const hub = await startFakeHub(options)
  t.after(() => hub.close())
  const cacheDir = await mkdtemp(join(tmpdir(), 'template-source-'))
  t.after(() => rm(cacheDir, { recursive: true, force: true }))
  const loader = (overrides: Partial<HubTemplateLoaderOptions> = {}): HubTemplateLoader =>
    new HubTemplateLoader({ hubBaseUrl: hub.url, cacheDir, offline: false, timeoutMs: 5000, ...overrides })
  return { hub, cacheDir, loader }
}

async function rejectsWith (promise: Promise<unknown>, statusCode: number, code: string, message?: RegExp): Promise<TemplateLoadError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof TemplateLoadError, `expected TemplateLoadError, got ${String(error)}`)
    assert.equal(error.statusCode, statusCode)
    assert.equal(error.code, code)
    if (message !== undefined) assert.match(error.message, message)
    return error
  }
  assert.fail('expected a rejection')
}

test('fetches tokenizer_config.json and chat_template.jinja, returns template and special tokens, writes the cache', async (t) => {
  const { hub, cacheDir, loader } = await setup(t)
  const source = await loader().load('HuggingFaceH4/zephyr-7b-beta')
  assert.equal(source.chatTemplate, ZEPHYR_TEMPLATE)
  assert.deepEqual(source.specialTokens, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' })
  assert.equal(source.origin, 'hub:HuggingFaceH4/zephyr-7b-beta')
  assert.deepEqual(hub.requests.map((request) => request.url).sort(), [
    '/HuggingFaceH4/zephyr-7b-beta/resolve/main/chat_template.jinja',
    '/HuggingFaceH4/zephyr-7b-beta/resolve/main/tokenizer_config.json'
  ])
  const files = await readdir(cacheDir)
  assert.deepEqual(files, ['HuggingFaceH4~zephyr-7b-beta.json'], 'one cache file, no temporary leftovers')
  const cached = JSON.parse(await readFile(join(cacheDir, files[0] as string), 'utf8')) as Record<string, unknown>
  assert.equal(cached.chatTemplate, ZEPHYR_TEMPLATE)
})

test('offline (HF_HUB_OFFLINE) reads the cache a previous online load wrote, without any request', async (t) => {
  const { hub, cacheDir, loader } = await setup(t)
  await loader().load('HuggingFaceH4/zephyr-7b-beta')
  const requestsBefore = hub.requests.length
  const source = await loader({ offline: true }).load('HuggingFaceH4/zephyr-7b-beta')
  assert.equal(source.chatTemplate, ZEPHYR_TEMPLATE)
  assert.deepEqual(source.specialTokens, { bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' })
  assert.equal(source.origin, `cache:${join(cacheDir, 'HuggingFaceH4~zephyr-7b-beta.json')}`)
  assert.equal(hub.requests.length, requestsBefore)
})

test('offline with nothing cached: a clear 503 naming HF_HUB_OFFLINE and the repo', async (t) => {
  const { hub, loader } = await setup(t)
  await rejectsWith(loader({ offline: true }).load('HuggingFaceH4/zephyr-7b-beta'), 503, 'chat_template_unavailable', /HF_HUB_OFFLINE=1 and no chat template is cached for HuggingFaceH4\/zephyr-7b-beta/)
  assert.equal(hub.requests.length, 0)
})

test('a network failure or a Hub 5xx falls back to the cache', async (t) => {
  const { hub, loader } = await setup(t)
  await loader().load('HuggingFaceH4/zephyr-7b-beta')
  hub.failNext(0, 2) // connections destroyed
  const afterReset = await loader().load('HuggingFaceH4/zephyr-7b-beta')
  assert.match(afterReset.origin, /^cache:/)
  assert.equal(afterReset.chatTemplate, ZEPHYR_TEMPLATE)
  hub.failNext(503, 2)
  const afterOutage = await loader().load('HuggingFaceH4/zephyr-7b-beta')
  assert.match(afterOutage.origin, /^cache:/)
})

test('Hub unreachable and nothing cached: 502', async (t) => {
  const { hub, loader } = await setup(t)
  hub.failNext(500, 2)
  await rejectsWith(loader().load('HuggingFaceH4/zephyr-7b-beta'), 502, 'chat_template_unavailable', /the Hub answered 500/)
  const closed = await startFakeHub()
  const deadUrl = closed.url
  await closed.close()
  await rejectsWith(loader({ hubBaseUrl: deadUrl }).load('HuggingFaceH4/zephyr-7b-beta'), 502, 'chat_template_unavailable', /ECONNREFUSED/)
})

test('Authorization is sent only when a token is given, and gated repos need it', async (t) => {
  const { hub, loader } = await setup(t, { repos: { 'meta-llama/Llama-3.1-8B-Instruct': { tokenizerConfig: { chat_template: 'gated' }, token: 'hf_secret' } } })
  const error = await rejectsWith(loader().load('meta-llama/Llama-3.1-8B-Instruct'), 404, 'model_not_found', /^model not found on the Hub: meta-llama\/Llama-3.1-8B-Instruct is gated; a Hugging Face token with access to it is needed/)
  assert.ok(hub.requests.every((request) => request.headers.authorization === undefined))
  const wrong = await rejectsWith(loader().load('meta-llama/Llama-3.1-8B-Instruct', 'hf_wrong'), 404, 'model_not_found', /the token given has no access/)
  for (const message of [error.message, wrong.message]) assert.ok(!message.includes('hf_wrong') && !message.includes('hf_secret'))
  hub.requests.length = 0
  const source = await loader().load('meta-llama/Llama-3.1-8B-Instruct', 'hf_secret')
  assert.equal(source.chatTemplate, 'gated')
  assert.ok(hub.requests.length > 0)
  assert.ok(hub.requests.every((request) => request.headers.authorization === 'Bearer hf_secret'))
})

test('unknown repo: 404 model_not_found (Hub 404 RepoNotFound, or 401 for anonymous callers)', async (t) => {
  const { loader } = await setup(t)
  await rejectsWith(loader().load('nobody/nothing'), 404, 'model_not_found', /^model not found on the Hub: nobody\/nothing$/)
  const anonymous = await setup(t, { repos: {}, unknownRepoStatus: 401 })
  await rejectsWith(anonymous.loader().load('nobody/nothing'), 404, 'model_not_found', /^model not found on the Hub: nobody\/nothing \(it does not exist, or it is gated\/private/)
})

test('chat_template.jinja wins over tokenizer_config\'s chat_template, and works without a tokenizer_config', async (t) => {
  const { loader } = await setup(t, {
    repos: {
      'org/both': { tokenizerConfig: { chat_template: 'from config', eos_token: '</s>' }, chatTemplateJinja: 'from jinja' },
      'org/jinja-only': { chatTemplateJinja: 'only jinja' }
    }
  })
  const both = await loader().load('org/both')
  assert.equal(both.chatTemplate, 'from jinja')
  assert.deepEqual(both.specialTokens, { eos_token: '</s>' })
  const jinjaOnly = await loader().load('org/jinja-only')
  assert.equal(jinjaOnly.chatTemplate, 'only jinja')
  assert.deepEqual(jinjaOnly.specialTokens, {})
})

test('list-form chat_template (named templates) is returned as given', async (t) => {
  const named = [{ name: 'default', template: 'd' }, { name: 'tool_use', template: 't' }]
  const { loader } = await setup(t, { repos: { 'CohereForAI/c4ai-command-r-v01': { tokenizerConfig: { chat_template: named } } } })
  assert.deepEqual((await loader().load('CohereForAI/c4ai-command-r-v01')).chatTemplate, named)
  assert.deepEqual((await loader({ offline: true }).load('CohereForAI/c4ai-command-r-v01')).chatTemplate, named)
})

test('no chat template anywhere: 400 chat_template_missing; a malformed one: chat_template_invalid', async (t) => {
  const { loader } = await setup(t, {
    repos: {
      'org/base-model': { tokenizerConfig: { eos_token: '</s>' } },
      'org/broken': { tokenizerConfig: { chat_template: 42 } },
      'org/not-json': { tokenizerConfig: '{ not json' }
    }
  })
  await rejectsWith(loader().load('org/base-model'), 400, 'chat_template_missing', /org\/base-model has no chat template/)
  await rejectsWith(loader().load('org/broken'), 500, 'chat_template_invalid')
  await rejectsWith(loader().load('org/not-json'), 502, 'chat_template_unavailable', /not valid JSON/)
})

test('invalid repo ids are rejected before any request', async (t) => {
  const { hub, loader } = await setup(t)
  const hostile = ['', '../etc/passwd', 'org/../secret', 'org/name/extra', '/name', 'org/', 'org/na me', 'org/name?x=1', 'org/name#x',
    'org/%2e%2e', 'org/-name', 'org/name.', 'org/a--b', 'org/name.git', `org/${'a'.repeat(97)}`, 'org\\name', 'org/ná']
  for (const repo of hostile) {
    await rejectsWith(loader().load(repo), 400, 'invalid_model_id')
  }
  assert.equal(hub.requests.length, 0)
  for (const repo of ['gpt2', 'org/name', 'Qwen/Qwen2.5-7B-Instruct', 'a_b/c.d-e', `org/${'a'.repeat(96)}`]) assert.ok(isValidRepoId(repo), repo)
})

test('single-segment repo ids are served from /{name}/resolve/main', async (t) => {
  const { hub, loader } = await setup(t, { repos: { gpt2: { tokenizerConfig: { chat_template: 'g' } } } })
  assert.equal((await loader().load('gpt2')).chatTemplate, 'g')
  assert.ok(hub.requests.some((request) => request.url === '/gpt2/resolve/main/tokenizer_config.json'))
})

test('concurrent loads of one repo share one Hub round trip', async (t) => {
  const { hub, loader } = await setup(t)
  const shared = loader()
  const sources = await Promise.all(Array.from({ length: 5 }, async () => await shared.load('HuggingFaceH4/zephyr-7b-beta')))
  assert.ok(sources.every((source) => source.chatTemplate === ZEPHYR_TEMPLATE))
  assert.equal(hub.requests.filter((request) => request.url.endsWith('/tokenizer_config.json')).length, 1)
  // Once settled, a new load asks again (the dedupe is for in-flight loads only).
  await shared.load('HuggingFaceH4/zephyr-7b-beta')
  assert.equal(hub.requests.filter((request) => request.url.endsWith('/tokenizer_config.json')).length, 2)
})

test('a caller\'s abort signal ends only its own wait', async (t) => {
  const { loader } = await setup(t)
  const shared = loader()
  const controller = new AbortController()
  const aborted = shared.load('HuggingFaceH4/zephyr-7b-beta', undefined, controller.signal)
  const other = shared.load('HuggingFaceH4/zephyr-7b-beta')
  controller.abort()
  await assert.rejects(aborted, { name: 'AbortError' })
  assert.equal((await other).chatTemplate, ZEPHYR_TEMPLATE)
})

test('an injected fetch is used', async (t) => {
  const { cacheDir } = await setup(t)
  const urls: string[] = []
  const fakeFetch: typeof globalThis.fetch = async (input) => {
    const url = String(input)
    urls.push(url)
    return url.endsWith('tokenizer_config.json')
      ? new Response(JSON.stringify({ chat_template: 'injected' }), { status: 200 })
      : new Response('{}', { status: 404, headers: { 'x-error-code': 'EntryNotFound' } })
  }
  const loader = new HubTemplateLoader({ hubBaseUrl: 'https://hub.example/', cacheDir, offline: false, fetch: fakeFetch })
  assert.equal((await loader.load('org/name')).chatTemplate, 'injected')
  assert.ok(urls.includes('https://hub.example/org/name/resolve/main/tokenizer_config.json'))
})

test('specialTokensFromTokenizerConfig: strings or {content}, skipping empty, null and other shapes', () => {
  assert.deepEqual(specialTokensFromTokenizerConfig({
    bos_token: '<s>',
    eos_token: { content: '</s>', lstrip: false },
    unk_token: null,
    pad_token: '',
    sep_token: { content: '' },
    cls_token: 7,
    mask_token: '<mask>',
    additional_special_tokens: ['<x>'],
    chat_template: 'ignored'
  }), { bos_token: '<s>', eos_token: '</s>', mask_token: '<mask>' })
})

test('loadTemplateFile reads a template file; a missing one is a TemplateLoadError', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'template-file-'))
  t.after(() => rm(directory, { recursive: true, force: true }))
  const path = join(directory, 'chat.jinja')
  await writeFile(path, '{{ messages }}\n')
  assert.equal(await loadTemplateFile(path), '{{ messages }}\n')
  await rejectsWith(loadTemplateFile(join(directory, 'missing.jinja')), 500, 'chat_template_unavailable', /ENOENT/)
})
