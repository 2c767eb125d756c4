/**
 * Validates gateway output against OpenAI's own OpenAPI document
 * (shared/specs/openai-openapi.yaml), so shapes cannot drift from the real API.
 */
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { SHARED } from './paths.js'

const spec = parse(readFileSync(new URL('specs/openai-openapi.yaml', SHARED), 'utf8'))

/** OpenAPI 3.0's `nullable: true` (still used in places of the 3.1 document) as JSON Schema. */
function convertNullable (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(convertNullable)
  if (node === null || typeof node !== 'object') return node
  const converted: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) converted[key] = convertNullable(value)
  if (converted.nullable !== true) return converted
  delete converted.nullable
  if (typeof converted.type === 'string') {
    converted.type = [converted.type, 'null']
    if (Array.isArray(converted.enum)) converted.enum = [...converted.enum, null]
    return converted
  }
  return { anyOf: [converted, { type: 'null' }] }
}
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
ajv.addSchema({ $id: 'openai', components: convertNullable(spec.components) })

export type OpenAISchemaName = 'CreateChatCompletionResponse' | 'CreateChatCompletionStreamResponse' | 'ListModelsResponse' | 'Model' | 'ErrorResponse'

/** Throws with ajv's errors when `value` does not match the named OpenAI schema. */
export function assertMatchesOpenAI (name: OpenAISchemaName, value: unknown): void {
  const validate = ajv.getSchema(`openai#/components/schemas/${name}`)
  if (validate === undefined) throw new Error(`no schema ${name}`)
  if (!validate(value)) {
    throw new Error(`does not match OpenAI ${name}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`)
  }
}
