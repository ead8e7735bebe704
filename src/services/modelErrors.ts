/**
 * What can go wrong with a model call, and what the caller should do about it: every failure the
 * model client (`openaiService.ts`) reports leaves as a `ModelError` whose `kind` says whether to
 * try again, and whose `message` is safe to store on a message a tenant can read. `classifyError`
 * maps whatever the SDK (or fetch, or the breaker) throws onto one.
 */
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { CircuitOpenError } from '../utils/circuitBreaker';

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
  /** Requests that reached the provider before giving up; set when the error leaves the service. 0: every attempt was refused by the circuit. */
  providerRequests = 1;

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

/** Our own per-attempt deadline passed, or the SDK's did. */
export const timeoutError = (cause?: unknown) =>
  new ModelError('retryable', 'model_timeout', 'The AI provider did not answer in time', { cause });

/** The caller aborted (shutdown, a lost lease): not the provider's fault, and not retried in this call. */
export const abortedError = (cause?: unknown) => new ModelError('retryable', 'model_aborted', 'The AI request was cancelled', { cause });

/** The breaker counts only the provider's own trouble; a bad request or an odd answer is not an outage. */
const PROVIDER_FAILURES: ReadonlySet<ModelErrorCode> = new Set([
  'model_rate_limited',
  'model_quota_exceeded',
  'model_unavailable',
  'model_network',
  'model_timeout',
]);

/** Whether the circuit breaker should count this failure against the provider. */
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
    return abortedError(error);
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
