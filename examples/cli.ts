/** Environment for the examples' command-line entries. */

/** GATEWAY_URL, with or without the trailing /v1 (default http://127.0.0.1:8080), as an OpenAI base URL. */
export function gatewayBaseURL (environment: NodeJS.ProcessEnv = process.env): string {
  const url = (environment.GATEWAY_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  return url.endsWith('/v1') ? url : `${url}/v1`
}
