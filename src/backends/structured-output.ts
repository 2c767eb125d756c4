/**
 * Constrained generation, said once for every engine: the chat layer asks for
 * "any JSON object" or "JSON matching this schema" (a response_format, or the
 * call object of a forced tool call); each backend's dialect turns that into its
 * engine's field (TGI `grammar`, vLLM `structured_outputs`, SGLang and llama.cpp
 * `json_schema`) and refuses what its engine cannot express.
 */

export type StructuredOutput =
  | { type: 'json_object' }
  | { type: 'json_schema', schema: Record<string, unknown>, origin: 'response_format' | 'tool_call' }

/** Calls of any of the given tools: `{name, arguments}` (the pairing of name and arguments is not enforced). */
export function toolCallOutput (tools: ReadonlyArray<{ name: string, parameters: Record<string, unknown> | undefined }>): StructuredOutput {
  const parameters = tools.map((tool) => tool.parameters ?? { type: 'object' })
  return {
    type: 'json_schema',
    origin: 'tool_call',
    schema: {
      type: 'object',
      properties: {
        name: { type: 'string', enum: tools.map((tool) => tool.name) },
        arguments: parameters.length === 1 ? parameters[0] : { anyOf: parameters }
      },
      required: ['name', 'arguments']
    }
  }
}
