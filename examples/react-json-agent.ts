/**
 * A prompt-based ReAct agent for open models that have no native tool calling: the
 * model is told, in LangChain's `hwchase17/react-json` prompt, to answer with a
 * Thought, then an Action as a ```json blob``` ({"action", "action_input"}); the
 * gateway stops it at "\nObservation" (the model would otherwise invent the tool's
 * result), the tool runs, and its result is appended to the scratchpad for the next
 * call. It is the loop of Python LangChain's `create_react_agent` +
 * `ReActJsonSingleInputOutputParser` + `format_log_to_str`, written with
 * @langchain/core (langchain v1 no longer ships these legacy agents).
 *
 *   GATEWAY_URL=http://127.0.0.1:8080 MODEL=HuggingFaceH4/zephyr-7b-beta \
 *     npx tsx examples/react-json-agent.ts "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"
 */
import { pathToFileURL } from 'node:url'
import { gatewayChatModel } from './gateway-model.js'
import type { AgentAction, AgentFinish, AgentStep } from '@langchain/core/agents'
import { BaseOutputParser, OutputParserException } from '@langchain/core/output_parsers'
import { ChatPromptTemplate } from '@langchain/core/prompts'
import { tool } from '@langchain/core/tools'
import { z } from 'zod'
import { evaluateExpression } from './calculator.js'
import { gatewayBaseURL } from './cli.js'
import { closeSearch, searchFromEnvironment, type SearchFunction } from './search.js'

/**
 * `hwchase17/react-json` from the LangChain Hub, inlined (no network): its system message
 * (LangChain's chat-agent prefix, format instructions and suffix; `{{`/`}}` are literal
 * braces in the f-string template) and its human message.
 */
export const REACT_JSON_SYSTEM_TEMPLATE = `Answer the following questions as best you can. You have access to the following tools:

{tools}

The way you use the tools is by specifying a json blob.
Specifically, this json should have a \`action\` key (with the name of the tool to use) and a \`action_input\` key (with the input to the tool going here).

The only values that should be in the "action" field are: {tool_names}

The $JSON_BLOB should only contain a SINGLE action, do NOT return a list of multiple actions. Here is an example of a valid $JSON_BLOB:

\`\`\`
{{
  "action": $TOOL_NAME,
  "action_input": $INPUT
}}
\`\`\`

ALWAYS use the following format:

Question: the input question you must answer
Thought: you should always think about what to do
Action:
\`\`\`
$JSON_BLOB
\`\`\`
Observation: the result of the action
... (this Thought/Action/Observation can repeat N times)
Thought: I now know the final answer
Final Answer: the final answer to the original input question

Begin! Reminder to always use the exact characters \`Final Answer\` when responding.`

export const REACT_JSON_HUMAN_TEMPLATE = '{input}\n\n{agent_scratchpad}'

export const REACT_JSON_PROMPT = ChatPromptTemplate.fromMessages([
  ['system', REACT_JSON_SYSTEM_TEMPLATE],
  ['human', REACT_JSON_HUMAN_TEMPLATE]
])

/** The stop that keeps the model from writing the tool's result itself. */
export const OBSERVATION_STOP = '\nObservation'

const FINAL_ANSWER_ACTION = 'Final Answer:'

/**
 * LangChain's `ReActJsonSingleInputOutputParser`: the first ```json blob``` holding an
 * `action` is the action; otherwise the text after the last "Final Answer:" is the answer.
 * A reply holding both is read, as LangChain reads it, as a final answer: that is what a
 * model that ran on past its action writes (an invented observation, then an invented
 * answer), so without the "\nObservation" stop the agent would answer without ever
 * calling a tool.
 */
export class ReActJsonOutputParser extends BaseOutputParser<AgentAction | AgentFinish> {
  lc_namespace = ['hf_chat_gateway', 'examples', 'react_json']

  async parse (text: string): Promise<AgentAction | AgentFinish> {
    const includesAnswer = text.includes(FINAL_ANSWER_ACTION)
    const blob = /^.*?`{3}(?:json)?\n?(.*?)`{3}.*?$/s.exec(text)?.[1]
    let response: unknown
    try {
      response = blob === undefined ? undefined : JSON.parse(blob.trim())
    } catch {
      response = undefined
    }
    if (!includesAnswer && typeof response === 'object' && response !== null && 'action' in response) {
      const { action, action_input: actionInput } = response as { action: unknown, action_input?: unknown }
      return { tool: String(action), toolInput: (actionInput ?? {}) as string | Record<string, unknown>, log: text }
    }
    if (!includesAnswer) throw new OutputParserException(`Could not parse LLM output: ${text}`, text)
    return { returnValues: { output: text.split(FINAL_ANSWER_ACTION).at(-1)!.trim() }, log: text }
  }

  getFormatInstructions (): string {
    return REACT_JSON_SYSTEM_TEMPLATE
  }
}

/** LangChain's `format_log_to_str`: each action's text, then its observation, then "Thought: ". */
export function formatLogToString (steps: AgentStep[]): string {
  return steps.map((step) => `${step.action.log}\nObservation: ${step.observation}\nThought: `).join('')
}

/** The search and calculator tools, named and described as LangChain's SerpAPI and Calculator tools. */
export function reactJsonTools (search: SearchFunction) {
  return [
    tool(async (query: string) => await search(query), {
      name: 'search',
      description: 'a search engine. useful for when you need to answer questions about current events. input should be a search query.',
      schema: z.string()
    }),
    tool((expression: string) => String(evaluateExpression(expression)), {
      name: 'calculator',
      description: 'Useful for getting the result of a math expression. The input to this tool should be a valid mathematical expression that could be executed by a simple calculator.',
      schema: z.string()
    })
  ]
}

export interface ReactJsonAgentOptions {
  /** The gateway's OpenAI base URL, e.g. http://127.0.0.1:8080/v1 */
  baseURL: string
  /** A model id the gateway serves, e.g. HuggingFaceH4/zephyr-7b-beta */
  model: string
  /** The gateway's API key (any string when GATEWAY_API_KEYS is unset). */
  apiKey?: string
  question: string
  search: SearchFunction
  /** LangChain's AgentExecutor default is 15. */
  maxIterations?: number
  /** Default 512. */
  maxTokens?: number
  /** Default [OBSERVATION_STOP]; only a test would change it. */
  stop?: string[]
}

export interface ReactJsonAgentStep {
  tool: string
  input: string
  observation: string
}

export interface ReactJsonAgentResult {
  answer: string
  steps: ReactJsonAgentStep[]
}

export async function runReactJsonAgent (options: ReactJsonAgentOptions): Promise<ReactJsonAgentResult> {
  const tools = reactJsonTools(options.search)
  const prompt = await REACT_JSON_PROMPT.partial({
    tools: tools.map((each) => `${each.name}: ${each.description}`).join('\n'),
    tool_names: tools.map((each) => each.name).join(', ')
  })
  const stop = options.stop ?? [OBSERVATION_STOP]
  const model = gatewayChatModel(options).withConfig(stop.length > 0 ? { stop } : {})
  const agent = prompt.pipe(model).pipe(new ReActJsonOutputParser())

  const intermediateSteps: AgentStep[] = []
  const steps: ReactJsonAgentStep[] = []
  for (let iteration = 0; iteration < (options.maxIterations ?? 15); iteration++) {
    const decision = await agent.invoke({ input: options.question, agent_scratchpad: formatLogToString(intermediateSteps) })
    if ('returnValues' in decision) return { answer: String(decision.returnValues.output), steps }
    const input = typeof decision.toolInput === 'string' ? decision.toolInput : JSON.stringify(decision.toolInput)
    const chosen = tools.find((each) => each.name === decision.tool)
    let observation: string
    if (chosen === undefined) {
      observation = `${decision.tool} is not a valid tool, try one of [${tools.map((each) => each.name).join(', ')}].`
    } else {
      try {
        observation = String(await chosen.invoke(input))
      } catch (error) {
        observation = `Error: ${error instanceof Error ? error.message : String(error)}`
      }
    }
    intermediateSteps.push({ action: decision, observation })
    steps.push({ tool: decision.tool, input, observation })
  }
  throw new Error(`Agent stopped after ${options.maxIterations ?? 15} iterations without a final answer`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const question = process.argv.slice(2).join(' ') || "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"
  try {
    const result = await runReactJsonAgent({
      baseURL: gatewayBaseURL(),
      model: process.env.MODEL ?? 'HuggingFaceH4/zephyr-7b-beta',
      apiKey: process.env.GATEWAY_API_KEY,
      question,
      search: searchFromEnvironment()
    })
    for (const step of result.steps) console.log(`${step.tool}(${JSON.stringify(step.input)}) → ${step.observation}`)
    console.log(result.answer)
  } finally {
    closeSearch()
  }
}
