import test from 'node:test'
import assert from 'node:assert/strict'
import { StopSequenceMatcher, applyStopSequences } from '../../src/chat/stop-sequences.js'

function feed (stops: string[], pieces: string[]): { released: string[], stopped: boolean, rest: string } {
  const matcher = new StopSequenceMatcher(stops)
  const released = pieces.map((piece) => matcher.push(piece))
  return { released, stopped: matcher.stopped, rest: matcher.flush() }
}

test('cuts at the first stop and removes it', () => {
  assert.deepEqual(applyStopSequences('abc STOP def', ['STOP']), { text: 'abc ', stopped: true })
  assert.deepEqual(applyStopSequences('abc def', ['STOP']), { text: 'abc def', stopped: false })
  // The first stop to complete wins, whichever it is.
  assert.deepEqual(applyStopSequences('x B y A z', ['A', 'B']), { text: 'x ', stopped: true })
  assert.deepEqual(applyStopSequences('abcdef', ['abcdef', 'bcd']), { text: 'a', stopped: true })
  // Overlapping partial matches (KMP fallback): "aab" inside "aaab".
  assert.deepEqual(applyStopSequences('xaaab', ['aab']), { text: 'xa', stopped: true })
  assert.deepEqual(applyStopSequences('ababac', ['abac']), { text: 'ab', stopped: true })
})

test('a stop split across tokens is found, and only a possible stop prefix is held back', () => {
  const { released, stopped } = feed(['\nObservation'], ['Action: x', '\n', 'Observation', ': 3'])
  assert.deepEqual(released, ['Action: x', '', '', ''])
  assert.equal(stopped, true)
  const notAStop = feed(['\nObservation'], ['a', '\nObs', 'tacle'])
  assert.deepEqual(notAStop.released, ['a', '', '\nObstacle'])
  assert.equal(notAStop.stopped, false)
})

test('held text is released at the end when no stop came', () => {
  const { released, rest } = feed(['END'], ['the E', 'N'])
  assert.deepEqual(released, ['the ', ''])
  assert.equal(rest, 'EN')
})

test('without stops every piece passes straight through', () => {
  assert.deepEqual(feed([], ['a', 'b']).released, ['a', 'b'])
})

test('a stop inside a single token (TGI only matches suffixes) is still cut', () => {
  assert.deepEqual(feed(['\nObservation'], ['x\nObservation: y']).released, ['x'])
})

test('long self-overlapping stops: only the possible stop prefix is held', () => {
  const stops = Array.from({ length: 64 }, (_, index) => 'a'.repeat(1000) + String(index))
  const matcher = new StopSequenceMatcher(stops)
  let released = ''
  for (let token = 0; token < 2000; token++) released += matcher.push('a')
  assert.equal(released, 'a'.repeat(1000))
  assert.equal(matcher.push('7'), '')
  assert.equal(matcher.stopped, true)
  assert.equal(matcher.matchedStop, 'a'.repeat(1000) + '7')
})
