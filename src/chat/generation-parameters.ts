/**
 * OpenAI request fields (plus TGI/vLLM extensions) → the backend's generation
 * parameters, with the models file's defaults filling what the request leaves out.
 */
import type { GenerationParameters } from '../backends/backend.js'
import type { GenerationDefaults } from '../config.js'
import type { ChatCompletionRequest } from '../openai/schemas.js'

export interface PlannedGeneration {
  parameters: GenerationParameters
  /** Every stop the client asked for; the gateway applies all of them. */
  stops: string[]
  /** True when some stops could not be sent upstream (over its limit). */
  gatewayOnlyStops: boolean
}

function pick<T> (...values: Array<T | null | undefined>): T | undefined {
  for (const value of values) if (value !== undefined && value !== null) return value
  return undefined
}

export function planGeneration (request: ChatCompletionRequest, defaults: GenerationDefaults, maxUpstreamStops: number): PlannedGeneration {
  const requestedStops = request.stop === undefined || request.stop === null
    ? defaults.stop ?? []
    : typeof request.stop === 'string' ? [request.stop] : request.stop
  const stops = [...new Set(requestedStops)]
  const temperature = pick(request.temperature, defaults.temperature)
  const topP = pick(request.top_p, defaults.top_p)
  let doSample = pick(request.do_sample ?? undefined)
  // temperature 0 means greedy: TGI rejects 0, so send do_sample false and no temperature.
  const greedy = temperature === 0
  if (greedy) doSample = false
  else if (doSample === undefined && (temperature !== undefined || topP !== undefined)) doSample = true
  const upstreamStops = stops.slice(0, Math.max(0, maxUpstreamStops))
  return {
    parameters: {
      maxNewTokens: pick(request.max_completion_tokens, request.max_tokens, defaults.max_tokens),
      temperature: greedy ? undefined : temperature,
      doSample,
      // TGI requires top_p < 1; 1 means "no nucleus filtering", so leave it out.
      topP: topP === undefined || topP >= 1 || greedy ? undefined : topP,
      topK: greedy ? undefined : pick(request.top_k, defaults.top_k),
      minP: greedy ? undefined : pick(request.min_p, defaults.min_p),
      seed: pick(request.seed, defaults.seed),
      frequencyPenalty: pick(request.frequency_penalty, defaults.frequency_penalty),
      repetitionPenalty: pick(request.repetition_penalty, defaults.repetition_penalty),
      typicalP: greedy ? undefined : pick(request.typical_p, defaults.typical_p),
      truncate: pick(request.truncate, defaults.truncate),
      stop: upstreamStops
    },
    stops,
    gatewayOnlyStops: upstreamStops.length < stops.length
  }
}
