/**
 * A model's chat template, compiled once and rendered exactly as Python's
 * `tokenizer.apply_chat_template(messages, tokenize=False, ...)` would
 * (transformers' chat_template_utils.py; test oracle:
 * shared/chat-templates/render_reference.py).
 */
import { TemplateLoadError, TemplateRenderError } from '../errors.js'
import { compileJinja, jinjaParseCount, pythonStringRepr, pythonStrip, renderJinja, TemplateRaisedError } from './jinja-compat.js'
import type { CompiledJinja } from './jinja-compat.js'
import { detectContentFormat, type ContentFormat } from './content-format.js'

export type { ContentFormat }

/** bos_token, eos_token, unk_token, pad_token, ... (only non-empty ones, like special_tokens_map). */
export interface SpecialTokens { [name: string]: string }

export interface NamedTemplate { name: string, template: string }

export interface RenderInput {
  /** Plain JSON objects as given (role, content, tool_calls, ...). */
  messages: Array<Record<string, unknown>>
  tools?: unknown[] | null
  documents?: unknown[] | null
  /** Default true. */
  addGenerationPrompt?: boolean
  /** Default false. */
  continueFinalMessage?: boolean
  /** Explicit named template. */
  templateName?: string
  /** chat_template_kwargs: win over special tokens, lose to messages/tools/documents/add_generation_prompt, as in transformers. */
  kwargs?: Record<string, unknown>
}

export interface ChatTemplateOptions {
  /** Clock for strftime_now (naive local time); default () => new Date(). */
  now?: () => Date
}

// transformers appends this to the final message and cuts the prompt at it.
const CONTINUE_TAG = 'CONTINUE_FINAL_MESSAGE_TAG '
const CONTINUE_MARKER = CONTINUE_TAG.trim()

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function namesRepr (names: Iterable<string>): string {
  return `[${Array.from(names).sort().map(pythonStringRepr).join(', ')}]`
}

export class ChatTemplate {
  readonly names: string[]
  readonly supportsTools: boolean
  readonly #templates: Map<string, CompiledJinja>
  readonly #contentFormats: Map<CompiledJinja, ContentFormat>
  readonly #isSingle: boolean
  readonly #specialTokens: Array<[string, string]>
  readonly #now: () => Date
  #sourceText: string | undefined

  private constructor (templates: Map<string, CompiledJinja>, isSingle: boolean, specialTokens: SpecialTokens, now: () => Date) {
    this.#templates = templates
    this.#isSingle = isSingle
    // Detected once here, so normalising a request's messages costs a map lookup.
    this.#contentFormats = new Map(Array.from(new Set(templates.values()), (compiled) => [compiled, detectContentFormat(compiled)]))
    this.names = Array.from(templates.keys())
    this.supportsTools = Array.from(templates.values()).some((compiled) => /\btools\b/.test(compiled.source))
    // Like special_tokens_map: unset or empty tokens are not template variables at all.
    this.#specialTokens = Object.entries(specialTokens).filter(([, token]) => typeof token === 'string' && token !== '')
    this.#now = now
  }

  /** A special token's text (bos_token, eos_token, ...), as the template sees it. */
  specialToken (name: string): string | undefined {
    return this.#specialTokens.find(([key]) => key === name)?.[1]
  }

  /** Every named template's text, joined: what tool-call and reasoning detection read. */
  get sourceText (): string {
    this.#sourceText ??= Array.from(new Set(this.#templates.values()), (compiled) => compiled.source).join('\n')
    return this.#sourceText
  }

  /** Total Jinja parses in this process: constant across render() calls, which never recompile. */
  static get parseCount (): number {
    return jinjaParseCount()
  }

  /** Compiles every named template once; a syntax error is a TemplateLoadError (500, chat_template_invalid). */
  static compile (source: string | NamedTemplate[], specialTokens: SpecialTokens, options: ChatTemplateOptions = {}): ChatTemplate {
    const isSingle = typeof source === 'string'
    const entries: Array<[string, string]> = isSingle ? [['default', source]] : source.map((entry) => [entry.name, entry.template])
    const templates = new Map<string, CompiledJinja>()
    const bySource = new Map<string, CompiledJinja>()
    for (const [name, text] of entries) {
      let compiled = bySource.get(text)
      if (compiled === undefined) {
        try {
          compiled = compileJinja(text)
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error)
          const which = isSingle ? 'The chat template' : `The chat template '${name}'`
          throw new TemplateLoadError(`${which} could not be compiled: ${reason}`, 500, 'chat_template_invalid', error)
        }
        bySource.set(text, compiled)
      }
      // A later entry with the same name wins, as in transformers' dict of named templates.
      templates.set(name, compiled)
    }
    return new ChatTemplate(templates, isSingle, specialTokens, options.now ?? (() => new Date()))
  }

  #select (templateName: string | undefined, tools: unknown[] | null): CompiledJinja {
    if (this.#isSingle) {
      if (templateName !== undefined && templateName !== 'default') {
        throw new TemplateRenderError(`This model has a single chat template; template ${pythonStringRepr(templateName)} is not available (available: ['default']).`)
      }
      return this.#templates.get('default') as CompiledJinja
    }
    if (templateName !== undefined) {
      const named = this.#templates.get(templateName)
      if (named === undefined) {
        throw new TemplateRenderError(`Chat template ${pythonStringRepr(templateName)} not found; available templates are ${namesRepr(this.#templates.keys())}.`)
      }
      return named
    }
    const toolUse = tools !== null ? this.#templates.get('tool_use') : undefined
    const chosen = toolUse ?? this.#templates.get('default')
    if (chosen === undefined) {
      throw new TemplateRenderError(`This model has multiple chat templates with no default specified! Available template names are ${namesRepr(this.#templates.keys())}.`)
    }
    return chosen
  }

  /**
   * The content shape the template render() would pick for these options
   * expects (vLLM's detection): 'openai' when it loops over a message's content
   * parts, else 'string'. Throws TemplateRenderError for an unknown template name.
   */
  contentFormat (options: Pick<RenderInput, 'templateName' | 'tools'> = {}): ContentFormat {
    return this.#contentFormats.get(this.#select(options.templateName, options.tools ?? null)) ?? 'string'
  }

  /** Pure function of (template, input, clock). Throws TemplateRenderError. */
  render (input: RenderInput): string {
    const addGenerationPrompt = input.addGenerationPrompt ?? true
    const continueFinal = input.continueFinalMessage ?? false
    const tools = input.tools ?? null
    const documents = input.documents ?? null
    if (!Array.isArray(input.messages)) throw new TemplateRenderError('messages must be a list of message objects')
    if (continueFinal && addGenerationPrompt) {
      throw new TemplateRenderError('continue_final_message and add_generation_prompt are not compatible')
    }
    const compiled = this.#select(input.templateName, tools)
    if (documents !== null && !documents.every(isPlainObject)) {
      throw new TemplateRenderError('Documents should be a list of dicts with \'title\' and \'text\' keys!')
    }

    let messages = input.messages
    let finalText = ''
    if (continueFinal) {
      [messages, finalText] = this.#markFinalMessage(messages, compiled)
    }

    const variables: Array<[string, unknown]> = [
      ...this.#specialTokens,
      ...Object.entries(input.kwargs ?? {}),
      ['messages', messages],
      ['tools', tools],
      ['documents', documents],
      ['add_generation_prompt', addGenerationPrompt]
    ]
    let rendered: string
    try {
      rendered = renderJinja(compiled, variables, { now: this.#now })
    } catch (error) {
      if (error instanceof TemplateRaisedError) throw new TemplateRenderError(error.message, error)
      const reason = error instanceof Error ? error.message : String(error)
      throw new TemplateRenderError(`Error rendering the chat template: ${reason}`, error)
    }

    if (continueFinal) {
      if (!rendered.includes(pythonStrip(finalText, null)) || !rendered.includes(CONTINUE_MARKER)) {
        throw new TemplateRenderError('continue_final_message is set but the final message does not appear in the chat after applying the chat template!')
      }
      const at = rendered.lastIndexOf(CONTINUE_MARKER)
      // Cut at the marker; if the template trimmed the marker's trailing space, trim what precedes it too.
      rendered = rendered.slice(at, at + CONTINUE_TAG.length) === CONTINUE_TAG
        ? rendered.slice(0, at)
        : pythonStrip(rendered.slice(0, at), null, 'right')
    }
    return rendered
  }

  /** Appends the continuation marker to the final message (a copy), returning the text being continued. */
  #markFinalMessage (messages: Array<Record<string, unknown>>, compiled: CompiledJinja): [Array<Record<string, unknown>>, string] {
    const last = messages.at(-1)
    if (last === undefined) throw new TemplateRenderError('continue_final_message is set but there is no final message to continue!')
    const content = last.content
    if (content === undefined || content === null) {
      throw new TemplateRenderError('continue_final_message is set but the final message has no "content" to continue!')
    }
    if (!compiled.source.includes('content')) {
      throw new TemplateRenderError('continue_final_message is set to "content" but this is not an accepted field in the chat_template')
    }
    let marked: Record<string, unknown>
    let finalText: string
    if (Array.isArray(content)) {
      const blocks = [...content] as unknown[]
      let index = blocks.length - 1
      while (index >= 0 && !(isPlainObject(blocks[index]) && 'text' in (blocks[index] as object))) index--
      if (index < 0) {
        throw new TemplateRenderError('continue_final_message is set but we could not find any text to continue in the final message!')
      }
      const block = blocks[index] as Record<string, unknown>
      if (typeof block.text !== 'string') throw new TemplateRenderError('continue_final_message is set but the final text block is not a string')
      finalText = block.text
      blocks[index] = { ...block, text: block.text + CONTINUE_TAG }
      marked = { ...last, content: blocks }
    } else {
      if (typeof content !== 'string') throw new TemplateRenderError('continue_final_message is set but the final message content is not a string')
      finalText = content
      marked = { ...last, content: content + CONTINUE_TAG }
    }
    return [[...messages.slice(0, -1), marked], finalText]
  }
}
