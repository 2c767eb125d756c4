// `npm start` builds first when dist/ is missing or older than any source file.
import { readdirSync, statSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'

const target = 'dist/src/server.js'
function newest (directory) {
  let latest = 0
  for (const name of readdirSync(directory, { recursive: true })) {
    const path = join(directory, String(name))
    if (path.endsWith('.ts')) latest = Math.max(latest, statSync(path).mtimeMs)
  }
  return latest
}
const sourceTime = Math.max(newest('src'), newest('routes'), statSync('tsconfig.json').mtimeMs, statSync('package.json').mtimeMs)
if (!existsSync(target) || statSync(target).mtimeMs < sourceTime) {
  process.stderr.write('building (tsc)...\n')
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' })
}
