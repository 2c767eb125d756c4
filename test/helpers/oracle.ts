/**
 * The shapes of shared/chat-templates (see its README): model files, conversation
 * cases and golden results, as the template and render tests read them.
 */
export interface OracleModel {
  model_id: string
  chat_template: string | Array<{ name: string, template: string }>
  special_tokens?: Record<string, string>
  bos_token?: string
  eos_token?: string
}

export interface OracleCase {
  id: string
  messages: Array<Record<string, unknown>>
  tools?: unknown[]
  documents?: unknown[]
  add_generation_prompt?: boolean
  continue_final_message?: boolean
  template_name?: string
  kwargs?: Record<string, unknown>
  now?: string
}

export interface GoldenResult { output?: string, error?: string, error_type?: string }
