// Node 20's test runner cannot expand globs, so list test/**/*.test.ts here
// and hand the files to `node --test` (through tsx for TypeScript).
import { readdirSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const filter = process.argv[2]
const files = readdirSync('test', { recursive: true })
  .map(String)
  .filter((file) => file.endsWith('.test.ts'))
  .filter((file) => !filter || file.includes(filter))
  .map((file) => join('test', file))
  .sort()
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
  env: { ...process.env, TZ: 'UTC' }
})
process.exit(result.status ?? 1)
