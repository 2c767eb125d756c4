import type { TemplateSource } from './types.js'

export function templateText (source: TemplateSource): string {
  return typeof source === 'string' ? source : source.map((entry) => entry.template).join('\n')
}

// First match wins. The families' markers do not overlap, except that a template
// may describe another family's format in prose, so the rarer, more specific
// special tokens are looked for first and Hermes' plain-text tag last.
const SIGNATURES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['deepseek_v3', ['<｜tool▁calls▁begin｜>']],
  ['mistral', ['[TOOL_CALLS]']],
  ['granite', ['<|tool_call|>']],
  // Llama 3.2's template has no <|python_tag|>, only the JSON tool prompt.
  ['llama3_json', ['<|python_tag|>', '"parameters": dictionary of argument name and its value']],
  ['hermes', ['<tool_call>']]
]

/** The tool call parser for a chat template (its text, or its named templates), from how the template writes calls; undefined when none fits. */
export function detectToolCallParser (templateSource: TemplateSource): string | undefined {
  const text = templateText(templateSource)
  return SIGNATURES.find(([, markers]) => markers.some((marker) => text.includes(marker)))?.[0]
}
