/**
 * Tool calls written by open models as text, turned into OpenAI `tool_calls`.
 * The functions live in ./index.ts; this file holds only the shapes.
 */

export interface ParsedToolCall {
  id: string
  name: string
  /** Always a JSON object string, e.g. '{"city":"Paris"}'; '{}' when the model gave none. */
  arguments: string
}

export interface ParsedOutput {
  /** Text outside the calls, without the whitespace the markup leaves around it; null when empty. */
  content: string | null
  toolCalls: ParsedToolCall[]
}

export type ToolStreamEvent =
  | { type: 'content', text: string }
  /** The first delta of call `index`: its id and name. */
  | { type: 'tool_call', index: number, id: string, name: string }
  /** Later deltas of call `index`: argument JSON fragments that concatenate to ParsedToolCall.arguments. */
  | { type: 'tool_call_arguments', index: number, text: string }

export interface ToolCallStream {
  /** A token's text; returns what can be released now. */
  push (text: string): ToolStreamEvent[]
  /**
   * End of generation: held text that turned out not to be a call is released as
   * content; an unterminated call that parses is completed; one that does not
   * parse is released as content.
   */
  finish (): ToolStreamEvent[]
}

export interface ToolCallParser {
  /** 'hermes' | 'llama3_json' | 'mistral' | 'granite' | 'deepseek_v3' */
  readonly name: string
  parse (text: string): ParsedOutput
  stream (): ToolCallStream
}

export interface ToolCallParserOptions {
  /** Tool call ids; default 'call_' + 24 random alphanumerics (9 alphanumerics for mistral). */
  newId?: () => string
}

/** A chat template as tokenizer_config.json holds it: one string or named templates. */
export type TemplateSource = string | ReadonlyArray<{ readonly template: string }>
