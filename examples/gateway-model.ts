/**
 * LangChain's ChatOpenAI pointed at the gateway: the only change an OpenAI
 * application needs is `configuration.baseURL`. Greedy, so agent runs repeat.
 */
import { ChatOpenAI } from '@langchain/openai'

export interface GatewayModelOptions {
  /** The gateway's OpenAI base URL, e.g. http://127.0.0.1:8080/v1 */
  baseURL: string
  model: string
  /** A GATEWAY_API_KEYS key, or the client's own hf_ token; anything when neither is needed. */
  apiKey?: string
  maxTokens?: number
}

export function gatewayChatModel (options: GatewayModelOptions): ChatOpenAI {
  return new ChatOpenAI({
    model: options.model,
    apiKey: options.apiKey ?? 'unused',
    configuration: { baseURL: options.baseURL },
    temperature: 0,
    maxTokens: options.maxTokens ?? 512,
    maxRetries: 0
  })
}
