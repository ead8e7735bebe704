/**
 * The one door to the model provider (OpenAI or any OpenAI-compatible server at
 * `OPENAI_BASE_URL`). Workers call `complete` for replies and `extractStructured` for leads.
 *
 * Failure policy lives here and only here: the SDK's own retries are off (`maxRetries: 0`) so a
 * call is retried by `retry` (exponential backoff, full jitter, Retry-After) through one
 * process-wide `CircuitBreaker`. Every failure leaves as a `ModelError` whose `kind` says what the
 * caller should do, and whose `message` is safe to store on a message a tenant can read.
 */
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { config } from '../config';
import { logger } from '../utils/logger';
import { CircuitBreaker, CircuitOpenError, type CircuitState } from '../utils/circuitBreaker';
import { retry } from '../utils/retry';

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * - `retryable`: transient (429, 408, 409, 5xx, timeout, network, empty answer); try again later.
 * - `permanent`: the same request will fail again (400, 401, 403, 404, 422, non-JSON structured output).
 * - `not_configured`: no `OPENAI_API_KEY`; nothing was sent. Permanent until an operator sets it.
 * - `circuit_open`: the provider has been failing; nothing was sent. Transient: retry after `retryAfterMs`.
 */
export type ModelErrorKind = 'retryable' | 'permanent' | 'not_configured' | 'circuit_open';

export type ModelErrorCode =
  | 'model_rate_limited'
  | 'model_quota_exceeded'
  | 'model_unavailable'
  | 'model_network'
  | 'model_timeout'
  | 'model_bad_request'
  | 'model_auth'
  | 'model_not_found'
  | 'model_empty_response'
  | 'model_invalid_json'
  | 'model_refused'
  | 'model_aborted'
  | 'model_circuit_open'
  | 'model_error'
  | 'openai_not_configured';

export interface ModelErrorOptions {
  status?: number;
  retryAfterMs?: number;
  /** The provider's own message, scrubbed of key-like strings: for logs and operators, not tenants. */
  detail?: string;
  /** Tokens the provider reported for a call that still failed (empty or non-JSON answer). */
  usage?: { promptTokens: number; completionTokens: number };
  cause?: unknown;
}

export class ModelError extends Error {
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly detail?: string;
  readonly usage?: { promptTokens: number; completionTokens: number };
  /** Attempts made before giving up; set when the error leaves the service. */
  attempts = 1;

  constructor(
    readonly kind: ModelErrorKind,
    readonly code: ModelErrorCode,
    message: string,
    options: ModelErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ModelError';
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.detail !== undefined) this.detail = options.detail;
    if (options.usage !== undefined) this.usage = options.usage;
  }

  /** Whether trying again later can succeed: the worker reschedules these, and fails the rest. */
  get retryable(): boolean {
    return this.kind === 'retryable' || this.kind === 'circuit_open';
  }
}

const timeoutError = (cause?: unknown) =>
  new ModelError('retryable', 'model_timeout', 'The AI provider did not answer in time', { cause });

/** The breaker counts only the provider's own trouble; a bad request or an odd answer is not an outage. */
const PROVIDER_FAILURES: ReadonlySet<ModelErrorCode> = new Set([
  'model_rate_limited',
  'model_quota_exceeded',
  'model_unavailable',
  'model_network',
  'model_timeout',
]);

export function isProviderFailure(error: unknown): boolean {
  return error instanceof ModelError && PROVIDER_FAILURES.has(error.code);
}

/** Replaces anything that looks like a key, so a provider message can be logged. */
function scrub(text: string, apiKey: string | undefined): string {
  let out = text;
  if (apiKey) out = out.split(apiKey).join('[redacted]');
  return out.replace(/\bsk-[A-Za-z0-9_*\-.]{4,}/g, '[redacted]').slice(0, 500);
}

/** `retry-after-ms` (OpenAI's) wins over `retry-after` (seconds, or an HTTP date). */
export function parseRetryAfter(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Maps anything the SDK (or fetch) throws to a ModelError with a tenant-safe message. */
export function classifyError(error: unknown, context: { model: string; apiKey?: string }): ModelError {
  if (error instanceof ModelError) return error;
  if (error instanceof CircuitOpenError) {
    return new ModelError('circuit_open', 'model_circuit_open', 'The AI provider is failing; replies are paused briefly', {
      retryAfterMs: error.retryAfterMs,
      cause: error,
    });
  }
  // Before APIConnectionError: the SDK's abort and timeout errors are subclasses of it / APIError.
  if (error instanceof APIUserAbortError || (error instanceof Error && error.name === 'AbortError')) {
    return new ModelError('retryable', 'model_aborted', 'The AI request was cancelled', { cause: error });
  }
  if (error instanceof APIConnectionTimeoutError) return timeoutError(error);
  if (error instanceof APIConnectionError) {
    return new ModelError('retryable', 'model_network', 'Could not reach the AI provider', { cause: error });
  }
  if (error instanceof APIError && typeof error.status === 'number') {
    const status = error.status;
    const detail = scrub(error.message, context.apiKey);
    const base = { status, detail, cause: error };
    if (status === 429) {
      // OpenAI answers 429 both for "slow down" and for "the account is out of money". Both are
      // transient from here (an operator tops up) and both mean the provider will not serve us.
      const quota = error.code === 'insufficient_quota';
      return new ModelError(
        'retryable',
        quota ? 'model_quota_exceeded' : 'model_rate_limited',
        quota ? "The AI provider's quota for this platform is used up" : 'The AI provider is rate limiting requests',
        { ...base, ...optionalRetryAfter(parseRetryAfter(error.headers)) },
      );
    }
    if (status === 408) return new ModelError('retryable', 'model_timeout', 'The AI provider did not answer in time', base);
    if (status === 409 || status >= 500) {
      return new ModelError('retryable', 'model_unavailable', `The AI provider is unavailable (HTTP ${status})`, {
        ...base,
        ...optionalRetryAfter(parseRetryAfter(error.headers)),
      });
    }
    if (status === 401 || status === 403) {
      return new ModelError('permanent', 'model_auth', 'The AI provider refused the platform credentials', base);
    }
    if (status === 404) {
      return new ModelError('permanent', 'model_not_found', `The model "${context.model}" is not available`, base);
    }
    return new ModelError('permanent', 'model_bad_request', `The AI provider rejected the request (HTTP ${status})`, base);
  }
  // Our own bug or something unforeseen: retrying a bug only triples it, so permanent.
  return new ModelError('permanent', 'model_error', 'The AI request failed unexpectedly', { cause: error });
}

function optionalRetryAfter(ms: number | undefined): { retryAfterMs?: number } {
  return ms === undefined ? {} : { retryAfterMs: ms };
}

// ---------------------------------------------------------------------------------------------
// Messages

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface HistoryMessage {
  author: 'customer' | 'agent' | 'human';
  text: string | null;
}

/**
 * Pure: the system prompt, then the last `historyLimit` messages that have text, oldest first.
 * Customers speak as `user`; the agent and a human writing from the business side both speak as
 * `assistant`, since to the customer they are one voice and the model should continue it.
 * Messages without text (images, stickers) are skipped before counting, so they do not eat the
 * history budget.
 */
export function buildChatMessages(input: {
  systemPrompt: string;
  history: ReadonlyArray<HistoryMessage>;
  historyLimit: number;
}): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (input.systemPrompt.trim() !== '') messages.push({ role: 'system', content: input.systemPrompt });
  const limit = Math.max(0, Math.floor(input.historyLimit));
  if (limit === 0) return messages;
  const withText = input.history.filter((m): m is HistoryMessage & { text: string } => m.text !== null && m.text.trim() !== '');
  for (const message of withText.slice(-limit)) {
    messages.push({ role: message.author === 'customer' ? 'user' : 'assistant', content: message.text });
  }
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Service

export interface CompletionRequest {
  model: string;
  temperature?: number;
  maxTokens?: number;
  messages: ChatMessage[];
  /**
   * Sent as `prompt_cache_key`: requests of one conversation share a prefix, so the provider
   * can reuse its cache. Compatible servers ignore it.
   */
  promptCacheKey?: string;
  signal?: AbortSignal;
}

export interface CompletionResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** The model the provider says answered (e.g. a dated snapshot), else the one asked for. */
  model: string;
  /** Wall time of the whole call, retries and waits included. */
  latencyMs: number;
  attempts: number;
}

export interface StructuredRequest {
  model: string;
  messages: ChatMessage[];
  schemaName: string;
  jsonSchema: Record<string, unknown>;
  temperature?: number;
  maxTokens?: number;
  signal?: AbortSignal;
}

export interface StructuredResult {
  data: unknown;
  promptTokens: number;
  completionTokens: number;
  model: string;
  latencyMs: number;
  attempts: number;
}

export interface OpenAIServiceOptions {
  /** Omitted: `config.OPENAI_API_KEY`. Given as undefined or '': not configured. */
  apiKey?: string | undefined;
  baseURL?: string;
  /** Per attempt. */
  timeoutMs?: number;
  retry?: { attempts: number; baseMs: number; maxMs: number };
  breaker?: { failureThreshold: number; cooldownMs: number; now?: () => number };
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

export interface OpenAIService {
  complete(request: CompletionRequest): Promise<CompletionResult>;
  extractStructured(request: StructuredRequest): Promise<StructuredResult>;
  /** For metrics: the breaker's state. */
  readonly circuitState: CircuitState;
}

export const DEFAULT_RETRY = { attempts: 3, baseMs: 500, maxMs: 8_000 } as const;
export const DEFAULT_BREAKER = { failureThreshold: 5, cooldownMs: 30_000 } as const;

const log = logger.child({ component: 'openai' });

/**
 * Our own per-attempt deadline, on top of the SDK's `timeout`: it also covers reading the body
 * (the SDK's stops at the headers), and it tells a timeout from a caller's abort by our own
 * flag rather than by the SDK recognising an AbortError, which fails when the error comes from
 * another realm (jest's sandbox wraps undici's DOMException into a bare "Connection error").
 */
function attemptGuard(timeoutMs: number, caller: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const onCallerAbort = () => controller.abort(caller?.reason);
  // Created before the SDK's own timer with the same delay, so ours fires first.
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  if (caller?.aborted) onCallerAbort();
  else caller?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onCallerAbort);
    },
  };
}

/** Strips one ```json fence: some compatible servers wrap JSON even when asked for a schema. */
function unfence(text: string): string {
  const match = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/i.exec(text);
  return match?.[1] ?? text;
}

export function createOpenAIService(options: OpenAIServiceOptions = {}): OpenAIService {
  const apiKey = 'apiKey' in options ? options.apiKey : config.OPENAI_API_KEY;
  const baseURL = options.baseURL ?? config.OPENAI_BASE_URL;
  const timeoutMs = options.timeoutMs ?? config.OPENAI_TIMEOUT_MS;
  const retryPolicy = options.retry ?? DEFAULT_RETRY;
  const breaker = new CircuitBreaker({
    ...DEFAULT_BREAKER,
    ...options.breaker,
    isFailure: isProviderFailure,
    onStateChange: ({ from, to }) => log.warn({ from, to }, `model circuit ${to}`),
  });

  let client: OpenAI | undefined;
  function getClient(): OpenAI {
    // Created on first use so a process without a key can still start and report the failure.
    client ??= new OpenAI({ apiKey, baseURL, timeout: timeoutMs, maxRetries: 0 });
    return client;
  }

  type Usage = { promptTokens: number; completionTokens: number };
  type Body = OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;

  /**
   * One logical call: retries around the breaker around one HTTP request. `interpret` turns the
   * provider's answer into our result, or throws a ModelError (empty or non-JSON content).
   */
  async function call<T>(
    body: Body,
    signal: AbortSignal | undefined,
    interpret: (content: string | null, finishReason: string | null, refusal: string | null | undefined, usage: Usage) => T,
  ): Promise<{ value: T; usage: Usage; model: string; latencyMs: number; attempts: number }> {
    if (!apiKey) {
      // CONTRACT §2: without a key replies fail with a clear, visible status, and nothing is sent.
      throw new ModelError('not_configured', 'openai_not_configured', 'The AI provider is not configured (OPENAI_API_KEY is not set)');
    }
    const started = Date.now();
    let attempts = 0;
    try {
      return await retry(
        async (attempt) => {
          attempts = attempt;
          const attemptStarted = Date.now();
          const response = await breaker
            .exec(async () => {
              const guard = attemptGuard(timeoutMs, signal);
              try {
                return await getClient().chat.completions.create(body, { signal: guard.signal, timeout: timeoutMs, maxRetries: 0 });
              } catch (error) {
                if (guard.timedOut()) throw timeoutError(error);
                // Classified inside the breaker so it can tell a 400 from an outage.
                throw classifyError(error, { model: body.model, apiKey });
              } finally {
                guard.dispose();
              }
            })
            .catch((error: unknown) => {
              throw classifyError(error, { model: body.model, apiKey });
            });
          const usage: Usage = {
            promptTokens: response.usage?.prompt_tokens ?? 0,
            completionTokens: response.usage?.completion_tokens ?? 0,
          };
          if (!response.usage) log.warn({ model: body.model }, 'model response carried no usage: nothing to charge');
          const choice = response.choices[0];
          const value = interpret(choice?.message.content ?? null, choice?.finish_reason ?? null, choice?.message.refusal, usage);
          const latencyMs = Date.now() - started;
          log.info(
            { model: response.model || body.model, latencyMs, attemptLatencyMs: Date.now() - attemptStarted, ...usage, attempt },
            'model call completed',
          );
          return { value, usage, model: response.model || body.model, latencyMs, attempts: attempt };
        },
        {
          ...retryPolicy,
          isRetryable: (error) => error instanceof ModelError && error.retryable && error.code !== 'model_aborted',
          retryAfterMs: (error) => (error instanceof ModelError ? error.retryAfterMs : undefined),
          onRetry: ({ attempt, delayMs, error }) => {
            const e = error as ModelError;
            log.warn({ model: body.model, attempt, delayMs, code: e.code, status: e.status, detail: e.detail }, 'model call failed, retrying');
          },
          ...(signal ? { signal } : {}),
          ...(options.sleep ? { sleep: options.sleep } : {}),
          ...(options.random ? { random: options.random } : {}),
        },
      );
    } catch (error) {
      // A caller that aborted (shutdown) may have aborted with any reason; say so plainly.
      const failure =
        signal?.aborted && !(error instanceof ModelError)
          ? new ModelError('retryable', 'model_aborted', 'The AI request was cancelled', { cause: error })
          : classifyError(error, { model: body.model, apiKey });
      failure.attempts = Math.max(attempts, 1);
      log.warn(
        { model: body.model, attempts: failure.attempts, kind: failure.kind, code: failure.code, status: failure.status, detail: failure.detail },
        'model call failed',
      );
      throw failure;
    }
  }

  /**
   * Empty content is retryable: with nothing to send the customer, a fresh sample (or a
   * compatible server past a cold start) is the only way forward, and it does not count toward
   * the breaker since the provider did answer. Except when the model stopped for a reason that
   * will recur: `length` (max_tokens too small, e.g. spent on reasoning) or `content_filter`.
   */
  function requireContent(content: string | null, finishReason: string | null, refusal: string | null | undefined, usage: Usage): string {
    if (refusal) return refusalError(usage);
    if (content !== null && content.trim() !== '') return content;
    if (finishReason === 'length' || finishReason === 'content_filter') {
      throw new ModelError('permanent', 'model_empty_response', `The AI model returned no text (stopped by ${finishReason})`, { usage });
    }
    throw new ModelError('retryable', 'model_empty_response', 'The AI model returned no text', { usage });
  }

  function refusalError(usage: Usage): never {
    throw new ModelError('permanent', 'model_refused', 'The AI model refused to answer', { usage });
  }

  return {
    get circuitState() {
      return breaker.state;
    },

    async complete(request) {
      const body: Body = {
        model: request.model,
        messages: request.messages,
        ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
        // max_completion_tokens, not the deprecated max_tokens that o-series models reject;
        // compatible servers that do not know it ignore it.
        ...(request.maxTokens !== undefined ? { max_completion_tokens: request.maxTokens } : {}),
        ...(request.promptCacheKey ? { prompt_cache_key: request.promptCacheKey } : {}),
      };
      const result = await call(body, request.signal, requireContent);
      return {
        text: result.value,
        promptTokens: result.usage.promptTokens,
        completionTokens: result.usage.completionTokens,
        model: result.model,
        latencyMs: result.latencyMs,
        attempts: result.attempts,
      };
    },

    async extractStructured(request) {
      const body: Body = {
        model: request.model,
        messages: request.messages,
        response_format: {
          type: 'json_schema',
          json_schema: { name: request.schemaName, schema: request.jsonSchema, strict: true },
        },
        ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
        ...(request.maxTokens !== undefined ? { max_completion_tokens: request.maxTokens } : {}),
      };
      const result = await call(body, request.signal, (content, finishReason, refusal, usage) => {
        const text = requireContent(content, finishReason, refusal, usage);
        try {
          return JSON.parse(unfence(text)) as unknown;
        } catch (error) {
          // Permanent: with strict schemas OpenAI guarantees JSON, so non-JSON means a server that
          // ignores response_format or an answer cut short; another sample costs tokens for the same.
          throw new ModelError('permanent', 'model_invalid_json', 'The AI model did not return valid JSON', {
            usage,
            detail: finishReason === 'length' ? 'answer cut off by max tokens' : 'content is not JSON',
            cause: error,
          });
        }
      });
      return {
        data: result.value,
        promptTokens: result.usage.promptTokens,
        completionTokens: result.usage.completionTokens,
        model: result.model,
        latencyMs: result.latencyMs,
        attempts: result.attempts,
      };
    },
  };
}

let defaultService: OpenAIService | undefined;

/** The process-wide service from config, created on first use (importing needs no key). */
export function getOpenAIService(): OpenAIService {
  defaultService ??= createOpenAIService();
  return defaultService;
}
