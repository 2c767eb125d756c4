/**
 * Python-jinja2 semantics on top of @huggingface/jinja.
 *
 * Hugging Face chat templates are written for Python's jinja2 (as driven by
 * transformers' `apply_chat_template`); @huggingface/jinja parses them well but
 * evaluates many expressions with JavaScript semantics (`'' == false`, JSON
 * instead of Python repr, `'s' + {}` concatenating, `x.lstrip('\n')` ignoring
 * its argument, no error on `undefined.attr`, ...). This module keeps the
 * library's lexer and parser (`new Template(src)`, which applies trim_blocks /
 * lstrip_blocks and the `{% generation %}` tag) and its public `Interpreter`,
 * but overrides `evaluate` for the node types whose semantics differ, so the
 * output matches Python byte for byte. Nothing in node_modules is patched: the
 * runtime value classes are not exported, so their constructors are taken from
 * sample values created through the public `Environment.set`.
 */
import { Environment as LibraryEnvironment, Interpreter as LibraryInterpreter, Template, parse, tokenize } from '@huggingface/jinja'
import { PythonFloat } from './python-json.js'

// ---------------------------------------------------------------------------
// The library surface we use, described structurally: its published .d.ts files
// import './runtime' and './ast' without extensions, which NodeNext cannot
// resolve, so those classes would otherwise arrive untyped.

export interface Value {
  type: string
  value: unknown
  __bool__ (): { value: boolean }
  toString (): string
  readonly builtins: ReadonlyMap<string, Value>
}

interface JinjaNode { type: string }
interface ProgramNode extends JinjaNode { body: JinjaNode[] }

interface Environment {
  variables: Map<string, Value>
  set (name: string, value: unknown): Value
  setVariable (name: string, value: Value): Value
}
interface Interpreter {
  evaluate (statement: JinjaNode | undefined, environment: Environment): Value
  run (program: ProgramNode): Value
}

const Environment = LibraryEnvironment as unknown as new (parent?: Environment) => Environment
const Interpreter = LibraryInterpreter as unknown as new (environment?: Environment) => Interpreter
const parseTemplate = (source: string): ProgramNode => (new Template(source) as unknown as { parsed: ProgramNode }).parsed
const parseExpression = (source: string): ProgramNode => (parse as unknown as (tokens: unknown) => ProgramNode)((tokenize as unknown as (text: string) => unknown)(source))

type NativeFunction = (args: Value[], scope: Environment) => Value
type ValueConstructor<T> = new (value: T) => Value

const probeEnvironment = new Environment()
let probeCount = 0
function probeValue (sample: unknown): Value {
  return probeEnvironment.set(`__probe_${probeCount++}`, sample)
}
function constructorOf<T> (value: Value): ValueConstructor<T> {
  return (value as unknown as { constructor: ValueConstructor<T> }).constructor
}

const StringValue = constructorOf<string>(probeValue(''))
const IntegerValue = constructorOf<number>(probeValue(1))
const FloatValue = constructorOf<number>(probeValue(0.5))
const BooleanValue = constructorOf<boolean>(probeValue(true))
const NullValue = constructorOf<null>(probeValue(null))
const UndefinedValue = constructorOf<undefined>(probeValue(undefined))
const ArrayValue = constructorOf<Value[]>(probeValue([]))
const ObjectValue = constructorOf<Map<string, Value>>(probeValue({}))
const FunctionValue = constructorOf<NativeFunction>(probeValue(() => null))
const probeInterpreter = new Interpreter(probeEnvironment)
function probeExpression (source: string): Value {
  return probeInterpreter.evaluate(parseExpression(source).body[0], probeEnvironment)
}
const TupleValue = constructorOf<Value[]>(probeExpression('{{ (1, 2) }}'))
// A child scope, as `new Environment(parent)` makes but without its per-scope
// `namespace` function (a Map and two values per scope): `namespace` resolves
// to the global one through the parent chain, as in jinja2.
const environmentFields = Object.keys(new Environment())
const environmentTests = (new Environment() as unknown as { tests: unknown }).tests
const ChildScope = function (this: Record<string, unknown>, parent: Environment): void {
  this.variables = new Map<string, Value>()
  this.tests = environmentTests
  this.parent = parent
} as unknown as { new (parent: Environment): Environment, prototype: unknown }
ChildScope.prototype = Environment.prototype
const newScope: (parent: Environment) => Environment = environmentFields.join() === 'variables,tests,parent'
  ? (parent) => new ChildScope(parent)
  : (parent) => new Environment(parent)

// Statement.prototype, so synthetic nodes look like parsed ones to the library's AST walkers.
const statementPrototype: object = Object.getPrototypeOf(Object.getPrototypeOf(parseExpression(''))) as object

/**
 * A constructor for the library's value class that skips its class-field
 * initialisers. Why: each value class re-declares the `type` field its base
 * class declares, and V8 (Node 20) runs those initialisers on a slow path once
 * more than one value class is constructed at a site, about 250 ns a value
 * instead of about 10; that was most of a render's time. A plain function
 * sharing the class's prototype gives an object of the same fields, methods and
 * `instanceof` answers, so the library cannot tell the difference.
 */
function fastConstructor<T> (valueClass: ValueConstructor<T>): (value: T) => Value {
  const sample = new valueClass(undefined as T) as unknown as Record<string, unknown>
  const fieldNames = Object.keys(sample)
  if (fieldNames.join() !== 'type,value' && fieldNames.join() !== 'type,value,_builtins') {
    // A library release with other fields: keep its own constructor rather than guess.
    return (value) => new valueClass(value)
  }
  const type = sample.type
  const hasBuiltinsCache = fieldNames.length === 3
  const FastValue = function (this: Record<string, unknown>, value: T): void {
    this.type = type
    this.value = value
    if (hasBuiltinsCache) this._builtins = undefined
  } as unknown as { new (value: T): Value, prototype: unknown }
  FastValue.prototype = valueClass.prototype
  return (value) => new FastValue(value)
}

const makeString = fastConstructor(StringValue)
const makeInteger = fastConstructor(IntegerValue)
const makeFloat = fastConstructor(FloatValue)
const newBoolean = fastConstructor(BooleanValue)
// Booleans, None and Undefined are immutable: one value each.
const TRUE = newBoolean(true)
const FALSE = newBoolean(false)
const NONE = fastConstructor(NullValue)(null)
const UNDEFINED = fastConstructor(UndefinedValue)(undefined)
const makeBoolean = (flag: boolean): Value => flag ? TRUE : FALSE
const makeNone = (): Value => NONE
const makeUndefined = (): Value => UNDEFINED
const makeList = fastConstructor(ArrayValue)
const makeTuple = fastConstructor(TupleValue)
const makeDict = fastConstructor(ObjectValue)
const makeFunction = fastConstructor(FunctionValue)

/**
 * Python truthiness without the library's `__bool__()`, which allocates a
 * BooleanValue per test (an `if` per message per branch adds up).
 */
function truthy (value: Value): boolean {
  switch (value.type) {
    case 'StringValue': case 'IntegerValue': case 'FloatValue': case 'BooleanValue': case 'NullValue': case 'UndefinedValue':
      return Boolean(value.value)
    default:
      return value.__bool__().value
  }
}

/** An optional boolean-ish argument (`reverse=`, `case_sensitive=`, ...): absent is false. */
function flag (value: Value | undefined): boolean {
  return value !== undefined && truthy(value)
}

const isString = (value: Value): boolean => value.type === 'StringValue'
const isInteger = (value: Value): boolean => value.type === 'IntegerValue'
const isFloat = (value: Value): boolean => value.type === 'FloatValue'
const isBoolean = (value: Value): boolean => value.type === 'BooleanValue'
const isNone = (value: Value): boolean => value.type === 'NullValue'
const isUndefined = (value: Value): boolean => value.type === 'UndefinedValue'
const isTuple = (value: Value): boolean => value.type === 'TupleValue'
const isList = (value: Value): boolean => value.type === 'ArrayValue' || value.type === 'TupleValue'
const isDict = (value: Value): boolean => value.type === 'ObjectValue' || value.type === 'KeywordArgumentsValue'
const isNamespace = (value: Value): boolean => value.type === 'NamespaceValue'
const isFunction = (value: Value): boolean => value.type === 'FunctionValue'
/** Python's bool is an int subclass: True + 1 == 2, 0 == False. */
const isNumeric = (value: Value): boolean => isInteger(value) || isFloat(value) || isBoolean(value)

const stringOf = (value: Value): string => value.value as string
const itemsOf = (value: Value): Value[] => value.value as Value[]
const entriesOf = (value: Value): Map<string, Value> => value.value as Map<string, Value>
const numberOf = (value: Value): number => isBoolean(value) ? (value.value === true ? 1 : 0) : value.value as number

// ---------------------------------------------------------------------------
// Errors

/** `raise_exception(message)` called by the template: the message is exact. */
export class TemplateRaisedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'TemplateRaisedError'
  }
}

/** Any other failure while rendering, named after the Python exception it mirrors. */
export class JinjaRuntimeError extends Error {
  readonly pythonType: string
  constructor (pythonType: string, message: string) {
    super(message)
    this.name = 'JinjaRuntimeError'
    this.pythonType = pythonType
  }
}

const typeError = (message: string): JinjaRuntimeError => new JinjaRuntimeError('TypeError', message)
const undefinedError = (message: string): JinjaRuntimeError => new JinjaRuntimeError('UndefinedError', message)
const valueError = (message: string): JinjaRuntimeError => new JinjaRuntimeError('ValueError', message)

export function pythonTypeName (value: Value): string {
  switch (value.type) {
    case 'StringValue': return 'str'
    case 'IntegerValue': return 'int'
    case 'FloatValue': return 'float'
    case 'BooleanValue': return 'bool'
    case 'NullValue': return 'NoneType'
    case 'UndefinedValue': return 'Undefined'
    case 'ArrayValue': return 'list'
    case 'TupleValue': return 'tuple'
    case 'ObjectValue': case 'KeywordArgumentsValue': return 'dict'
    case 'NamespaceValue': return 'Namespace'
    case 'FunctionValue': return 'function'
    default: return value.type
  }
}

// ---------------------------------------------------------------------------
// Python string helpers

// str.isspace() characters; JavaScript's \s differs (it has \ufeff, lacks \x1c-\x1f and \x85).
const PYTHON_WHITESPACE = new Set(Array.from('\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000'))
// str.splitlines() boundaries
const LINE_BREAKS = new Set(Array.from('\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029'))

export function pythonIsSpace (char: string): boolean {
  return PYTHON_WHITESPACE.has(char)
}

/** str.strip / lstrip / rstrip: `chars` null strips Python whitespace, otherwise exactly those characters. */
export function pythonStrip (text: string, chars: string | null, mode: 'both' | 'left' | 'right' = 'both'): string {
  const astral = /[\uD800-\uDFFF]/
  if (chars !== null && astral.test(chars)) {
    // Rare: strip characters outside the BMP, which need whole code points.
    const strip = new Set(Array.from(chars))
    const characters = Array.from(text)
    let start = 0
    let end = characters.length
    if (mode !== 'right') while (start < end && strip.has(characters[start] as string)) start++
    if (mode !== 'left') while (end > start && strip.has(characters[end - 1] as string)) end--
    return characters.slice(start, end).join('')
  }
  // Every strip character is a single UTF-16 unit, so scanning units is exact and allocation-free.
  const strip = chars === null ? PYTHON_WHITESPACE : new Set(chars)
  let start = 0
  let end = text.length
  if (mode !== 'right') while (start < end && strip.has(text[start] as string)) start++
  if (mode !== 'left') while (end > start && strip.has(text[end - 1] as string)) end--
  return text.slice(start, end)
}

export function pythonSplit (text: string, separator: string | null, maxSplit = -1): string[] {
  if (separator === null) {
    const parts: string[] = []
    const characters = Array.from(text)
    let index = 0
    while (index < characters.length) {
      while (index < characters.length && pythonIsSpace(characters[index] as string)) index++
      if (index >= characters.length) break
      if (maxSplit >= 0 && parts.length >= maxSplit) {
        parts.push(characters.slice(index).join(''))
        break
      }
      let end = index
      while (end < characters.length && !pythonIsSpace(characters[end] as string)) end++
      parts.push(characters.slice(index, end).join(''))
      index = end
    }
    return parts
  }
  if (separator === '') throw valueError('empty separator')
  const pieces = text.split(separator)
  if (maxSplit >= 0 && pieces.length > maxSplit + 1) {
    return [...pieces.slice(0, maxSplit), pieces.slice(maxSplit).join(separator)]
  }
  return pieces
}

export function pythonRsplit (text: string, separator: string | null, maxSplit = -1): string[] {
  if (maxSplit < 0) return pythonSplit(text, separator)
  if (separator === null) {
    const reversed = pythonSplit(Array.from(text).reverse().join(''), null, maxSplit)
    return reversed.map((part) => Array.from(part).reverse().join('')).reverse()
  }
  if (separator === '') throw valueError('empty separator')
  const pieces = text.split(separator)
  if (pieces.length > maxSplit + 1) {
    const keep = pieces.length - maxSplit
    return [pieces.slice(0, keep).join(separator), ...pieces.slice(keep)]
  }
  return pieces
}

export function pythonSplitLines (text: string, keepEnds = false): string[] {
  const lines: string[] = []
  let line = ''
  const characters = Array.from(text)
  for (let index = 0; index < characters.length; index++) {
    const char = characters[index] as string
    if (!LINE_BREAKS.has(char)) {
      line += char
      continue
    }
    let ending = char
    if (char === '\r' && characters[index + 1] === '\n') {
      ending = '\r\n'
      index++
    }
    lines.push(keepEnds ? line + ending : line)
    line = ''
  }
  if (line !== '') lines.push(line)
  return lines
}

const isCased = (char: string): boolean => char.toLowerCase() !== char.toUpperCase()

/** str.capitalize(): first character upper-cased, the rest lower-cased. */
export function pythonCapitalize (text: string): string {
  const characters = Array.from(text)
  if (characters.length === 0) return ''
  return (characters[0] as string).toUpperCase() + characters.slice(1).join('').toLowerCase()
}

/** str.title(): a letter following an uncased character starts a word. */
export function pythonTitle (text: string): string {
  let previousCased = false
  let result = ''
  for (const char of text) {
    result += previousCased ? char.toLowerCase() : char.toUpperCase()
    previousCased = isCased(char)
  }
  return result
}

/** jinja2's `title` filter, which splits words on whitespace and -({[< rather than using str.title(). */
function jinjaTitle (text: string): string {
  return text.split(/([-\s({[<]+)/u).filter((item) => item !== '').map((item) => {
    const characters = Array.from(item)
    return (characters[0] as string).toUpperCase() + characters.slice(1).join('').toLowerCase()
  }).join('')
}

const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u

/** repr(str): single quotes unless the text has ' and no ", escapes for non-printable characters. */
export function pythonStringRepr (text: string): string {
  const quote = text.includes('\'') && !text.includes('"') ? '"' : '\''
  let result = quote
  for (const char of text) {
    if (char === quote || char === '\\') result += '\\' + char
    else if (char === '\n') result += '\\n'
    else if (char === '\r') result += '\\r'
    else if (char === '\t') result += '\\t'
    else if (char !== ' ' && NON_PRINTABLE.test(char)) {
      const code = char.codePointAt(0) as number
      if (code < 0x100) result += '\\x' + code.toString(16).padStart(2, '0')
      else if (code < 0x10000) result += '\\u' + code.toString(16).padStart(4, '0')
      else result += '\\U' + code.toString(16).padStart(8, '0')
    } else result += char
  }
  return result + quote
}

/** repr(float): shortest round-trip digits, scientific below 1e-4 and from 1e16, always a dot or exponent. */
export function pythonFloatRepr (number: number): string {
  if (Number.isNaN(number)) return 'nan'
  if (number === Infinity) return 'inf'
  if (number === -Infinity) return '-inf'
  if (number === 0) return Object.is(number, -0) ? '-0.0' : '0.0'
  const [mantissa = '', exponentText = '0'] = number.toExponential().split('e')
  const exponent = Number(exponentText)
  const negative = mantissa.startsWith('-')
  const digits = mantissa.replace('-', '').replace('.', '')
  const sign = negative ? '-' : ''
  if (exponent < -4 || exponent >= 16) {
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
    const exponentSign = exponent < 0 ? '-' : '+'
    return `${sign}${head}e${exponentSign}${String(Math.abs(exponent)).padStart(2, '0')}`
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`
  if (digits.length <= exponent + 1) return `${sign}${digits}${'0'.repeat(exponent + 1 - digits.length)}.0`
  return `${sign}${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`
}

/** repr() of a template value, as Python prints lists, dicts and tuples. */
export function pythonRepr (value: Value): string {
  switch (value.type) {
    case 'StringValue': return pythonStringRepr(stringOf(value))
    case 'IntegerValue': return String(value.value)
    case 'FloatValue': return pythonFloatRepr(value.value as number)
    case 'BooleanValue': return value.value === true ? 'True' : 'False'
    case 'NullValue': return 'None'
    case 'UndefinedValue': return 'Undefined'
    case 'ArrayValue': return `[${itemsOf(value).map(pythonRepr).join(', ')}]`
    case 'TupleValue': {
      const items = itemsOf(value)
      return items.length === 1 ? `(${pythonRepr(items[0] as Value)},)` : `(${items.map(pythonRepr).join(', ')})`
    }
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return `{${Array.from(entriesOf(value), ([key, item]) => `${pythonStringRepr(key)}: ${pythonRepr(item)}`).join(', ')}}`
    case 'NamespaceValue':
      return `<Namespace {${Array.from(entriesOf(value), ([key, item]) => `${pythonStringRepr(key)}: ${pythonRepr(item)}`).join(', ')}}>`
    case 'FunctionValue': return '<function>'
    default: return String(value.value)
  }
}

/** str() of a template value: what `{{ value }}`, `~` and the `string` filter print. */
export function pythonStr (value: Value): string {
  if (isString(value)) return stringOf(value)
  if (isUndefined(value)) return ''
  return pythonRepr(value)
}

// ---------------------------------------------------------------------------
// json.dumps (transformers replaces jinja's tojson with json.dumps(ensure_ascii=False, ...))

export interface PythonJsonOptions {
  ensureAscii?: boolean
  indent?: number | string | null
  separators?: [string, string] | null
  sortKeys?: boolean
}

function jsonString (text: string, ensureAscii: boolean): string {
  // JSON.stringify escapes exactly what json.dumps does (", \, control characters as \n or \u00XX).
  const encoded = JSON.stringify(text)
  // ensure_ascii escapes everything outside ' '..'~' (DEL included) as UTF-16 \uXXXX units.
  return ensureAscii ? encoded.replace(/[^\x20-\x7e]/g, (char) => '\\u' + char.charCodeAt(0).toString(16).padStart(4, '0')) : encoded
}

function compareCodePoints (left: string, right: string): number {
  // Python orders strings by code point; JavaScript's < compares UTF-16 units.
  const leftPoints = Array.from(left)
  const rightPoints = Array.from(right)
  const length = Math.min(leftPoints.length, rightPoints.length)
  for (let index = 0; index < length; index++) {
    const a = (leftPoints[index] as string).codePointAt(0) as number
    const b = (rightPoints[index] as string).codePointAt(0) as number
    if (a !== b) return a < b ? -1 : 1
  }
  return leftPoints.length - rightPoints.length
}

export function pythonJsonDumps (value: Value, options: PythonJsonOptions = {}): string {
  const ensureAscii = options.ensureAscii ?? false
  const indent = options.indent ?? null
  const indentText = indent === null ? null : typeof indent === 'number' ? ' '.repeat(Math.max(0, indent)) : indent
  const [itemSeparator, keySeparator] = options.separators ?? (indentText === null ? [', ', ': '] : [',', ': '])
  const sortKeys = options.sortKeys ?? false

  const encode = (item: Value, depth: number): string => {
    switch (item.type) {
      case 'NullValue': return 'null'
      case 'BooleanValue': return item.value === true ? 'true' : 'false'
      case 'IntegerValue': return String(item.value)
      case 'FloatValue': {
        const number = item.value as number
        if (Number.isNaN(number)) return 'NaN'
        if (!Number.isFinite(number)) return number > 0 ? 'Infinity' : '-Infinity'
        return pythonFloatRepr(number)
      }
      case 'StringValue': return jsonString(stringOf(item), ensureAscii)
      case 'ArrayValue':
      case 'TupleValue':
      case 'ObjectValue':
      case 'KeywordArgumentsValue': {
        const isArray = isList(item)
        let parts: string[]
        if (isArray) {
          parts = itemsOf(item).map((child) => encode(child, depth + 1))
        } else {
          let entries = Array.from(entriesOf(item))
          if (sortKeys) entries = entries.sort(([a], [b]) => compareCodePoints(a, b))
          parts = entries.map(([key, child]) => jsonString(key, ensureAscii) + keySeparator + encode(child, depth + 1))
        }
        const [open, close] = isArray ? ['[', ']'] : ['{', '}']
        if (parts.length === 0) return open + close
        if (indentText === null) return open + parts.join(itemSeparator) + close
        const inner = '\n' + indentText.repeat(depth + 1)
        return open + inner + parts.join(itemSeparator + inner) + '\n' + indentText.repeat(depth) + close
      }
      default:
        throw typeError(`Object of type ${pythonTypeName(item)} is not JSON serializable`)
    }
  }
  return encode(value, 0)
}

// ---------------------------------------------------------------------------
// strftime (C locale, naive local time, like datetime.now().strftime on Linux)

const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const MONTH_NAMES = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December']

function dayOfYear (date: Date): number {
  const start = new Date(date.getFullYear(), 0, 1)
  const today = new Date(date.getFullYear(), date.getMonth(), date.getDate())
  return Math.round((today.getTime() - start.getTime()) / 86_400_000) + 1
}

export function pythonStrftime (date: Date, format: string): string {
  const pad = (number: number, width = 2, fill = '0'): string => String(number).padStart(width, fill)
  const hours12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12
  const weekNumber = (firstDay: number): number => {
    const yearDay = dayOfYear(date) - 1
    const weekday = (date.getDay() - firstDay + 7) % 7
    return Math.floor((yearDay + 7 - weekday) / 7)
  }
  const fields: Record<string, () => string> = {
    a: () => (DAY_NAMES[date.getDay()] as string).slice(0, 3),
    A: () => DAY_NAMES[date.getDay()] as string,
    b: () => (MONTH_NAMES[date.getMonth()] as string).slice(0, 3),
    h: () => (MONTH_NAMES[date.getMonth()] as string).slice(0, 3),
    B: () => MONTH_NAMES[date.getMonth()] as string,
    c: () => pythonStrftime(date, '%a %b %e %H:%M:%S %Y'),
    C: () => pad(Math.floor(date.getFullYear() / 100)),
    d: () => pad(date.getDate()),
    D: () => pythonStrftime(date, '%m/%d/%y'),
    e: () => pad(date.getDate(), 2, ' '),
    f: () => pad(date.getMilliseconds() * 1000, 6),
    F: () => pythonStrftime(date, '%Y-%m-%d'),
    H: () => pad(date.getHours()),
    I: () => pad(hours12),
    j: () => pad(dayOfYear(date), 3),
    m: () => pad(date.getMonth() + 1),
    M: () => pad(date.getMinutes()),
    n: () => '\n',
    p: () => date.getHours() < 12 ? 'AM' : 'PM',
    R: () => pythonStrftime(date, '%H:%M'),
    S: () => pad(date.getSeconds()),
    t: () => '\t',
    T: () => pythonStrftime(date, '%H:%M:%S'),
    u: () => String(date.getDay() === 0 ? 7 : date.getDay()),
    U: () => pad(weekNumber(0)),
    w: () => String(date.getDay()),
    W: () => pad(weekNumber(1)),
    x: () => pythonStrftime(date, '%m/%d/%y'),
    X: () => pythonStrftime(date, '%H:%M:%S'),
    y: () => pad(date.getFullYear() % 100),
    Y: () => String(date.getFullYear()),
    z: () => '',
    Z: () => '',
    '%': () => '%'
  }
  return format.replace(/%(-?)([a-zA-Z%])/g, (match: string, noPad: string, field: string) => {
    const render = fields[field]
    if (render === undefined) return match
    const text = render()
    // glibc's %-d etc. drop the padding.
    return noPad === '-' ? text.replace(/^[0 ]+(?=.)/, '') : text
  })
}

// ---------------------------------------------------------------------------
// Python operators

export function pythonEquals (left: Value, right: Value): boolean {
  if (isNumeric(left) && isNumeric(right)) return numberOf(left) === numberOf(right)
  if (isString(left) || isString(right)) return isString(left) && isString(right) && stringOf(left) === stringOf(right)
  if (isNone(left) || isNone(right)) return isNone(left) && isNone(right)
  if (isUndefined(left) || isUndefined(right)) return isUndefined(left) && isUndefined(right)
  if (isList(left) && isList(right)) {
    if (isTuple(left) !== isTuple(right)) return false
    const a = itemsOf(left)
    const b = itemsOf(right)
    return a.length === b.length && a.every((item, index) => pythonEquals(item, b[index] as Value))
  }
  if (isDict(left) && isDict(right)) {
    const a = entriesOf(left)
    const b = entriesOf(right)
    if (a.size !== b.size) return false
    for (const [key, item] of a) {
      const other = b.get(key)
      if (other === undefined || !pythonEquals(item, other)) return false
    }
    return true
  }
  return left === right || (left.type === right.type && left.value === right.value)
}

/** Items of an iterable as Python iterates them (str by character, dict by key, Undefined as empty). */
export function pythonIterate (value: Value): Value[] {
  if (isList(value)) return itemsOf(value)
  if (isString(value)) return Array.from(stringOf(value), makeString)
  if (isDict(value)) return Array.from(entriesOf(value).keys(), makeString)
  if (isUndefined(value)) return []
  throw typeError(`'${pythonTypeName(value)}' object is not iterable`)
}

function pythonLength (value: Value): number {
  if (isString(value)) {
    const text = stringOf(value)
    // Python counts code points: each surrogate pair is one character.
    return text.length - (text.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0)
  }
  if (isList(value)) return itemsOf(value).length
  if (isDict(value)) return entriesOf(value).size
  if (isUndefined(value)) return 0
  throw typeError(`object of type '${pythonTypeName(value)}' has no len()`)
}

function pythonContains (container: Value, item: Value): boolean {
  if (isUndefined(container)) return false
  if (isString(container)) {
    if (!isString(item)) throw typeError(`'in <string>' requires string as left operand, not ${pythonTypeName(item)}`)
    return stringOf(container).includes(stringOf(item))
  }
  if (isList(container)) return itemsOf(container).some((element) => pythonEquals(element, item))
  if (isDict(container)) {
    if (isList(item) && !isTuple(item)) throw typeError('unhashable type: \'list\'')
    if (isDict(item)) throw typeError('unhashable type: \'dict\'')
    return isString(item) && entriesOf(container).has(stringOf(item))
  }
  throw typeError(`argument of type '${pythonTypeName(container)}' is not iterable`)
}

function pythonCompare (operator: string, left: Value, right: Value): boolean {
  if (isUndefined(left) || isUndefined(right)) throw undefinedError('cannot compare an undefined value')
  let order: number
  if (isNumeric(left) && isNumeric(right)) {
    const a = numberOf(left)
    const b = numberOf(right)
    order = a < b ? -1 : a > b ? 1 : 0
    if (Number.isNaN(a) || Number.isNaN(b)) return false
  } else if (isString(left) && isString(right)) {
    order = compareCodePoints(stringOf(left), stringOf(right))
  } else if (isList(left) && isList(right) && isTuple(left) === isTuple(right)) {
    const a = itemsOf(left)
    const b = itemsOf(right)
    order = a.length - b.length
    for (let index = 0; index < Math.min(a.length, b.length); index++) {
      const x = a[index] as Value
      const y = b[index] as Value
      if (pythonEquals(x, y)) continue
      order = pythonCompare('<', x, y) ? -1 : 1
      break
    }
  } else {
    throw typeError(`'${operator}' not supported between instances of '${pythonTypeName(left)}' and '${pythonTypeName(right)}'`)
  }
  switch (operator) {
    case '<': return order < 0
    case '>': return order > 0
    case '<=': return order <= 0
    default: return order >= 0
  }
}

function numberResult (number: number, ...operands: Value[]): Value {
  return operands.some(isFloat) ? makeFloat(number) : makeInteger(number)
}

/** printf-style `'%s' % value` for the conversions templates use. */
function percentFormat (format: string, argument: Value): string {
  const args = isTuple(argument) ? itemsOf(argument) : [argument]
  let index = 0
  const next = (): Value => {
    const value = args[index++]
    if (value === undefined) throw typeError('not enough arguments for format string')
    return value
  }
  const result = format.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?([sdirf%])/g, (_match, _flags: string, width: string, precision: string | undefined, conversion: string) => {
    if (conversion === '%') return '%'
    const value = next()
    let text: string
    if (conversion === 's') text = pythonStr(value)
    else if (conversion === 'r') text = pythonRepr(value)
    else if (conversion === 'f') text = numberOf(value).toFixed(precision === undefined ? 6 : Number(precision))
    else {
      if (!isNumeric(value)) throw typeError(`%${conversion} format: a real number is required, not ${pythonTypeName(value)}`)
      text = String(Math.trunc(numberOf(value)))
    }
    return width === '' ? text : text.padStart(Number(width))
  })
  if (index < args.length) throw typeError('not all arguments converted during string formatting')
  return result
}

function pythonArithmetic (operator: string, left: Value, right: Value): Value {
  if (isUndefined(left) || isUndefined(right)) throw undefinedError(`unsupported operation '${operator}' on an undefined value`)
  const unsupported = (): JinjaRuntimeError => typeError(`unsupported operand type(s) for ${operator}: '${pythonTypeName(left)}' and '${pythonTypeName(right)}'`)
  const numeric = isNumeric(left) && isNumeric(right)
  const a = numeric ? numberOf(left) : 0
  const b = numeric ? numberOf(right) : 0
  switch (operator) {
    case '+':
      if (numeric) return numberResult(a + b, left, right)
      if (isString(left)) {
        if (!isString(right)) throw typeError(`can only concatenate str (not "${pythonTypeName(right)}") to str`)
        return makeString(stringOf(left) + stringOf(right))
      }
      if (isList(left)) {
        if (!isList(right) || isTuple(left) !== isTuple(right)) throw typeError(`can only concatenate ${pythonTypeName(left)} (not "${pythonTypeName(right)}") to ${pythonTypeName(left)}`)
        const items = [...itemsOf(left), ...itemsOf(right)]
        return isTuple(left) ? makeTuple(items) : makeList(items)
      }
      throw unsupported()
    case '-':
      if (numeric) return numberResult(a - b, left, right)
      throw unsupported()
    case '*': {
      if (numeric) return numberResult(a * b, left, right)
      const [sequence, count] = isInteger(right) || isBoolean(right) ? [left, right] : [right, left]
      if (isInteger(count) || isBoolean(count)) {
        const times = Math.max(0, numberOf(count))
        if (isString(sequence)) return makeString(stringOf(sequence).repeat(times))
        if (isList(sequence)) {
          const items = Array.from({ length: times }, () => itemsOf(sequence)).flat()
          return isTuple(sequence) ? makeTuple(items) : makeList(items)
        }
      }
      throw typeError(`can't multiply sequence by non-int of type '${pythonTypeName(right)}'`)
    }
    case '/':
      if (!numeric) throw unsupported()
      if (b === 0) throw new JinjaRuntimeError('ZeroDivisionError', 'division by zero')
      return makeFloat(a / b)
    case '//':
      if (!numeric) throw unsupported()
      if (b === 0) throw new JinjaRuntimeError('ZeroDivisionError', 'integer division or modulo by zero')
      return numberResult(Math.floor(a / b), left, right)
    case '%':
      if (isString(left)) return makeString(percentFormat(stringOf(left), right))
      if (!numeric) throw unsupported()
      if (b === 0) throw new JinjaRuntimeError('ZeroDivisionError', 'integer modulo by zero')
      // Python's remainder takes the sign of the divisor.
      return numberResult(a - b * Math.floor(a / b), left, right)
    case '**': {
      if (!numeric) throw unsupported()
      const power = a ** b
      return isFloat(left) || isFloat(right) || b < 0 ? makeFloat(power) : makeInteger(power)
    }
    default:
      throw unsupported()
  }
}

// ---------------------------------------------------------------------------
// Call arguments

interface Arguments { positional: Value[], keywords: Map<string, Value> }

function splitArguments (args: Value[]): Arguments {
  const last = args[args.length - 1]
  if (last !== undefined && last.type === 'KeywordArgumentsValue') {
    return { positional: args.slice(0, -1), keywords: entriesOf(last) }
  }
  return { positional: args, keywords: new Map() }
}

/** Python-style parameter binding: positional, then by keyword, then the default. */
function argument (args: Arguments, index: number, name: string): Value | undefined {
  return args.positional[index] ?? args.keywords.get(name)
}

function optionalString (value: Value | undefined, what: string): string | null {
  if (value === undefined || isNone(value)) return null
  if (!isString(value)) throw typeError(`${what} arg must be None or str`)
  return stringOf(value)
}

function integerArgument (value: Value | undefined, fallback: number): number {
  if (value === undefined || isNone(value)) return fallback
  if (!isInteger(value) && !isBoolean(value)) throw typeError(`'${pythonTypeName(value)}' object cannot be interpreted as an integer`)
  return numberOf(value)
}

function codePointSlice (text: string, start: Value | undefined, end: Value | undefined): [string, number] {
  const isMissing = (value: Value | undefined): boolean => value === undefined || isNone(value)
  if (isMissing(start) && isMissing(end)) return [text, 0]
  const characters = Array.from(text)
  const clamp = (value: Value | undefined, fallback: number): number => {
    if (value === undefined || isNone(value)) return fallback
    const number = numberOf(value)
    return number < 0 ? Math.max(0, characters.length + number) : Math.min(number, characters.length)
  }
  const from = clamp(start, 0)
  return [characters.slice(from, clamp(end, characters.length)).join(''), from]
}

function codePointIndex (text: string, unitIndex: number): number {
  if (unitIndex <= 0) return unitIndex
  const head = text.slice(0, unitIndex)
  return head.length - (head.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0)
}

function pythonFormat (format: string, args: Arguments): string {
  let autoIndex = 0
  return format.replace(/\{\{|\}\}|\{([^{}!:]*)(?:!([rs]))?(?::([^{}]*))?\}/g, (match: string, field: string | undefined, conversion: string | undefined, spec: string | undefined) => {
    if (match === '{{') return '{'
    if (match === '}}') return '}'
    const name = field ?? ''
    const value = name === '' ? args.positional[autoIndex++] : /^\d+$/.test(name) ? args.positional[Number(name)] : args.keywords.get(name)
    if (value === undefined) throw new JinjaRuntimeError(name === '' || /^\d+$/.test(name) ? 'IndexError' : 'KeyError', `Replacement index ${name} out of range for positional args tuple`)
    if (spec !== undefined && spec !== '') throw valueError(`unsupported format specification '${spec}'`)
    return conversion === 'r' ? pythonRepr(value) : pythonStr(value)
  })
}

// ---------------------------------------------------------------------------
// Methods reachable with dot syntax (`text.strip()`, `message.get('x')`, ...)

function stringMethod (text: string, name: string): NativeFunction | undefined {
  const stripMethod = (mode: 'both' | 'left' | 'right'): NativeFunction => (raw) => {
    const args = splitArguments(raw)
    return makeString(pythonStrip(text, optionalString(argument(args, 0, 'chars'), name), mode))
  }
  const affix = (test: (haystack: string, needle: string) => boolean): NativeFunction => (raw) => {
    const args = splitArguments(raw)
    const needle = args.positional[0]
    if (needle === undefined) throw typeError(`${name}() takes at least 1 argument (0 given)`)
    const [haystack] = codePointSlice(text, args.positional[1], args.positional[2])
    const candidates = isTuple(needle) || isList(needle) ? itemsOf(needle) : [needle]
    return makeBoolean(candidates.some((candidate) => {
      if (!isString(candidate)) throw typeError(`${name} first arg must be str or a tuple of str, not ${pythonTypeName(candidate)}`)
      return test(haystack, stringOf(candidate))
    }))
  }
  const search = (fromRight: boolean, raise: boolean): NativeFunction => (raw) => {
    const args = splitArguments(raw)
    const needle = args.positional[0]
    if (needle === undefined || !isString(needle)) throw typeError(`must be str, not ${needle === undefined ? 'nothing' : pythonTypeName(needle)}`)
    const [haystack, offset] = codePointSlice(text, args.positional[1], args.positional[2])
    const found = codePointIndex(haystack, fromRight ? haystack.lastIndexOf(stringOf(needle)) : haystack.indexOf(stringOf(needle)))
    if (found < 0 && raise) throw valueError('substring not found')
    return makeInteger(found < 0 ? -1 : found + offset)
  }
  const predicate = (test: (characters: string[]) => boolean): NativeFunction => () => {
    const characters = Array.from(text)
    return makeBoolean(characters.length > 0 && test(characters))
  }
  const split = (fromRight: boolean): NativeFunction => (raw) => {
    const args = splitArguments(raw)
    const separator = optionalString(argument(args, 0, 'sep'), 'sep')
    const maxSplit = integerArgument(argument(args, 1, 'maxsplit'), -1)
    const parts = fromRight ? pythonRsplit(text, separator, maxSplit) : pythonSplit(text, separator, maxSplit)
    return makeList(parts.map(makeString))
  }
  const partition = (fromRight: boolean): NativeFunction => (raw) => {
    const separator = raw[0]
    if (separator === undefined || !isString(separator)) throw typeError('must be str')
    if (stringOf(separator) === '') throw valueError('empty separator')
    const at = fromRight ? text.lastIndexOf(stringOf(separator)) : text.indexOf(stringOf(separator))
    if (at < 0) return makeTuple(fromRight ? [makeString(''), makeString(''), makeString(text)] : [makeString(text), makeString(''), makeString('')])
    return makeTuple([makeString(text.slice(0, at)), separator, makeString(text.slice(at + stringOf(separator).length))])
  }
  const pad = (mode: 'left' | 'right' | 'center'): NativeFunction => (raw) => {
    const width = integerArgument(raw[0], 0)
    const fill = raw[1] !== undefined && isString(raw[1]) ? stringOf(raw[1]) : ' '
    const missing = width - Array.from(text).length
    if (missing <= 0) return makeString(text)
    if (mode === 'left') return makeString(text + fill.repeat(missing))
    if (mode === 'right') return makeString(fill.repeat(missing) + text)
    const left = Math.floor(missing / 2) + (missing % 2 & width % 2)
    return makeString(fill.repeat(left) + text + fill.repeat(missing - left))
  }
  switch (name) {
    case 'strip': return stripMethod('both')
    case 'lstrip': return stripMethod('left')
    case 'rstrip': return stripMethod('right')
    case 'upper': return () => makeString(text.toUpperCase())
    case 'lower': return () => makeString(text.toLowerCase())
    case 'casefold': return () => makeString(text.toLowerCase())
    case 'swapcase': return () => makeString(Array.from(text, (char) => char === char.toUpperCase() ? char.toLowerCase() : char.toUpperCase()).join(''))
    case 'title': return () => makeString(pythonTitle(text))
    case 'capitalize': return () => makeString(pythonCapitalize(text))
    case 'startswith': return affix((haystack, needle) => haystack.startsWith(needle))
    case 'endswith': return affix((haystack, needle) => haystack.endsWith(needle))
    case 'find': return search(false, false)
    case 'rfind': return search(true, false)
    case 'index': return search(false, true)
    case 'rindex': return search(true, true)
    case 'count': return (raw) => {
      const args = splitArguments(raw)
      const needle = args.positional[0]
      if (needle === undefined || !isString(needle)) throw typeError('must be str')
      const [haystack] = codePointSlice(text, args.positional[1], args.positional[2])
      if (stringOf(needle) === '') return makeInteger(Array.from(haystack).length + 1)
      return makeInteger(haystack.split(stringOf(needle)).length - 1)
    }
    case 'split': return split(false)
    case 'rsplit': return split(true)
    case 'splitlines': return (raw) => {
      const args = splitArguments(raw)
      const keep = argument(args, 0, 'keepends')
      return makeList(pythonSplitLines(text, flag(keep)).map(makeString))
    }
    case 'partition': return partition(false)
    case 'rpartition': return partition(true)
    case 'replace': return (raw) => {
      const args = splitArguments(raw)
      const old = argument(args, 0, 'old')
      const replacement = argument(args, 1, 'new')
      if (old === undefined || replacement === undefined || !isString(old) || !isString(replacement)) throw typeError('replace() arguments must be str')
      return makeString(pythonReplace(text, stringOf(old), stringOf(replacement), integerArgument(argument(args, 2, 'count'), -1)))
    }
    case 'join': return (raw) => {
      const iterable = raw[0]
      if (iterable === undefined) throw typeError('join() takes exactly one argument (0 given)')
      return makeString(pythonIterate(iterable).map((item, index) => {
        if (!isString(item)) throw typeError(`sequence item ${index}: expected str instance, ${pythonTypeName(item)} found`)
        return stringOf(item)
      }).join(text))
    }
    case 'format': return (raw) => makeString(pythonFormat(text, splitArguments(raw)))
    case 'removeprefix': return (raw) => {
      const prefix = raw[0] !== undefined && isString(raw[0]) ? stringOf(raw[0]) : ''
      return makeString(prefix !== '' && text.startsWith(prefix) ? text.slice(prefix.length) : text)
    }
    case 'removesuffix': return (raw) => {
      const suffix = raw[0] !== undefined && isString(raw[0]) ? stringOf(raw[0]) : ''
      return makeString(suffix !== '' && text.endsWith(suffix) ? text.slice(0, -suffix.length) : text)
    }
    case 'zfill': return (raw) => {
      const width = integerArgument(raw[0], 0)
      const sign = text.startsWith('-') || text.startsWith('+') ? text[0] as string : ''
      const body = text.slice(sign.length)
      return makeString(sign + body.padStart(width - sign.length, '0'))
    }
    case 'ljust': return pad('left')
    case 'rjust': return pad('right')
    case 'center': return pad('center')
    case 'isspace': return predicate((characters) => characters.every(pythonIsSpace))
    case 'isdigit':
    case 'isdecimal':
    case 'isnumeric': return predicate((characters) => characters.every((char) => /\p{Nd}/u.test(char)))
    case 'isalpha': return predicate((characters) => characters.every((char) => /\p{L}/u.test(char)))
    case 'isalnum': return predicate((characters) => characters.every((char) => /[\p{L}\p{Nd}]/u.test(char)))
    case 'islower': return predicate((characters) => characters.some(isCased) && text === text.toLowerCase())
    case 'isupper': return predicate((characters) => characters.some(isCased) && text === text.toUpperCase())
    case 'istitle': return predicate((characters) => characters.some(isCased) && pythonTitle(text) === text)
    default: return undefined
  }
}

/** str.replace, including the empty-needle case ('ab'.replace('', '-') == '-a-b-'). */
function pythonReplace (text: string, old: string, replacement: string, count: number): string {
  if (count === 0) return text
  if (old === '') {
    const characters = Array.from(text)
    let result = ''
    let done = 0
    for (const char of characters) {
      if (count < 0 || done < count) { result += replacement; done++ }
      result += char
    }
    if (count < 0 || done < count) result += replacement
    return result
  }
  if (count < 0) return text.split(old).join(replacement)
  const pieces = text.split(old)
  if (pieces.length - 1 <= count) return pieces.join(replacement)
  return pieces.slice(0, count + 1).join(replacement) + old + pieces.slice(count + 1).join(old)
}

function dictMethod (dict: Value, name: string): NativeFunction | undefined {
  const entries = entriesOf(dict)
  switch (name) {
    case 'get': return (raw) => {
      const args = splitArguments(raw)
      const key = args.positional[0]
      if (key === undefined) throw typeError('get expected at least 1 argument, got 0')
      const found = isString(key) ? entries.get(stringOf(key)) : undefined
      return found ?? args.positional[1] ?? makeNone()
    }
    case 'items': return () => makeList(Array.from(entries, ([key, item]) => makeTuple([makeString(key), item])))
    case 'keys': return () => makeList(Array.from(entries.keys(), makeString))
    case 'values': return () => makeList(Array.from(entries.values()))
    default: return undefined
  }
}

// ---------------------------------------------------------------------------
// Tests (`x is defined`, `selectattr('a', 'equalto', 1)`)

function runTest (name: string, value: Value, args: Value[]): boolean {
  const other = args[0]
  const needOther = (): Value => {
    if (other === undefined) throw typeError(`test '${name}' needs an argument`)
    return other
  }
  switch (name) {
    case 'defined': return !isUndefined(value)
    case 'undefined': return isUndefined(value)
    case 'none': return isNone(value)
    case 'boolean': return isBoolean(value)
    case 'false': return isBoolean(value) && value.value === false
    case 'true': return isBoolean(value) && value.value === true
    case 'integer': return isInteger(value)
    case 'float': return isFloat(value)
    case 'number': return isNumeric(value)
    case 'string': return isString(value)
    case 'mapping': return isDict(value)
    case 'iterable': return isList(value) || isString(value) || isDict(value) || isUndefined(value)
    case 'sequence': return isList(value) || isString(value) || isDict(value) || isUndefined(value)
    case 'callable': return isFunction(value)
    case 'odd': return numberOf(value) % 2 !== 0
    case 'even': return numberOf(value) % 2 === 0
    case 'divisibleby': return numberOf(value) % numberOf(needOther()) === 0
    case 'lower': {
      const text = pythonStr(value)
      return Array.from(text).some(isCased) && text === text.toLowerCase()
    }
    case 'upper': {
      const text = pythonStr(value)
      return Array.from(text).some(isCased) && text === text.toUpperCase()
    }
    case 'escaped': return false
    case 'eq': case 'equalto': case '==': return pythonEquals(value, needOther())
    case 'ne': case '!=': return !pythonEquals(value, needOther())
    case 'lt': case 'lessthan': case '<': return pythonCompare('<', value, needOther())
    case 'le': case '<=': return pythonCompare('<=', value, needOther())
    case 'gt': case 'greaterthan': case '>': return pythonCompare('>', value, needOther())
    case 'ge': case '>=': return pythonCompare('>=', value, needOther())
    case 'in': return pythonContains(needOther(), value)
    case 'sameas': {
      const target = needOther()
      return value === target || (value.type === target.type && (isNone(value) || isBoolean(value) || isUndefined(value)) && value.value === target.value)
    }
    default: throw new JinjaRuntimeError('TemplateRuntimeError', `No test named '${name}'.`)
  }
}

// ---------------------------------------------------------------------------
// Filters with Python semantics (the rest fall through to the library)

function getAttribute (value: Value, path: string): Value {
  let current = value
  for (const part of path.split('.')) {
    if (isUndefined(current)) throw undefinedError(`'${path}' is undefined`)
    if (isDict(current) || isNamespace(current)) current = entriesOf(current).get(part) ?? makeUndefined()
    else if (isList(current) && /^-?\d+$/.test(part)) current = itemsOf(current).at(Number(part)) ?? makeUndefined()
    else current = makeUndefined()
  }
  return current
}

function htmlEscape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;')
}

function indentText (text: string, width: Value | undefined, first: boolean, blank: boolean): string {
  const indentation = width !== undefined && isString(width) ? stringOf(width) : ' '.repeat(integerArgument(width, 4))
  // jinja2 appends a newline first so splitlines() keeps a trailing empty line.
  const lines = pythonSplitLines(text + '\n')
  let result: string
  if (blank) {
    result = lines.join('\n' + indentation)
  } else {
    result = lines.shift() ?? ''
    if (lines.length > 0) result += '\n' + lines.map((line) => line === '' ? line : indentation + line).join('\n')
  }
  return first ? indentation + result : result
}

function parseIntLike (text: string, base: number): number | null {
  const trimmed = pythonStrip(text, null).replace(/_/g, '')
  const pattern = base === 16 ? /^[+-]?(0x)?[0-9a-f]+$/i : base === 8 ? /^[+-]?(0o)?[0-7]+$/i : base === 2 ? /^[+-]?(0b)?[01]+$/i : /^[+-]?\d+$/
  if (!pattern.test(trimmed)) return null
  return parseInt(trimmed.replace(/^([+-]?)0[xob]/i, '$1'), base)
}

function parseFloatLike (text: string): number | null {
  const trimmed = pythonStrip(text, null).replace(/_/g, '').toLowerCase()
  if (/^[+-]?(inf|infinity)$/.test(trimmed)) return trimmed.startsWith('-') ? -Infinity : Infinity
  if (/^[+-]?nan$/.test(trimmed)) return NaN
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(trimmed)) return null
  return Number(trimmed)
}

/** Python's round(): correctly rounded, exact ties go to the even neighbour (round(2.5) == 2). */
export function pythonRound (number: number, digits: number): number {
  if (!Number.isFinite(number) || Math.abs(number) >= 1e21) return number
  if (digits < 0) {
    const factor = 10 ** -digits
    return pythonRound(number / factor, 0) * factor
  }
  // toFixed works on the exact binary value, so only exact decimal ties need care.
  const exact = number.toFixed(Math.min(100, digits + 60))
  const point = exact.indexOf('.')
  const rest = exact.slice(point + 1 + digits)
  if (!/^50*$/.test(rest)) return Number(number.toFixed(digits))
  const negative = exact.startsWith('-')
  const truncated = exact.slice(negative ? 1 : 0, point) + exact.slice(point + 1, point + 1 + digits)
  let scaled = BigInt(truncated)
  if (scaled % 2n === 1n) scaled += 1n
  const text = scaled.toString().padStart(digits + 1, '0')
  const result = Number(digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`)
  return negative ? -result : result
}

function sortKey (item: Value, attribute: Value | undefined, caseSensitive: boolean): Value {
  const key = attribute === undefined || isNone(attribute) ? item : getAttribute(item, pythonStr(attribute))
  return !caseSensitive && isString(key) ? makeString(stringOf(key).toLowerCase()) : key
}

/** sorted(items, key=..., reverse=...): stable, and equal items keep their order even when reversed. */
function pythonSorted<T> (items: T[], key: (item: T) => Value, reverse: boolean): T[] {
  const keyed = items.map((item) => ({ item, key: key(item) }))
  keyed.sort((a, b) => {
    if (pythonEquals(a.key, b.key)) return 0
    const order = pythonCompare('<', a.key, b.key) ? -1 : 1
    return reverse ? -order : order
  })
  return keyed.map((entry) => entry.item)
}

type FilterFunction = (interpreter: PythonInterpreter, operand: Value, args: Arguments, environment: Environment) => Value

function textFilter (transform: (text: string) => string): FilterFunction {
  return (_interpreter, operand) => makeString(transform(pythonStr(operand)))
}

const FILTERS: ReadonlyMap<string, FilterFunction> = new Map<string, FilterFunction>([
  ['trim', (_interpreter, operand, args) => makeString(pythonStrip(pythonStr(operand), optionalString(argument(args, 0, 'chars'), 'strip')))],
  ['string', (_interpreter, operand) => makeString(pythonStr(operand))],
  ['upper', textFilter((text) => text.toUpperCase())],
  ['lower', textFilter((text) => text.toLowerCase())],
  ['capitalize', textFilter(pythonCapitalize)],
  ['title', textFilter(jinjaTitle)],
  ['safe', (_interpreter, operand) => operand],
  ['escape', textFilter(htmlEscape)],
  ['e', textFilter(htmlEscape)],
  ['forceescape', textFilter(htmlEscape)],
  ['tojson', (_interpreter, operand, args) => {
    // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    const ensureAscii = argument(args, 0, 'ensure_ascii')
    const indent = argument(args, 1, 'indent')
    const separators = argument(args, 2, 'separators')
    const sortKeys = argument(args, 3, 'sort_keys')
    let separatorPair: [string, string] | null = null
    if (separators !== undefined && !isNone(separators)) {
      const parts = pythonIterate(separators)
      if (parts.length !== 2 || !parts.every(isString)) throw valueError('too many values to unpack (expected 2)')
      separatorPair = [stringOf(parts[0] as Value), stringOf(parts[1] as Value)]
    }
    return makeString(pythonJsonDumps(operand, {
      ensureAscii: flag(ensureAscii),
      indent: indent === undefined || isNone(indent) ? null : isString(indent) ? stringOf(indent) : numberOf(indent),
      separators: separatorPair,
      sortKeys: flag(sortKeys)
    }))
  }],
  ['length', (_interpreter, operand) => makeInteger(pythonLength(operand))],
  ['count', (_interpreter, operand) => makeInteger(pythonLength(operand))],
  ['default', defaultFilter],
  ['d', defaultFilter],
  ['join', (_interpreter, operand, args) => {
    const separator = argument(args, 0, 'd')
    const attribute = argument(args, 1, 'attribute')
    let items = pythonIterate(operand)
    if (attribute !== undefined && !isNone(attribute)) items = items.map((item) => getAttribute(item, pythonStr(attribute)))
    return makeString(items.map(pythonStr).join(separator === undefined ? '' : pythonStr(separator)))
  }],
  ['list', (_interpreter, operand) => makeList(pythonIterate(operand))],
  ['items', (_interpreter, operand) => {
    if (isUndefined(operand)) return makeList([])
    if (!isDict(operand)) throw typeError('Can only get item pairs from a mapping.')
    return makeList(Array.from(entriesOf(operand), ([key, item]) => makeTuple([makeString(key), item])))
  }],
  ['first', (_interpreter, operand) => pythonIterate(operand)[0] ?? makeUndefined()],
  ['last', (_interpreter, operand) => pythonIterate(operand).at(-1) ?? makeUndefined()],
  ['reverse', (_interpreter, operand) => {
    if (isString(operand)) return makeString(Array.from(stringOf(operand)).reverse().join(''))
    return makeList(pythonIterate(operand).slice().reverse())
  }],
  ['unique', (_interpreter, operand, args) => {
    const caseSensitive = flag(argument(args, 0, 'case_sensitive'))
    const attribute = argument(args, 1, 'attribute')
    const seen = new Set<string>()
    return makeList(pythonIterate(operand).filter((item) => {
      const key = sortKey(item, attribute, caseSensitive)
      const identity = pythonRepr(key)
      if (seen.has(identity)) return false
      seen.add(identity)
      return true
    }))
  }],
  ['map', (interpreter, operand, args, environment) => {
    const items = pythonIterate(operand)
    const attribute = args.keywords.get('attribute')
    if (attribute !== undefined) {
      const fallback = args.keywords.get('default')
      return makeList(items.map((item) => {
        const found = getAttribute(item, pythonStr(attribute))
        return isUndefined(found) && fallback !== undefined ? fallback : found
      }))
    }
    const [filterName, ...rest] = args.positional
    if (filterName === undefined) return makeList(items)
    const filterArgs: Arguments = { positional: rest, keywords: args.keywords }
    return makeList(items.map((item) => interpreter.applyNamedFilter(pythonStr(filterName), item, filterArgs, environment)))
  }],
  ['select', selectFilter(true)],
  ['reject', selectFilter(false)],
  ['selectattr', selectAttributeFilter(true)],
  ['rejectattr', selectAttributeFilter(false)],
  ['indent', (_interpreter, operand, args) => makeString(indentText(
    pythonStr(operand), argument(args, 0, 'width'),
    flag(argument(args, 1, 'first')),
    flag(argument(args, 2, 'blank'))
  ))],
  ['replace', (_interpreter, operand, args) => {
    const old = argument(args, 0, 'old')
    const replacement = argument(args, 1, 'new')
    if (old === undefined || replacement === undefined) throw typeError('replace() missing required argument')
    return makeString(pythonReplace(pythonStr(operand), pythonStr(old), pythonStr(replacement), integerArgument(argument(args, 2, 'count'), -1)))
  }],
  ['int', (_interpreter, operand, args) => {
    const fallback = argument(args, 0, 'default') ?? makeInteger(0)
    const base = integerArgument(argument(args, 1, 'base'), 10)
    if (isInteger(operand)) return operand
    if (isBoolean(operand) || isFloat(operand)) return makeInteger(Math.trunc(numberOf(operand)))
    if (isString(operand)) {
      const parsed = parseIntLike(stringOf(operand), base) ?? parseFloatLike(stringOf(operand))
      return parsed === null || !Number.isFinite(parsed) ? fallback : makeInteger(Math.trunc(parsed))
    }
    return fallback
  }],
  ['float', (_interpreter, operand, args) => {
    const fallback = argument(args, 0, 'default') ?? makeFloat(0)
    if (isNumeric(operand)) return makeFloat(numberOf(operand))
    if (isString(operand)) {
      const parsed = parseFloatLike(stringOf(operand))
      return parsed === null ? fallback : makeFloat(parsed)
    }
    return fallback
  }],
  ['abs', (_interpreter, operand) => {
    if (!isNumeric(operand)) throw typeError(`bad operand type for abs(): '${pythonTypeName(operand)}'`)
    return isFloat(operand) ? makeFloat(Math.abs(numberOf(operand))) : makeInteger(Math.abs(numberOf(operand)))
  }],
  ['round', (_interpreter, operand, args) => {
    if (!isNumeric(operand)) throw typeError(`type ${pythonTypeName(operand)} doesn't define __round__ method`)
    const precision = integerArgument(argument(args, 0, 'precision'), 0)
    const method = argument(args, 1, 'method')
    const name = method === undefined ? 'common' : pythonStr(method)
    const factor = 10 ** precision
    if (name === 'ceil') return makeFloat(Math.ceil(numberOf(operand) * factor) / factor)
    if (name === 'floor') return makeFloat(Math.floor(numberOf(operand) * factor) / factor)
    if (name !== 'common') throw new JinjaRuntimeError('FilterArgumentError', 'method must be common, ceil or floor')
    // round() of an int stays an int in Python.
    return isFloat(operand) ? makeFloat(pythonRound(numberOf(operand), precision)) : makeInteger(pythonRound(numberOf(operand), precision))
  }],
  ['dictsort', (_interpreter, operand, args) => {
    if (!isDict(operand)) throw new JinjaRuntimeError('AttributeError', `'${pythonTypeName(operand)}' object has no attribute 'items'`)
    const caseSensitive = flag(argument(args, 0, 'case_sensitive'))
    const by = argument(args, 1, 'by')
    const position = by === undefined || pythonStr(by) === 'key' ? 0 : pythonStr(by) === 'value' ? 1 : -1
    if (position < 0) throw new JinjaRuntimeError('FilterArgumentError', 'You can only sort by either "key" or "value"')
    const reverse = flag(argument(args, 2, 'reverse'))
    const pairs = Array.from(entriesOf(operand), ([key, item]) => makeTuple([makeString(key), item]))
    return makeList(pythonSorted(pairs, (pair) => sortKey(itemsOf(pair)[position] as Value, undefined, caseSensitive), reverse))
  }],
  ['sort', (_interpreter, operand, args) => {
    const reverse = flag(argument(args, 0, 'reverse'))
    const caseSensitive = flag(argument(args, 1, 'case_sensitive'))
    const attribute = argument(args, 2, 'attribute')
    return makeList(pythonSorted(pythonIterate(operand), (item) => sortKey(item, attribute, caseSensitive), reverse))
  }],
  ['wordcount', (_interpreter, operand) => makeInteger((pythonStr(operand).match(/\w+/gu) ?? []).length)],
  ['sum', (_interpreter, operand, args) => {
    const attribute = argument(args, 0, 'attribute')
    let total: Value = argument(args, 1, 'start') ?? makeInteger(0)
    for (const item of pythonIterate(operand)) {
      total = pythonArithmetic('+', total, attribute === undefined || isNone(attribute) ? item : getAttribute(item, pythonStr(attribute)))
    }
    return total
  }],
  ['min', extremeFilter(-1)],
  ['max', extremeFilter(1)],
  ['format', (_interpreter, operand, args) => makeString(percentFormat(pythonStr(operand), makeTuple(args.positional)))],
  ['center', (_interpreter, operand, args) => {
    const method = stringMethod(pythonStr(operand), 'center') as NativeFunction
    return method([argument(args, 0, 'width') ?? makeInteger(80)], probeEnvironment)
  }]
])

function defaultFilter (_interpreter: PythonInterpreter, operand: Value, args: Arguments): Value {
  const fallback = argument(args, 0, 'default_value') ?? makeString('')
  const boolean = flag(argument(args, 1, 'boolean'))
  if (isUndefined(operand) || (boolean && !truthy(operand))) return fallback
  return operand
}

function selectFilter (keep: boolean): FilterFunction {
  return (_interpreter, operand, args) => {
    const [testName, ...testArgs] = args.positional
    return makeList(pythonIterate(operand).filter((item) => {
      const result = testName === undefined ? truthy(item) : runTest(pythonStr(testName), item, testArgs)
      return result === keep
    }))
  }
}

function selectAttributeFilter (keep: boolean): FilterFunction {
  return (_interpreter, operand, args) => {
    const [attribute, testName, ...testArgs] = args.positional
    if (attribute === undefined) throw typeError('selectattr() missing the attribute name')
    return makeList(pythonIterate(operand).filter((item) => {
      const value = getAttribute(item, pythonStr(attribute))
      const result = testName === undefined ? truthy(value) : runTest(pythonStr(testName), value, testArgs)
      return result === keep
    }))
  }
}

function extremeFilter (direction: 1 | -1): FilterFunction {
  return (_interpreter, operand, args) => {
    const caseSensitive = flag(argument(args, 0, 'case_sensitive'))
    const attribute = argument(args, 1, 'attribute')
    let best: Value | undefined
    let bestKey: Value | undefined
    for (const item of pythonIterate(operand)) {
      const key = sortKey(item, attribute, caseSensitive)
      if (bestKey === undefined || pythonCompare(direction > 0 ? '>' : '<', key, bestKey)) {
        best = item
        bestKey = key
      }
    }
    return best ?? makeUndefined()
  }
}

// ---------------------------------------------------------------------------
// The interpreter

interface ValueNode { type: 'PyValue', value: Value }
interface OutputNode { type: 'PyOutput', expression: JinjaNode }

function syntheticNode<T extends object> (fields: T): JinjaNode {
  return Object.assign(Object.create(statementPrototype) as object, fields) as unknown as JinjaNode
}
function valueNode (value: Value): JinjaNode {
  return syntheticNode<ValueNode>({ type: 'PyValue', value })
}

// Loop control of our own `for` implementation (the library's are private classes).
class BreakSignal extends Error {}
class ContinueSignal extends Error {}

interface MemberNode { object: JinjaNode, property: JinjaNode, computed: boolean }
interface BinaryNode { operator: { value: string }, left: JinjaNode, right: JinjaNode }
interface FilterNode { operand: JinjaNode, filter: JinjaNode & { value?: string, callee?: JinjaNode & { value?: string }, args?: JinjaNode[] } }
interface TestNode { operand: JinjaNode, negate: boolean, test: { value: string } }
interface ForNode { loopvar: JinjaNode & { value?: unknown }, iterable: JinjaNode & { lhs?: JinjaNode, test?: JinjaNode }, body: JinjaNode[], defaultBlock: JinjaNode[] }
interface SetNode { assignee: ForNode['loopvar'], value: JinjaNode | null }
interface FilterStatementNode { filter: FilterNode['filter'], body: JinjaNode[] }

/** A readable name for an expression, for UndefinedError messages like jinja2's "'x' is undefined". */
function describe (node: JinjaNode): string {
  const anyNode = node as unknown as { type: string, value?: unknown, object?: JinjaNode, property?: JinjaNode, computed?: boolean }
  if (anyNode.type === 'Identifier') return String(anyNode.value)
  if (anyNode.type === 'MemberExpression' && anyNode.object !== undefined && anyNode.property !== undefined) {
    const property = anyNode.property as unknown as { type: string, value?: unknown }
    const key = property.type === 'StringLiteral' || property.type === 'Identifier' || property.type === 'IntegerLiteral' ? String(property.value) : '?'
    return `${describe(anyNode.object)}${anyNode.computed === true ? `[${property.type === 'StringLiteral' ? `'${key}'` : key}]` : `.${key}`}`
  }
  return 'value'
}

const LOOP_DEPTH = makeInteger(1)
const LOOP_DEPTH0 = makeInteger(0)
const literalValues = new WeakMap<JinjaNode, Value>()
function literalValue (node: JinjaNode): Value {
  let value = literalValues.get(node)
  if (value === undefined) {
    const literal = (node as unknown as { value: string | number }).value
    value = node.type === 'StringLiteral' ? makeString(literal as string) : node.type === 'IntegerLiteral' ? makeInteger(literal as number) : makeFloat(literal as number)
    literalValues.set(node, value)
  }
  return value
}

/** The library's Environment.lookupVariable, without an Error thrown and caught per unknown name. */
function lookup (environment: Environment, name: string): Value {
  for (let scope: Environment | undefined = environment; scope !== undefined; scope = (scope as unknown as { parent?: Environment }).parent) {
    const value = scope.variables.get(name)
    if (value !== undefined) return value
    if (scope.variables.has(name)) return UNDEFINED
  }
  return UNDEFINED
}

class PythonInterpreter extends Interpreter {
  override evaluate (statement: JinjaNode | undefined, environment: Environment): Value {
    if (statement === undefined) return super.evaluate(statement, environment)
    switch (statement.type) {
      case 'PyValue': return (statement as unknown as ValueNode).value
      // The cases below do what the library does, minus its allocations: a
      // literal's value is made once per node (strings and numbers are
      // immutable), a lookup does not throw and catch for an unknown name, and
      // tests read truthiness without allocating a BooleanValue.
      case 'StringLiteral': case 'IntegerLiteral': case 'FloatLiteral': return literalValue(statement)
      case 'Identifier': return lookup(environment, (statement as unknown as { value: string }).value)
      case 'Program': return makeString(this.block((statement as unknown as { body: JinjaNode[] }).body, environment))
      case 'If': {
        const node = statement as unknown as { test: JinjaNode, body: JinjaNode[], alternate: JinjaNode[] }
        return makeString(this.block(truthy(this.evaluate(node.test, environment)) ? node.body : node.alternate, environment))
      }
      case 'UnaryExpression': {
        const node = statement as unknown as { operator: { value: string }, argument: JinjaNode }
        if (node.operator.value !== 'not') return super.evaluate(statement, environment)
        return makeBoolean(!truthy(this.evaluate(node.argument, environment)))
      }
      case 'PyOutput': return makeString(pythonStr(this.evaluate((statement as unknown as OutputNode).expression, environment)))
      case 'BinaryExpression': return this.binary(statement as unknown as BinaryNode, environment)
      case 'MemberExpression': return this.member(statement as unknown as MemberNode, environment)
      case 'FilterExpression': return this.filter(statement as unknown as FilterNode, environment)
      case 'FilterStatement': return this.filterStatement(statement as unknown as FilterStatementNode, environment)
      case 'TestExpression': return this.test(statement as unknown as TestNode, environment)
      case 'For': return this.loop(statement as unknown as ForNode, environment)
      case 'Set': {
        const node = statement as unknown as SetNode
        if (node.assignee.type !== 'TupleLiteral' || node.value === null) return super.evaluate(statement, environment)
        this.bindLoopTarget(node.assignee, this.evaluate(node.value, environment), environment)
        return makeNone()
      }
      case 'Break': throw new BreakSignal()
      case 'Continue': throw new ContinueSignal()
      default: return super.evaluate(statement, environment)
    }
  }

  private block (statements: JinjaNode[], environment: Environment): string {
    let result = ''
    for (const statement of statements) {
      const value = this.evaluate(statement, environment)
      if (!isNone(value) && !isUndefined(value)) result += pythonStr(value)
    }
    return result
  }

  private binary (node: BinaryNode, environment: Environment): Value {
    const operator = node.operator.value
    const left = this.evaluate(node.left, environment)
    if (operator === 'and') return truthy(left) ? this.evaluate(node.right, environment) : left
    if (operator === 'or') return truthy(left) ? left : this.evaluate(node.right, environment)
    const right = this.evaluate(node.right, environment)
    switch (operator) {
      case '==': return makeBoolean(pythonEquals(left, right))
      case '!=': return makeBoolean(!pythonEquals(left, right))
      case '~': return makeString(pythonStr(left) + pythonStr(right))
      case 'in': return makeBoolean(pythonContains(right, left))
      case 'not in': return makeBoolean(!pythonContains(right, left))
      case '<': case '>': case '<=': case '>=': return makeBoolean(pythonCompare(operator, left, right))
      default: return pythonArithmetic(operator, left, right)
    }
  }

  private member (node: MemberNode, environment: Environment): Value {
    const object = this.evaluate(node.object, environment)
    if (isUndefined(object)) throw undefinedError(`'${describe(node.object)}' is undefined`)
    if (node.computed && node.property.type === 'SliceExpression') {
      return super.evaluate(syntheticNode({ type: 'MemberExpression', object: valueNode(object), property: node.property, computed: true }), environment)
    }
    let key: Value
    if (node.computed) key = this.evaluate(node.property, environment)
    else if (node.property.type === 'IntegerLiteral') key = makeInteger((node.property as unknown as { value: number }).value)
    else key = makeString((node.property as unknown as { value: string }).value)
    // jinja2: `a.b` prefers the attribute, `a['b']` prefers the item; both fall back to the other.
    const preferAttribute = !node.computed
    if (isDict(object)) {
      if (isString(key)) {
        const name = stringOf(key)
        const method = dictMethod(object, name)
        if (preferAttribute && method !== undefined) return makeFunction(method)
        const found = entriesOf(object).get(name)
        if (found !== undefined) return found
        if (method !== undefined) return makeFunction(method)
      }
      // Mutating methods (update, pop, ...) are refused by the immutable sandbox: undefined here too.
      return makeUndefined()
    }
    if (isNamespace(object)) return isString(key) ? entriesOf(object).get(stringOf(key)) ?? makeUndefined() : makeUndefined()
    if (isString(object)) {
      if (isInteger(key) || isBoolean(key)) {
        const text = stringOf(object)
        // Python indexes by code point; avoid the array for the common all-BMP case.
        const char = /[\uD800-\uDFFF]/.test(text) ? Array.from(text).at(numberOf(key)) : text.at(numberOf(key))
        return char === undefined ? makeUndefined() : makeString(char)
      }
      if (isString(key)) {
        const method = stringMethod(stringOf(object), stringOf(key))
        if (method !== undefined) return makeFunction(method)
      }
      return makeUndefined()
    }
    if (isList(object)) {
      if (isInteger(key) || isBoolean(key)) return itemsOf(object).at(numberOf(key)) ?? makeUndefined()
      return makeUndefined()
    }
    // None, numbers, functions: no attributes or items that templates use.
    return makeUndefined()
  }

  private filterArguments (args: JinjaNode[] | undefined, environment: Environment): Arguments | null {
    const result: Arguments = { positional: [], keywords: new Map() }
    for (const node of args ?? []) {
      if (node.type === 'KeywordArgumentExpression') {
        const keyword = node as unknown as { key: { value: string }, value: JinjaNode }
        result.keywords.set(keyword.key.value, this.evaluate(keyword.value, environment))
      } else if (node.type === 'SpreadExpression' || node.type === 'KeywordSpreadExpression') {
        return null
      } else {
        result.positional.push(this.evaluate(node, environment))
      }
    }
    return result
  }

  private applyFilterNode (operand: Value, filterNode: FilterNode['filter'], environment: Environment): Value {
    const isCall = filterNode.type === 'CallExpression'
    const name = isCall ? filterNode.callee?.value : filterNode.value
    const filter = name === undefined ? undefined : FILTERS.get(name)
    if (filter !== undefined) {
      const args = isCall ? this.filterArguments(filterNode.args, environment) : { positional: [], keywords: new Map<string, Value>() }
      if (args !== null) return filter(this, operand, args, environment)
    }
    return super.evaluate(syntheticNode({ type: 'FilterExpression', operand: valueNode(operand), filter: filterNode }), environment)
  }

  /** Applies a filter by name to already evaluated arguments (used by `map('name', ...)`). */
  applyNamedFilter (name: string, operand: Value, args: Arguments, environment: Environment): Value {
    const filter = FILTERS.get(name)
    if (filter !== undefined) return filter(this, operand, args, environment)
    const callArgs: JinjaNode[] = [
      ...args.positional.map(valueNode),
      ...Array.from(args.keywords, ([key, value]) => syntheticNode({ type: 'KeywordArgumentExpression', key: syntheticNode({ type: 'Identifier', value: key }), value: valueNode(value) }))
    ]
    const callee = syntheticNode({ type: 'Identifier', value: name })
    const filterNode = callArgs.length === 0 ? callee : syntheticNode({ type: 'CallExpression', callee, args: callArgs })
    return super.evaluate(syntheticNode({ type: 'FilterExpression', operand: valueNode(operand), filter: filterNode }), environment)
  }

  private filter (node: FilterNode, environment: Environment): Value {
    return this.applyFilterNode(this.evaluate(node.operand, environment), node.filter, environment)
  }

  private filterStatement (node: FilterStatementNode, environment: Environment): Value {
    return this.applyFilterNode(makeString(this.block(node.body, environment)), node.filter, environment)
  }

  private test (node: TestNode, environment: Environment): Value {
    const operand = this.evaluate(node.operand, environment)
    const result = runTest(node.test.value, operand, [])
    return makeBoolean(node.negate ? !result : result)
  }

  private bindLoopTarget (target: ForNode['loopvar'], item: Value, scope: Environment): void {
    if (target.type === 'Identifier') {
      scope.setVariable(target.value as string, item)
      return
    }
    if (target.type !== 'TupleLiteral') throw new JinjaRuntimeError('TemplateSyntaxError', `cannot assign to ${target.type}`)
    const names = target.value as JinjaNode[]
    // Python unpacks any iterable: tuples, lists, strings, dict keys.
    const parts = pythonIterate(item)
    if (parts.length !== names.length) {
      throw valueError(parts.length < names.length
        ? `not enough values to unpack (expected ${names.length}, got ${parts.length})`
        : `too many values to unpack (expected ${names.length})`)
    }
    names.forEach((name, index) => { this.bindLoopTarget(name as ForNode['loopvar'], parts[index] as Value, scope) })
  }

  private loop (node: ForNode, environment: Environment): Value {
    const scope = newScope(environment)
    const filtered = node.iterable.type === 'SelectExpression'
    const source = filtered ? node.iterable.lhs as JinjaNode : node.iterable
    const iterable = this.evaluate(source, scope)
    if (isNone(iterable) || isNumeric(iterable) || isFunction(iterable) || isNamespace(iterable)) {
      throw typeError(`'${pythonTypeName(iterable)}' object is not iterable`)
    }
    let items = pythonIterate(iterable)
    if (filtered) {
      items = items.filter((item) => {
        const testScope = newScope(scope)
        this.bindLoopTarget(node.loopvar, item, testScope)
        return truthy(this.evaluate(node.iterable.test as JinjaNode, testScope))
      })
    }
    if (items.length === 0) return makeString(this.block(node.defaultBlock, scope))

    let result = ''
    const length = makeInteger(items.length)
    for (let index = 0; index < items.length; index++) {
      const item = items[index] as Value
      // Map#set one by one: a Map built from an array of pairs went through the
      // iterator protocol and was the loop's largest cost per iteration.
      const loop = new Map<string, Value>()
        .set('index', makeInteger(index + 1))
        .set('index0', makeInteger(index))
        .set('revindex', makeInteger(items.length - index))
        .set('revindex0', makeInteger(items.length - index - 1))
        .set('first', makeBoolean(index === 0))
        .set('last', makeBoolean(index === items.length - 1))
        .set('length', length)
        .set('previtem', index > 0 ? items[index - 1] as Value : UNDEFINED)
        .set('nextitem', index < items.length - 1 ? items[index + 1] as Value : UNDEFINED)
        .set('depth', LOOP_DEPTH)
        .set('depth0', LOOP_DEPTH0)
        .set('cycle', makeFunction((args) => {
          const choices = splitArguments(args).positional
          if (choices.length === 0) throw typeError('no items for cycling given')
          return choices[index % choices.length] as Value
        }))
      scope.setVariable('loop', makeDict(loop))
      this.bindLoopTarget(node.loopvar, item, scope)
      try {
        result += this.block(node.body, scope)
      } catch (error) {
        if (error instanceof ContinueSignal) continue
        if (error instanceof BreakSignal) break
        throw error
      }
    }
    return makeString(result)
  }
}

// ---------------------------------------------------------------------------
// Compile and render

const CONTROL_STATEMENTS = new Set(['Program', 'If', 'For', 'Set', 'Macro', 'CallStatement', 'FilterStatement', 'Break', 'Continue', 'Comment'])

/**
 * Wraps every `{{ expression }}` in an output node that prints it with Python's
 * str() (None -> "None", True -> "True", lists as repr) instead of JavaScript's.
 */
function wrapOutputs (body: JinjaNode[]): void {
  for (let index = 0; index < body.length; index++) {
    const node = body[index] as JinjaNode
    if (node.type === 'StringLiteral') continue // template text
    if (!CONTROL_STATEMENTS.has(node.type)) {
      body[index] = syntheticNode<OutputNode>({ type: 'PyOutput', expression: node })
      continue
    }
    const container = node as unknown as Record<string, unknown>
    for (const field of ['body', 'alternate', 'defaultBlock']) {
      const child = container[field]
      if (Array.isArray(child)) wrapOutputs(child as JinjaNode[])
    }
  }
}

export interface CompiledJinja {
  readonly source: string
  readonly program: ProgramNode
}

let parseCount = 0

/** How many templates this process has parsed; lets tests and benchmarks prove rendering never re-parses. */
export function jinjaParseCount (): number {
  return parseCount
}

/** Parses once (trim_blocks + lstrip_blocks, as transformers configures jinja2). Throws the parser's error. */
export function compileJinja (source: string): CompiledJinja {
  parseCount++
  // jinja2 reads \r\n and \r as \n (in text and string literals alike) before trim_blocks applies.
  const program = parseTemplate(source.replace(/\r\n?/g, '\n'))
  wrapOutputs(program.body)
  return { source, program }
}

export interface RenderOptions {
  /** Clock behind strftime_now; called at each use, like datetime.now(). */
  now: () => Date
}

// jinja2's sandbox refuses larger ranges (MAX_RANGE).
const MAX_RANGE = 100_000

function rangeFunction (args: Value[]): Value {
  const numbers = splitArguments(args).positional.map((value) => integerArgument(value, 0))
  const [start, stop, step] = numbers.length === 1 ? [0, numbers[0] as number, 1] : [numbers[0] ?? 0, numbers[1] ?? 0, numbers[2] ?? 1]
  if (step === 0) throw valueError('range() arg 3 must not be zero')
  const length = Math.max(0, Math.ceil((stop - start) / step))
  if (length > MAX_RANGE) throw new JinjaRuntimeError('OverflowError', `Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`)
  return makeList(Array.from({ length }, (_unused, index) => makeInteger(start + index * step)))
}

function globalEnvironment (options: RenderOptions): Environment {
  const environment = new Environment()
  for (const [name, value] of [['true', true], ['false', false], ['none', null], ['True', true], ['False', false], ['None', null]] as const) {
    environment.set(name, value)
  }
  const define = (name: string, fn: NativeFunction): void => { environment.setVariable(name, makeFunction(fn)) }
  define('raise_exception', (args) => {
    const message = args[0]
    throw new TemplateRaisedError(message === undefined ? '' : pythonStr(message))
  })
  define('strftime_now', (args) => {
    const format = args[0]
    if (format === undefined || !isString(format)) throw typeError('strftime() argument 1 must be str')
    return makeString(pythonStrftime(options.now(), stringOf(format)))
  })
  define('range', rangeFunction)
  define('dict', (args) => {
    const { positional, keywords } = splitArguments(args)
    const entries = new Map<string, Value>()
    const source = positional[0]
    if (source !== undefined && isDict(source)) for (const [key, value] of entriesOf(source)) entries.set(key, value)
    for (const [key, value] of keywords) entries.set(key, value)
    return makeDict(entries)
  })
  return environment
}

/**
 * JSON-like input → template values, as the library's own conversion does, but
 * a PythonFloat (a JSON `1.0`) becomes a float, which Python prints as `1.0`.
 */
function toTemplateValue (input: unknown): Value {
  if (typeof input === 'object' && input !== null) {
    if (input instanceof PythonFloat) return makeFloat(input.value)
    if (Array.isArray(input)) return makeList(input.map(toTemplateValue))
    const entries = new Map<string, Value>()
    for (const key of Object.keys(input)) entries.set(key, toTemplateValue((input as Record<string, unknown>)[key]))
    return makeDict(entries)
  }
  switch (typeof input) {
    case 'string': return makeString(input)
    case 'number': return Number.isInteger(input) ? makeInteger(input) : makeFloat(input)
    case 'boolean': return makeBoolean(input)
    case 'undefined': return makeUndefined()
    default:
      if (input === null) return makeNone()
      // Anything else (functions, ...): the library's own conversion.
      return new Environment().set('value', input)
  }
}

/** Renders with the variables (in order: later names win) on top of the jinja2 globals. */
// The globals depend only on the clock; renders never write to them (every
// render's own variables and `{% set %}`s live in a child scope), so one global
// environment per clock is built once instead of per render.
const globalEnvironments = new WeakMap<() => Date, Environment>()

export function renderJinja (compiled: CompiledJinja, variables: Iterable<[string, unknown]>, options: RenderOptions): string {
  let globals = globalEnvironments.get(options.now)
  if (globals === undefined) {
    globals = globalEnvironment(options)
    globalEnvironments.set(options.now, globals)
  }
  const scope = newScope(globals)
  for (const [name, value] of variables) {
    // Render variables shadow globals such as `namespace`.
    scope.variables.set(name, toTemplateValue(value))
  }
  const result = new PythonInterpreter(scope).run(compiled.program)
  return stringOf(result)
}
