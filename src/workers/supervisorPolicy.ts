/**
 * What the supervisor decides, as pure functions of what it observed and a clock it is given,
 * so the rules are tested with made-up sequences instead of real processes and waits:
 * - how many message workers to run, from the consumer group's backlog, with hysteresis;
 * - whether a worker whose process lives has stopped heartbeating (stuck).
 */

export interface ScalePolicy {
  /** MESSAGE_WORKERS: never fewer. */
  min: number;
  /** MESSAGE_WORKERS_MAX (at least `min`): never more. */
  max: number;
  /** Backlog per worker above which workers are short. */
  highPerWorker: number;
  /** Backlog per worker below which one worker fewer would do. */
  lowPerWorker: number;
  /** Consecutive checks above `highPerWorker` before one worker is added. */
  upAfterChecks: number;
  /** Consecutive checks below `lowPerWorker` before one worker is drained. */
  downAfterChecks: number;
  /** After any change, no other for this long: a new worker needs time to start and take load. */
  cooldownMs: number;
}

/**
 * The rule, from the settings: a worker holds WORKER_CONCURRENCY entries at once, so more than
 * that per worker means entries wait for a free slot. Scale up by one after 3 checks in a row
 * above it; down by one after 12 checks in a row below a quarter of it (after the change the
 * rest still sit at most at half the high mark, so the drain cannot trigger a scale-up); no
 * change within 6 checks of the last.
 */
export function scalePolicy(settings: {
  MESSAGE_WORKERS: number;
  MESSAGE_WORKERS_MAX: number;
  WORKER_CONCURRENCY: number;
  SUPERVISOR_CHECK_MS: number;
}): ScalePolicy {
  const min = settings.MESSAGE_WORKERS;
  return {
    min,
    // MESSAGE_WORKERS=0 says this machine runs no message workers: none are started on demand either.
    max: min === 0 ? 0 : Math.max(min, settings.MESSAGE_WORKERS_MAX),
    highPerWorker: settings.WORKER_CONCURRENCY,
    lowPerWorker: settings.WORKER_CONCURRENCY / 4,
    upAfterChecks: 3,
    downAfterChecks: 12,
    cooldownMs: 6 * settings.SUPERVISOR_CHECK_MS,
  };
}

export interface ScaleState {
  /** Consecutive checks with the backlog per worker above the high mark. */
  above: number;
  /** Consecutive checks below the low mark. */
  below: number;
  lastChangeAt: number;
}

export const initialScaleState = (): ScaleState => ({ above: 0, below: 0, lastChangeAt: -Infinity });

export interface ScaleInput {
  now: number;
  /** Message workers this supervisor runs (draining ones excluded). */
  workers: number;
  /** Message workers heartbeating in the whole fleet, other machines' included. */
  fleetWorkers: number;
  /** The group's lag plus pending entries; null when Redis could not be read. */
  backlog: number | null;
}

export interface ScaleDecision {
  state: ScaleState;
  /** The number of message workers to run; equal to `input.workers` when nothing changes. */
  target: number;
  /** Backlog per worker the decision saw (null when unknown). */
  perWorker: number | null;
}

export function decideScale(policy: ScalePolicy, state: ScaleState, input: ScaleInput): ScaleDecision {
  const { now, workers } = input;
  const bounded = Math.min(policy.max, Math.max(policy.min, workers));
  if (bounded !== workers) return { state: { above: 0, below: 0, lastChangeAt: now }, target: bounded, perWorker: null };
  if (input.backlog === null) {
    // Blind (Redis down): a streak must be seen, not assumed across the gap.
    return { state: { ...state, above: 0, below: 0 }, target: workers, perWorker: null };
  }
  // Other machines' workers share the same group: each supervisor divides the backlog by all.
  const perWorker = input.backlog / Math.max(1, workers, input.fleetWorkers);
  const next: ScaleState = {
    above: perWorker > policy.highPerWorker ? state.above + 1 : 0,
    below: perWorker < policy.lowPerWorker ? state.below + 1 : 0,
    lastChangeAt: state.lastChangeAt,
  };
  const cooled = now - state.lastChangeAt >= policy.cooldownMs;
  let target = workers;
  if (cooled && next.above >= policy.upAfterChecks && workers < policy.max) target = workers + 1;
  else if (cooled && next.below >= policy.downAfterChecks && workers > policy.min) target = workers - 1;
  if (target === workers) return { state: next, target, perWorker };
  return { state: { above: 0, below: 0, lastChangeAt: now }, target, perWorker };
}

/** What the supervisor knows of one worker process's heartbeats. */
export interface Liveness {
  /** The newest heartbeat time seen from this process; undefined until its first. */
  beatAt?: number;
  /** The supervisor's clock when `beatAt` last advanced, or when it last could not look. */
  progressAt?: number;
}

export type Verdict = 'starting' | 'alive' | 'stuck' | 'unknown';

/**
 * Judges one worker process. `beatAt` is its newest heartbeat (only beats sent since this
 * process started count), undefined when there is none, null when heartbeats could not be read.
 * - Before its first heartbeat a worker is starting and never judged (loading code, connecting).
 * - Heartbeats unreadable (Redis down): nobody can be seen, so nobody is judged, and the
 *   silence clock restarts: when Redis returns, each worker gets a full `staleMs` to be seen
 *   again (its beats failed during the outage too).
 * - Otherwise stuck once no new beat has been seen for `staleMs` of the supervisor's clock.
 */
export function judgeLiveness(
  previous: Liveness,
  beatAt: number | undefined | null,
  now: number,
  staleMs: number,
): { liveness: Liveness; verdict: Verdict } {
  if (beatAt === null) {
    const liveness = previous.beatAt === undefined ? previous : { ...previous, progressAt: now };
    return { liveness, verdict: 'unknown' };
  }
  if (beatAt !== undefined && (previous.beatAt === undefined || beatAt > previous.beatAt)) {
    return { liveness: { beatAt, progressAt: now }, verdict: 'alive' };
  }
  if (previous.beatAt === undefined) return { liveness: previous, verdict: 'starting' };
  // No newer beat (or its entry vanished, as when Redis restarts empty): silent since progressAt.
  const silentFor = now - (previous.progressAt ?? now);
  return { liveness: previous, verdict: silentFor >= staleMs ? 'stuck' : 'alive' };
}
