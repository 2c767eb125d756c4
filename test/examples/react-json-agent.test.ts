/**
 * examples/react-json-agent.ts against the gateway and the loopback fake TGI. The fake
 * "model" writes what zephyr writes for the react-json prompt and, like a real model,
 * does not stop after its action: every scripted reply runs on into an invented
 * "Observation:" (and an invented final answer). Only the gateway's handling of the
 * "\nObservation" stop keeps those inventions away from the agent.
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { startGateway, ZEPHYR } from '../helpers/gateway.js'
import { runReactJsonAgent, ReActJsonOutputParser, OBSERVATION_STOP } from '../../examples/react-json-agent.js'

const QUESTION = "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"

/** Sentencepiece-like pieces: a newline alone, else a word with its leading spaces. */
function pieces (text: string): string[] {
  return text.match(/\n|[^\S\n]*\S+/g) ?? []
}

const action = (thought: string, tool: string, input: string): string =>
  `Thought: ${thought}\nAction:\n\`\`\`json\n{\n  "action": "${tool}",\n  "action_input": "${input}"\n}\n\`\`\``

// What each reply says up to its action (what the agent must see).
const ACTION_1 = action("I need to find out who Leo DiCaprio's girlfriend is, then find her age.", 'search', 'Leo DiCaprio girlfriend')
const ACTION_2 = action("Leo DiCaprio's girlfriend is Vittoria Ceretti. Now I need to find her current age.", 'search', 'Vittoria Ceretti age')
const ACTION_3 = action('Vittoria Ceretti is 25 years old. I need to calculate 25 raised to the 0.43 power.', 'calculator', '25^0.43')
const FINAL = "Thought: I now know the final answer\nFinal Answer: Leo DiCaprio's girlfriend is Vittoria Ceretti, and her current age, 25, raised to the 0.43 power is 3.991298452658078."

// What each reply goes on to invent after its action (what the agent must never see).
const RUN_ON_1 = " Leo DiCaprio's girlfriend is Camila Morrone.\nThought: Camila Morrone is 26 years old, so I need 26^0.43.\nAction:\n```json\n{\n  \"action\": \"calculator\",\n  \"action_input\": \"26^0.43\"\n}\n```\nObservation: 4.0613\nThought: I now know the final answer\nFinal Answer: Camila Morrone is 26, and 26^0.43 is about 4.0613."
const RUN_ON_2 = ': Vittoria Ceretti is 27 years old.\nThought: I now know the final answer\nFinal Answer: 27^0.43 is about 4.1'
const RUN_ON_3 = ' 3.99\nThought: I now know the final answer\nFinal Answer: about 3.99'
const HALLUCINATIONS = ['Camila Morrone', '26^0.43', '4.0613', '27 years', 'about 3.99']

const REPLIES: string[][] = [
  // "\n" + "Observation:": the stop spans two tokens and ends inside the second, so TGI's
  // own stop check (a stop ending at a token boundary) misses it and the model runs on.
  [...pieces(ACTION_1), '\n', 'Observation:', ...pieces(RUN_ON_1)],
  // "\n" + "Observation": TGI notices this one (it ends at a token boundary) but keeps it in its output.
  [...pieces(ACTION_2), '\n', 'Observation', ...pieces(RUN_ON_2)],
  // the whole stop inside one token, followed by more text in the same token
  [...pieces(ACTION_3), '\nObservation:', ...pieces(RUN_ON_3)],
  pieces(FINAL)
]

const SEARCH_RESULTS: Record<string, string> = {
  'Leo DiCaprio girlfriend': 'Vittoria Ceretti',
  'Vittoria Ceretti age': '25'
}

function stubSearch (queries: string[]) {
  return (query: string): string => {
    queries.push(query)
    return SEARCH_RESULTS[query] ?? 'No results.'
  }
}

test('react-json agent: search, search, calculator, answer; the stop keeps every invented observation out', async (t) => {
  const { url, tgi } = await startGateway(t)
  for (const tokens of REPLIES) tgi.replyOnce({ kind: 'tokens', tokens })
  const queries: string[] = []

  const result = await runReactJsonAgent({ baseURL: `${url}/v1`, model: ZEPHYR, question: QUESTION, search: stubSearch(queries) })

  assert.deepEqual(result.steps, [
    { tool: 'search', input: 'Leo DiCaprio girlfriend', observation: 'Vittoria Ceretti' },
    { tool: 'search', input: 'Vittoria Ceretti age', observation: '25' },
    { tool: 'calculator', input: '25^0.43', observation: '3.991298452658078' }
  ])
  assert.match(result.answer, /3\.991298452658078/)
  assert.match(result.answer, /Vittoria Ceretti/)
  assert.deepEqual(queries, ['Leo DiCaprio girlfriend', 'Vittoria Ceretti age'])

  // One upstream generation per LLM call, each carrying the stop.
  assert.equal(tgi.calls.length, 4)
  for (const call of tgi.calls) assert.deepEqual(call.body.parameters.stop, [OBSERVATION_STOP])
  const prompts = tgi.calls.map((call) => call.body.inputs as string)

  // The first prompt: react-json's system message (tools rendered, braces unescaped) and the question, in zephyr's template.
  assert.ok(prompts[0]!.startsWith('<|system|>\nAnswer the following questions as best you can. You have access to the following tools:\n\nsearch: a search engine.'), prompts[0])
  assert.ok(prompts[0]!.includes('\ncalculator: Useful for getting the result of a math expression.'))
  assert.ok(prompts[0]!.includes('The only values that should be in the "action" field are: search, calculator\n'))
  assert.ok(prompts[0]!.includes('```\n{\n  "action": $TOOL_NAME,\n  "action_input": $INPUT\n}\n```'))
  assert.ok(prompts[0]!.endsWith(`Reminder to always use the exact characters \`Final Answer\` when responding.</s>\n<|user|>\n${QUESTION}\n\n</s>\n<|assistant|>\n`), prompts[0])

  // Later prompts carry the scratchpad: each action as the model wrote it up to the stop, then the real observation.
  const scratchpad = [
    `${ACTION_1}\nObservation: Vittoria Ceretti\nThought: `,
    `${ACTION_2}\nObservation: 25\nThought: `,
    `${ACTION_3}\nObservation: 3.991298452658078\nThought: `
  ]
  for (let call = 1; call <= 3; call++) {
    assert.ok(prompts[call]!.endsWith(`<|user|>\n${QUESTION}\n\n${scratchpad.slice(0, call).join('')}</s>\n<|assistant|>\n`), `prompt ${call}: ${prompts[call]}`)
  }

  // The scripted model did invent observations; neither the prompts, the steps nor the answer hold any of them.
  const scripted = REPLIES.map((tokens) => tokens.join('')).join('\n')
  for (const invented of HALLUCINATIONS) {
    assert.ok(scripted.includes(invented), invented)
    for (const prompt of prompts) assert.ok(!prompt.includes(invented), `${invented} reached a prompt`)
    for (const step of result.steps) assert.ok(!step.observation.includes(invented) && !step.input.includes(invented))
    assert.ok(!result.answer.includes(invented))
  }
})

test('negative control: the same script without the stop makes the agent answer with the invented observation', async (t) => {
  const { url, tgi } = await startGateway(t)
  for (const tokens of REPLIES) tgi.replyOnce({ kind: 'tokens', tokens })
  const queries: string[] = []

  const result = await runReactJsonAgent({ baseURL: `${url}/v1`, model: ZEPHYR, question: QUESTION, search: stubSearch(queries), stop: [] })

  // TGI got no stop, so the first reply ran on to the model's own "Final Answer:" ...
  assert.equal(tgi.calls.length, 1)
  assert.deepEqual(tgi.calls[0]!.body.parameters.stop ?? [], [])
  // ... which LangChain's parser takes as the answer: no tool ran, and the answer is invented.
  assert.deepEqual(result.steps, [])
  assert.deepEqual(queries, [])
  assert.equal(result.answer, 'Camila Morrone is 26, and 26^0.43 is about 4.0613.')
})

test('the react-json output parser: action blob, final answer, both, neither', async () => {
  const parser = new ReActJsonOutputParser()
  assert.deepEqual(await parser.parse(ACTION_1), { tool: 'search', toolInput: 'Leo DiCaprio girlfriend', log: ACTION_1 })
  assert.deepEqual(await parser.parse('Action:\n```\n{"action": "calculator", "action_input": "2**10"}\n```'), { tool: 'calculator', toolInput: '2**10', log: 'Action:\n```\n{"action": "calculator", "action_input": "2**10"}\n```' })
  assert.deepEqual(await parser.parse(FINAL), { returnValues: { output: "Leo DiCaprio's girlfriend is Vittoria Ceretti, and her current age, 25, raised to the 0.43 power is 3.991298452658078." }, log: FINAL })
  // An action followed by an invented observation and answer: LangChain reads the answer.
  const runOn = `${ACTION_1}\nObservation:${RUN_ON_1}`
  assert.deepEqual(await parser.parse(runOn), { returnValues: { output: 'Camila Morrone is 26, and 26^0.43 is about 4.0613.' }, log: runOn })
  await assert.rejects(parser.parse('I am not sure what to do.'), /Could not parse LLM output/)
})
