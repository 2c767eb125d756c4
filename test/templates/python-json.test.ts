import { test } from 'node:test'
import assert from 'node:assert/strict'
import { markPythonFloats, PythonFloat, revivePythonFloats, withoutPythonFloats } from '../../src/templates/python-json.js'
import { ChatTemplate } from '../../src/templates/chat-template.js'

function parse (text: string): unknown {
  const marked = markPythonFloats(text)
  return marked === undefined ? JSON.parse(text) : revivePythonFloats(JSON.parse(marked.text), marked.nonce)
}

test('integral floats are read as Python floats; other numbers and strings are untouched', () => {
  assert.equal(markPythonFloats('{"a": 1, "b": 1.5, "c": "1.0", "d": [2, -3]}'), undefined)
  const value = parse('{"a": 1.0, "b": [2e3, -0.0, 1.5, 7, 1E2], "c": "x: 1.0, \\"2.0\\"", "d": {"e": 12.000}, "1.0": 3.0}')
  assert.deepEqual(value, {
    a: new PythonFloat(1),
    b: [new PythonFloat(2000), new PythonFloat(-0), 1.5, 7, new PythonFloat(100)],
    c: 'x: 1.0, "2.0"',
    d: { e: new PythonFloat(12) },
    '1.0': new PythonFloat(3)
  })
  assert.deepEqual(withoutPythonFloats(value), { a: 1, b: [2000, -0, 1.5, 7, 100], c: 'x: 1.0, "2.0"', d: { e: 12 }, '1.0': 3 })
  assert.equal(JSON.stringify(value), '{"a":1,"b":[2000,0,1.5,7,100],"c":"x: 1.0, \\"2.0\\"","d":{"e":12},"1.0":3}')
})

test('the template engine prints a PythonFloat as Python prints a float', () => {
  const template = ChatTemplate.compile('{{ x }} {{ x | tojson }} {{ y | tojson }} {{ x + 1 }} {{ x is integer }}|{{ z }}', {})
  assert.equal(template.render({ messages: [], kwargs: { x: new PythonFloat(1), y: { n: new PythonFloat(-0), m: 2 }, z: 2 } }),
    '1.0 1.0 {"n": -0.0, "m": 2} 2.0 False|2')
})
