/**
 * OpenAI chat messages → the plain message objects a Hugging Face chat template
 * expects (what transformers' apply_chat_template receives).
 */
import type { ChatMessage } from '../openai/schemas.js'
import { invalidRequest } from '../errors.js'

export type TemplateMessage = Record<string, unknown>

export function toTemplateMessages (messages: readonly ChatMessage[]): TemplateMessage[] {
  return messages.map((message, index) => {
    // OpenAI's `developer` role replaces `system` for newer models; chat templates only know `system`.
    const role = message.role === 'developer' ? 'system' : message.role
    const templateMessage: TemplateMessage = { role, content: toTemplateContent(message.content, index) }
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

function toTemplateContent (content: ChatMessage['content'], index: number): string | null {
  if (content === undefined || content === null) return null
  if (typeof content === 'string') return content
  const texts: string[] = []
  for (const [partIndex, part] of content.entries()) {
    if (part.type !== 'text') {
      throw invalidRequest(`messages[${index}].content[${partIndex}]: this model takes text only; '${part.type}' parts are not supported`, `messages[${index}].content[${partIndex}].type`, 'unsupported_content_type')
    }
    texts.push(part.text)
  }
  // Text parts are joined with newlines for templates that expect a string (vLLM's "string" content format).
  return texts.join('\n')
}

function parseArguments (text: string, index: number, callIndex: number): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw invalidRequest(`messages[${index}].tool_calls[${callIndex}].function.arguments is not valid JSON`, `messages[${index}].tool_calls[${callIndex}].function.arguments`)
  }
}
