/**
 * Which shape of message `content` a chat template expects, found once per
 * template from its syntax tree, the way vLLM decides it
 * (`_detect_content_format` in vllm/entrypoints/chat_utils.py):
 *
 * - 'openai': the template loops over a message's content
 *   (`{% for part in message['content'] %}`), so it wants the list of parts;
 * - 'string': anything else, so text parts are joined into one string.
 *
 * A "message" is the target of a loop over `messages`, or over a variable set
 * from `messages` (`{% set loop_messages = messages[1:] %}`), possibly through
 * filters, tests and slices. Like vLLM this is a syntactic heuristic: content
 * reached through macros or re-assigned to another name is not followed.
 */
import type { CompiledJinja } from './jinja-compat.js'

export type ContentFormat = 'string' | 'openai'

interface Node {
  type: string
  [field: string]: unknown
}

function isNode (value: unknown): value is Node {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string'
}

/** Every node below `root` (root included), depth first, without recursion. */
function * allNodes (root: Node): Generator<Node> {
  const pending: unknown[] = [root]
  while (pending.length > 0) {
    const value = pending.pop()
    if (Array.isArray(value)) {
      pending.push(...value)
    } else if (value instanceof Map) {
      // Dict literals keep their keys and values in a Map.
      for (const [key, item] of value) pending.push(key, item)
    } else if (isNode(value)) {
      yield value
      for (const field of Object.values(value)) {
        if (typeof field === 'object' && field !== null) pending.push(field)
      }
    }
  }
}

function isName (node: unknown, name: string): boolean {
  return isNode(node) && node.type === 'Identifier' && node.value === name
}

/** `variable.key` or `variable['key']`. */
function isKeyAccess (node: Node, variable: string, key: string): boolean {
  if (node.type !== 'MemberExpression' || !isName(node.object, variable) || !isNode(node.property)) return false
  const property = node.property
  return node.computed === true
    ? property.type === 'StringLiteral' && property.value === key
    : property.type === 'Identifier' && property.value === key
}

/** `variable` (or `variable.key` when key is given), seen through filters, tests and slices. */
function accesses (node: unknown, variable: string, key?: string): boolean {
  if (!isNode(node)) return false
  if (node.type === 'FilterExpression' || node.type === 'TestExpression') return accesses(node.operand, variable, key)
  if (node.type === 'MemberExpression' && node.computed === true && isNode(node.property) && node.property.type === 'SliceExpression') {
    return accesses(node.object, variable, key)
  }
  return key === undefined ? isName(node, variable) : isKeyAccess(node, variable, key)
}

interface Loop { target: unknown, iterable: unknown }

function loopsOf (nodes: Node[]): Loop[] {
  return nodes.filter((node) => node.type === 'For').map((node) => {
    // `for x in items if condition` parses as a select expression around the items.
    const iterable = isNode(node.iterable) && node.iterable.type === 'SelectExpression' ? node.iterable.lhs : node.iterable
    return { target: node.loopvar, iterable }
  })
}

function identifierName (node: unknown): string | undefined {
  return isNode(node) && node.type === 'Identifier' && typeof node.value === 'string' ? node.value : undefined
}

export function detectContentFormat (compiled: CompiledJinja): ContentFormat {
  const nodes = Array.from(allNodes(compiled.program as unknown as Node))

  // `messages` and every variable set from it, transitively.
  const messageLists = new Set(['messages'])
  const pending = ['messages']
  const assignments = nodes.filter((node) => node.type === 'Set' && node.value !== null && node.value !== undefined)
  while (pending.length > 0) {
    const source = pending.shift() as string
    for (const assignment of assignments) {
      const target = identifierName(assignment.assignee)
      if (target === undefined || messageLists.has(target) || !accesses(assignment.value, source)) continue
      messageLists.add(target)
      pending.push(target)
    }
  }

  const loops = loopsOf(nodes)
  const messageVariables = new Set<string>()
  for (const loop of loops) {
    const target = identifierName(loop.target)
    if (target !== undefined && Array.from(messageLists).some((list) => accesses(loop.iterable, list))) messageVariables.add(target)
  }
  for (const loop of loops) {
    if (Array.from(messageVariables).some((message) => accesses(loop.iterable, message, 'content'))) return 'openai'
  }
  return 'string'
}
