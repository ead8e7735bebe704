/**
 * The supervisor's pure parts (backoff, child list), its restart bookkeeping, and how it acts
 * on its checks (scaling, stuck workers, Redis down), with `child_process.spawn` replaced by
 * fake children, Redis by a fake probe and timers faked, so no process is started. The rules
 * themselves are tests/unit/workers/supervisorPolicy.test.ts; the real-process paths (a killed
 * child comes back, scaling under a backlog, a SIGSTOPped worker replaced, SIGTERM exits 0)
 * are tests/integration/supervisor.test.ts.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { childSpecs, restartDelay, WorkerManager, workerSpec, type FleetProbe, type MonitorOptions } from '../../../src/workers/workerManager';
import { scalePolicy } from '../../../src/workers/supervisorPolicy';
import type { Heartbeat } from '../../../src/workers/heartbeat';
import { registry } from '../../../src/utils/metrics';
import { WORKER_KINDS, type WorkerKind } from '../../../src/workers/kinds';

jest.mock('node:child_process', () => ({ spawn: jest.fn() }));
// The real table imports the message worker lazily; a plain object lets each test set the kinds.
jest.mock('../../../src/workers/kinds', () => ({ WORKER_KINDS: {} }));

const spawnMock = spawn as unknown as jest.Mock;
const ROOT = path.join(__dirname, '..', '..', '..');

/** Enough of a ChildProcess for the supervisor: pid, exitCode, kill, and the exit event. */
class FakeChild extends EventEmitter {
  static nextPid = 1000;
  readonly pid = FakeChild.nextPid++;
  exitCode: number | null = null;
  readonly kill = jest.fn((signal: NodeJS.Signals) => {
    this.signals.push(signal);
    return true;
  });
  readonly signals: NodeJS.Signals[] = [];

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.exitCode = code;
    this.emit('exit', code, signal);
  }
}

let children: FakeChild[];

function setKinds(kinds: Record<string, number>): void {
  for (const key of Object.keys(WORKER_KINDS)) delete WORKER_KINDS[key];
  for (const [name, processes] of Object.entries(kinds)) {
    WORKER_KINDS[name] = { processes, create: jest.fn() } as unknown as WorkerKind;
  }
}

const spec = (name: string) => ({ name, kind: name === 'api' ? 'api' : 'other', script: `/app/${name}.ts`, args: [name] });
const last = () => children[children.length - 1]!;

beforeEach(() => {
  children = [];
  spawnMock.mockReset().mockImplementation(() => {
    const child = new FakeChild();
    children.push(child);
    return child;
  });
  setKinds({ message: 1 });
});

afterEach(() => {
  jest.useRealTimers();
});

describe('restartDelay', () => {
  it('when a child failed once (or the count is 0), then the wait is 500 ms', () => {
    expect(restartDelay(0)).toBe(500);
    expect(restartDelay(1)).toBe(500);
  });

  it('when failures repeat, then the wait doubles each time', () => {
    expect([2, 3, 4, 5, 6].map(restartDelay)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it('when failures keep coming, then the wait is capped at 30 s', () => {
    expect(restartDelay(7)).toBe(30_000);
    expect(restartDelay(50)).toBe(30_000);
    expect(restartDelay(5_000)).toBe(30_000);
  });

  it('when the count is negative, then it is treated as none', () => {
    expect(restartDelay(-3)).toBe(500);
  });
});

describe('childSpecs', () => {
  it('when listed, then the API comes first, running src/server.ts with no arguments', () => {
    expect(childSpecs()[0]).toEqual({ name: 'api', kind: 'api', script: path.join(ROOT, 'src', 'server.ts'), args: [] });
  });

  it('when a kind runs several processes, then each gets a numbered name and the kind as its argument', () => {
    setKinds({ message: 3 });

    expect(childSpecs().slice(1)).toEqual(
      [1, 2, 3].map((i) => ({ name: `message-${i}`, kind: 'message', script: path.join(ROOT, 'scripts', 'worker-start.ts'), args: ['message'] })),
    );
  });

  it('when there are several kinds, then every kind × processes is listed, and a kind with 0 processes adds none', () => {
    setKinds({ message: 2, extraction: 1, idle: 0 });

    expect(childSpecs().map((s) => s.name)).toEqual(['api', 'message-1', 'message-2', 'extraction-1']);
    expect(childSpecs().find((s) => s.name === 'extraction-1')?.args).toEqual(['extraction']);
  });

  it('when no worker kinds exist, then only the API is listed', () => {
    setKinds({});

    expect(childSpecs()).toHaveLength(1);
  });
});

describe('WorkerManager', () => {
  it('when started, then every spec is spawned with this node, its loader flags, the script and its arguments', () => {
    const manager = new WorkerManager([spec('api'), spec('message-1')]);

    manager.start();

    expect(spawnMock).toHaveBeenCalledTimes(2);
    expect(spawnMock).toHaveBeenCalledWith(process.execPath, [...process.execArgv, '/app/message-1.ts', 'message-1'], {
      stdio: 'inherit',
      env: process.env,
    });
    expect(manager.pids()).toEqual({ api: children[0]!.pid, 'message-1': children[1]!.pid });
  });

  it('when built without specs, then it supervises childSpecs()', () => {
    setKinds({ message: 2 });

    new WorkerManager().start();

    expect(spawnMock.mock.calls.map((call) => (call[1] as string[]).slice(-1)[0])).toEqual([
      path.join(ROOT, 'src', 'server.ts'),
      'message',
      'message',
    ]);
  });

  it('when a child crashes repeatedly, then it is restarted after 500 ms, then 1 s, then 2 s', () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api')]);
    manager.start();

    for (const delay of [500, 1_000, 2_000]) {
      const before = children.length;
      last().exit(1);
      expect(manager.pids().api).toBeUndefined();
      jest.advanceTimersByTime(delay - 1);
      expect(children).toHaveLength(before);
      jest.advanceTimersByTime(1);
      expect(children).toHaveLength(before + 1);
    }
    expect(manager.pids().api).toBe(last().pid);
  });

  it('when a child ran healthy for over 30 s before dying, then its backoff starts again at 500 ms', () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api')]);
    manager.start();
    last().exit(1);
    jest.advanceTimersByTime(500);
    last().exit(1);
    jest.advanceTimersByTime(1_000);

    jest.advanceTimersByTime(30_001);
    const before = children.length;
    last().exit(null, 'SIGKILL');
    jest.advanceTimersByTime(500);

    expect(children).toHaveLength(before + 1);
  });

  it('when one child crashes, then the others are left alone', () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api'), spec('message-1')]);
    manager.start();
    const [api, worker] = [children[0]!, children[1]!];

    worker.exit(1);
    jest.advanceTimersByTime(500);

    expect(api.kill).not.toHaveBeenCalled();
    expect(manager.pids()).toEqual({ api: api.pid, 'message-1': children[2]!.pid });
  });

  it('when stopped, then each live child gets SIGTERM and stop resolves once all have exited, with no restart', async () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api'), spec('message-1')]);
    manager.start();
    const started = [...children];

    let stopped = false;
    const stopping = manager.stop(5_000).then(() => {
      stopped = true;
    });
    expect(started.map((c) => c.signals)).toEqual([['SIGTERM'], ['SIGTERM']]);

    started[0]!.exit(0);
    await Promise.resolve();
    expect(stopped).toBe(false);
    started[1]!.exit(0);
    await stopping;

    jest.advanceTimersByTime(60_000);
    expect(children).toHaveLength(2);
    expect(started.flatMap((c) => c.signals)).not.toContain('SIGKILL');
  });

  it('when a child ignores SIGTERM past the timeout, then it is sent SIGKILL', async () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api')]);
    manager.start();
    const child = last();
    child.kill.mockImplementation((signal: NodeJS.Signals) => {
      child.signals.push(signal);
      if (signal === 'SIGKILL') child.exit(null, 'SIGKILL');
      return true;
    });

    const stopping = manager.stop(1_000);
    jest.advanceTimersByTime(999);
    expect(child.signals).toEqual(['SIGTERM']);
    jest.advanceTimersByTime(1);
    await stopping;

    expect(child.signals).toEqual(['SIGTERM', 'SIGKILL']);
  });

  it('when stopped while a crashed child waits for its restart, then the restart is cancelled', async () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api')]);
    manager.start();
    last().exit(1);

    await manager.stop(1_000);
    jest.advanceTimersByTime(60_000);

    expect(children).toHaveLength(1);
  });

  it('when a child has already exited on its own, then stop does not wait for it', async () => {
    const manager = new WorkerManager([spec('api')]);
    manager.start();
    last().exitCode = 0;

    await expect(manager.stop(1_000)).resolves.toBeUndefined();
    expect(last().kill).not.toHaveBeenCalled();
  });

  it('when abandoned (the supervisor is dying of its own error), then live children get SIGTERM at once and none is restarted', () => {
    jest.useFakeTimers();
    const manager = new WorkerManager([spec('api'), spec('message-1')]);
    manager.start();
    const [api, worker] = [children[0]!, children[1]!];
    worker.exit(1);

    manager.abandonChildren();

    expect(api.signals).toEqual(['SIGTERM']);
    expect(worker.signals).toEqual([]);
    api.exit(0);
    jest.advanceTimersByTime(60_000);
    expect(children).toHaveLength(2);
  });
});

describe('WorkerManager monitoring', () => {
  const CHECK_MS = 100;
  const STALE_MS = 1_000;

  /** A Redis stand-in: the backlog the test sets, and a fresh heartbeat for every pid in `beating`. */
  function fakeProbe() {
    const state = { backlog: 0 as number, down: false, beating: new Set<number>(), elsewhere: 0, published: 0 };
    const probe: FleetProbe = {
      heartbeats: jest.fn(async () => {
        if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        const beat = (name: string, pid: number): Heartbeat => ({ kind: 'message', name, pid, at: Date.now(), inFlight: 0, handled: 0 });
        const local = [...state.beating].map((pid) => beat(`w-${pid}`, pid));
        return [...local, ...Array.from({ length: state.elsewhere }, (_, i) => beat(`other-host-${i}`, i))];
      }),
      backlog: jest.fn(async () => {
        if (state.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        return state.backlog;
      }),
      publish: jest.fn(async () => {
        state.published++;
      }),
    };
    return { probe, state };
  }

  function monitored(options: { min?: number; max?: number } = {}) {
    const { probe, state } = fakeProbe();
    const monitor: MonitorOptions = {
      probe,
      policy: scalePolicy({ MESSAGE_WORKERS: options.min ?? 1, MESSAGE_WORKERS_MAX: options.max ?? 3, WORKER_CONCURRENCY: 10, SUPERVISOR_CHECK_MS: CHECK_MS }),
      checkMs: CHECK_MS,
      staleMs: STALE_MS,
      heartbeatMs: 500,
      drainTimeoutMs: 5_000,
      host: 'w',
    };
    const specs = [spec('api'), ...Array.from({ length: options.min ?? 1 }, (_, i) => workerSpec('message', i + 1))];
    const manager = new WorkerManager(specs, monitor);
    return { manager, probe, state };
  }

  /** Every child's heartbeat flows, as a healthy fleet's does. */
  const beatAll = (state: { beating: Set<number> }) => children.forEach((c) => state.beating.add(c.pid));
  const messageNames = (manager: WorkerManager) => Object.keys(manager.pids()).filter((name) => name.startsWith('message-'));
  // One series at a time: the registry's default metrics wait on timers that are fake here.
  const metric = async (name: string, labels: Record<string, string>) => {
    const found = await registry.getSingleMetric(name)!.get();
    const value = found.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return value?.value ?? 0;
  };

  beforeEach(() => jest.useFakeTimers());

  it('when the backlog per worker stays above a worker’s concurrency, then message workers are added one by one up to the maximum', async () => {
    const { manager, state } = monitored({ max: 3 });
    const upBefore = await metric('worker_scale_events_total', { direction: 'up' });
    manager.start();
    beatAll(state);
    state.backlog = 500;

    await jest.advanceTimersByTimeAsync(CHECK_MS * 3);
    expect(messageNames(manager)).toEqual(['message-1', 'message-2']);
    await jest.advanceTimersByTimeAsync(CHECK_MS * 60);

    expect(messageNames(manager)).toEqual(['message-1', 'message-2', 'message-3']);
    expect(spawnMock.mock.calls.at(-1)![1]).toEqual([...process.execArgv, path.join(ROOT, 'scripts', 'worker-start.ts'), 'message']);
    expect((await metric('worker_scale_events_total', { direction: 'up' })) - upBefore).toBe(2);
    expect(await metric('worker_processes', { kind: 'message' })).toBe(3);
    manager.abandonChildren();
  });

  it('when other machines run message workers too, then the backlog is shared among all of them', async () => {
    const { manager, state } = monitored({ max: 3 });
    manager.start();
    beatAll(state);
    state.elsewhere = 5;
    state.backlog = 50; // 50 / 6 workers is under a worker's 10

    await jest.advanceTimersByTimeAsync(CHECK_MS * 30);
    expect(messageNames(manager)).toEqual(['message-1']);
    state.backlog = 61;
    await jest.advanceTimersByTimeAsync(CHECK_MS * 3);

    expect(messageNames(manager)).toEqual(['message-1', 'message-2']);
    manager.abandonChildren();
  });

  it('when the queue goes idle, then the newest worker gets SIGTERM, is not restarted when it exits, and the minimum stays', async () => {
    const { manager, state } = monitored({ min: 2, max: 3 });
    manager.start();
    beatAll(state);
    state.backlog = 500;
    await jest.advanceTimersByTimeAsync(CHECK_MS * 3);
    beatAll(state);
    const added = last();
    expect(messageNames(manager)).toEqual(['message-1', 'message-2', 'message-3']);

    state.backlog = 0;
    await jest.advanceTimersByTimeAsync(CHECK_MS * 12);
    expect(added.signals).toEqual(['SIGTERM']);
    // Still draining: not counted, but not restarted or replaced either.
    expect(await metric('worker_processes', { kind: 'message' })).toBe(2);
    added.exit(0);
    await jest.advanceTimersByTimeAsync(CHECK_MS * 100);

    expect(messageNames(manager)).toEqual(['message-1', 'message-2']);
    expect(children.slice(0, 3).flatMap((c) => c.signals)).toEqual([]);
    expect(children).toHaveLength(4);
    manager.abandonChildren();
  });

  it('when a draining worker does not exit in time, then it is killed', async () => {
    const { manager, state } = monitored({ min: 1, max: 2 });
    manager.start();
    beatAll(state);
    state.backlog = 500;
    await jest.advanceTimersByTimeAsync(CHECK_MS * 3);
    const added = last();
    state.backlog = 0;
    await jest.advanceTimersByTimeAsync(CHECK_MS * 12);
    expect(added.signals).toEqual(['SIGTERM']);

    await jest.advanceTimersByTimeAsync(5_000);

    expect(added.signals).toEqual(['SIGTERM', 'SIGKILL']);
    manager.abandonChildren();
  });

  it('when a worker’s heartbeat stops while its process lives, then it is SIGKILLed after the stale time and restarted', async () => {
    const { manager, state } = monitored();
    const before = await metric('worker_stuck_replaced_total', { kind: 'message' });
    manager.start();
    const worker = children[1]!;
    state.beating.add(worker.pid);
    await jest.advanceTimersByTimeAsync(CHECK_MS * 2);

    state.beating.delete(worker.pid); // SIGSTOP, or a wedged event loop
    await jest.advanceTimersByTimeAsync(STALE_MS - CHECK_MS);
    expect(worker.signals).toEqual([]);
    await jest.advanceTimersByTimeAsync(CHECK_MS);
    expect(worker.signals).toEqual(['SIGKILL']);
    worker.exit(null, 'SIGKILL');
    await jest.advanceTimersByTimeAsync(500);

    expect(manager.pids()['message-1']).toBe(last().pid);
    expect(last()).not.toBe(worker);
    expect((await metric('worker_stuck_replaced_total', { kind: 'message' })) - before).toBe(1);
    manager.abandonChildren();
  });

  it('when a worker has not sent its first heartbeat yet, then it is never judged stuck, nor is the API', async () => {
    const { manager } = monitored();
    manager.start();

    await jest.advanceTimersByTimeAsync(STALE_MS * 20);

    expect(children.flatMap((c) => c.signals)).toEqual([]);
    manager.abandonChildren();
  });

  it('when Redis cannot be read, then no worker is killed or scaled, and once it can, each gets a whole stale time to be seen', async () => {
    const { manager, state } = monitored();
    manager.start();
    const worker = children[1]!;
    state.beating.add(worker.pid);
    await jest.advanceTimersByTimeAsync(CHECK_MS * 2);

    state.down = true;
    state.beating.delete(worker.pid); // its beats fail during the outage too
    state.backlog = 500;
    await jest.advanceTimersByTimeAsync(STALE_MS * 20);
    expect(worker.signals).toEqual([]);
    expect(children).toHaveLength(2);

    state.down = false;
    state.backlog = 0;
    await jest.advanceTimersByTimeAsync(STALE_MS - CHECK_MS);
    expect(worker.signals).toEqual([]);
    state.beating.add(worker.pid); // it reconnected and beats again
    await jest.advanceTimersByTimeAsync(STALE_MS * 5);

    expect(worker.signals).toEqual([]);
    manager.abandonChildren();
  });

  it('when started, then the supervisor publishes its own heartbeat at once and every heartbeat interval, until stopped', async () => {
    const { manager, state } = monitored();
    manager.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(state.published).toBe(1);

    await jest.advanceTimersByTimeAsync(1_000);
    expect(state.published).toBe(3);
    const stopping = manager.stop(1_000);
    children.forEach((c) => c.exit(0));
    await stopping;
    await jest.advanceTimersByTimeAsync(10_000);

    expect(state.published).toBe(3);
  });
});
