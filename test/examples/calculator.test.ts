import test from 'node:test'
import assert from 'node:assert/strict'
import { evaluateExpression } from '../../examples/calculator.js'

test('the calculator: powers with ^ and **, precedence, unary minus, parentheses', () => {
  assert.equal(evaluateExpression('25^0.43'), 3.991298452658078)
  assert.equal(evaluateExpression('25 ** 0.43'), 3.991298452658078)
  assert.equal(evaluateExpression('2^3^2'), 512)
  assert.equal(evaluateExpression('-2^2'), -4)
  assert.equal(evaluateExpression('2^-1'), 0.5)
  assert.equal(evaluateExpression('1 + 2 * 3 - 4 / 2'), 5)
  assert.equal(evaluateExpression('(1 + 2) * 3 % 5'), 4)
  assert.equal(evaluateExpression(' 1.5e3 + .5 '), 1500.5)
})

test('the calculator rejects anything that is not arithmetic', () => {
  for (const expression of ['process.exit(1)', 'Math.PI', '2 +', '(1 + 2', '1 2', '', '1 / 0', 'x^2']) {
    assert.throws(() => evaluateExpression(expression), Error, expression)
  }
})
