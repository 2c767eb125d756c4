import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { ChatTemplate } from '../../src/templates/chat-template.js'
import type { NamedTemplate, RenderInput, SpecialTokens } from '../../src/templates/chat-template.js'
import { compileJinja, renderJinja } from '../../src/templates/jinja-compat.js'
import { TemplateLoadError, TemplateRenderError } from '../../src/errors.js'
import type { GoldenResult, OracleCase, OracleModel } from '../helpers/oracle.js'
import { SHARED, hasCorpus, skipWithoutCorpus } from '../helpers/corpus.js'
import { ZEPHYR_STYLE_CONFIG } from '../fixtures/tokenizer-configs.js'

// ---------------------------------------------------------------------------
// The oracle: shared/chat-templates (Python jinja2 as transformers drives it)

const ORACLE = new URL('chat-templates/', SHARED)
const HAS_ORACLE = hasCorpus('chat-templates/cases.json', 'chat-templates/golden.json', 'chat-templates/models/')
const ORACLE_SKIP = skipWithoutCorpus('chat-templates/cases.json', 'chat-templates/golden.json', 'chat-templates/models/')

const readJson = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, ORACLE), 'utf8')) as T
const casesFile = HAS_ORACLE ? readJson<{ now: string, cases: OracleCase[] }>('cases.json') : { now: '', cases: [] }
const golden = HAS_ORACLE ? readJson<{ results: Record<string, Record<string, GoldenResult>> }>('golden.json') : { results: {} }
const modelFiles = HAS_ORACLE ? readdirSync(new URL('models/', ORACLE)).filter((name) => name.endsWith('.json')).sort() : []

const REQUIRED = modelFiles.filter((name) =>
  name === 'HuggingFaceH4__zephyr-7b-beta.json' ||
  ['meta-llama__Llama-3.1-8B-Instruct', 'meta-llama__Llama-3.2-3B-Instruct', 'meta-llama__Llama-3.3-70B-Instruct', 'meta-llama__Meta-Llama-3-8B-Instruct']
    .some((stem) => name === `${stem}.json`) ||
  name.startsWith('mistralai__') ||
  name === 'Qwen__Qwen2.5-7B-Instruct.json' || name === 'Qwen__Qwen2.5-Coder-7B-Instruct.json' ||
  name.startsWith('google__gemma-'))

/** Every model × case agrees today; lower this only with a reason in the commit message. */
const AGREEMENT_FLOOR = 1300

interface Oracle { model: OracleModel, template: ChatTemplate, setNow: (iso: string) => void }

function loadOracleModel (file: string): Oracle {
  const model = readJson<OracleModel>(`models/${file}`)
  // Like render_reference.py: special_tokens, or bos/eos when a file has no map.
  const tokens = model.special_tokens ?? { bos_token: model.bos_token ?? '', eos_token: model.eos_token ?? '' }
  let now = new Date(casesFile.now)
  const template = ChatTemplate.compile(model.chat_template, tokens, { now: () => now })
  return { model, template, setNow: (iso) => { now = new Date(iso) } }
}

function renderCase (oracle: Oracle, item: OracleCase): { output: string } | { error: unknown } {
  oracle.setNow(item.now ?? casesFile.now)
  const input: RenderInput = {
    messages: item.messages,
    tools: item.tools,
    documents: item.documents,
    addGenerationPrompt: item.add_generation_prompt,
    continueFinalMessage: item.continue_final_message,
    templateName: item.template_name,
    kwargs: item.kwargs
  }
  try {
    return { output: oracle.template.render(input) }
  } catch (error) {
    return { error }
  }
}

function agrees (result: { output: string } | { error: unknown }, expected: GoldenResult): boolean {
  if (expected.error === undefined) return 'output' in result && result.output === expected.output
  if (!('error' in result) || !(result.error instanceof TemplateRenderError)) return false
  // No error_type: the template's own raise_exception message, which must be exact.
  return expected.error_type !== undefined || result.error.message === expected.error
}

for (const file of REQUIRED) {
  const oracle = loadOracleModel(file)
  const expectedByCase = golden.results[oracle.model.model_id]
  for (const item of casesFile.cases) {
    test(`golden: ${oracle.model.model_id} × ${item.id}`, () => {
      const expected = expectedByCase?.[item.id]
      assert.ok(expected !== undefined, 'golden.json has this case')
      const result = renderCase(oracle, item)
      if (expected.error === undefined) {
        assert.ok('output' in result, `expected output, got error: ${String((result as { error: Error }).error?.message)}`)
        assert.equal(result.output, expected.output)
      } else {
        assert.ok('error' in result, 'expected an error')
        assert.ok(result.error instanceof TemplateRenderError, `expected TemplateRenderError, got ${String(result.error)}`)
        if (expected.error_type === undefined) assert.equal(result.error.message, expected.error)
      }
    })
  }
}

// Without the corpus the per-model golden tests above do not exist; this says so in the report.
if (!HAS_ORACLE) test('golden: the real models\' templates against the Python reference', { skip: ORACLE_SKIP }, () => {})

test('golden agreement over all 50 models (informational, with a regression floor)', { skip: ORACLE_SKIP }, (t) => {
  let agreeing = 0
  let total = 0
  const divergences: string[] = []
  for (const file of modelFiles) {
    const oracle = loadOracleModel(file)
    for (const item of casesFile.cases) {
      const expected = golden.results[oracle.model.model_id]?.[item.id]
      if (expected === undefined) continue
      total++
      if (agrees(renderCase(oracle, item), expected)) agreeing++
      else divergences.push(`${oracle.model.model_id} × ${item.id}`)
    }
  }
  t.diagnostic(`agreement: ${agreeing}/${total} (${modelFiles.length} models × ${casesFile.cases.length} cases)`)
  for (const divergence of divergences) t.diagnostic(`diverges: ${divergence}`)
  assert.ok(agreeing >= AGREEMENT_FLOOR, `agreement ${agreeing} dropped below the floor ${AGREEMENT_FLOOR}`)
})

// ---------------------------------------------------------------------------
// ChatTemplate behaviour

// The project's own zephyr-format template (the real one is compared in the golden tests above).
const ZEPHYR = { chat_template: ZEPHYR_STYLE_CONFIG.chat_template as string, special_tokens: { eos_token: '</s>', bos_token: '<s>' } }

test('a zephyr-format template renders the reference prompt', () => {
  const template = ChatTemplate.compile(ZEPHYR.chat_template, ZEPHYR.special_tokens ?? {})
  const prompt = template.render({
    messages: [
      { role: 'system', content: "You're a helpful assistant" },
      { role: 'user', content: 'What happens when an unstoppable force meets an immovable object?' }
    ]
  })
  assert.equal(prompt, "<|system|>\nYou're a helpful assistant</s>\n<|user|>\nWhat happens when an unstoppable force meets an immovable object?</s>\n<|assistant|>\n")
})

test('rendering never recompiles (parse once in compile)', () => {
  const template = ChatTemplate.compile(ZEPHYR.chat_template, ZEPHYR.special_tokens ?? {})
  const before = ChatTemplate.parseCount
  for (let index = 0; index < 50; index++) template.render({ messages: [{ role: 'user', content: `hi ${index}` }] })
  assert.equal(ChatTemplate.parseCount, before)
})

test('compile: a syntax error is TemplateLoadError 500 chat_template_invalid with the parser message', () => {
  assert.throws(() => ChatTemplate.compile('{% if %}', {}), (error: unknown) => {
    assert.ok(error instanceof TemplateLoadError)
    assert.equal(error.statusCode, 500)
    assert.equal(error.code, 'chat_template_invalid')
    assert.match(error.message, /could not be compiled: .+/)
    return true
  })
  assert.throws(() => ChatTemplate.compile([{ name: 'default', template: 'ok' }, { name: 'rag', template: '{{ x' }], {}),
    (error: unknown) => error instanceof TemplateLoadError && error.message.includes('\'rag\''))
})

test('names and supportsTools', () => {
  const single = ChatTemplate.compile('{{ messages[0].content }}', {})
  assert.deepEqual(single.names, ['default'])
  assert.equal(single.supportsTools, false)
  const named = ChatTemplate.compile([{ name: 'default', template: 'd' }, { name: 'tool_use', template: '{{ tools | length }}' }], {})
  assert.deepEqual(named.names, ['default', 'tool_use'])
  assert.equal(named.supportsTools, true)
})

test('named templates: explicit name, else tool_use when tools are given, else default', () => {
  const template = ChatTemplate.compile([
    { name: 'default', template: 'default' },
    { name: 'tool_use', template: 'tool_use' },
    { name: 'rag', template: 'rag' }
  ], {})
  const messages = [{ role: 'user', content: 'hi' }]
  assert.equal(template.render({ messages }), 'default')
  assert.equal(template.render({ messages, tools: [] }), 'tool_use')
  assert.equal(template.render({ messages, tools: [{}], templateName: 'default' }), 'default')
  assert.equal(template.render({ messages, templateName: 'rag' }), 'rag')
  assert.throws(() => template.render({ messages, templateName: 'nope' }), (error: unknown) =>
    error instanceof TemplateRenderError && error.message.includes('\'nope\'') && error.message.includes('[\'default\', \'rag\', \'tool_use\']'))
  const noDefault = ChatTemplate.compile([{ name: 'rag', template: 'rag' }], {})
  assert.throws(() => noDefault.render({ messages }), /no default specified! Available template names are \['rag'\]/)
  const single = ChatTemplate.compile('x', {})
  assert.equal(single.render({ messages, templateName: 'default' }), 'x')
  assert.throws(() => single.render({ messages, templateName: 'tool_use' }), TemplateRenderError)
})

test('context: special tokens < kwargs < messages/tools/documents/add_generation_prompt; tools and documents are none when absent', () => {
  const template = ChatTemplate.compile('{{ bos_token }}|{{ eos_token }}|{{ messages | length }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ unk_token is defined }}', { bos_token: '<s>', eos_token: '</s>', unk_token: '' })
  assert.equal(template.render({ messages: [{ role: 'user', content: 'x' }] }), '<s>|</s>|1|True|None|None|False')
  assert.equal(template.render({
    messages: [{ role: 'user', content: 'x' }],
    addGenerationPrompt: false,
    kwargs: { bos_token: 'B', messages: [], add_generation_prompt: true, tools: 'kw' }
  }), 'B|</s>|1|False|None|None|False')
})

test('raise_exception: TemplateRenderError (400) carrying the exact message', () => {
  const template = ChatTemplate.compile('{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}', {})
  assert.throws(() => template.render({ messages: [] }), (error: unknown) => {
    assert.ok(error instanceof TemplateRenderError)
    assert.equal(error.statusCode, 400)
    assert.equal(error.message, 'Conversation roles must alternate user/assistant/user/assistant/...')
    return true
  })
})

test('strftime_now reads the injected clock (naive local time)', () => {
  const template = ChatTemplate.compile('{{ strftime_now("%d %b %Y") }}|{{ strftime_now("%Y-%m-%d %H:%M:%S %A %B %-d %j %I%p") }}', {}, { now: () => new Date('2025-01-05T15:04:05') })
  assert.equal(template.render({ messages: [] }), '05 Jan 2025|2025-01-05 15:04:05 Sunday January 5 005 03PM')
})

test('continue_final_message: cut at the marker, rstripped when the template trimmed it, like transformers', () => {
  const keep = ChatTemplate.compile('{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}', {})
  const messages = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Sure, ' }]
  assert.equal(keep.render({ messages, addGenerationPrompt: false, continueFinalMessage: true }), '<user>hi</user><assistant>Sure, ')
  const trimming = ChatTemplate.compile('{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>\n{% endfor %}', {})
  assert.equal(trimming.render({ messages, addGenerationPrompt: false, continueFinalMessage: true }), '<user>hi</user>\n<assistant>Sure,')
  const blocks = [{ role: 'assistant', content: [{ type: 'text', text: 'Partial' }] }]
  const listTemplate = ChatTemplate.compile('{% for m in messages %}{{ m.content[0].text }}{% endfor %}', {})
  assert.equal(listTemplate.render({ messages: blocks, addGenerationPrompt: false, continueFinalMessage: true }), 'Partial')
  assert.throws(() => keep.render({ messages, continueFinalMessage: true }), /continue_final_message and add_generation_prompt are not compatible/)
  assert.throws(() => keep.render({ messages: [{ role: 'assistant', content: null }], addGenerationPrompt: false, continueFinalMessage: true }), /has no "content" to continue/)
  // The caller's messages are left untouched.
  assert.equal(messages[1]?.content, 'Sure, ')
})

test('documents must be dicts, as transformers checks', () => {
  const template = ChatTemplate.compile('{{ documents | length }}', {})
  assert.equal(template.render({ messages: [], documents: [{ title: 't', text: 'x' }] }), '1')
  assert.throws(() => template.render({ messages: [], documents: ['text'] }), /Documents should be a list of dicts/)
})

test('other jinja failures become TemplateRenderError too', () => {
  const template = ChatTemplate.compile('{{ messages[0]["role"] }}', {})
  assert.throws(() => template.render({ messages: [] }), (error: unknown) => error instanceof TemplateRenderError && /undefined/.test(error.message))
})

// ---------------------------------------------------------------------------
// Python jinja2 compatibility fixes, one behaviour each

function render (source: string, variables: Record<string, unknown> = {}): string {
  return renderJinja(compileJinja(source), Object.entries(variables), { now: () => new Date('2025-01-15T12:00:00') })
}

test('python: \'\' == False is False and 0 == False is True (bool is an int, str never equals a bool)', () => {
  assert.equal(render('{{ "" != false }}|{{ "" == false }}|{{ 0 == false }}|{{ 1 == true }}|{{ 1 == 1.0 }}|{{ "1" == 1 }}'), 'True|False|True|True|True|False')
  assert.equal(render('{{ [1, [2]] == [1, [2]] }}|{{ {"a": 1} == {"a": 1} }}|{{ none == none }}'), 'True|True|True')
})

test('python: str.lstrip/rstrip/strip(chars) strip exactly those characters', () => {
  assert.equal(render('[{{ "\\n\\n  x\\n".lstrip("\\n") }}]'), '[  x\n]')
  assert.equal(render('[{{ "xxhixy".rstrip("xy") }}]|[{{ "--a--".strip("-") }}]|[{{ " \\t a \\n".strip() }}]'), '[xxhi]|[a]|[a]')
})

test('python: None | trim is "None" (trim prints str(value) first)', () => {
  assert.equal(render('[{{ none | trim }}]|[{{ missing | trim }}]|[{{ "  a " | trim }}]'), '[None]|[]|[a]')
})

test('python: printing and | string use str()/repr(): None, True, lists and dicts as Python shows them', () => {
  assert.equal(render('{{ none }}|{{ true }}|{{ false }}|{{ 2.0 }}|{{ missing }}|'), 'None|True|False|2.0||')
  assert.equal(render('{{ [{"a": 1}, none, true, "it\'s"] }}'), '[{\'a\': 1}, None, True, "it\'s"]')
  assert.equal(render('{{ value | string }}|{{ ("a", 1) }}', { value: { k: ['x', 1.5] } }), '{\'k\': [\'x\', 1.5]}|(\'a\', 1)')
  assert.equal(render('{{ "a" ~ none ~ true ~ [1] }}'), 'aNoneTrue[1]')
})

test('python: float repr (1e-05, 1e+16, 0.1, 2.0)', () => {
  assert.equal(render('{{ a }}|{{ b }}|{{ c }}|{{ 10.0 ** 16 }}|{{ 4 / 2 }}', { a: 0.00001, b: 1.5e-7, c: 0.1 }), '1e-05|1.5e-07|0.1|1e+16|2.0')
})

test('python: \'s\' + dict and \'s\' + None are TypeErrors, not concatenation', () => {
  assert.throws(() => render('{{ "s" + value }}', { value: { a: 1 } }), /can only concatenate str \(not "dict"\) to str/)
  assert.throws(() => render('{{ "s" + none }}'), /can only concatenate str \(not "NoneType"\) to str/)
  assert.throws(() => render('{{ 1 + "s" }}'), /unsupported operand type/)
  assert.equal(render('{{ [1] + [2] }}|{{ "ab" * 2 }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 1 / 2 }}'), '[1, 2]|abab|3|2|0.5')
})

test('python: attribute or item of an undefined value is an UndefinedError (messages[0][\'role\'] on [])', () => {
  assert.throws(() => render('{{ messages[0]["role"] }}', { messages: [] }), /is undefined/)
  assert.throws(() => render('{{ missing.attribute }}'), /'missing' is undefined/)
  assert.equal(render('{{ none.attribute }}|{{ {"a": 1}.b }}|{{ [1][5] }}'), '||')
})

test('python: tuple unpacking from any iterable (dict.items(), | items, | dictsort, strings)', () => {
  const value = { b: 1, a: 2 }
  assert.equal(render('{% for k, v in value.items() %}{{ k }}={{ v }};{% endfor %}', { value }), 'b=1;a=2;')
  assert.equal(render('{% for k, v in value | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in value | dictsort %}{{ k }}{{ v }}{% endfor %}', { value }), 'b1a2|a2b1')
  assert.equal(render('{% for a, b in ["xy"] %}{{ b }}{{ a }}{% endfor %}|{% set p, q = [1, 2] %}{{ q }}{{ p }}'), 'yx|21')
  assert.equal(render('{{ value | items | list }}', { value }), '[(\'b\', 1), (\'a\', 2)]')
})

test('python: for iterates strings by character and an undefined value as empty', () => {
  assert.equal(render('{% for c in "abc" %}{{ c }}-{% endfor %}|{% for x in missing %}x{% else %}empty{% endfor %}'), 'a-b-c-|empty')
  assert.throws(() => render('{% for x in none %}{% endfor %}'), /'NoneType' object is not iterable/)
})

test('python: tojson is json.dumps(ensure_ascii=False): ", "/": " spacing, insertion order, indent, sort_keys', () => {
  const value = { z: 'é😀"\n', a: [1, 2.5, null, true], nested: {} }
  assert.equal(render('{{ value | tojson }}', { value }), '{"z": "é😀\\"\\n", "a": [1, 2.5, null, true], "nested": {}}')
  assert.equal(render('{{ value | tojson(indent=2) }}', { value: { a: [1], b: [] } }), '{\n  "a": [\n    1\n  ],\n  "b": []\n}')
  assert.equal(render('{{ value | tojson(sort_keys=true, separators=(",", ":")) }}', { value: { b: 1, a: 2 } }), '{"a":2,"b":1}')
  assert.equal(render('{{ "é" | tojson(ensure_ascii=true) }}'), '"\\u00e9"')
  assert.throws(() => render('{{ missing | tojson }}'), /Object of type Undefined is not JSON serializable/)
})

test('python: in on a string needs a string operand; in on a list uses ==', () => {
  assert.equal(render('{{ "b" in "abc" }}|{{ 1 in [1.0] }}|{{ "a" in {"a": 1} }}|{{ "a" in missing }}'), 'True|True|True|False')
  assert.throws(() => render('{{ 1 in "abc" }}'), /'in <string>' requires string as left operand, not int/)
})

test('python: string methods (split, title, capitalize, startswith tuple, find, format, replace count)', () => {
  assert.equal(render('{{ "  a  b ".split() }}|{{ "a,b,c".split(",", 1) }}|{{ "a,b,c".rsplit(",", 1) }}'), '[\'a\', \'b\']|[\'a\', \'b,c\']|[\'a,b\', \'c\']')
  assert.equal(render('{{ "hELLO wORLD".title() }}|{{ "hELLO".capitalize() }}|{{ "abc".startswith(("x", "a")) }}|{{ "abcabc".find("c") }}'), 'Hello World|Hello|True|2')
  assert.equal(render('{{ "{} and {name}".format(1, name="b") }}|{{ "aaa".replace("a", "b", 2) }}|{{ ", ".join(["x", "y"]) }}'), '1 and b|bba|x, y')
})

test('python: length counts code points and is 0 for undefined', () => {
  assert.equal(render('{{ "😀é" | length }}|{{ missing | length }}|{{ {"a": 1} | length }}'), '2|0|1')
})

test('python: selectattr/rejectattr/select/map with jinja2 tests', () => {
  const items = [{ role: 'system' }, { role: 'user', name: 'x' }, { role: 'user' }]
  assert.equal(render('{{ items | selectattr("role", "equalto", "user") | list | length }}', { items }), '2')
  assert.equal(render('{{ items | selectattr("name", "undefined") | map(attribute="role") | join(",") }}', { items }), 'system,user')
  assert.equal(render('{{ [0, 1, 2, 3] | select("odd") | list }}|{{ ["a", "B"] | map("upper") | list }}'), '[1, 3]|[\'A\', \'B\']')
})

test('python: tests are Python\'s (True is a number but not an integer; undefined is iterable)', () => {
  assert.equal(render('{{ true is number }}|{{ true is integer }}|{{ 1 is integer }}|{{ missing is iterable }}|{{ "123" is lower }}'), 'True|False|True|True|False')
})

test('python: round() rounds half to even and keeps ints ints', () => {
  assert.equal(render('{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.675 | round(2) }}|{{ 0.125 | round(2) }}|{{ 3 | round }}'), '2.0|4.0|2.67|0.12|3')
})

test('python: default applies to undefined only unless boolean=true', () => {
  assert.equal(render('{{ missing | default("d") }}|{{ none | default("d") }}|{{ "" | default("d", true) }}'), 'd|None|d')
})

test('jinja2: \\r\\n in a template reads as \\n before trim_blocks', () => {
  assert.equal(render('a{% if true %}\r\nb{% endif %}\r\nc'), 'abc')
})

test('jinja2: loop variables, break/continue (loopcontrols), filtered loops and loop.cycle', () => {
  assert.equal(render('{% for i in range(6) if i != 1 %}{% if i == 4 %}{% break %}{% endif %}{% if i == 2 %}{% continue %}{% endif %}{{ loop.index }}/{{ loop.length }}{{ loop.cycle("a", "b") }} {% endfor %}'), '1/5a 3/5a ')
})
