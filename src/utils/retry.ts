/**
 * Retrying a flaky call with exponential backoff and full jitter (AWS "Exponential Backoff
 * and Jitter"): each wait is uniform in [0, min(maxMs, baseMs · 2^(attempt-1))), so a crowd of
 * workers that failed together does not come back together.
 *
 * The caller classifies errors (`isRetryable`) because only it knows what a 400 or a 429 means
 * for its call; this module knows nothing about HTTP.
 */

export interface RetryInfo {
  /** The attempt that just failed, 1-based. */
  attempt: number;
  /** How long we are about to wait before the next attempt. */
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  /** Total attempts, the first one included (1 = no retry). */
  attempts: number;
  baseMs: number;
  maxMs: number;
  /** False stops at once and rethrows: retrying a bad request only repeats the bad request. */
  isRetryable: (error: unknown) => boolean;
  /**
   * The server's own hint (Retry-After), in ms. When given it replaces the jittered delay; when it
   * exceeds `maxMs` we stop and rethrow rather than hold a worker slot for minutes: the caller's
   * queue can reschedule the job for that long, cheaply.
   */
  retryAfterMs?: (error: unknown) => number | undefined;
  onRetry?: (info: RetryInfo) => void;
  /** Aborting stops the loop: before an attempt, and during a wait. */
  signal?: AbortSignal;
  /** Injectable so tests do not wait; must reject when `signal` aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injectable source of [0, 1) for the jitter. */
  random?: () => number;
}

/**
 * Pure: the wait after failed attempt `attempt` (1-based), uniform in [0, cap) where
 * cap = min(maxMs, baseMs · 2^(attempt-1)).
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  // 2 ** 1100 is Infinity, and Math.min takes care of it: no overflow to guard against.
  const cap = Math.max(0, Math.min(maxMs, baseMs * 2 ** exponent));
  // Clamp in case an injected random misbehaves: the contract is [0, cap).
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.min(Math.floor(r * cap), Math.max(0, cap - 1));
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds, the error is not retryable, the attempts run out, or `signal`
 * aborts. Rethrows the last error as is (no wrapping), so callers keep their typed errors.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { attempts, baseMs, maxMs, isRetryable, retryAfterMs, onRetry, signal } = options;
  const sleep = options.sleep ?? abortableSleep;
  const random = options.random ?? Math.random;
  const total = Math.max(1, Math.floor(attempts));

  for (let attempt = 1; ; attempt += 1) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      // The caller gave up (shutdown): report what actually happened rather than retry.
      if (signal?.aborted) throw error;
      if (attempt >= total || !isRetryable(error)) throw error;
      const hinted = retryAfterMs?.(error);
      if (hinted !== undefined && hinted > maxMs) throw error;
      const delayMs = hinted !== undefined ? Math.max(0, hinted) : backoffDelay(attempt, baseMs, maxMs, random);
      onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs, signal);
    }
  }
}
