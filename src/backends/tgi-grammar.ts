/**
 * Grammars TGI accepts. TGI's router (validation.rs) refuses a `json` grammar
 * whose schema has no root `properties` ("Grammar must have a 'properties'
 * field"), and outlines, which turns the schema into a regex, reads only
 * `properties` at such a root (`additionalProperties` is ignored there), so
 * `{type: "object", properties: {}}` would allow nothing but `{}`. Hence:
 * - json_object (any JSON object) is a `regex` grammar for a JSON object nested
 *   JSON_OBJECT_DEPTH levels below it (a regular language; deeper nesting is
 *   outside it, the price of a grammar TGI can run);
 * - a json_schema whose root has no `properties` cannot be expressed: 400.
 */
import { invalidRequest } from '../errors.js'
import type { StructuredOutput } from './structured-output.js'

export type TgiGrammar = { type: 'json', value: Record<string, unknown> } | { type: 'regex', value: string }

/**
 * Containers nested inside a json_object answer's object: 2 admits
 * `{"items": [{"a": 1}]}` (two levels below the root) and keeps the regex
 * near 8 KB; each level multiplies it by about four, and TGI compiles it into
 * an automaton per distinct grammar.
 */
export const JSON_OBJECT_DEPTH = 2

// outlines' defaults: one optional space between tokens; JSON strings and numbers.
const WS = '[ ]?'
const STRING = '"(?:[^"\\\\\\x00-\\x1F\\x7F-\\x9F]|\\\\["\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4})*"'
const NUMBER = '-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
const SCALAR = `${STRING}|${NUMBER}|true|false|null`

function jsonValue (depth: number): string {
  if (depth === 0) return `(?:${SCALAR})`
  return `(?:${SCALAR}|${jsonObject(depth - 1)}|${jsonArray(depth - 1)})`
}

function jsonObject (depth: number): string {
  const member = `${STRING}${WS}:${WS}${jsonValue(depth)}`
  return `\\{${WS}(?:${member}(?:${WS},${WS}${member})*)?${WS}\\}`
}

function jsonArray (depth: number): string {
  const item = jsonValue(depth)
  return `\\[${WS}(?:${item}(?:${WS},${WS}${item})*)?${WS}\\]`
}

/** A regex for one JSON object, nested up to JSON_OBJECT_DEPTH levels (built once). */
export const JSON_OBJECT_REGEX = jsonObject(JSON_OBJECT_DEPTH)

/**
 * The TGI dialect of structured output. A response_format json_schema whose
 * root has no `properties` cannot be expressed: 400 before anything is sent.
 */
export function tgiGrammar (output: StructuredOutput): TgiGrammar {
  if (output.type === 'json_object') return { type: 'regex', value: JSON_OBJECT_REGEX }
  if (!('properties' in output.schema)) {
    throw invalidRequest("response_format.json_schema.schema needs a root object with `properties`: TGI's grammar cannot constrain any other root (use {\"type\": \"object\", \"properties\": {...}}, or response_format json_object)", 'response_format', 'unsupported_schema')
  }
  return { type: 'json', value: output.schema }
}
