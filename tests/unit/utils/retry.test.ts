import fc from 'fast-check';
import { abortableSleep, backoffDelay, retry, type RetryOptions } from '../../../src/utils/retry';

class Transient extends Error {
  constructor(readonly retryAfterMs?: number) {
    super('transient');
  }
}
class Fatal extends Error {}

/** A retry setup whose waits are recorded instead of slept. */
function options(overrides: Partial<RetryOptions> = {}) {
  const sleeps: number[] = [];
  const opts: RetryOptions = {
    attempts: 4,
    baseMs: 100,
    maxMs: 1_000,
    isRetryable: (error) => error instanceof Transient,
    retryAfterMs: (error) => (error instanceof Transient ? error.retryAfterMs : undefined),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  };
  return { opts, sleeps };
}

/** fn that fails with the given errors in turn, then returns 'ok'. */
function failing(...errors: Error[]) {
  const fn = jest.fn(async (_attempt: number) => {
    const next = errors.shift();
    if (next) throw next;
    return 'ok';
  });
  return fn;
}

describe('backoffDelay', () => {
  it('when random is 0, then the delay is 0 (full jitter starts at zero)', () => {
    expect(backoffDelay(3, 100, 1_000, () => 0)).toBe(0);
  });

  it('when random is near 1, then the delay stays below the exponential cap', () => {
    expect(backoffDelay(1, 100, 1_000, () => 0.999999)).toBe(99);
    expect(backoffDelay(2, 100, 1_000, () => 0.999999)).toBe(199);
    expect(backoffDelay(3, 100, 1_000, () => 0.999999)).toBe(399);
    expect(backoffDelay(10, 100, 1_000, () => 0.999999)).toBe(999);
  });

  it('when the attempt count is huge, then the cap is maxMs and nothing overflows', () => {
    expect(backoffDelay(5_000, 100, 1_000, () => 0.5)).toBe(500);
  });

  it('when an injected random leaves [0, 1), then the delay is still clamped into [0, cap)', () => {
    expect(backoffDelay(1, 100, 1_000, () => 7)).toBe(99);
    expect(backoffDelay(1, 100, 1_000, () => -1)).toBe(0);
  });

  it('when given any attempt, base, max and random, then 0 <= delay < min(max, base * 2^(attempt-1)) or 0', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, base, max, r) => {
          const delay = backoffDelay(attempt, base, max, () => r);
          const cap = Math.min(max, base * 2 ** (attempt - 1));
          return Number.isInteger(delay) && delay >= 0 && delay < cap;
        },
      ),
    );
  });

  it('when no random is given, then Math.random is used and the bounds hold', () => {
    const delay = backoffDelay(2, 100, 1_000);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(200);
  });
});

describe('retry', () => {
  it('when the first attempt succeeds, then it returns without sleeping', async () => {
    const { opts, sleeps } = options();
    const fn = failing();
    await expect(retry(fn, opts)).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(1);
    expect(sleeps).toEqual([]);
  });

  it('when attempts fail transiently, then it backs off exponentially with jitter and passes the attempt number', async () => {
    const onRetry = jest.fn();
    const { opts, sleeps } = options({ onRetry });
    const fn = failing(new Transient(), new Transient());
    await expect(retry(fn, opts)).resolves.toBe('ok');
    expect(fn.mock.calls.map(([attempt]) => attempt)).toEqual([1, 2, 3]);
    // random 0.5 of caps 100 and 200
    expect(sleeps).toEqual([50, 100]);
    expect(onRetry).toHaveBeenCalledTimes(2);
    expect(onRetry.mock.calls[0]?.[0]).toMatchObject({ attempt: 1, delayMs: 50 });
  });

  it('when the error is not retryable, then it stops at once and rethrows it', async () => {
    const { opts, sleeps } = options();
    const fatal = new Fatal('bad request');
    const fn = failing(fatal);
    await expect(retry(fn, opts)).rejects.toBe(fatal);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(sleeps).toEqual([]);
  });

  it('when every attempt fails, then the last error is rethrown after `attempts` calls', async () => {
    const { opts } = options({ attempts: 3 });
    const last = new Transient();
    const fn = failing(new Transient(), new Transient(), last, new Transient());
    await expect(retry(fn, opts)).rejects.toBe(last);
    expect(fn).toHaveBeenCalledTimes(3);
  });

  it('when attempts is below 1, then it still makes one attempt', async () => {
    const { opts } = options({ attempts: 0 });
    const fn = failing(new Transient());
    await expect(retry(fn, opts)).rejects.toBeInstanceOf(Transient);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('when the server sends Retry-After within maxMs, then that wait replaces the backoff', async () => {
    const { opts, sleeps } = options();
    const fn = failing(new Transient(750), new Transient(0));
    await expect(retry(fn, opts)).resolves.toBe('ok');
    expect(sleeps).toEqual([750, 0]);
  });

  it('when Retry-After exceeds maxMs, then it gives up now instead of holding the slot', async () => {
    const { opts, sleeps } = options();
    const error = new Transient(60_000);
    const fn = failing(error);
    await expect(retry(fn, opts)).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(sleeps).toEqual([]);
  });

  it('when no retryAfterMs function is given, then only the backoff is used', async () => {
    const { opts, sleeps } = options({ retryAfterMs: undefined });
    const fn = failing(new Transient(60_000));
    await expect(retry(fn, opts)).resolves.toBe('ok');
    expect(sleeps).toEqual([50]);
  });

  it('when the signal is already aborted, then fn is never called', async () => {
    const controller = new AbortController();
    controller.abort();
    const { opts } = options({ signal: controller.signal });
    const fn = failing();
    await expect(retry(fn, opts)).rejects.toMatchObject({ name: 'AbortError' });
    expect(fn).not.toHaveBeenCalled();
  });

  it('when the signal aborts during an attempt, then that attempt’s error is rethrown without retrying', async () => {
    const controller = new AbortController();
    const { opts, sleeps } = options({ signal: controller.signal });
    const error = new Transient();
    const fn = jest.fn(async () => {
      controller.abort();
      throw error;
    });
    await expect(retry(fn, opts)).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(sleeps).toEqual([]);
  });

  it('when the signal aborts during the backoff wait, then the wait ends early with the abort reason', async () => {
    const controller = new AbortController();
    const fn = failing(new Transient(), new Transient());
    const started = Date.now();
    // The real sleep, with a wait long enough that only the abort can end it.
    const promise = retry(fn, { attempts: 3, baseMs: 60_000, maxMs: 60_000, random: () => 0.9, isRetryable: () => true, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('shutting down')), 20);
    await expect(promise).rejects.toThrow('shutting down');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('when no sleep is injected, then it really waits between attempts', async () => {
    const fn = failing(new Transient());
    const started = Date.now();
    await expect(retry(fn, { attempts: 2, baseMs: 40, maxMs: 40, random: () => 0.99, isRetryable: () => true })).resolves.toBe('ok');
    expect(Date.now() - started).toBeGreaterThanOrEqual(30);
  });
});

describe('abortableSleep', () => {
  it('when the signal is already aborted, then it rejects at once with the reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(abortableSleep(60_000, controller.signal)).rejects.toBe(reason);
  });

  it('when the time passes with a live signal, then it resolves', async () => {
    const controller = new AbortController();
    await expect(abortableSleep(5, controller.signal)).resolves.toBeUndefined();
    // The listener was removed: a later abort must not reject anything.
    controller.abort();
  });
});
