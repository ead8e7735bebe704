/**
 * The supervisor's pure parts (backoff, child list) and its restart bookkeeping, with
 * `child_process.spawn` replaced by fake children and timers faked, so no process is started.
 * The real-process path (a killed child comes back, SIGTERM exits 0) is tests/integration/supervisor.test.ts.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { childSpecs, restartDelay, WorkerManager } from '../../../src/workers/workerManager';
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

const spec = (name: string) => ({ name, script: `/app/${name}.ts`, args: [name] });
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
    expect(childSpecs()[0]).toEqual({ name: 'api', script: path.join(ROOT, 'src', 'server.ts'), args: [] });
  });

  it('when a kind runs several processes, then each gets a numbered name and the kind as its argument', () => {
    setKinds({ message: 3 });

    expect(childSpecs().slice(1)).toEqual(
      [1, 2, 3].map((i) => ({ name: `message-${i}`, script: path.join(ROOT, 'scripts', 'worker-start.ts'), args: ['message'] })),
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
