/**
 * How a request's `tools`, `tool_choice` and `response_format` shape the prompt,
 * the generation and the parsing of the answer:
 * - tools are rendered by the model's own template when it supports them; for a
 *   template without tool support a generic tool prompt is injected (below)
 *   and the answer is read with the Hermes parser;
 * - `tool_choice: "required"` or a named function, and `response_format`
 *   `json_object` / `json_schema`, constrain generation (structured-output.ts;
 *   each backend maps it to its engine's field), so the answer is a valid call
 *   or valid JSON; backends without constrained generation answer 400;
 * - `tool_choice: "none"` renders no tools and parses no calls.
 */
import type { ChatCompletionRequest } from '../openai/schemas.js'
import type { TemplateMessage } from './messages.js'
import { invalidRequest } from '../errors.js'
import { toolCallOutput, type StructuredOutput } from '../backends/structured-output.js'
import { createToolCallParser, detectToolCallParser } from './tool-calls/index.js'
import type { AnswerPlan } from './answer-parser.js'

export type Grammar = StructuredOutput

export interface ToolPlan {
  /** Tools handed to the template (null: none). */
  templateTools: unknown[] | null
  /** The template has no tool support: inject the generic tool prompt. */
  genericPrompt: boolean
  grammar?: Grammar
  answer: Pick<AnswerPlan, 'toolParser' | 'forcedCall'>
  /** parallel_tool_calls: false keeps only the first call. */
  singleCall: boolean
}

type Tool = NonNullable<ChatCompletionRequest['tools']>[number]

export function planTools (request: ChatCompletionRequest, options: { templateSupportsTools: boolean, templateSource: string, configuredParser?: string, supportsGrammar: boolean, backendKind: string }): ToolPlan {
  const tools = request.tools ?? []
  const choice = request.tool_choice ?? (tools.length > 0 ? 'auto' : 'none')
  const format = request.response_format?.type ?? 'text'
  const singleCall = request.parallel_tool_calls === false
  const needsGrammar = (choice !== 'none' && choice !== 'auto') || format !== 'text'
  if (needsGrammar && !options.supportsGrammar) {
    const param = format !== 'text' ? 'response_format' : 'tool_choice'
    throw invalidRequest(`${param === 'response_format' ? `response_format ${format}` : 'tool_choice "required" or a named function'} needs constrained generation (a grammar), which the ${options.backendKind} backend does not support; use an engine backend (tgi, vllm, sglang, llamacpp), or tool_choice "auto"`, param, 'unsupported_parameter')
  }
  if (choice !== 'none' && choice !== 'auto' && tools.length === 0) throw invalidRequest('tool_choice needs tools', 'tool_choice')
  if (choice !== 'none' && format !== 'text' && tools.length > 0) {
    throw invalidRequest('response_format json cannot be combined with tools offered to the model; set tool_choice "none" or leave out response_format', 'response_format')
  }

  if (format === 'json_object') return noTools({ type: 'json_object' }, singleCall)
  if (format === 'json_schema' && request.response_format?.type === 'json_schema') {
    const schema = request.response_format.json_schema.schema
    return noTools(schema === undefined ? { type: 'json_object' } : { type: 'json_schema', schema: schema as Record<string, unknown>, origin: 'response_format' }, singleCall)
  }
  if (choice === 'none' || tools.length === 0) return noTools(undefined, singleCall)

  const templateTools = options.templateSupportsTools ? tools : null
  const genericPrompt = !options.templateSupportsTools
  if (choice === 'auto') {
    const parserName = options.configuredParser ?? (genericPrompt ? 'hermes' : detectToolCallParser(options.templateSource) ?? 'hermes')
    return { templateTools, genericPrompt, answer: { toolParser: createToolCallParser(parserName) }, singleCall }
  }
  // required, or one named function: the grammar admits exactly the calls allowed.
  const allowed = choice === 'required' ? tools : tools.filter((tool) => tool.function.name === choice.function.name)
  if (allowed.length === 0) throw invalidRequest(`tool_choice names '${choice === 'required' ? '' : choice.function.name}', which is not among the tools`, 'tool_choice')
  return {
    templateTools,
    genericPrompt,
    grammar: toolCallOutput(allowed.map((tool) => ({ name: tool.function.name, parameters: tool.function.parameters as Record<string, unknown> | undefined }))),
    answer: { forcedCall: true },
    singleCall: true
  }
}

function noTools (grammar: Grammar | undefined, singleCall: boolean): ToolPlan {
  return { templateTools: null, genericPrompt: false, grammar, answer: {}, singleCall }
}

/**
 * For templates with no tool support: the tools and the call format go into
 * the system message, earlier calls and results are written the same way.
 */
export function withGenericToolPrompt (messages: TemplateMessage[], tools: readonly Tool[]): TemplateMessage[] {
  const instructions = [
    'You can call functions. To call one or more, answer only with blocks of this form, one per call:',
    '<tool_call>',
    '{"name": "<function name>", "arguments": {<arguments as a JSON object>}}',
    '</tool_call>',
    'Function results come back in <tool_response> blocks. If no function is needed, answer normally.',
    'Functions (JSON Schema):',
    ...tools.map((tool) => JSON.stringify(tool.function))
  ].join('\n')
  const rewritten = messages.map((message): TemplateMessage => {
    if (message.role === 'tool') {
      return { role: 'user', content: `<tool_response>\n${String(message.content ?? '')}\n</tool_response>` }
    }
    if (message.role === 'assistant' && Array.isArray(message.tool_calls)) {
      const calls = (message.tool_calls as Array<{ function: { name: string, arguments: unknown } }>)
        .map((call) => `<tool_call>\n${JSON.stringify({ name: call.function.name, arguments: call.function.arguments })}\n</tool_call>`)
      const text = typeof message.content === 'string' && message.content !== '' ? `${message.content}\n` : ''
      return { role: 'assistant', content: text + calls.join('\n') }
    }
    return message
  })
  const first = rewritten[0]
  if (first?.role === 'system' && typeof first.content === 'string') {
    return [{ ...first, content: `${first.content}\n\n${instructions}` }, ...rewritten.slice(1)]
  }
  return [{ role: 'system', content: instructions }, ...rewritten]
}
