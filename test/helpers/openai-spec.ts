/**
 * Validates gateway output against OpenAI's own OpenAPI document
 * (shared/specs/openai-openapi.yaml), so shapes cannot drift from the real API.
 * Without the corpus (a fresh clone) the same calls check the gateway's own
 * response schemas (src/openai/schemas.ts) instead, strictly: weaker than
 * OpenAI's document, but a wrong type, a missing field or an extra one still fails.
 */
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { z } from 'zod'
import { chatCompletionChunkSchema, chatCompletionSchema, errorBodySchema, modelListSchema, modelObjectSchema } from '../../src/openai/schemas.js'
import { SHARED, hasCorpus } from './corpus.js'

const SPEC_PATH = 'specs/openai-openapi.yaml'
export const HAS_OPENAI_SPEC = hasCorpus(SPEC_PATH)
const spec = HAS_OPENAI_SPEC ? parse(readFileSync(new URL(SPEC_PATH, SHARED), 'utf8')) : { components: {} }

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

/** Deeply strict copies of the gateway's own schemas: unknown keys fail, as `additionalProperties: false` would. */
function strict (schema: z.ZodType): (value: unknown) => string | undefined {
  const validate = ownAjv.compile(noExtraKeys(z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any', target: 'draft-2020-12' })))
  return (value) => validate(value) ? undefined : ownAjv.errorsText(validate.errors)
}
function noExtraKeys (node: unknown): any {
  if (Array.isArray(node)) return node.map(noExtraKeys)
  if (node === null || typeof node !== 'object') return node
  const converted: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) converted[key] = noExtraKeys(value)
  if (converted.type === 'object' && converted.properties !== undefined && converted.additionalProperties === undefined) converted.additionalProperties = false
  return converted
}
const ownAjv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
const OWN_SCHEMAS: Record<OpenAISchemaName, z.ZodType> = {
  CreateChatCompletionResponse: chatCompletionSchema,
  CreateChatCompletionStreamResponse: chatCompletionChunkSchema,
  ListModelsResponse: modelListSchema,
  Model: modelObjectSchema,
  ErrorResponse: errorBodySchema
}
/** Compiled on first use, once per schema. */
const ownValidators = new Map<OpenAISchemaName, (value: unknown) => string | undefined>()
function ownValidator (name: OpenAISchemaName): (value: unknown) => string | undefined {
  let validate = ownValidators.get(name)
  if (validate === undefined) {
    validate = strict(OWN_SCHEMAS[name])
    ownValidators.set(name, validate)
  }
  return validate
}

/** Throws with ajv's errors when `value` does not match the named OpenAI schema. */
export function assertMatchesOpenAI (name: OpenAISchemaName, value: unknown): void {
  if (!HAS_OPENAI_SPEC) {
    const problem = ownValidator(name)(value)
    if (problem !== undefined) throw new Error(`does not match the gateway's own ${name} schema (OpenAI's spec is not present): ${problem}\n${JSON.stringify(value)}`)
    return
  }
  const validate = ajv.getSchema(`openai#/components/schemas/${name}`)
  if (validate === undefined) throw new Error(`no schema ${name}`)
  if (!validate(value)) {
    throw new Error(`does not match OpenAI ${name}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`)
  }
}
