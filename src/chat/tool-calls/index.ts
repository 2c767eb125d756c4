/**
 * Tool calls that open models write as text, as OpenAI `tool_calls`, whole or
 * streamed. Reasoning (<think>) is split off first, by ./reasoning.ts.
 */
import { parserFor } from './engine.js'
import { GRAMMARS } from './formats.js'
import type { ToolCallParser, ToolCallParserOptions } from './types.js'

export type { ParsedOutput, ParsedToolCall, TemplateSource, ToolCallParser, ToolCallParserOptions, ToolCallStream, ToolStreamEvent } from './types.js'
export { detectToolCallParser } from './detect.js'
export { newMistralToolCallId, newToolCallId } from './ids.js'
export { ReasoningStream, detectReasoning, splitReasoning } from './reasoning.js'
export type { ReasoningOptions, ReasoningSplit } from './reasoning.js'

export const TOOL_CALL_PARSER_NAMES: readonly string[] = GRAMMARS.map((grammar) => grammar.name)

export function createToolCallParser (name: string, options: ToolCallParserOptions = {}): ToolCallParser {
  const grammar = GRAMMARS.find((candidate) => candidate.name === name)
  if (grammar === undefined) throw new RangeError(`Unknown tool call parser '${name}' (known: ${TOOL_CALL_PARSER_NAMES.join(', ')})`)
  return parserFor(grammar, options.newId)
}
