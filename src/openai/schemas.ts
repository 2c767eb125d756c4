/**
 * The OpenAI wire shapes, as zod schemas: the one source of truth for request
 * validation, handler types, the served OpenAPI document and openapi.yaml.
 * Ranges follow OpenAI's API reference so a request OpenAI would reject is
 * rejected here with a 400 naming the field, never passed on to the backend.
 */
import { z } from 'zod'

const MAX_STRING = 4 * 1024 * 1024
/** Free-form JSON (tool parameters, template kwargs) may nest this deep; templates recurse over it. */
export const MAX_JSON_DEPTH = 64

/** Iterative, so hostile nesting cannot overflow the stack while being checked. */
export function jsonDepth (value: unknown, limit: number): number {
  let deepest = 0
  const pending: Array<[unknown, number]> = [[value, 1]]
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!
    if (node === null || typeof node !== 'object') continue
    if (depth > deepest) deepest = depth
    if (deepest > limit) return deepest
    for (const child of Array.isArray(node) ? node : Object.values(node)) pending.push([child, depth + 1])
  }
  return deepest
}

const boundedJson = z.record(z.string(), z.unknown()).refine((value) => jsonDepth(value, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH, {
  message: `nested deeper than ${MAX_JSON_DEPTH} levels`
})

const textPartSchema = z.strictObject({ type: z.literal('text'), text: z.string().max(MAX_STRING) })
const imagePartSchema = z.object({
  type: z.literal('image_url'),
  image_url: z.object({ url: z.string().max(MAX_STRING), detail: z.enum(['auto', 'low', 'high']).optional() })
})
const contentPartSchema = z.discriminatedUnion('type', [textPartSchema, imagePartSchema])

const textContent = z.union([z.string().max(MAX_STRING), z.array(textPartSchema).max(1024)])
const userContent = z.union([z.string().max(MAX_STRING), z.array(contentPartSchema).max(1024)])

export const toolCallSchema = z.object({
  id: z.string().max(256),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(256), arguments: z.string().max(MAX_STRING) })
})

const name = z.string().min(1).max(256).optional()

export const chatMessageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: textContent, name }),
  z.object({ role: z.literal('developer'), content: textContent, name }),
  z.object({ role: z.literal('user'), content: userContent, name }),
  z.object({
    role: z.literal('assistant'),
    content: textContent.nullish(),
    name,
    refusal: z.string().nullish(),
    tool_calls: z.array(toolCallSchema).max(128).optional(),
    reasoning_content: z.string().max(MAX_STRING).nullish()
  }),
  // `name` (the function that answered) is not in OpenAI's tool message, but templates print it.
  z.object({ role: z.literal('tool'), content: textContent, tool_call_id: z.string().max(256), name })
]).meta({ id: 'ChatMessage' })
export type ChatMessage = z.infer<typeof chatMessageSchema>

export const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().min(1).max(64).regex(/^[a-zA-Z0-9_-]+$/, 'must be a-z, A-Z, 0-9, underscores and dashes'),
    description: z.string().max(MAX_STRING).optional(),
    parameters: boundedJson.optional(),
    strict: z.boolean().nullish()
  })
})

/** Command-R style grounding documents, e.g. `{title, text}`; the template decides which keys it reads. */
const documentsSchema = z.array(boundedJson).max(1024).nullish()
  .describe('Documents for retrieval-augmented templates (transformers\' `documents`), passed to the chat template as given.')
const templateNameSchema = z.string().min(1).max(256).nullish()
  .describe('Which of the model\'s named chat templates to use; default: `tool_use` when tools are given and the model has it, else `default`.')

const stopSchema = z.union([z.string().min(1).max(1024), z.array(z.string().min(1).max(1024)).max(64)]).nullish()
  .describe('Up to 64 stop sequences (OpenAI allows 4). Stops beyond what the backend accepts are applied by the gateway itself.')

export const chatCompletionRequestSchema = z.object({
  model: z.string().min(1).max(256).describe('A model id from GET /v1/models.'),
  messages: z.array(chatMessageSchema).min(1).max(4096),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().min(1).nullish().describe('Maximum tokens to generate (max_new_tokens upstream).'),
  max_completion_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish().describe('0 means greedy decoding.'),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish().describe('Accepted for compatibility; TGI has no presence penalty, so it is ignored.'),
  stop: stopSchema,
  n: z.literal(1).nullish().describe('Only 1 is supported.'),
  user: z.string().max(256).optional(),
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  logprobs: z.literal(false).nullish().describe('Log probabilities are not supported yet.'),
  response_format: z.discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().min(1).max(64),
        description: z.string().optional(),
        schema: boundedJson.optional(),
        strict: z.boolean().nullish()
      })
    })
  ]).nullish().describe('`json_object` and `json_schema` constrain generation with TGI\'s JSON grammar (tgi backend only).'),
  // Extensions (TGI / vLLM / transformers names).
  top_k: z.number().int().min(1).nullish(),
  min_p: z.number().min(0).max(1).nullish().describe('vLLM, SGLang, llama.cpp; refused (400) by engines without it.'),
  repetition_penalty: z.number().gt(0).nullish(),
  typical_p: z.number().gt(0).lt(1).nullish(),
  do_sample: z.boolean().nullish(),
  truncate: z.number().int().min(1).nullish(),
  chat_template_kwargs: boundedJson.nullish().describe('Extra variables for the chat template, e.g. {"enable_thinking": false}.'),
  chat_template_name: templateNameSchema,
  documents: documentsSchema,
  add_generation_prompt: z.boolean().nullish().describe('Default true: end the prompt with the assistant turn\'s opening.'),
  continue_final_message: z.boolean().nullish().describe('Continue the final (assistant) message instead of starting a new turn; needs add_generation_prompt: false.'),
  // OpenAI fields the gateway does not act on. Each is type- and range-checked as
  // OpenAI's schema says (a malformed one is a 400 naming it, as from OpenAI); the
  // ones that only tune OpenAI's own service are then ignored, the ones that would
  // change the answer are refused when set (see UNSUPPORTED_WHEN_SET).
  top_logprobs: z.number().int().min(0).max(20).nullish().describe('Needs logprobs, which are not supported yet: refused when set.'),
  logit_bias: z.record(z.string().regex(/^\d+$/, 'token ids as strings'), z.number().int().min(-100).max(100)).nullish().describe('Not supported: refused unless empty.'),
  store: z.boolean().nullish().describe('Ignored: the gateway stores nothing.'),
  metadata: z.record(z.string().max(64), z.string().max(512)).refine((value) => Object.keys(value).length <= 16, 'at most 16 key-value pairs').nullish().describe('Ignored.'),
  service_tier: z.enum(['auto', 'default', 'flex', 'scale', 'priority']).nullish().describe('Ignored.'),
  modalities: z.array(z.enum(['text', 'audio'])).nullish().describe('Only ["text"].'),
  audio: z.object({ voice: z.union([z.string(), z.object({ id: z.string() })]), format: z.enum(['wav', 'aac', 'mp3', 'flac', 'opus', 'pcm16']) }).nullish().describe('Not supported: refused when set.'),
  prediction: z.object({ type: z.literal('content'), content: z.union([z.string(), z.array(z.object({ type: z.literal('text'), text: z.string() }))]) }).nullish().describe('Ignored (a latency hint).'),
  reasoning_effort: z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']).nullish().describe('Ignored; open reasoning models take chat_template_kwargs such as {"enable_thinking": false}.'),
  verbosity: z.enum(['low', 'medium', 'high']).nullish().describe('Ignored.'),
  web_search_options: z.object({ search_context_size: z.enum(['low', 'medium', 'high']).optional(), user_location: z.object({ type: z.literal('approximate'), approximate: z.record(z.string(), z.unknown()) }).nullish() }).nullish().describe('Not supported: refused when set.'),
  safety_identifier: z.string().max(64).nullish().describe('Ignored.'),
  prompt_cache_key: z.string().nullish().describe('Ignored.'),
  prompt_cache_retention: z.enum(['in_memory', '24h']).nullish().describe('Ignored.'),
  moderation: z.object({ model: z.string() }).nullish().describe('Not supported: refused when set.'),
  function_call: z.union([z.enum(['none', 'auto']), z.object({ name: z.string() })]).nullish().describe('Deprecated by OpenAI: use tool_choice. Refused when set.'),
  functions: z.array(z.object({ name: z.string().min(1).max(64), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() })).min(1).max(128).nullish().describe('Deprecated by OpenAI: use tools. Refused when set.')
}).superRefine((request, context) => {
  for (const [param, isSet, reason] of UNSUPPORTED_WHEN_SET) {
    if (isSet(request)) context.addIssue({ code: 'custom', path: [param], message: `${param} is not supported by this gateway: ${reason}` })
  }
}).meta({ id: 'CreateChatCompletionRequest' })

type RequestFields = Record<string, unknown> & { logit_bias?: Record<string, number> | null, modalities?: string[] | null }
const UNSUPPORTED_WHEN_SET: ReadonlyArray<readonly [string, (request: RequestFields) => boolean, string]> = [
  ['top_logprobs', (request) => request.top_logprobs != null, 'log probabilities are not returned yet'],
  ['logit_bias', (request) => request.logit_bias != null && Object.keys(request.logit_bias).length > 0, 'the upstream engines are not given token biases'],
  ['modalities', (request) => request.modalities != null && request.modalities.some((modality) => modality !== 'text'), 'only text output'],
  ['audio', (request) => request.audio != null, 'only text output'],
  ['web_search_options', (request) => request.web_search_options != null, 'no web search'],
  ['moderation', (request) => request.moderation != null, 'no moderation'],
  ['function_call', (request) => request.function_call != null, 'use tool_choice'],
  ['functions', (request) => request.functions != null, 'use tools']
]
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>

/**
 * Validates with `shape` but returns the object exactly as sent, unknown keys
 * and key order included: zod rebuilds objects with the schema's keys first,
 * and a template that prints `tool | tojson` or walks `message.items()` must see
 * what Python's apply_chat_template would see. Documented as `shape`.
 */
function asGiven (shape: z.ZodType, id: string, description: string): z.ZodType<Record<string, unknown>> {
  const { $schema: _schemaUri, ...documented } = z.toJSONSchema(shape, { io: 'input', unrepresentable: 'any' })
  return z.record(z.string(), z.unknown()).superRefine((value, context) => {
    const result = shape.safeParse(value)
    if (!result.success) {
      for (const issue of result.error.issues) context.addIssue(issue as Parameters<typeof context.addIssue>[0])
    } else if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      context.addIssue({ code: 'custom', message: `nested deeper than ${MAX_JSON_DEPTH} levels` })
    }
  }).meta({ ...documented, id, description })
}

const jsonObject = z.record(z.string(), z.unknown())

/** A message as transformers' apply_chat_template takes it: any role, any extra keys (`reasoning_content`, ...). */
export const renderMessageSchema = asGiven(z.looseObject({
  role: z.string().min(1).max(256),
  content: z.union([z.string().max(MAX_STRING), z.array(jsonObject).max(1024)]).nullish(),
  name: z.string().max(256).nullish(),
  tool_call_id: z.string().max(256).nullish(),
  tool_calls: z.array(z.looseObject({
    id: z.string().max(256).optional(),
    type: z.string().max(64).optional(),
    function: z.looseObject({ name: z.string().max(256), arguments: z.union([z.string().max(MAX_STRING), jsonObject]) })
  })).max(128).nullish(),
  reasoning_content: z.string().max(MAX_STRING).nullish()
}), 'RenderMessage', 'A chat message passed to the template exactly as given (content a string, null or a list of parts; tool_calls[].function.arguments an object or a string), unless openai_normalization is set.')

const renderToolSchema = asGiven(jsonObject, 'RenderTool', 'A tool definition passed to the template as given, e.g. {"type": "function", "function": {"name", "description", "parameters"}}.')
const renderDocumentSchema = asGiven(jsonObject, 'RenderDocument', 'A document passed to the template as given, e.g. {"title", "text"}.')

export const chatRenderRequestSchema = z.object({
  model: z.string().min(1).max(256),
  messages: z.array(renderMessageSchema).max(4096),
  tools: z.array(renderToolSchema).max(128).nullish(),
  documents: z.array(renderDocumentSchema).max(1024).nullish(),
  add_generation_prompt: z.boolean().nullish().describe('Default true.'),
  continue_final_message: z.boolean().nullish().describe('Continue the final message; needs add_generation_prompt: false.'),
  chat_template_name: templateNameSchema,
  template_name: templateNameSchema.describe('Alias of chat_template_name (the name the case files use).'),
  chat_template_kwargs: boundedJson.nullish().describe('Extra template variables (transformers\' **kwargs), e.g. {"enable_thinking": false}.'),
  kwargs: boundedJson.nullish().describe('Alias of chat_template_kwargs (the name the case files use).'),
  openai_normalization: z.boolean().nullish().describe(
    'false (default): render the messages, tools and documents exactly as given, like Python\'s apply_chat_template. ' +
    'true: validate and normalise them as /v1/chat/completions does (developer → system, text parts joined or kept per template, ' +
    'tool-call argument strings parsed to objects), so the prompt is the one a completion would send.')
}).meta({ id: 'ChatRenderRequest' })
export type ChatRenderRequest = z.infer<typeof chatRenderRequestSchema>

export const promptTokensSchema = z.object({
  engine: z.string().describe('The engine the prompt is sent to.'),
  engine_adds_bos: z.boolean().nullable().describe('Whether the engine adds its BOS token to a string prompt (null: cannot tell).'),
  learned_from: z.enum(['engine_tokenize', 'add_special_tokens_false', 'tokenizer_config', 'assumed', 'no_bos_token', 'unknown']),
  template_writes_bos: z.boolean(),
  sent_as: z.enum(['as_rendered', 'leading_bos_removed']),
  note: z.string().optional().describe('Set when the tokens the model sees differ from apply_chat_template(tokenize=True).')
}).meta({ id: 'PromptTokens' })
export type PromptTokens = z.infer<typeof promptTokensSchema>

export const chatRenderResponseSchema = z.object({
  model: z.string(),
  prompt: z.string().describe('The template\'s output, exactly as apply_chat_template(tokenize=False) gives it.'),
  sent_as: z.enum(['prompt', 'messages']).describe('`prompt`: the gateway sends this render; `messages`: the model\'s Inference Provider takes messages and renders its own template.'),
  sent_prompt: z.string().optional().describe('The text sent to the engine: the prompt after BOS handling (see prompt_tokens); absent when the engine could not be reached.'),
  prompt_tokens: promptTokensSchema.optional()
}).meta({ id: 'ChatRenderResponse' })

export const finishReasonSchema = z.enum(['stop', 'length', 'tool_calls', 'content_filter'])
export type FinishReason = z.infer<typeof finishReasonSchema>

export const usageSchema = z.object({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int()
})
export type Usage = z.infer<typeof usageSchema>

export const chatCompletionSchema = z.object({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().optional(),
  choices: z.array(z.object({
    index: z.number().int(),
    message: z.object({
      role: z.literal('assistant'),
      content: z.string().nullable(),
      refusal: z.null(),
      tool_calls: z.array(toolCallSchema).optional(),
      reasoning_content: z.string().optional().describe('What a reasoning model wrote inside <think>...</think> (an extension, as vLLM and DeepSeek name it).')
    }),
    logprobs: z.null(),
    finish_reason: finishReasonSchema
  })),
  usage: usageSchema.optional()
}).meta({ id: 'CreateChatCompletionResponse' })
export type ChatCompletion = z.infer<typeof chatCompletionSchema>

export const chatCompletionChunkSchema = z.object({
  id: z.string(),
  object: z.literal('chat.completion.chunk'),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().optional(),
  choices: z.array(z.object({
    index: z.number().int(),
    delta: z.object({
      role: z.literal('assistant').optional(),
      content: z.string().nullish(),
      reasoning_content: z.string().optional(),
      tool_calls: z.array(z.object({
        index: z.number().int(),
        id: z.string().optional(),
        type: z.literal('function').optional(),
        function: z.object({ name: z.string().optional(), arguments: z.string().optional() })
      })).optional()
    }),
    logprobs: z.null(),
    finish_reason: finishReasonSchema.nullable()
  })),
  usage: usageSchema.nullish()
}).meta({ id: 'CreateChatCompletionStreamResponse', description: 'One `data:` event of the text/event-stream answer to `stream: true`.' })
export type ChatCompletionChunk = z.infer<typeof chatCompletionChunkSchema>

export const modelObjectSchema = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
  engine: z.string().optional().describe('The engine serving it (tgi, vllm, sglang, llamacpp, openai, hub), once detected.'),
  template: z.enum(['gateway', 'provider']).optional().describe('Who renders its chat template: the gateway (a prompt is sent), or the Inference Provider (messages are sent); for Hub models, known after a first request.')
}).meta({ id: 'Model' })
export type ModelObject = z.infer<typeof modelObjectSchema>

export const modelListSchema = z.object({ object: z.literal('list'), data: z.array(modelObjectSchema) }).meta({ id: 'ListModelsResponse' })

export const errorBodySchema = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() })
}).meta({ id: 'ErrorResponse' })

export const healthSchema = z.object({ status: z.literal('ok') })
export const readinessSchema = z.object({
  status: z.enum(['ready', 'not_ready', 'draining']),
  models: z.array(z.object({ id: z.string(), ready: z.boolean(), template: z.string(), backend: z.string(), engine: z.string().optional() }))
})
