/**
 * Prometheus metrics (prom-client). One registry per app instance, so tests and
 * several apps in one process do not share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** One model's label-bound metric children, so the hot path does not hash label objects. */
export interface ModelMetrics {
  readonly timeToFirstToken: { observe (seconds: number): void }
  readonly generatedTokens: { inc (count: number): void }
  readonly inFlightStreams: { inc (): void, dec (): void }
  upstreamLatency (outcome: string): { observe (seconds: number): void }
}

export interface GatewayMetrics {
  /** Label-bound children for a model (cached). */
  forModel (model: string): ModelMetrics
  /** Counts one HTTP request (children cached per label set). */
  countRequest (route: string, model: string, status: number): void
  readonly registry: Registry
  readonly requests: Counter<'route' | 'model' | 'status'>
  readonly upstreamLatency: Histogram<'model' | 'outcome'>
  readonly timeToFirstToken: Histogram<'model'>
  readonly generatedTokens: Counter<'model'>
  readonly inFlightStreams: Gauge<'model'>
}

/** Distinct `model` label values before new ones are counted as OVERFLOW_MODEL_LABEL. */
export const MAX_MODEL_LABELS = 500
export const OVERFLOW_MODEL_LABEL = 'other'

export function createMetrics (options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const requests = new Counter({
    name: 'gateway_requests_total', help: 'HTTP requests by route, model and status', labelNames: ['route', 'model', 'status'] as const, registers: [registry]
  })
  const upstreamLatency = new Histogram({
    name: 'gateway_upstream_duration_seconds',
    help: 'Time from sending a generation upstream to its end, by outcome (ok, error, cancelled)',
    labelNames: ['model', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry]
  })
  const timeToFirstToken = new Histogram({
    name: 'gateway_time_to_first_token_seconds',
    help: 'Time from receiving a streaming request to its first token from upstream',
    labelNames: ['model'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry]
  })
  const generatedTokens = new Counter({ name: 'gateway_generated_tokens_total', help: 'Tokens generated upstream', labelNames: ['model'] as const, registers: [registry] })
  const inFlightStreams = new Gauge({ name: 'gateway_in_flight_streams', help: 'Streaming responses currently open', labelNames: ['model'] as const, registers: [registry] })

  // Label sets come from configured models and routes (zero-config models are capped
  // by the catalog), so these caches stay small.
  const requestChildren = new Map<string, { inc (): void }>()
  const modelChildren = new Map<string, ModelMetrics>()
  // The catalog already maps ids it does not serve to `unknown`; zero-config mode
  // serves any Hub repo, so its distinct ids are capped here too: past the cap a
  // new id is counted as `other` and the number of series stays bounded.
  const modelLabels = new Set<string>()
  const boundedModel = (model: string): string => {
    if (modelLabels.has(model)) return model
    if (modelLabels.size >= MAX_MODEL_LABELS) return OVERFLOW_MODEL_LABEL
    modelLabels.add(model)
    return model
  }
  return {
    registry,
    requests,
    upstreamLatency,
    timeToFirstToken,
    generatedTokens,
    inFlightStreams,
    countRequest (route, requestedModel, status) {
      const model = boundedModel(requestedModel)
      const key = `${route}\u0000${model}\u0000${status}`
      let child = requestChildren.get(key)
      if (child === undefined) {
        child = requests.labels(route, model, String(status))
        if (requestChildren.size < 10_000) requestChildren.set(key, child)
      }
      child.inc()
    },
    forModel (requestedModel) {
      const model = boundedModel(requestedModel)
      let children = modelChildren.get(model)
      if (children === undefined) {
        const latencyByOutcome = new Map<string, { observe (seconds: number): void }>()
        children = {
          timeToFirstToken: timeToFirstToken.labels(model),
          generatedTokens: generatedTokens.labels(model),
          inFlightStreams: inFlightStreams.labels(model),
          upstreamLatency (outcome) {
            let child = latencyByOutcome.get(outcome)
            if (child === undefined) {
              child = upstreamLatency.labels(model, outcome)
              latencyByOutcome.set(outcome, child)
            }
            return child
          }
        }
        modelChildren.set(model, children)
      }
      return children
    }
  }
}
