/**
 * The one door to the model provider (OpenAI or any OpenAI-compatible server at
 * `OPENAI_BASE_URL`). Workers call `complete` for replies and `extractStructured` for leads.
 *
 * Failure policy lives here and only here: the SDK's own retries are off (`maxRetries: 0`) so a
 * call is retried by `retry` (exponential backoff, full jitter, Retry-After) through a
 * `CircuitBreaker` of its own model, base URL and tenant (guarantee 11: one tenant's failing model
 * opens that tenant's circuit for that model, nobody else's), each attempt under its own deadline. Every failure leaves as a
 * `ModelError` (`modelErrors.ts`). What to send is the caller's business (`chatPrompt.ts` builds
 * a reply's messages, `extractionService.ts` an extraction's).
 */
import OpenAI, { toFile } from 'openai';
import { config } from '../config';
import { logger } from '../utils/logger';
import { CircuitBreaker, type CircuitState } from '../utils/circuitBreaker';
import { retry } from '../utils/retry';
import { abortedError, classifyError, isProviderFailure, ModelError, timeoutError } from './modelErrors';

export type ChatRole = 'system' | 'user' | 'assistant';
/** A part of a customer's message: its words, or an image the model sees (a data URL). */
export type ChatContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: 'low' | 'high' | 'auto' } };
/** One message of a chat request, in the chat API's roles. Only `user` messages carry parts (images). */
export type ChatMessage = { role: 'system' | 'assistant'; content: string } | { role: 'user'; content: string | ChatContentPart[] };

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
  /** Whose call it is: failures count against this tenant's circuit for the model. */
  tenantId?: string;
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
  /** Whose call it is: failures count against this tenant's circuit for the model. */
  tenantId?: string;
}

export interface StructuredResult {
  data: unknown;
  promptTokens: number;
  completionTokens: number;
  model: string;
  latencyMs: number;
  attempts: number;
}

/** A voice note to transcribe (`/audio/transcriptions`). */
export interface TranscriptionRequest {
  model: string;
  audio: Buffer;
  /** With an extension the provider recognises the format by (`voice.ogg`). */
  filename: string;
  mimeType: string | null;
  signal?: AbortSignal;
  /** Whose call it is: failures count against this tenant's circuit for the model. */
  tenantId?: string;
}

export interface TranscriptionResult {
  text: string;
  /** The audio's length as the provider reports it (`usage.seconds`), else null. */
  seconds: number | null;
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
  /** Most circuits kept (one per model, base URL and tenant); the least recently used healthy one goes first. */
  maxBreakers?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

export interface OpenAIService {
  complete(request: CompletionRequest): Promise<CompletionResult>;
  extractStructured(request: StructuredRequest): Promise<StructuredResult>;
  /** Transcribes audio through the SDK's `audio.transcriptions`, with the same retries and circuits. */
  transcribe(request: TranscriptionRequest): Promise<TranscriptionResult>;
  /** For metrics: the worst state among the circuits (open, else half-open, else closed). */
  readonly circuitState: CircuitState;
  /** The state of one tenant's circuit for a model. */
  circuitStateFor(model: string, tenantId?: string): CircuitState;
  /**
   * Whether a call for this model and tenant would be refused now without reaching the provider
   * (its circuit is open): a peek that takes no trial, so a turn can wait without counting an attempt.
   */
  breakerOpen(model: string, tenantId?: string): boolean;
  /** How long until that circuit lets a call through (0 when it would now). */
  circuitRetryAfterMs(model: string, tenantId?: string): number;
}

export const DEFAULT_RETRY = { attempts: 3, baseMs: 500, maxMs: 8_000 } as const;
export const DEFAULT_BREAKER = { failureThreshold: 5, cooldownMs: 30_000 } as const;
export const DEFAULT_MAX_BREAKERS = 10_000;

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
  const maxBreakers = Math.max(1, options.maxBreakers ?? DEFAULT_MAX_BREAKERS);
  // Keyed by model, base URL and tenant; a Map keeps insertion order, and each use moves its key
  // to the end, so the first keys are the least recently used.
  const breakers = new Map<string, CircuitBreaker>();
  function breakerFor(model: string, tenantId: string | undefined, create: true): CircuitBreaker;
  function breakerFor(model: string, tenantId: string | undefined, create: false): CircuitBreaker | undefined;
  function breakerFor(model: string, tenantId: string | undefined, create: boolean): CircuitBreaker | undefined {
    const key = JSON.stringify([model, baseURL ?? '', tenantId ?? '']);
    const found = breakers.get(key);
    if (found) {
      breakers.delete(key);
      breakers.set(key, found);
      return found;
    }
    if (!create) return undefined;
    if (breakers.size >= maxBreakers) evictOne();
    const breaker = new CircuitBreaker({
      ...DEFAULT_BREAKER,
      ...options.breaker,
      isFailure: isProviderFailure,
      onStateChange: ({ from, to }) => log.warn({ from, to, model, tenant_id: tenantId }, `model circuit ${to}`),
    });
    breakers.set(key, breaker);
    return breaker;
  }
  /** Bounded: drops the least recently used healthy circuit, else the least recently used one. */
  function evictOne(): void {
    for (const [key, breaker] of breakers) {
      if (breaker.state === 'closed' && breaker.consecutiveFailures === 0) {
        breakers.delete(key);
        return;
      }
    }
    const oldest = breakers.keys().next();
    if (!oldest.done) breakers.delete(oldest.value);
  }

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
    tenantId: string | undefined,
    interpret: (content: string | null, finishReason: string | null, refusal: string | null | undefined, usage: Usage) => T,
  ): Promise<{ value: T; usage: Usage; model: string; latencyMs: number; attempts: number }> {
    if (!apiKey) {
      // CONTRACT §2: without a key replies fail with a clear, visible status, and nothing is sent.
      throw new ModelError('not_configured', 'openai_not_configured', 'The AI provider is not configured (OPENAI_API_KEY is not set)');
    }
    const started = Date.now();
    const breaker = breakerFor(body.model, tenantId, true);
    let attempts = 0;
    let providerRequests = 0;
    try {
      return await retry(
        async (attempt) => {
          attempts = attempt;
          const attemptStarted = Date.now();
          const response = await breaker
            .exec(async () => {
              providerRequests += 1;
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
      const failure = signal?.aborted && !(error instanceof ModelError) ? abortedError(error) : classifyError(error, { model: body.model, apiKey });
      failure.attempts = Math.max(attempts, 1);
      failure.providerRequests = providerRequests;
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

  async function transcribe(request: TranscriptionRequest): Promise<TranscriptionResult> {
    if (!apiKey) throw new ModelError('not_configured', 'openai_not_configured', 'The AI provider is not configured (OPENAI_API_KEY is not set)');
    const started = Date.now();
    const breaker = breakerFor(request.model, request.tenantId, true);
    let attempts = 0;
    const { signal } = request;
    try {
      return await retry(
        async (attempt) => {
          attempts = attempt;
          const response = await breaker
            .exec(async () => {
              const guard = attemptGuard(timeoutMs, signal);
              try {
                const file = await toFile(request.audio, request.filename, request.mimeType ? { type: request.mimeType } : undefined);
                return await getClient().audio.transcriptions.create({ file, model: request.model }, { signal: guard.signal, timeout: timeoutMs, maxRetries: 0 });
              } catch (error) {
                if (guard.timedOut()) throw timeoutError(error);
                throw classifyError(error, { model: request.model, apiKey });
              } finally {
                guard.dispose();
              }
            })
            .catch((error: unknown) => {
              throw classifyError(error, { model: request.model, apiKey });
            });
          // `usage` is `{ type: "duration", seconds }` for per-minute models; token-priced ones report tokens.
          const usage = (response as { usage?: { type?: string; seconds?: number } }).usage;
          const seconds = usage?.type === 'duration' && typeof usage.seconds === 'number' ? usage.seconds : null;
          const latencyMs = Date.now() - started;
          log.info({ model: request.model, latencyMs, seconds, attempt }, 'transcription completed');
          return { text: response.text ?? '', seconds, latencyMs, attempts: attempt };
        },
        {
          ...retryPolicy,
          isRetryable: (error) => error instanceof ModelError && error.retryable && error.code !== 'model_aborted',
          retryAfterMs: (error) => (error instanceof ModelError ? error.retryAfterMs : undefined),
          ...(signal ? { signal } : {}),
          ...(options.sleep ? { sleep: options.sleep } : {}),
          ...(options.random ? { random: options.random } : {}),
        },
      );
    } catch (error) {
      const failure = signal?.aborted && !(error instanceof ModelError) ? abortedError(error) : classifyError(error, { model: request.model, apiKey });
      failure.attempts = Math.max(attempts, 1);
      log.warn({ model: request.model, attempts: failure.attempts, code: failure.code, status: failure.status }, 'transcription failed');
      throw failure;
    }
  }

  return {
    transcribe,

    get circuitState() {
      let worst: CircuitState = 'closed';
      for (const breaker of breakers.values()) {
        const state = breaker.state;
        if (state === 'open') return 'open';
        if (state === 'half_open') worst = 'half_open';
      }
      return worst;
    },

    circuitStateFor(model, tenantId) {
      return breakerFor(model, tenantId, false)?.state ?? 'closed';
    },

    breakerOpen(model, tenantId) {
      return breakerFor(model, tenantId, false)?.refusing ?? false;
    },

    circuitRetryAfterMs(model, tenantId) {
      return breakerFor(model, tenantId, false)?.retryAfterMs ?? 0;
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
      const result = await call(body, request.signal, request.tenantId, requireContent);
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
      const result = await call(body, request.signal, request.tenantId, (content, finishReason, refusal, usage) => {
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
