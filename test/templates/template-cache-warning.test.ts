import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HubTemplateLoader } from '../../src/templates/template-source.js'
import { startFakeHub } from '../fakes/fake-hub.js'

const TOKENIZER_CONFIG = { chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}', eos_token: '</s>' }

test('an unwritable template cache is reported once (warn), and templates still load', async (t) => {
  const hub = await startFakeHub({ repos: { 'org/a': { tokenizerConfig: TOKENIZER_CONFIG }, 'org/b': { tokenizerConfig: TOKENIZER_CONFIG } } })
  t.after(() => hub.close())
  const directory = await mkdtemp(join(tmpdir(), 'template-cache-'))
  t.after(() => rm(directory, { recursive: true, force: true }))
  // A cache folder below a plain file cannot be created, even by root (a root-owned volume fails the same way for the `node` user).
  await writeFile(join(directory, 'not-a-folder'), '')
  const warnings: Array<{ object: Record<string, unknown>, message: string }> = []
  const loader = new HubTemplateLoader({
    hubBaseUrl: hub.url,
    cacheDir: join(directory, 'not-a-folder', 'templates'),
    offline: false,
    logger: { warn: (object, message) => { warnings.push({ object: object as Record<string, unknown>, message }) } }
  })
  assert.equal((await loader.load('org/a')).chatTemplate, TOKENIZER_CONFIG.chat_template)
  assert.equal((await loader.load('org/b')).chatTemplate, TOKENIZER_CONFIG.chat_template)
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!.message, /cache is not writable/)
  assert.equal(warnings[0]!.object.reason, 'ENOTDIR')
})

test('a writable cache logs nothing', async (t) => {
  const hub = await startFakeHub({ repos: { 'org/a': { tokenizerConfig: TOKENIZER_CONFIG } } })
  t.after(() => hub.close())
  const directory = await mkdtemp(join(tmpdir(), 'template-cache-'))
  t.after(() => rm(directory, { recursive: true, force: true }))
  const warnings: string[] = []
  const loader = new HubTemplateLoader({ hubBaseUrl: hub.url, cacheDir: join(directory, 'templates'), offline: false, logger: { warn: (_object, message) => { warnings.push(message) } } })
  await loader.load('org/a')
  assert.deepEqual(warnings, [])
})
