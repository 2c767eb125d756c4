/**
 * The render contract over HTTP: what /v1/chat/render passes to the template
 * by default (messages as given, like apply_chat_template), what
 * /v1/chat/completions and `openai_normalization: true` change (one test per
 * normalisation rule), and the options both routes share.
 *
 * Two probe models make the template's input visible: their template prints
 * `messages`, `tools` and `documents` with tojson. `probe-parts` also contains
 * a (never run) loop over a message's content, so it is detected as wanting
 * the list of parts, as vLLM would detect it.
 */
import test from 'node:test'
import assert from 'node:assert/strict'
import { postJson, startGateway } from '../helpers/gateway.js'
import { skipWithoutCorpus } from '../helpers/corpus.js'

const PROBE = "{{ messages | tojson }}\n{{ tools | tojson }}\n{{ documents | tojson }}\n{{ add_generation_prompt }}{{ custom | default('') }}"
const PROBE_PARTS = `${PROBE}{% if false %}{% for message in messages %}{% for part in message['content'] %}{% endfor %}{% endfor %}{% endif %}`

const REPOS = {
  zephyr: 'HuggingFaceH4/zephyr-7b-beta',
  gemma: 'google/gemma-3-4b-it',
  qwen: 'Qwen/Qwen2.5-7B-Instruct',
  qwen3: 'Qwen/Qwen3-8B',
  hermes: 'NousResearch/Hermes-2-Pro-Llama-3-8B',
  granite: 'ibm-granite/granite-3.3-2b-instruct'
}

const MODELS_FILE = JSON.stringify({
  models: [
    { id: 'probe', backend: 'tgi', url: '{{TGI_URL}}', chat_template: PROBE, special_tokens: {} },
    { id: 'probe-parts', backend: 'tgi', url: '{{TGI_URL}}', chat_template: PROBE_PARTS, special_tokens: {} },
    ...Object.entries(REPOS).map(([id, repo]) => ({ id, backend: 'tgi', url: '{{TGI_URL}}', model: repo }))
  ]
})

/** Python's json.dumps(value, ensure_ascii=False): `", "` and `": "` separators, keys in order. */
function pythonJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`
  if (typeof value === 'object' && value !== null) return `{${Object.entries(value).map(([key, item]) => `${JSON.stringify(key)}: ${pythonJson(item)}`).join(', ')}}`
  return JSON.stringify(value)
}

function probeOutput (messages: unknown, tools: unknown = null, documents: unknown = null, addGenerationPrompt = true): string {
  return `${pythonJson(messages)}\n${pythonJson(tools)}\n${pythonJson(documents)}\n${addGenerationPrompt ? 'True' : 'False'}`
}

const WEATHER_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }
}

test('render options and message normalisation', { skip: skipWithoutCorpus('chat-templates/models') }, async (t) => {
  const { url, tgi } = await startGateway(t, { repos: Object.values(REPOS), modelsFile: MODELS_FILE })

  async function render (body: Record<string, unknown>): Promise<{ status: number, prompt?: string, error?: { message: string, param: string | null } }> {
    const response = await postJson(`${url}/v1/chat/render`, body)
    return { status: response.status, ...await response.json() as object }
  }
  /** The prompt a completion sends upstream (or its error). */
  async function completionPrompt (body: Record<string, unknown>): Promise<{ status: number, prompt?: string, error?: { message: string, param: string | null } }> {
    const before = tgi.calls.length
    const response = await postJson(`${url}/v1/chat/completions`, body)
    const answer = await response.json() as { error?: { message: string, param: string | null } }
    if (response.status !== 200) return { status: response.status, ...answer }
    assert.equal(tgi.calls.length, before + 1)
    return { status: 200, prompt: tgi.calls.at(-1)!.body.inputs as string }
  }

  // A request with something for every normalisation rule.
  const mixed = {
    messages: [
      { role: 'developer', content: 'Be terse.' },
      { role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'World' }] },
      { content: null, role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'c1', name: 'get_weather', content: 'cold' },
      { role: 'assistant', content: 'It is cold.', reasoning_content: 'Read the tool.' },
      { role: 'user', content: 'Thanks' }
    ],
    tools: [WEATHER_TOOL]
  }

  await t.test('by default render passes messages, tools and documents exactly as given (apply_chat_template)', async () => {
    const messages = [
      { role: 'developer', content: 'Be terse.', x_custom: { keep: [1, 'two'] } },
      { role: 'user', content: [{ type: 'text', text: 'Hi', cache_control: { type: 'ephemeral' } }, { type: 'image_url', image_url: { url: 'http://x/y.png' } }] },
      { role: 'assistant', tool_calls: [{ function: { arguments: { city: 'Oslo' }, name: 'get_weather' }, id: 'a', type: 'function' }, { id: 'b', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } }] },
      { tool_call_id: 'a', role: 'tool', name: 'get_weather', content: 'cold' },
      { role: 'ipython', content: null }
    ]
    const tools = [{ function: { parameters: {}, name: 'get_weather' }, type: 'function', extra: true }]
    const documents = [{ text: 'Body', title: 'Title', url: 'http://example.com' }]
    const result = await render({ model: 'probe', messages, tools, documents })
    assert.equal(result.status, 200, JSON.stringify(result))
    // Key order, unknown keys, roles, list content, object and string arguments: all untouched.
    assert.equal(result.prompt, probeOutput(messages, tools, documents))
    // Empty conversations render too (the template decides), as in Python.
    assert.equal((await render({ model: 'probe', messages: [] })).prompt, probeOutput([]))
  })

  await t.test('openai_normalization: true gives exactly the prompt completions sends upstream', async () => {
    const normalised = [
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: 'Hello\nWorld' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] },
      { role: 'tool', content: 'cold', name: 'get_weather', tool_call_id: 'c1' },
      { role: 'assistant', content: 'It is cold.', reasoning_content: 'Read the tool.' },
      { role: 'user', content: 'Thanks' }
    ]
    const rendered = await render({ model: 'probe', ...mixed, openai_normalization: true })
    assert.equal(rendered.prompt, probeOutput(normalised, [WEATHER_TOOL]))
    assert.deepEqual(await completionPrompt({ model: 'probe', ...mixed }), { status: 200, prompt: rendered.prompt })
    // The real models whose templates take tool calls with null content.
    for (const model of ['probe-parts', 'qwen', 'qwen3', 'hermes']) {
      const normalisedRender = await render({ model, ...mixed, openai_normalization: true })
      assert.equal(normalisedRender.status, 200, `${model}: ${JSON.stringify(normalisedRender)}`)
      assert.deepEqual(await completionPrompt({ model, ...mixed }), { status: 200, prompt: normalisedRender.prompt }, model)
    }
  })

  await t.test('rule: the developer role is rendered as system (completions; render only when normalising)', async () => {
    const messages = [{ role: 'developer', content: 'Be terse.' }, { role: 'user', content: 'Hi' }]
    const expected = '<|system|>\nBe terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\n'
    assert.equal((await completionPrompt({ model: 'zephyr', messages })).prompt, expected)
    assert.equal((await render({ model: 'zephyr', messages, openai_normalization: true })).prompt, expected)
    // As given, zephyr's template has no branch for 'developer'.
    assert.equal((await render({ model: 'zephyr', messages })).prompt, '<|user|>\nHi</s>\n<|assistant|>\n')
  })

  await t.test('rule: text parts are joined for string templates and kept as a list for templates that loop over parts', async () => {
    const messages = [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'World' }] }]
    assert.equal((await completionPrompt({ model: 'probe', messages })).prompt, probeOutput([{ role: 'user', content: 'Hello\nWorld' }]))
    assert.equal((await completionPrompt({ model: 'probe-parts', messages })).prompt, probeOutput(messages))
    // String content stays a string for both formats.
    assert.equal((await completionPrompt({ model: 'probe-parts', messages: [{ role: 'user', content: 'Hi' }] })).prompt, probeOutput([{ role: 'user', content: 'Hi' }]))
    // Real templates: zephyr prints content (string format); gemma-3 loops over the parts (openai format).
    assert.equal((await completionPrompt({ model: 'zephyr', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'World' }] }] })).prompt,
      '<|user|>\nHello\nWorld</s>\n<|assistant|>\n')
    assert.equal((await completionPrompt({ model: 'gemma', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: 'World' }] }] })).prompt,
      '<bos><start_of_turn>user\nHelloWorld<end_of_turn>\n<start_of_turn>model\n')
    // As given, the list reaches zephyr's template, which fails as it does in Python ('str' + list).
    const asGiven = await render({ model: 'zephyr', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] })
    assert.equal(asGiven.status, 400)
    assert.equal(asGiven.error?.message, 'Error rendering the chat template: can only concatenate str (not "list") to str')
  })

  await t.test('rule: image parts answer 400 when normalising (text-only backends), and pass through as given', async () => {
    const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }, { type: 'text', text: 'What is this?' }] }]
    for (const result of [await completionPrompt({ model: 'gemma', messages }), await render({ model: 'gemma', messages, openai_normalization: true })]) {
      assert.equal(result.status, 400)
      assert.equal(result.error?.param, 'messages[0].content[0].type')
    }
    const asGiven = await render({ model: 'gemma', messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is this?' }] }] })
    assert.equal(asGiven.prompt, '<bos><start_of_turn>user\n<start_of_image>What is this?<end_of_turn>\n<start_of_turn>model\n')
  })

  await t.test('rule: tool-call argument strings are parsed to objects when normalising, and kept as strings as given', async () => {
    const messages = [{ role: 'user', content: 'Weather in Oslo?' }, ...mixed.messages.slice(2, 4)]
    const stringArguments = '<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}\n</tool_call>'
    const objectArguments = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    const asGiven = await render({ model: 'qwen', messages, tools: [WEATHER_TOOL] })
    assert.ok(asGiven.prompt?.includes(stringArguments), asGiven.prompt)
    const normalised = await render({ model: 'qwen', messages, tools: [WEATHER_TOOL], openai_normalization: true })
    assert.ok(normalised.prompt?.includes(objectArguments), normalised.prompt)
    assert.equal((await completionPrompt({ model: 'qwen', messages, tools: [WEATHER_TOOL] })).prompt, normalised.prompt)
    // Object arguments (accepted by render only) render like the parsed string.
    const withObject = messages.map((message) => message.role === 'assistant' ? { ...message, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Oslo' } } }] } : message)
    assert.equal((await render({ model: 'qwen', messages: withObject, tools: [WEATHER_TOOL] })).prompt, normalised.prompt)
    assert.equal((await render({ model: 'qwen', messages: withObject, tools: [WEATHER_TOOL], openai_normalization: true })).status, 400, 'normalising validates as completions does: arguments must be a string')

    const invalid = messages.map((message) => message.role === 'assistant' ? { ...message, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{oops' } }] } : message)
    for (const result of [await completionPrompt({ model: 'qwen', messages: invalid }), await render({ model: 'qwen', messages: invalid, openai_normalization: true })]) {
      assert.equal(result.status, 400)
      assert.equal(result.error?.param, 'messages[1].tool_calls[0].function.arguments')
      assert.match(result.error?.message ?? '', /messages\[1\]\.tool_calls\[0\]\.function\.arguments is not valid JSON/)
    }
    assert.equal((await render({ model: 'qwen', messages: invalid })).status, 200, 'as given, the template prints the string')
  })

  await t.test('rule: tool messages keep name and tool_call_id; assistant messages keep reasoning_content', async () => {
    const messages = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello', reasoning_content: 'Greet back.' },
      { role: 'tool', tool_call_id: 'c1', name: 'get_weather', content: 'cold' }
    ]
    assert.equal((await completionPrompt({ model: 'probe', messages })).prompt, probeOutput([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello', reasoning_content: 'Greet back.' },
      { role: 'tool', content: 'cold', name: 'get_weather', tool_call_id: 'c1' }
    ]))
  })

  await t.test('tools: the list of {type, function} objects; named templates pick tool_use by default, chat_template_name (alias template_name) selects', async () => {
    const messages = [{ role: 'user', content: 'Weather in Oslo?' }]
    const toolUseMarker = 'You are a function calling AI model.'
    const withTools = await render({ model: 'hermes', messages, tools: [WEATHER_TOOL] })
    assert.ok(withTools.prompt?.includes(toolUseMarker))
    assert.ok(withTools.prompt?.includes('"name": "get_weather"'), withTools.prompt)
    assert.equal((await completionPrompt({ model: 'hermes', messages, tools: [WEATHER_TOOL] })).prompt, withTools.prompt)
    const plain = await render({ model: 'hermes', messages })
    assert.equal(plain.prompt, '<|begin_of_text|><|im_start|>user\nWeather in Oslo?<|im_end|>\n<|im_start|>assistant\n')
    assert.equal((await render({ model: 'hermes', messages, tools: [WEATHER_TOOL], chat_template_name: 'default' })).prompt, plain.prompt)
    assert.equal((await render({ model: 'hermes', messages, tools: [WEATHER_TOOL], template_name: 'default' })).prompt, plain.prompt)
    assert.equal((await completionPrompt({ model: 'hermes', messages, tools: [WEATHER_TOOL], chat_template_name: 'default' })).prompt, plain.prompt)

    const conflict = await render({ model: 'hermes', messages, chat_template_name: 'default', template_name: 'tool_use' })
    assert.equal(conflict.status, 400)
    assert.equal(conflict.error?.param, 'template_name')
    const unknown = await render({ model: 'hermes', messages, chat_template_name: 'rag' })
    assert.equal(unknown.status, 400)
    assert.equal(unknown.error?.message, "Chat template 'rag' not found; available templates are ['default', 'tool_use'].")
    assert.equal((await completionPrompt({ model: 'zephyr', messages, chat_template_name: 'tool_use' })).status, 400)
  })

  await t.test('documents reach the template on both routes', async () => {
    const messages = [{ role: 'user', content: 'What renders chat templates?' }]
    const documents = [{ title: 'Transformers', text: 'apply_chat_template renders conversations with Jinja.' }]
    const rendered = await render({ model: 'granite', messages, documents })
    assert.ok(rendered.prompt?.includes('apply_chat_template renders conversations with Jinja.'), rendered.prompt)
    assert.equal((await completionPrompt({ model: 'granite', messages, documents })).prompt, rendered.prompt)
    assert.equal((await render({ model: 'probe', messages, documents })).prompt, probeOutput(messages, null, documents))
    assert.equal((await completionPrompt({ model: 'granite', messages, documents: ['not an object'] })).status, 400)
  })

  await t.test('add_generation_prompt defaults to true; continue_final_message needs it false', async () => {
    const messages = [{ role: 'user', content: 'Write a haiku.' }, { role: 'assistant', content: 'Waves fold into foam,' }]
    assert.equal((await render({ model: 'zephyr', messages: messages.slice(0, 1) })).prompt, '<|user|>\nWrite a haiku.</s>\n<|assistant|>\n')
    assert.equal((await render({ model: 'zephyr', messages: messages.slice(0, 1), add_generation_prompt: false })).prompt, '<|user|>\nWrite a haiku.</s>\n')
    const prefill = '<|user|>\nWrite a haiku.</s>\n<|assistant|>\nWaves fold into foam,'
    assert.equal((await render({ model: 'zephyr', messages, add_generation_prompt: false, continue_final_message: true })).prompt, prefill)
    assert.equal((await completionPrompt({ model: 'zephyr', messages, add_generation_prompt: false, continue_final_message: true })).prompt, prefill)
    for (const result of [await render({ model: 'zephyr', messages, continue_final_message: true }), await completionPrompt({ model: 'zephyr', messages, continue_final_message: true })]) {
      assert.equal(result.status, 400)
      assert.equal(result.error?.param, 'continue_final_message')
    }
  })

  await t.test('chat_template_kwargs reach the template on both routes', async () => {
    const messages = [{ role: 'user', content: '1+1?' }]
    const thinkingOff = await render({ model: 'qwen3', messages, chat_template_kwargs: { enable_thinking: false } })
    assert.equal(thinkingOff.prompt, '<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n')
    assert.equal((await completionPrompt({ model: 'qwen3', messages, chat_template_kwargs: { enable_thinking: false } })).prompt, thinkingOff.prompt)
    assert.equal((await render({ model: 'probe', messages, chat_template_kwargs: { custom: '|custom' } })).prompt, `${probeOutput(messages)}|custom`)
    // `kwargs`, the case files' name, is an alias on render.
    assert.equal((await render({ model: 'probe', messages, kwargs: { custom: '|custom' } })).prompt, `${probeOutput(messages)}|custom`)
    const conflict = await render({ model: 'probe', messages, kwargs: { custom: 'a' }, chat_template_kwargs: { custom: 'b' } })
    assert.equal(conflict.status, 400)
    assert.equal(conflict.error?.param, 'kwargs')
  })

  await t.test('rule: numbers written as floats (1.0) reach the template as Python floats as given, as plain numbers when normalising', async () => {
    const body = '{"model": "probe", "messages": [{"role": "user", "content": "x: 1.0,", "score": 1.0}], ' +
      '"tools": [{"type": "function", "function": {"name": "f", "parameters": {"minimum": -0.0, "maximum": 2e3, "step": 0.5, "count": 3}}}], "chat_template_kwargs": {"custom": 100.0}}'
    const send = async (text: string, contentType = 'application/json'): Promise<{ status: number, prompt?: string, error?: { code: string } }> => {
      const response = await fetch(`${url}/v1/chat/render`, { method: 'POST', headers: { 'content-type': contentType }, body: text })
      return { status: response.status, ...await response.json() as object }
    }
    const tools = '[{"type": "function", "function": {"name": "f", "parameters": {"minimum": -0.0, "maximum": 2000.0, "step": 0.5, "count": 3}}}]'
    assert.equal((await send(body)).prompt, `[{"role": "user", "content": "x: 1.0,", "score": 1.0}]\n${tools}\nnull\nTrue100.0`)
    assert.equal((await send(body, 'application/json; charset=utf-8')).status, 200)
    // Normalising reads numbers as /v1/chat/completions does (JavaScript numbers).
    const normalised = await send(body.replace('{"model": "probe",', '{"model": "probe", "openai_normalization": true,').replace(', "score": 1.0', ''))
    assert.equal(normalised.prompt, '[{"role": "user", "content": "x: 1.0,"}]\n[{"type": "function", "function": {"name": "f", "parameters": {"minimum": 0, "maximum": 2000, "step": 0.5, "count": 3}}}]\nnull\nTrue100')
    const invalid = await send('{"model": "probe", "messages": [], "x": 1.0,}')
    assert.equal(invalid.status, 400)
    assert.equal(invalid.error?.code, 'invalid_json')
  })

  await t.test('render validates the shape it accepts, naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: 'probe', messages: [{ content: 'no role' }] }, 'messages[0].role'],
      [{ model: 'probe', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
      [{ model: 'probe', messages: [{ role: 'assistant', tool_calls: [{ function: { name: 'f', arguments: 5 } }] }] }, 'messages[0].tool_calls[0].function.arguments'],
      [{ model: 'probe', messages: [{ role: 'user', content: 'x', deep: nested(100) }] }, 'messages[0]'],
      [{ model: 'probe', messages: [], tools: ['not an object'] }, 'tools[0]'],
      [{ model: 'probe', messages: [], openai_normalization: true }, 'messages'],
      [{ model: 'probe', messages: [{ role: 'wizard', content: 'x' }], openai_normalization: true }, 'messages[0].role']
    ]
    for (const [body, param] of cases) {
      const result = await render(body)
      assert.equal(result.status, 400, JSON.stringify(body).slice(0, 200))
      assert.equal(result.error?.param, param, `${JSON.stringify(body).slice(0, 200)} → ${result.error?.message ?? ''}`)
    }
  })
})

function nested (depth: number): unknown {
  let value: unknown = {}
  for (let level = 0; level < depth; level++) value = { a: value }
  return value
}
