/**
 * A tool-calling agent for open models that were trained to call tools (Qwen2.5,
 * Hermes, Llama 3.1, Mistral, ...): LangChain's `ChatOpenAI(...).bindTools([...])`
 * sends OpenAI `tools`; the gateway renders them with the model's own chat template,
 * reads the model's calls back (for Qwen2.5, `<tool_call>{...}</tool_call>`) as
 * OpenAI `tool_calls`, and renders each `tool` message the way the template does.
 * The loop: call the model; run every tool it asks for; append the results as tool
 * messages; repeat until it answers in text. `runToolCallingAgent` writes that loop
 * out; `runCreateAgent` hands the same model and tools to LangChain v1's `createAgent`.
 *
 *   GATEWAY_URL=http://127.0.0.1:8080 MODEL=Qwen/Qwen2.5-7B-Instruct \
 *     npx tsx examples/tool-calling-agent.ts "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"
 */
import { pathToFileURL } from 'node:url'
import { gatewayChatModel } from './gateway-model.js'
import { createAgent } from 'langchain'
import { AIMessage, HumanMessage, SystemMessage, ToolMessage, type AIMessageChunk, type BaseMessage } from '@langchain/core/messages'
import { tool, type StructuredToolInterface } from '@langchain/core/tools'
import { z } from 'zod'
import { evaluateExpression } from './calculator.js'
import { gatewayBaseURL } from './cli.js'
import { closeSearch, searchFromEnvironment, type SearchFunction } from './search.js'

export function toolCallingTools (search: SearchFunction): StructuredToolInterface[] {
  const searchTool = tool(async ({ query }) => await search(query), {
    name: 'search',
    description: 'A search engine. Useful for when you need to answer questions about current events.',
    schema: z.object({ query: z.string().describe('The search query') })
  })
  const calculatorTool = tool(({ expression }) => String(evaluateExpression(expression)), {
    name: 'calculator',
    description: 'Evaluates an arithmetic expression: + - * / %, ^ or ** for powers, parentheses.',
    schema: z.object({ expression: z.string().describe('The expression, e.g. 25^0.43') })
  })
  return [searchTool, calculatorTool]
}

export interface ToolCallingAgentOptions {
  /** The gateway's OpenAI base URL, e.g. http://127.0.0.1:8080/v1 */
  baseURL: string
  /** A model id the gateway serves, e.g. Qwen/Qwen2.5-7B-Instruct */
  model: string
  /** The gateway's API key (any string when GATEWAY_API_KEYS is unset). */
  apiKey?: string
  question: string
  search: SearchFunction
  /** An optional system message (else the template's default, e.g. Qwen's). */
  system?: string
  /** Stream each answer (the calls then arrive as `delta.tool_calls`). Default false. */
  streaming?: boolean
  /** Model calls before giving up; default 10. */
  maxIterations?: number
  /** Default 512. */
  maxTokens?: number
}

export interface ToolCallingAgentStep {
  tool: string
  input: Record<string, unknown>
  observation: string
}

export interface ToolCallingAgentResult {
  answer: string
  steps: ToolCallingAgentStep[]
  /** The whole conversation, tool calls and tool messages included. */
  messages: BaseMessage[]
}

export async function runToolCallingAgent (options: ToolCallingAgentOptions): Promise<ToolCallingAgentResult> {
  const tools = toolCallingTools(options.search)
  const model = gatewayChatModel(options).bindTools(tools)
  // Streaming goes through model.stream() and merges the chunks: invoke() with
  // `streaming: true` would also estimate token counts with tiktoken, which
  // downloads its encoding from the network.
  const ask = async (messages: BaseMessage[]): Promise<AIMessage | AIMessageChunk> => {
    if (options.streaming !== true) return await model.invoke(messages)
    let merged: AIMessageChunk | undefined
    for await (const chunk of await model.stream(messages)) merged = merged === undefined ? chunk : merged.concat(chunk)
    if (merged === undefined) throw new Error('the stream ended without a chunk')
    return merged
  }

  const messages: BaseMessage[] = []
  if (options.system !== undefined) messages.push(new SystemMessage(options.system))
  messages.push(new HumanMessage(options.question))
  const steps: ToolCallingAgentStep[] = []
  const maxIterations = options.maxIterations ?? 10
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    const reply = await ask(messages)
    messages.push(reply)
    const calls = reply.tool_calls ?? []
    if (calls.length === 0) return { answer: reply.text, steps, messages }
    for (const call of calls) {
      const chosen = tools.find((each) => each.name === call.name)
      let observation: string
      try {
        if (chosen === undefined) throw new Error(`${call.name} is not a valid tool, try one of [${tools.map((each) => each.name).join(', ')}].`)
        // Given the whole call, a LangChain tool answers with a ToolMessage for it.
        const result: unknown = await chosen.invoke({ ...call, type: 'tool_call' })
        observation = result instanceof ToolMessage ? result.text : String(result)
      } catch (error) {
        observation = `Error: ${error instanceof Error ? error.message : String(error)}`
      }
      messages.push(new ToolMessage({ content: observation, tool_call_id: call.id ?? '', name: call.name }))
      steps.push({ tool: call.name, input: call.args, observation })
    }
  }
  throw new Error(`Agent stopped after ${maxIterations} model calls without a final answer`)
}

/** The steps of a finished conversation: each tool call with the tool message answering it. */
export function stepsOf (messages: BaseMessage[]): ToolCallingAgentStep[] {
  const results = new Map<string, string>()
  for (const message of messages) if (ToolMessage.isInstance(message)) results.set(message.tool_call_id, message.text)
  return messages.flatMap((message) => AIMessage.isInstance(message)
    ? (message.tool_calls ?? []).map((call) => ({ tool: call.name, input: call.args, observation: results.get(call.id ?? '') ?? '' }))
    : [])
}

/** The same agent built by LangChain v1's `createAgent` (a LangGraph ReAct loop). */
export async function runCreateAgent (options: Omit<ToolCallingAgentOptions, 'streaming' | 'maxIterations'>): Promise<ToolCallingAgentResult> {
  const agent = createAgent({
    model: gatewayChatModel(options),
    tools: toolCallingTools(options.search),
    ...(options.system === undefined ? {} : { systemPrompt: options.system })
  })
  const state = await agent.invoke({ messages: [new HumanMessage(options.question)] })
  const messages: BaseMessage[] = state.messages
  const last = messages.at(-1)
  return { answer: last?.text ?? '', steps: stepsOf(messages), messages }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const question = process.argv.slice(2).join(' ') || "Who is Leo DiCaprio's girlfriend? What is her current age raised to the 0.43 power?"
  try {
    const options = {
      baseURL: gatewayBaseURL(),
      model: process.env.MODEL ?? 'Qwen/Qwen2.5-7B-Instruct',
      apiKey: process.env.GATEWAY_API_KEY,
      question,
      search: searchFromEnvironment(),
      streaming: process.env.STREAM === '1'
    }
    const result = process.env.AGENT === 'createAgent' ? await runCreateAgent(options) : await runToolCallingAgent(options)
    for (const step of result.steps) console.log(`${step.tool}(${JSON.stringify(step.input)}) → ${step.observation}`)
    console.log(result.answer)
  } finally {
    closeSearch()
  }
}
