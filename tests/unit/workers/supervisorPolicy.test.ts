/**
 * The supervisor's decisions as pure functions, driven by made-up backlog and heartbeat
 * sequences on a clock the test advances: scaling with hysteresis, and the stuck verdict.
 */
import fc from 'fast-check';
import {
  decideScale,
  initialScaleState,
  judgeLiveness,
  scalePolicy,
  type Liveness,
  type ScalePolicy,
  type ScaleState,
} from '../../../src/workers/supervisorPolicy';

const CHECK_MS = 1_000;
const policy: ScalePolicy = scalePolicy({ MESSAGE_WORKERS: 1, MESSAGE_WORKERS_MAX: 4, WORKER_CONCURRENCY: 10, SUPERVISOR_CHECK_MS: CHECK_MS });

/**
 * Runs one check per backlog figure, CHECK_MS apart, applying each decision as the supervisor
 * does (no other machine's workers), and returns the worker count after every check.
 */
function run(backlogs: (number | null)[], options: { workers?: number; policy?: ScalePolicy; state?: ScaleState; start?: number } = {}) {
  const rules = options.policy ?? policy;
  let workers = options.workers ?? rules.min;
  let state = options.state ?? initialScaleState();
  const counts: number[] = [];
  backlogs.forEach((backlog, i) => {
    const decision = decideScale(rules, state, { now: (options.start ?? 0) + i * CHECK_MS, workers, fleetWorkers: workers, backlog });
    state = decision.state;
    workers = decision.target;
    counts.push(workers);
  });
  return { counts, state, workers };
}

const repeat = <T>(value: T, times: number): T[] => Array.from({ length: times }, () => value);

describe('scalePolicy', () => {
  it('when derived from the settings, then the high mark is a worker’s concurrency, the low a quarter of it, the cooldown six checks', () => {
    expect(policy).toEqual({
      min: 1,
      max: 4,
      highPerWorker: 10,
      lowPerWorker: 2.5,
      upAfterChecks: 3,
      downAfterChecks: 12,
      cooldownMs: 6 * CHECK_MS,
    });
  });

  it('when MESSAGE_WORKERS_MAX is below MESSAGE_WORKERS, then the count is fixed at MESSAGE_WORKERS', () => {
    const fixed = scalePolicy({ MESSAGE_WORKERS: 3, MESSAGE_WORKERS_MAX: 2, WORKER_CONCURRENCY: 10, SUPERVISOR_CHECK_MS: CHECK_MS });
    expect([fixed.min, fixed.max]).toEqual([3, 3]);
  });

  it('when MESSAGE_WORKERS is 0, then none is ever started on demand', () => {
    const none = scalePolicy({ MESSAGE_WORKERS: 0, MESSAGE_WORKERS_MAX: 4, WORKER_CONCURRENCY: 10, SUPERVISOR_CHECK_MS: CHECK_MS });
    expect(run(repeat(1_000, 20), { policy: none }).counts).toEqual(repeat(0, 20));
  });
});

describe('decideScale', () => {
  it('when the backlog per worker stays above the high mark, then one worker is added after 3 checks', () => {
    expect(run([50, 50, 50]).counts).toEqual([1, 1, 2]);
  });

  it('when the backlog only blips above the high mark, then nothing changes', () => {
    const blips = [50, 50, 0, 50, 50, 5, 50, 0, 50, 50, 0];
    expect(run(blips).counts).toEqual(repeat(1, blips.length));
  });

  it('when the backlog equals the high mark, then it is not above it (a full worker with nothing waiting)', () => {
    expect(run(repeat(10, 10)).counts).toEqual(repeat(1, 10));
  });

  it('when the backlog stays high, then workers are added one at a time, no sooner than the cooldown, up to the maximum', () => {
    const { counts } = run(repeat(1_000, 40));
    // Up at the 3rd check, then every 6 checks (the cooldown outlasts the 3-check streak).
    expect(counts.slice(0, 16)).toEqual([1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4]);
    expect(counts.slice(16)).toEqual(repeat(4, 24));
  });

  it('when the queue goes idle, then one worker is drained after 12 quiet checks, and down to the minimum only', () => {
    const { counts } = run(repeat(0, 60), { workers: 4 });
    expect(counts.indexOf(3)).toBe(11);
    expect(counts.indexOf(2)).toBe(23);
    expect(counts.indexOf(1)).toBe(35);
    expect(counts.slice(35)).toEqual(repeat(1, 25));
  });

  it('when the backlog sits between the marks, then the count holds whatever it is', () => {
    expect(run(repeat(2 * 5, 30), { workers: 2 }).counts).toEqual(repeat(2, 30));
  });

  it('when a quiet spell is broken by one busy check, then the quiet count starts again', () => {
    const { counts } = run([...repeat(0, 11), 25, ...repeat(0, 11)], { workers: 2 });
    expect(counts).toEqual(repeat(2, 23));
  });

  it('when just scaled up, then a quick drop in the backlog does not scale down before the cooldown and 12 quiet checks', () => {
    const { counts } = run([50, 50, 50, ...repeat(0, 12)]);
    expect(counts).toEqual([1, 1, 2, ...repeat(2, 11), 1]);
  });

  it('when Redis cannot be read, then nothing changes and the streak must be seen again afterwards', () => {
    expect(run([50, 50, null, 50, 50]).counts).toEqual([1, 1, 1, 1, 1]);
    expect(run([50, 50, null, 50, 50, 50]).counts).toEqual([1, 1, 1, 1, 1, 2]);
  });

  it('when other machines run workers of the same group, then the backlog is divided among all of them', () => {
    let state = initialScaleState();
    for (let i = 0; i < 5; i++) {
      const decision = decideScale(policy, state, { now: i * CHECK_MS, workers: 1, fleetWorkers: 6, backlog: 50 });
      state = decision.state;
      expect(decision.target).toBe(1);
      expect(decision.perWorker).toBeCloseTo(50 / 6);
    }
  });

  it('when the count is outside the bounds (settings changed), then it is brought back inside at once', () => {
    expect(decideScale(policy, initialScaleState(), { now: 0, workers: 7, fleetWorkers: 7, backlog: 1_000 }).target).toBe(4);
    expect(decideScale(policy, initialScaleState(), { now: 0, workers: 0, fleetWorkers: 0, backlog: 0 }).target).toBe(1);
  });

  it('for any backlog sequence, the count stays within the bounds and moves by at most one per check, never twice within the cooldown', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(null), fc.nat(200)), { maxLength: 120 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 3, max: 8 }),
        (backlogs, min, max) => {
          const rules = scalePolicy({ MESSAGE_WORKERS: min, MESSAGE_WORKERS_MAX: max, WORKER_CONCURRENCY: 10, SUPERVISOR_CHECK_MS: CHECK_MS });
          const { counts } = run(backlogs, { policy: rules });
          let previous = min;
          let lastChange = -Infinity;
          counts.forEach((count, i) => {
            expect(count).toBeGreaterThanOrEqual(rules.min);
            expect(count).toBeLessThanOrEqual(rules.max);
            expect(Math.abs(count - previous)).toBeLessThanOrEqual(1);
            if (count !== previous) {
              expect(i * CHECK_MS - lastChange).toBeGreaterThanOrEqual(rules.cooldownMs);
              lastChange = i * CHECK_MS;
            }
            previous = count;
          });
        },
      ),
    );
  });
});

describe('judgeLiveness', () => {
  const STALE = 30_000;

  /** Feeds one observation per step (a beat time, undefined for none, null for Redis down) at the given clock. */
  function judge(steps: [now: number, beatAt: number | undefined | null][]) {
    let liveness: Liveness = {};
    return steps.map(([now, beatAt]) => {
      const result = judgeLiveness(liveness, beatAt, now, STALE);
      liveness = result.liveness;
      return result.verdict;
    });
  }

  it('when a worker has not sent its first heartbeat, then it is starting, however long that takes', () => {
    expect(judge([[0, undefined], [60_000, undefined], [600_000, undefined]])).toEqual(['starting', 'starting', 'starting']);
  });

  it('when heartbeats keep coming, then the worker is alive', () => {
    expect(judge([[1_000, 900], [6_000, 5_900], [40_000, 39_000]])).toEqual(['alive', 'alive', 'alive']);
  });

  it('when the heartbeat stops for the stale time, then the worker is stuck, not before', () => {
    expect(judge([[1_000, 900], [30_999, 900], [31_000, 900]])).toEqual(['alive', 'alive', 'stuck']);
  });

  it('when its heartbeat entry vanishes (Redis restarted empty), then silence is counted from the last beat seen', () => {
    expect(judge([[1_000, 900], [20_000, undefined], [31_000, undefined]])).toEqual(['alive', 'alive', 'stuck']);
  });

  it('when Redis cannot be read, then nobody is judged, and each worker gets a whole stale time once it can be read again', () => {
    expect(
      judge([
        [1_000, 900],
        [20_000, null],
        [120_000, null], // a long outage: the workers' beats failed too
        [121_000, 900], // back: the last beat is old, but silence counts from the outage's end
        [149_999, 900],
        [150_000, 900],
      ]),
    ).toEqual(['alive', 'unknown', 'unknown', 'alive', 'alive', 'stuck']);
  });

  it('when Redis is down during start-up, then the worker is still starting afterwards', () => {
    expect(judge([[0, null], [100_000, undefined], [200_000, 199_000]])).toEqual(['unknown', 'starting', 'alive']);
  });

  it('when a stuck worker beats again, then it is alive again', () => {
    expect(judge([[1_000, 900], [40_000, 900], [41_000, 40_500]])).toEqual(['alive', 'stuck', 'alive']);
  });
});
