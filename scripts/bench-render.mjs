/**
 * `npm run bench:render`: chat-template render cost, compiled once vs compiled
 * per request, for zephyr (two messages), Llama 3.1 with tools, and Qwen3.
 * Prints p50/p99/mean in microseconds; figures, not a pass/fail test.
 * It measures the built code (npm run build first, as the npm script does):
 * under tsx, esbuild's keepNames helper wraps every closure the template
 * layer makes per call, which cost up to a fifth of a render.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ChatTemplate } from '../dist/src/templates/chat-template.js'

// Real models' templates, from the third-party corpus beside the repo (never copied into it).
const SHARED = new URL('../../shared/chat-templates/', import.meta.url)
if (!existsSync(new URL('models/', SHARED))) {
  process.stdout.write(`bench:render skipped: it measures real models' templates, read from ${fileURLToPath(new URL('models/', SHARED))}, which is not present (a fresh clone has no ../shared corpus)\n`)
  process.exit(0)
}
const iterations = Number(process.argv[2] ?? 20000)

function model (file) {
  const data = JSON.parse(readFileSync(new URL(`models/${file}.json`, SHARED), 'utf8'))
  return { source: data.chat_template, tokens: data.special_tokens }
}

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string', description: 'City name' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] }
  }
}

const scenarios = [
  {
    name: 'zephyr, 2 messages',
    file: 'HuggingFaceH4__zephyr-7b-beta',
    input: { messages: [{ role: 'system', content: "You're a helpful assistant" }, { role: 'user', content: 'What happens when an unstoppable force meets an immovable object?' }] }
  },
  {
    name: 'Llama 3.1, tools',
    file: 'meta-llama__Llama-3.1-8B-Instruct',
    input: { messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool] }
  },
  {
    name: 'Qwen3, 4 messages',
    file: 'Qwen__Qwen3-8B',
    input: {
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: '<think>\nGreeting.\n</think>\n\nHello!' },
        { role: 'user', content: 'Tell me a joke.' }
      ],
      kwargs: { enable_thinking: false }
    }
  }
]

function percentile (sorted, fraction) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]
}

function measure (run, count) {
  for (let index = 0; index < Math.min(2000, count); index++) run()
  const samples = new Float64Array(count)
  for (let index = 0; index < count; index++) {
    const started = process.hrtime.bigint()
    run()
    samples[index] = Number(process.hrtime.bigint() - started) / 1000
  }
  const mean = samples.reduce((sum, value) => sum + value, 0) / count
  samples.sort()
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), mean }
}

const now = () => new Date('2025-01-15T12:00:00Z')
const rows = [['scenario', 'compiled once p50 µs', 'p99 µs', 'mean µs', 'compile+render p50 µs', 'ratio']]
for (const scenario of scenarios) {
  const { source, tokens } = model(scenario.file)
  const template = ChatTemplate.compile(source, tokens, { now })
  const once = measure(() => { template.render(scenario.input) }, iterations)
  const each = measure(() => { ChatTemplate.compile(source, tokens, { now }).render(scenario.input) }, Math.max(500, Math.floor(iterations / 10)))
  rows.push([scenario.name, once.p50.toFixed(1), once.p99.toFixed(1), once.mean.toFixed(1), each.p50.toFixed(1), `${(each.p50 / once.p50).toFixed(1)}×`])
}
const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)))
for (const row of rows) process.stdout.write(row.map((cell, column) => cell.padEnd(widths[column])).join('  ') + '\n')
