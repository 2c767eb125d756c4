import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BOS_ID, FakeTokenizer, startsWithDoubledBos } from './fake-tokenizer.js'

test('encode with special tokens prepends BOS even when the text starts with it (the doubled-BOS bug)', () => {
  const tokenizer = new FakeTokenizer()
  const tokens = tokenizer.encode('<s>[INST] Hi [/INST]', true)
  assert.deepEqual(tokens.slice(0, 2).map((token) => token.id), [BOS_ID, BOS_ID])
  assert.equal(startsWithDoubledBos(tokens), true)
  assert.equal(startsWithDoubledBos(tokenizer.encode('<s>[INST] Hi [/INST]', false)), false)
  assert.equal(startsWithDoubledBos(tokenizer.encode('[INST] Hi [/INST]', true)), false)
})

test('special texts are single tokens; words keep their leading space; offsets index the text', () => {
  const tokenizer = new FakeTokenizer({ specialTokens: ['<|im_start|>'] })
  const tokens = tokenizer.encode('<|im_start|>user hello  world</s>', false)
  assert.deepEqual(tokens.map((token) => [token.text, token.special]), [['<|im_start|>', true], ['user', false], [' hello', false], ['  world', false], ['</s>', true]])
  assert.equal(tokens[2]!.start, 16)
  assert.equal(tokenizer.decode(tokens, true), 'user hello  world')
})

test('a tokenizer without BOS (Qwen) or with add_bos_token false adds none', () => {
  assert.equal(new FakeTokenizer({ bosToken: null }).encode('x', true)[0]!.text, 'x')
  assert.equal(new FakeTokenizer({ addBos: false }).encode('x', true).length, 1)
})
