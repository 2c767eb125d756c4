/**
 * Prometheus metrics (prom-client). One registry per app instance, so tests and
 * several apps in one process do not share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface GatewayMetrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'model' | 'status'>
  readonly upstreamLatency: Histogram<'model' | 'outcome'>
  readonly timeToFirstToken: Histogram<'model'>
  readonly generatedTokens: Counter<'model'>
  readonly inFlightStreams: Gauge<'model'>
}

export function createMetrics (options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  return {
    registry,
    requests: new Counter({
      name: 'gateway_requests_total', help: 'HTTP requests by route, model and status', labelNames: ['route', 'model', 'status'], registers: [registry]
    }),
    upstreamLatency: new Histogram({
      name: 'gateway_upstream_duration_seconds',
      help: 'Time from sending a generation upstream to its end, by outcome (ok, error, cancelled)',
      labelNames: ['model', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [registry]
    }),
    timeToFirstToken: new Histogram({
      name: 'gateway_time_to_first_token_seconds',
      help: 'Time from receiving a streaming request to its first token from upstream',
      labelNames: ['model'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry]
    }),
    generatedTokens: new Counter({ name: 'gateway_generated_tokens_total', help: 'Tokens generated upstream', labelNames: ['model'], registers: [registry] }),
    inFlightStreams: new Gauge({ name: 'gateway_in_flight_streams', help: 'Streaming responses currently open', labelNames: ['model'], registers: [registry] })
  }
}
