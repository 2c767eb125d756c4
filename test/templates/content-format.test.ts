import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { compileJinja } from '../../src/templates/jinja-compat.js'
import { detectContentFormat } from '../../src/templates/content-format.js'
import { ChatTemplate } from '../../src/templates/chat-template.js'
import type { NamedTemplate } from '../../src/templates/chat-template.js'
import { SHARED, skipWithoutCorpus } from '../helpers/corpus.js'

const detect = (source: string): string => detectContentFormat(compileJinja(source))

test('a loop over a message\'s content means the template wants the list of parts (openai)', () => {
  for (const source of [
    "{% for message in messages %}{% for part in message['content'] %}{{ part.text }}{% endfor %}{% endfor %}",
    '{% for message in messages %}{% for part in message.content %}{{ part.text }}{% endfor %}{% endfor %}',
    "{% for m in messages %}{% for part in m['content'] | selectattr('type', 'equalto', 'text') %}{{ part.text }}{% endfor %}{% endfor %}",
    "{% for m in messages %}{% for part in m.content if part.type == 'text' %}{{ part.text }}{% endfor %}{% endfor %}",
    "{% for m in messages %}{% for part in m['content'][1:] %}{{ part.text }}{% endfor %}{% endfor %}",
    // Through variables set from messages, transitively (as gemma-3 and Mistral-Small do).
    "{% set loop_messages = messages[1:] %}{% set rest = loop_messages %}{% for m in rest %}{% for part in m.content %}{% endfor %}{% endfor %}",
    "{% if true %}{% for m in messages | reverse %}{% if m.content is not string %}{% for part in m.content %}{% endfor %}{% endif %}{% endfor %}{% endif %}"
  ]) assert.equal(detect(source), 'openai', source)
})

test('templates that only print content want a string', () => {
  for (const source of [
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}{% endfor %}",
    "{% for message in messages %}{% for line in message['role'] %}{% endfor %}{{ message.content | trim }}{% endfor %}",
    // Not a message: `item` does not come from messages.
    "{% for item in documents %}{% for part in item.content %}{% endfor %}{% endfor %}",
    // Content reached through another name is not followed (as in vLLM).
    "{% for message in messages %}{% set content = message.content %}{% for part in content %}{% endfor %}{% endfor %}",
    "{% for message in messages %}{% for part in message[content] %}{% endfor %}{% endfor %}"
  ]) assert.equal(detect(source), 'string', source)
})

test('ChatTemplate.contentFormat follows template selection', () => {
  const named: NamedTemplate[] = [
    { name: 'default', template: '{% for m in messages %}{{ m.content }}{% endfor %}' },
    { name: 'tool_use', template: '{% for m in messages %}{% for part in m.content %}{{ part.text }}{% endfor %}{% endfor %}{{ tools }}' }
  ]
  const template = ChatTemplate.compile(named, {})
  assert.equal(template.contentFormat(), 'string')
  assert.equal(template.contentFormat({ tools: [] }), 'openai')
  assert.equal(template.contentFormat({ tools: [], templateName: 'default' }), 'string')
  assert.throws(() => template.contentFormat({ templateName: 'rag' }), /Chat template 'rag' not found/)

})

test('the shared models match vLLM\'s content-format detection', { skip: skipWithoutCorpus('chat-templates/models/') }, () => {
  // Computed once with a Python re-statement of vLLM's _detect_content_format over jinja2's AST.
  const openai = new Set(['google/gemma-3-4b-it', 'mistralai/Mistral-Small-3.2-24B-Instruct-2506'])
  const directory = new URL('chat-templates/models/', SHARED)
  for (const file of readdirSync(directory).filter((name) => name.endsWith('.json'))) {
    const model = JSON.parse(readFileSync(new URL(file, directory), 'utf8')) as { model_id: string, chat_template: string | NamedTemplate[] }
    const entries = typeof model.chat_template === 'string' ? [model.chat_template] : model.chat_template.map((entry) => entry.template)
    for (const source of entries) assert.equal(detect(source), openai.has(model.model_id) ? 'openai' : 'string', model.model_id)
  }
})
