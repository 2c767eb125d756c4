/**
 * How each model family writes tool calls. Read against the chat templates in
 * shared/chat-templates/models and vLLM's tool parsers of the same names.
 */
import { argumentsJson, callsFromJson, parseJsonLeniently, type CallShape } from './json.js'
import { INCOMPLETE, callsResult, markerAt, scanJsonAt, skipWhitespace, textResult } from './engine.js'
import type { Grammar, ScanContext, ScanResult } from './engine.js'
import { newMistralToolCallId, newToolCallId } from './ids.js'

const ARGUMENTS_OR_PARAMETERS: CallShape = { argumentKeys: ['arguments', 'parameters'], requireArguments: false }

/**
 * The call(s) in the JSON object or list at `start`; when it is not one,
 * `notACall` characters of markup are released as text and scanning goes on
 * after them.
 */
function jsonCallsAt (text: string, start: number, context: ScanContext, shape: CallShape, notACall: number): ScanResult {
  const json = scanJsonAt(text, start, context.memo)
  if (json.state === 'incomplete') return context.final ? textResult(notACall) : INCOMPLETE
  if (json.state === 'invalid') return textResult(notACall)
  context.memo.calls ??= { value: callsFromJson(text.slice(start, json.end), shape) }
  const calls = context.memo.calls.value
  return calls === undefined ? textResult(notACall) : callsResult(calls, json.end)
}

/** After a marker: the index of the first non-whitespace, or undefined while only whitespace has come. */
function afterMarker (text: string, markerLength: number): number | undefined {
  const index = skipWhitespace(text, markerLength)
  return index < text.length ? index : undefined
}

const TOOL_CALL = '<tool_call>'
const TOOL_CALL_END = '</tool_call>'

/**
 * Hermes 2/3, Qwen2.5, Qwen3, QwQ, SmolLM3: `<tool_call>\n{"name": "f",
 * "arguments": {...}}\n</tool_call>`, one block per call, text possibly before.
 * A block whose closing tag never comes (generation stopped, or the model went
 * straight on) still counts once its JSON is complete.
 */
export const hermes: Grammar = {
  name: 'hermes',
  // Qwen2.5 sometimes puts a second call's JSON in the same block, right after the first.
  openings: [{ marker: TOOL_CALL, where: 'anywhere' }, { marker: '{', where: 'after-call' }],
  newId: newToolCallId,
  scan (text, context) {
    const lead = text.startsWith(TOOL_CALL) ? TOOL_CALL.length : 0
    const notACall = Math.max(lead, 1)
    const start = afterMarker(text, lead)
    if (start === undefined) return context.final ? textResult(notACall) : INCOMPLETE
    if (text[start] !== '{') return textResult(notACall)
    const call = jsonCallsAt(text, start, context, ARGUMENTS_OR_PARAMETERS, notACall)
    if (call.kind !== 'calls') return call
    const close = skipWhitespace(text, call.length)
    const closing = markerAt(text, close, TOOL_CALL_END)
    if (closing === 'yes') return callsResult(call.calls, close + TOOL_CALL_END.length)
    if (closing === 'partial') return context.final ? callsResult(call.calls, text.length) : INCOMPLETE
    return call
  }
}

const PYTHON_TAG = '<|python_tag|>'

/**
 * Llama 3.1-3.3 (and Nemotron on Llama 3.1): the whole reply is `{"name": "f",
 * "parameters": {...}}` ("arguments" too), sometimes after `<|python_tag|>`,
 * several joined by "; ". Only a reply that starts so is a call; a JSON object
 * needs its "parameters"/"arguments" to count, so a JSON answer with a "name"
 * field stays an answer.
 */
export const llama3Json: Grammar = {
  name: 'llama3_json',
  openings: [
    { marker: '{', where: 'start' },
    { marker: PYTHON_TAG, where: 'start' },
    { marker: ';', where: 'after-call' },
    { marker: '{', where: 'after-call' }
  ],
  newId: newToolCallId,
  scan (text, context) {
    const lead = text.startsWith(PYTHON_TAG) ? PYTHON_TAG.length : text.startsWith(';') ? 1 : 0
    const start = afterMarker(text, lead)
    if (start === undefined) return context.final ? textResult(lead) : INCOMPLETE
    // <|python_tag|> before anything but JSON is a built-in tool call (brave_search.call(...)): not supported, so text.
    if (text[start] !== '{') return textResult(Math.max(lead, 1))
    return jsonCallsAt(text, start, context, { argumentKeys: ['parameters', 'arguments'], requireArguments: true }, Math.max(lead, 1))
  }
}

const TOOL_CALLS = '[TOOL_CALLS]'
const ARGS = '[ARGS]'
const CALL_ID = '[CALL_ID]'

/**
 * Mistral's name-form call after [TOOL_CALLS]: `f[ARGS]{...}`,
 * `f[CALL_ID]abc123XYZ[ARGS]{...}` (how Small 3.2's template writes calls back,
 * so the model may too), or `f{...}` (tokenizer v11 with [ARGS] decoded away).
 * The template writes string arguments as a JSON string, so that is accepted too.
 */
function mistralNamedCall (text: string, start: number, context: ScanContext): ScanResult {
  const notACall = textResult(TOOL_CALLS.length)
  let index = start
  while (index < text.length && /[\w.-]/.test(text[index]!)) index++
  if (index === text.length) return context.final ? notACall : INCOMPLETE
  const name = text.slice(start, index)
  if (name === '') return notACall
  for (const marker of [CALL_ID, ARGS]) {
    const found = markerAt(text, index, marker)
    if (found === 'partial') return context.final ? notACall : INCOMPLETE
    if (found === 'no') continue
    index += marker.length
    if (marker === CALL_ID) {
      while (index < text.length && /[A-Za-z0-9]/.test(text[index]!)) index++
      if (index === text.length) return context.final ? notACall : INCOMPLETE
    }
  }
  index = skipWhitespace(text, index)
  if (index === text.length) return context.final ? notACall : INCOMPLETE
  if (text[index] !== '{' && text[index] !== '"') return notACall
  const json = scanJsonAt(text, index, context.memo)
  if (json.state === 'incomplete') return context.final ? notACall : INCOMPLETE
  if (json.state === 'invalid') return notACall
  const parsed = parseJsonLeniently(text.slice(index, json.end))
  const args = parsed.ok ? argumentsJson(parsed.value) : undefined
  return args === undefined ? notACall : callsResult([{ name, arguments: args }], json.end)
}

/**
 * Mistral 7B v0.3 and Nemo: `[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]`
 * (sometimes with an "id", which is ignored: the gateway makes its own); Small
 * 3.2, Magistral, Devstral: `[TOOL_CALLS]f[ARGS]{...}`, repeated per call. A reply
 * that is just the list is taken as calls too, for backends that decode
 * [TOOL_CALLS] (a control token) away.
 */
export const mistral: Grammar = {
  name: 'mistral',
  openings: [{ marker: TOOL_CALLS, where: 'anywhere' }, { marker: '[', where: 'start' }],
  newId: newMistralToolCallId,
  scan (text, context) {
    if (text.startsWith(TOOL_CALLS)) {
      const start = afterMarker(text, TOOL_CALLS.length)
      if (start === undefined) return context.final ? textResult(TOOL_CALLS.length) : INCOMPLETE
      if (text[start] === '[' || text[start] === '{') return jsonCallsAt(text, start, context, ARGUMENTS_OR_PARAMETERS, TOOL_CALLS.length)
      return mistralNamedCall(text, start, context)
    }
    return bareCallList(text, context)
  }
}

/** A reply that starts with `[{`: a list of calls whose marker the backend did not keep. */
function bareCallList (text: string, context: ScanContext): ScanResult {
  const first = afterMarker(text, 1)
  if (first === undefined) return context.final ? textResult(1) : INCOMPLETE
  if (text[first] !== '{') return textResult(1)
  return jsonCallsAt(text, 0, context, ARGUMENTS_OR_PARAMETERS, 1)
}

const GRANITE_TOOL_CALL = '<|tool_call|>'

/**
 * Granite 3.x: `<|tool_call|>[{"name": "f", "arguments": {...}}]`; Granite 3.1
 * sometimes writes the string `<tool_call>` instead of the special token, and
 * like vLLM a reply that is just the list counts.
 */
export const granite: Grammar = {
  name: 'granite',
  openings: [
    { marker: GRANITE_TOOL_CALL, where: 'anywhere' },
    { marker: TOOL_CALL, where: 'start' },
    { marker: '[', where: 'start' }
  ],
  newId: newToolCallId,
  scan (text, context) {
    const marker = [GRANITE_TOOL_CALL, TOOL_CALL].find((candidate) => text.startsWith(candidate))
    if (marker === undefined) return bareCallList(text, context)
    const start = afterMarker(text, marker.length)
    if (start === undefined) return context.final ? textResult(marker.length) : INCOMPLETE
    if (text[start] !== '[' && text[start] !== '{') return textResult(marker.length)
    return jsonCallsAt(text, start, context, ARGUMENTS_OR_PARAMETERS, marker.length)
  }
}

const CALLS_BEGIN = '<｜tool▁calls▁begin｜>'
const CALLS_END = '<｜tool▁calls▁end｜>'
const CALL_BEGIN = '<｜tool▁call▁begin｜>'
const CALL_END = '<｜tool▁call▁end｜>'
const SEPARATOR = '<｜tool▁sep｜>'
// V3 / R1: the type, then the name on the separator's line, then fenced JSON.
// The closing fence is optional for a call cut off by the end of generation.
const FENCED_ARGUMENTS = /^([^\n`]*)\n```[A-Za-z]*\n([\s\S]*?)(?:\n?```)?\s*$/

/** One call's text between call-begin and call-end, in either DeepSeek layout. */
function deepSeekCall (body: string): { name: string, arguments: string } | undefined {
  const separator = body.indexOf(SEPARATOR)
  if (separator < 0) return undefined
  const head = body.slice(0, separator)
  const tail = body.slice(separator + SEPARATOR.length)
  const fenced = FENCED_ARGUMENTS.exec(tail)
  // V3.1: `f<｜tool▁sep｜>{...}`, the name before the separator and bare JSON after.
  const [name, rawArguments] = fenced !== null ? [fenced[1]!.trim(), fenced[2]!] : [head.trim(), tail]
  if (name === '' || /\s/.test(name)) return undefined
  const args = argumentsJson(rawArguments)
  return args === undefined ? undefined : { name, arguments: args }
}

/**
 * DeepSeek V3 and R1: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f
 * \n```json\n{...}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>`; V3.1 drops the
 * type and the fence: `<｜tool▁call▁begin｜>f<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`.
 * Each call is emitted as soon as its call-end arrives.
 */
export const deepSeekV3: Grammar = {
  name: 'deepseek_v3',
  openings: [
    { marker: CALLS_BEGIN, where: 'anywhere' },
    { marker: CALL_BEGIN, where: 'after-call' },
    { marker: CALLS_END, where: 'after-call' }
  ],
  newId: newToolCallId,
  scan (text, context) {
    if (text.startsWith(CALLS_END)) return callsResult([], CALLS_END.length)
    let callStart = 0
    let notACall = CALL_BEGIN.length
    if (text.startsWith(CALLS_BEGIN)) {
      notACall = CALLS_BEGIN.length
      callStart = skipWhitespace(text, CALLS_BEGIN.length)
      const begin = markerAt(text, callStart, CALL_BEGIN)
      if (begin === 'partial') return context.final ? textResult(notACall) : INCOMPLETE
      if (begin === 'no') {
        const end = markerAt(text, callStart, CALLS_END)
        if (end === 'yes') return callsResult([], callStart + CALLS_END.length)
        return end === 'partial' && !context.final ? INCOMPLETE : textResult(notACall)
      }
    }
    const bodyStart = callStart + CALL_BEGIN.length
    const end = text.indexOf(CALL_END, bodyStart)
    if (end < 0 && !context.final) {
      context.memo.marker = CALL_END
      return INCOMPLETE
    }
    const body = end < 0 ? text.slice(bodyStart).replace(CALLS_END, '') : text.slice(bodyStart, end)
    const call = deepSeekCall(body)
    if (call === undefined) return textResult(notACall)
    return callsResult([call], end < 0 ? text.length : end + CALL_END.length)
  }
}

export const GRAMMARS: readonly Grammar[] = [hermes, llama3Json, mistral, granite, deepSeekV3]
