import test from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import semver from 'semver'

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, { version?: string, dev?: boolean, engines?: { node?: string } | string[] }>
}

// Production dependencies that declare a newer Node than engines.node allows, and
// why the gateway still runs there: both are plain JavaScript with no newer API,
// and this suite (CI runs it on Node 20) exercises them (inject(), /docs).
const DECLARED_NEWER = new Map([
  ['node_modules/cookie', 'light-my-request (fastify.inject); pure JavaScript'],
  ['node_modules/content-disposition', '@fastify/static (swagger-ui /docs); pure JavaScript']
])

test('engines.node: its lowest version satisfies every production dependency\'s declared engines (listed exceptions aside)', () => {
  const lowest = semver.minVersion(manifest.engines.node)
  assert.ok(lowest !== null)
  const unmet: string[] = []
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || DECLARED_NEWER.has(path)) continue
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
    if (range === undefined) continue
    if (!semver.satisfies(lowest, range)) unmet.push(`${path}@${entry.version ?? '?'} needs node ${range}`)
  }
  assert.deepEqual(unmet, [], `engines.node ${manifest.engines.node} is below what these declare`)
})

test('engines.node: the listed exceptions are still needed (else drop them), and this Node is in range', () => {
  for (const path of DECLARED_NEWER.keys()) {
    const entry = lock.packages[path]
    assert.ok(entry !== undefined, `${path} is no longer installed: remove it from DECLARED_NEWER`)
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node
    assert.ok(range !== undefined && !semver.satisfies(semver.minVersion(manifest.engines.node)!, range), `${path} no longer declares a newer Node: remove it from DECLARED_NEWER`)
  }
  assert.ok(semver.satisfies(process.versions.node, manifest.engines.node), `running on Node ${process.versions.node}, outside engines.node ${manifest.engines.node}`)
})
