import { CircuitBreaker, CircuitOpenError, type CircuitState } from '../../../src/utils/circuitBreaker';

class ProviderDown extends Error {}
class BadRequest extends Error {}

function setup(overrides: { failureThreshold?: number; cooldownMs?: number; isFailure?: (e: unknown) => boolean } = {}) {
  let now = 1_000_000;
  const changes: Array<[CircuitState, CircuitState]> = [];
  const breaker = new CircuitBreaker({
    failureThreshold: 3,
    cooldownMs: 10_000,
    isFailure: (error) => error instanceof ProviderDown,
    now: () => now,
    onStateChange: ({ from, to }) => changes.push([from, to]),
    ...overrides,
  });
  return {
    breaker,
    changes,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const ok = () => Promise.resolve('ok');
const down = () => Promise.reject(new ProviderDown('503'));
const bad = () => Promise.reject(new BadRequest('400'));

async function failTimes(breaker: CircuitBreaker, n: number) {
  for (let i = 0; i < n; i += 1) await expect(breaker.exec(down)).rejects.toBeInstanceOf(ProviderDown);
}

describe('CircuitBreaker', () => {
  it('when closed, then calls pass through with their results and errors', async () => {
    const { breaker } = setup();
    await expect(breaker.exec(ok)).resolves.toBe('ok');
    await expect(breaker.exec(bad)).rejects.toBeInstanceOf(BadRequest);
    expect(breaker.state).toBe('closed');
  });

  it('when provider failures reach the threshold in a row, then it opens', async () => {
    const { breaker, changes } = setup();
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    expect(breaker.consecutiveFailures).toBe(2);
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
    expect(changes).toEqual([['closed', 'open']]);
  });

  it('when a success comes between failures, then the run starts over', async () => {
    const { breaker } = setup();
    await failTimes(breaker, 2);
    await breaker.exec(ok);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
  });

  it('when the caller says an error is not a provider failure (a 400), then it neither counts nor opens', async () => {
    const { breaker } = setup({ failureThreshold: 1 });
    for (let i = 0; i < 5; i += 1) await expect(breaker.exec(bad)).rejects.toBeInstanceOf(BadRequest);
    expect(breaker.state).toBe('closed');
    expect(breaker.consecutiveFailures).toBe(0);
  });

  it('when open, then exec throws a retryable CircuitOpenError with the time left and never calls fn', async () => {
    const { breaker, advance } = setup();
    await failTimes(breaker, 3);
    advance(4_000);
    const fn = jest.fn(ok);
    const error = await breaker.exec(fn).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({ retryable: true, retryAfterMs: 6_000, name: 'CircuitOpenError' });
    expect(fn).not.toHaveBeenCalled();
  });

  it('when the cooldown has passed, then the state reads half_open and one trial success closes it', async () => {
    const { breaker, advance, changes } = setup();
    await failTimes(breaker, 3);
    advance(10_000);
    expect(breaker.state).toBe('half_open');
    await expect(breaker.exec(ok)).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
    expect(breaker.consecutiveFailures).toBe(0);
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
  });

  it('when the trial fails, then it re-opens for a fresh cooldown', async () => {
    const { breaker, advance } = setup();
    await failTimes(breaker, 3);
    advance(10_000);
    await expect(breaker.exec(down)).rejects.toBeInstanceOf(ProviderDown);
    expect(breaker.state).toBe('open');
    advance(9_999);
    await expect(breaker.exec(ok)).rejects.toMatchObject({ retryAfterMs: 1 });
    advance(1);
    await expect(breaker.exec(ok)).resolves.toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('when the trial gets a non-failure error (the provider answered), then it closes', async () => {
    const { breaker, advance } = setup();
    await failTimes(breaker, 3);
    advance(10_000);
    await expect(breaker.exec(bad)).rejects.toBeInstanceOf(BadRequest);
    expect(breaker.state).toBe('closed');
  });

  it('when a trial is in flight, then other calls are turned away until it settles', async () => {
    const { breaker, advance } = setup();
    await failTimes(breaker, 3);
    advance(10_000);
    let finish!: (value: string) => void;
    const trial = breaker.exec(() => new Promise<string>((resolve) => (finish = resolve)));
    const other = jest.fn(ok);
    await expect(breaker.exec(other)).rejects.toMatchObject({ name: 'CircuitOpenError', retryAfterMs: 10_000 });
    expect(other).not.toHaveBeenCalled();
    finish('trial ok');
    await expect(trial).resolves.toBe('trial ok');
    await expect(breaker.exec(other)).resolves.toBe('ok');
  });

  it('when calls begun while closed finish after it opened, then their results change nothing', async () => {
    const { breaker } = setup();
    let finishLate!: (value: string) => void;
    let failLate!: (error: Error) => void;
    const lateSuccess = breaker.exec(() => new Promise<string>((resolve) => (finishLate = resolve)));
    const lateFailure = breaker.exec(() => new Promise<string>((_, reject) => (failLate = reject)));
    await failTimes(breaker, 3);
    finishLate('late');
    failLate(new ProviderDown('late'));
    await lateSuccess;
    await expect(lateFailure).rejects.toBeInstanceOf(ProviderDown);
    expect(breaker.state).toBe('open');
  });

  it('when no classifier or clock is given, then every error counts and the real clock is used', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 60_000 });
    await expect(breaker.exec(bad)).rejects.toBeInstanceOf(BadRequest);
    expect(breaker.state).toBe('open');
    await expect(breaker.exec(ok)).rejects.toBeInstanceOf(CircuitOpenError);
  });

  it('when peeked, then `refusing` says whether a call would be turned away, takes no trial and counts nothing', async () => {
    const { breaker, advance } = setup();
    expect(breaker.refusing).toBe(false);
    expect(breaker.retryAfterMs).toBe(0);
    await failTimes(breaker, 3);
    expect(breaker.refusing).toBe(true);
    advance(4_000);
    expect(breaker.retryAfterMs).toBe(6_000);
    advance(6_000);
    // Half-open and no trial in flight: a call would go through, and peeking took none.
    expect(breaker.refusing).toBe(false);
    let release!: () => void;
    const trial = breaker.exec(() => new Promise<string>((resolve) => (release = () => resolve('ok'))));
    expect(breaker.refusing).toBe(true);
    release();
    await expect(trial).resolves.toBe('ok');
    expect(breaker.refusing).toBe(false);
    expect(breaker.state).toBe('closed');
  });
});
