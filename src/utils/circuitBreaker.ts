/**
 * A small circuit breaker: after `failureThreshold` consecutive provider failures it opens and
 * fails calls at once for `cooldownMs`, so a provider outage costs each job one cheap error
 * instead of a timeout, and we stop hammering a provider that is already struggling. After the
 * cooldown one trial call goes through (half-open): success closes the circuit, failure re-opens
 * it for another cooldown.
 *
 * Consecutive failures rather than a failure rate in a window: one counter, no buckets, and with
 * a single upstream (the platform's OpenAI key) an outage shows up as an unbroken run anyway.
 */

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive provider failures that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before letting one trial call through. */
  cooldownMs: number;
  /**
   * Whether an error is the provider's fault (5xx, 429, timeout, network). Errors it rejects
   * (a 400 for a bad request) neither count nor open anything: the provider answered, so it is
   * up, and they reset the run of failures like a success does. Default: every error counts.
   */
  isFailure?: (error: unknown) => boolean;
  /** Injectable clock, in ms. */
  now?: () => number;
  onStateChange?: (change: { from: CircuitState; to: CircuitState }) => void;
}

/** Thrown instead of calling while the circuit is open. Retryable: the provider may be back later. */
export class CircuitOpenError extends Error {
  readonly retryable = true as const;

  constructor(readonly retryAfterMs: number) {
    super(`circuit open; retry in ${retryAfterMs} ms`);
    this.name = 'CircuitOpenError';
  }
}

export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  private readonly now: () => number;
  private readonly isFailure: (error: unknown) => boolean;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
    this.isFailure = options.isFailure ?? (() => true);
  }

  /** For metrics and logs. Reading it moves an open circuit whose cooldown is over to half-open. */
  get state(): CircuitState {
    this.refresh();
    return this.current;
  }

  /** Consecutive provider failures seen while closed. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /**
   * Whether a call now would be refused without being made (open, or half-open with its one
   * trial in flight). A peek: it takes no trial and counts nothing.
   */
  get refusing(): boolean {
    this.refresh();
    return this.current === 'open' || (this.current === 'half_open' && this.trialInFlight);
  }

  /** How long until the circuit lets a call through (0 when closed). */
  get retryAfterMs(): number {
    this.refresh();
    if (this.current === 'open') return Math.max(0, this.openedAt + this.options.cooldownMs - this.now());
    return this.current === 'half_open' && this.trialInFlight ? this.options.cooldownMs : 0;
  }

  async exec<T>(fn: () => Promise<T>): Promise<T> {
    this.refresh();
    if (this.current === 'open') {
      throw new CircuitOpenError(Math.max(0, this.openedAt + this.options.cooldownMs - this.now()));
    }
    const trial = this.current === 'half_open';
    if (trial) {
      // One trial at a time: a recovering provider should see one request, not the whole backlog.
      if (this.trialInFlight) throw new CircuitOpenError(this.options.cooldownMs);
      this.trialInFlight = true;
    }
    try {
      const result = await fn();
      this.settle(trial, true);
      return result;
    } catch (error) {
      this.settle(trial, !this.isFailure(error));
      throw error;
    } finally {
      if (trial) this.trialInFlight = false;
    }
  }

  private settle(trial: boolean, healthy: boolean): void {
    if (trial) {
      if (healthy) this.close();
      else this.open();
      return;
    }
    // Calls that started before the circuit opened and finish later say nothing about now:
    // only calls made while closed move the counter, and only the trial decides half-open.
    if (this.current !== 'closed') return;
    if (healthy) {
      this.failures = 0;
      return;
    }
    this.failures += 1;
    if (this.failures >= this.options.failureThreshold) this.open();
  }

  private refresh(): void {
    if (this.current === 'open' && this.now() - this.openedAt >= this.options.cooldownMs) this.transition('half_open');
  }

  private open(): void {
    this.openedAt = this.now();
    this.transition('open');
  }

  private close(): void {
    this.failures = 0;
    this.transition('closed');
  }

  private transition(to: CircuitState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    this.options.onStateChange?.({ from, to });
  }
}
