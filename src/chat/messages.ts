/**
 * OpenAI chat messages → the plain message objects a Hugging Face chat template
 * expects (what transformers' apply_chat_template receives). This is the
 * normalisation /v1/chat/completions applies, and /v1/chat/render applies with
 * `openai_normalization: true`; without it, render passes messages as given.
 */
import { z } from 'zod'
import { chatCompletionRequestSchema } from '../openai/schemas.js'
import type { ChatCompletionRequest, ChatMessage } from '../openai/schemas.js'
import type { ContentFormat } from '../templates/chat-template.js'
import { invalidRequest } from '../errors.js'

export type TemplateMessage = Record<string, unknown>
type Tools = NonNullable<ChatCompletionRequest['tools']>

/**
 * @param contentFormat how the chosen template reads content: 'string' joins
 *   text parts with "\n"; 'openai' keeps them as a list of `{type: 'text', text}`
 *   (the template loops over the parts). String content stays a string either way.
 */
export function toTemplateMessages (messages: readonly ChatMessage[], contentFormat: ContentFormat = 'string'): TemplateMessage[] {
  return messages.map((message, index) => {
    // OpenAI's `developer` role replaces `system` for newer models; chat templates only know `system`.
    const role = message.role === 'developer' ? 'system' : message.role
    const templateMessage: TemplateMessage = { role, content: toTemplateContent(message.content, index, contentFormat) }
    if ('name' in message && message.name !== undefined) templateMessage.name = message.name
    if (message.role === 'tool') templateMessage.tool_call_id = message.tool_call_id
    if (message.role === 'assistant') {
      if (message.reasoning_content !== undefined && message.reasoning_content !== null) templateMessage.reasoning_content = message.reasoning_content
      if (message.tool_calls !== undefined && message.tool_calls.length > 0) {
        // Templates index into the arguments (`tool_call.arguments.items()`), so
        // the JSON string OpenAI clients send is parsed first, as vLLM does.
        templateMessage.tool_calls = message.tool_calls.map((call, callIndex) => ({
          id: call.id,
          type: call.type,
          function: { name: call.function.name, arguments: parseArguments(call.function.arguments, index, callIndex) }
        }))
      }
    }
    return templateMessage
  })
}

function toTemplateContent (content: ChatMessage['content'], index: number, contentFormat: ContentFormat): string | null | Array<{ type: 'text', text: string }> {
  if (content === undefined || content === null) return null
  if (typeof content === 'string') return content
  const parts: Array<{ type: 'text', text: string }> = []
  for (const [partIndex, part] of content.entries()) {
    if (part.type !== 'text') {
      throw invalidRequest(`messages[${index}].content[${partIndex}]: this model takes text only; '${part.type}' parts are not supported`, `messages[${index}].content[${partIndex}].type`, 'unsupported_content_type')
    }
    parts.push({ type: 'text', text: part.text })
  }
  return contentFormat === 'openai' ? parts : parts.map((part) => part.text).join('\n')
}

function parseArguments (text: string, index: number, callIndex: number): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw invalidRequest(`messages[${index}].tool_calls[${callIndex}].function.arguments is not valid JSON`, `messages[${index}].tool_calls[${callIndex}].function.arguments`)
  }
}

const openAIFieldsSchema = z.object({
  messages: chatCompletionRequestSchema.shape.messages,
  tools: chatCompletionRequestSchema.shape.tools
})

/**
 * /v1/chat/render with `openai_normalization`: the as-given messages and tools
 * validated exactly as /v1/chat/completions validates its body, so the same
 * request gets the same 400 (same param) or the same prompt from both routes.
 */
export function asCompletionFields (messages: readonly unknown[], tools: readonly unknown[] | null | undefined): { messages: ChatMessage[], tools: Tools | null } {
  const result = openAIFieldsSchema.safeParse({ messages, tools })
  if (result.success) return { messages: result.data.messages, tools: result.data.tools ?? null }
  const issue = result.error.issues[0]
  const param = issue === undefined ? null : paramOf(issue.path)
  const missing = issue?.code === 'invalid_type' && issue.message.includes('received undefined')
  throw missing
    ? invalidRequest(`Missing required parameter: '${param ?? 'messages'}'.`, param, 'missing_required_parameter')
    : invalidRequest(`Invalid value for '${param ?? 'messages'}': ${issue?.message ?? 'invalid'}`, param, 'invalid_value')
}

/** ['messages', 0, 'role'] → `messages[0].role`, as the error handler names params. */
function paramOf (path: readonly PropertyKey[]): string | null {
  let param = ''
  for (const part of path) param += typeof part === 'number' ? `[${part}]` : param === '' ? String(part) : `.${String(part)}`
  return param === '' ? null : param
}
