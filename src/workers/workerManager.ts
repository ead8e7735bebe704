/**
 * `npm start`: migrates (unless MIGRATE_ON_START=false), then runs the API and every worker
 * kind as separate OS processes, restarting any that dies with capped exponential backoff.
 * Every SUPERVISOR_CHECK_MS it reads the message group's backlog and the workers' heartbeats
 * from Redis: it scales message workers between MESSAGE_WORKERS and MESSAGE_WORKERS_MAX (the
 * rule is in supervisorPolicy.ts), and SIGKILLs and replaces a worker whose process lives but
 * whose heartbeat stopped. Its own series reach the API's /metrics through its own heartbeat.
 * SIGTERM stops intake everywhere and waits for children to drain before exiting 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import path from 'node:path';
import client from 'prom-client';
import { config } from '../config';
import { logger } from '../utils/logger';
import { registry } from '../utils/metrics';
import { migrate } from '../utils/migrator';
import { exitOnUnhandledErrors } from '../utils/process';
import { readGroupBacklog } from '../utils/queue';
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_TTL_MS, heartbeatFailed, publishHeartbeat, readHeartbeats, type Heartbeat } from './heartbeat';
import { WORKER_KINDS } from './kinds';
import { decideScale, initialScaleState, judgeLiveness, scalePolicy, type Liveness, type ScalePolicy } from './supervisorPolicy';

/** The supervisor's series, in the process registry: its heartbeat carries them to /metrics. */
const supervisorMetrics = {
  workers: new client.Gauge({
    name: 'worker_processes',
    help: 'Worker processes the supervisor runs, by kind (draining ones excluded)',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  scaleEvents: new client.Counter({
    name: 'worker_scale_events_total',
    help: 'Message workers added (up) or drained (down) on the queue backlog',
    labelNames: ['kind', 'direction'] as const,
    registers: [registry],
  }),
  stuckReplaced: new client.Counter({
    name: 'worker_stuck_replaced_total',
    help: 'Workers killed and replaced because their process lived but their heartbeat stopped',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
};

export interface ChildSpec {
  name: string;
  /** `api`, or the worker kind (kinds.ts) the process runs. */
  kind: string;
  script: string;
  args: string[];
}

interface Supervised {
  spec: ChildSpec;
  child?: ChildProcess;
  startedAt: number;
  failures: number;
  restartTimer?: NodeJS.Timeout;
  /** Drained by a scale-down: not restarted, not judged, dropped from the list once it exits. */
  retiring: boolean;
  drainTimer?: NodeJS.Timeout;
  liveness: Liveness;
  /** SIGKILLed for a silent heartbeat, so its exit is logged as that. */
  killedAsStuck: boolean;
}

/** What the supervisor reads from and writes to Redis; the unit tests pass a fake. */
export interface FleetProbe {
  heartbeats(): Promise<Heartbeat[]>;
  /** The message group's lag plus pending entries. */
  backlog(): Promise<number>;
  /** The supervisor's own heartbeat, which carries its metrics to the API's /metrics. */
  publish(): Promise<void>;
}

const SUPERVISOR_NAME = `supervisor-${hostname()}-${process.pid}`;

export const redisProbe: FleetProbe = {
  heartbeats: readHeartbeats,
  backlog: async () => {
    const backlog = await readGroupBacklog();
    return backlog ? backlog.lag + backlog.pending : 0;
  },
  publish: () => publishHeartbeat('supervisor', SUPERVISOR_NAME, { inFlight: 0, handled: 0 }),
};

export interface MonitorOptions {
  probe: FleetProbe;
  policy: ScalePolicy;
  checkMs: number;
  /** A worker silent this long after its first heartbeat is stuck. */
  staleMs: number;
  heartbeatMs: number;
  /** A retiring worker still alive after this long is killed (worker-start's own bound is SHUTDOWN_TIMEOUT_MS). */
  drainTimeoutMs: number;
  /** This machine's name: a worker's heartbeat is named `<host>-<pid>` (its consumer name). */
  host?: string;
}

export function defaultMonitor(): MonitorOptions {
  return {
    probe: redisProbe,
    policy: scalePolicy(config),
    checkMs: config.SUPERVISOR_CHECK_MS,
    staleMs: HEARTBEAT_TTL_MS,
    heartbeatMs: HEARTBEAT_INTERVAL_MS,
    drainTimeoutMs: config.SHUTDOWN_TIMEOUT_MS + 2_000,
  };
}

const ROOT = path.join(__dirname, '..', '..');
/**
 * `.ts` under tsx, `.js` compiled (ROOT is then `dist/`): children run from the same tree as the
 * supervisor, so a compiled one never spawns TypeScript, which production has no loader for.
 */
const EXT = path.extname(__filename);
/** A child that stayed up this long is healthy again: its next crash restarts quickly. */
const HEALTHY_AFTER_MS = 30_000;

export function restartDelay(failures: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, failures - 1));
}

export const workerSpec = (kind: string, number: number): ChildSpec => ({
  name: `${kind}-${number}`,
  kind,
  script: path.join(ROOT, 'scripts', `worker-start${EXT}`),
  args: [kind],
});

export function childSpecs(): ChildSpec[] {
  const specs: ChildSpec[] = [{ name: 'api', kind: 'api', script: path.join(ROOT, 'src', `server${EXT}`), args: [] }];
  for (const [kind, { processes }] of Object.entries(WORKER_KINDS)) {
    for (let i = 0; i < processes; i++) specs.push(workerSpec(kind, i + 1));
  }
  return specs;
}

export class WorkerManager {
  private readonly supervised: Supervised[];
  private stopping = false;
  private scaleState = initialScaleState();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Redis could not be read at the last check: logged once per outage, not every check. */
  private blind = false;
  private readonly host: string;

  /** Without `monitor` it only restarts what dies (as the unit tests of restarts want). */
  constructor(
    specs: ChildSpec[] = childSpecs(),
    private readonly monitor?: MonitorOptions,
  ) {
    this.supervised = specs.map((spec) => this.entry(spec));
    this.host = monitor?.host ?? hostname();
  }

  start(): void {
    for (const entry of this.supervised) this.spawn(entry);
    this.countWorkers();
    if (!this.monitor) return;
    const { probe, checkMs, heartbeatMs } = this.monitor;
    this.every(checkMs, () => this.check());
    this.every(heartbeatMs, () => probe.publish().catch(heartbeatFailed));
    void probe.publish().catch(heartbeatFailed);
  }

  private entry(spec: ChildSpec): Supervised {
    return { spec, startedAt: 0, failures: 0, retiring: false, liveness: {}, killedAsStuck: false };
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let running = false;
    const timer = setInterval(() => {
      // A slow round (Redis struggling) must not pile up behind itself.
      if (running || this.stopping) return;
      running = true;
      task()
        .catch((error: unknown) => logger.error({ err: error }, 'supervisor check failed'))
        .finally(() => (running = false));
    }, ms);
    this.timers.push(timer);
  }

  private spawn(entry: Supervised): void {
    // The same node flags this process runs under: tsx's loader when it runs TypeScript, none compiled.
    const child = spawn(process.execPath, [...process.execArgv, entry.spec.script, ...entry.spec.args], {
      stdio: 'inherit',
      env: process.env,
    });
    entry.child = child;
    entry.startedAt = Date.now();
    entry.liveness = {};
    entry.killedAsStuck = false;
    logger.info({ child: entry.spec.name, pid: child.pid }, 'child started');
    child.once('exit', (code, signal) => {
      entry.child = undefined;
      clearTimeout(entry.drainTimer);
      if (this.stopping) return;
      if (entry.retiring) {
        this.supervised.splice(this.supervised.indexOf(entry), 1);
        logger.info({ child: entry.spec.name, code, signal }, 'worker drained and stopped');
        return;
      }
      entry.failures = Date.now() - entry.startedAt > HEALTHY_AFTER_MS ? 1 : entry.failures + 1;
      const delay = restartDelay(entry.failures);
      logger.error(
        { child: entry.spec.name, code, signal, restart_in_ms: delay, stuck: entry.killedAsStuck },
        'child exited unexpectedly; restarting',
      );
      entry.restartTimer = setTimeout(() => {
        this.spawn(entry);
        this.countWorkers();
      }, delay);
      this.countWorkers();
    });
  }

  /** One round: read Redis once, then judge every worker's heartbeat and decide the scale. */
  private async check(): Promise<void> {
    const monitor = this.monitor!;
    let beats: Heartbeat[] | null = null;
    let backlog: number | null = null;
    try {
      [beats, backlog] = await Promise.all([monitor.probe.heartbeats(), monitor.probe.backlog()]);
      if (this.blind) logger.info('supervisor reads Redis again: judging heartbeats and scaling again');
      this.blind = false;
    } catch (error) {
      if (!this.blind) {
        logger.warn(
          { err: { message: (error as Error)?.message } },
          'supervisor cannot read Redis: no heartbeat can be seen, so no worker is judged stuck and none is scaled until it can',
        );
      }
      this.blind = true;
    }
    if (this.stopping) return;
    const now = Date.now();
    this.judgeWorkers(now, beats);
    this.scale(now, beats, backlog);
    this.countWorkers();
  }

  private judgeWorkers(now: number, beats: Heartbeat[] | null): void {
    const { staleMs } = this.monitor!;
    for (const entry of this.supervised) {
      const child = entry.child;
      if (entry.spec.kind === 'api' || entry.retiring || !child?.pid || child.exitCode !== null) continue;
      const { liveness, verdict } = judgeLiveness(entry.liveness, beats && this.newestBeat(beats, entry, child.pid), now, staleMs);
      if (entry.liveness.beatAt === undefined && liveness.beatAt !== undefined) {
        // From here on its silence counts: operators see how long a start takes.
        logger.info({ child: entry.spec.name, pid: child.pid, startup_ms: liveness.beatAt - entry.startedAt }, 'worker heartbeating');
      }
      entry.liveness = liveness;
      if (verdict !== 'stuck' || entry.killedAsStuck) continue;
      logger.error(
        { child: entry.spec.name, pid: child.pid, silent_ms: now - (liveness.progressAt ?? now) },
        'worker stuck: its process lives but its heartbeat stopped; killing and replacing it',
      );
      supervisorMetrics.stuckReplaced.inc({ kind: entry.spec.kind });
      entry.killedAsStuck = true;
      // SIGKILL: a stopped or wedged process cannot run a SIGTERM handler; its unacknowledged
      // entries and conversation leases pass to other workers after WORKER_LEASE_MS.
      child.kill('SIGKILL');
    }
  }

  /**
   * The newest heartbeat of this very process: its consumer name and kind, sent since it was
   * spawned (an older beat under the same name is a previous process that had the same pid).
   */
  private newestBeat(beats: Heartbeat[], entry: Supervised, pid: number): number | undefined {
    const name = `${this.host}-${pid}`;
    const beat = beats.find((b) => b.name === name && b.kind === entry.spec.kind && b.at >= entry.startedAt);
    return beat?.at;
  }

  private scale(now: number, beats: Heartbeat[] | null, backlog: number | null): void {
    const { policy, staleMs } = this.monitor!;
    const workers = this.messageWorkers();
    // Workers of this machine are counted from the list (a drained one's last beat is still
    // fresh for a while); other machines' from their fresh heartbeats.
    const elsewhere = (beats ?? []).filter((b) => b.kind === 'message' && !b.name.startsWith(`${this.host}-`) && now - b.at < staleMs);
    const fleetWorkers = workers.length + elsewhere.length;
    const decision = decideScale(policy, this.scaleState, { now, workers: workers.length, fleetWorkers, backlog });
    logger.debug(
      { workers: workers.length, fleet_workers: fleetWorkers, backlog, per_worker: decision.perWorker, ...decision.state },
      'supervisor check',
    );
    this.scaleState = decision.state;
    if (decision.target === workers.length) return;
    const direction = decision.target > workers.length ? 'up' : 'down';
    logger.info(
      { kind: 'message', from: workers.length, to: decision.target, backlog, per_worker: decision.perWorker },
      direction === 'up' ? 'scaling up' : 'scaling down',
    );
    supervisorMetrics.scaleEvents.inc({ kind: 'message', direction }, Math.abs(decision.target - workers.length));
    for (let n = workers.length; n < decision.target; n++) this.addMessageWorker();
    // The newest go first; each drains its in-flight turns on SIGTERM (worker-start.ts).
    for (const entry of workers.slice(decision.target).reverse()) this.retire(entry);
  }

  /** Message workers that count: draining ones excluded, ones waiting for a restart included. */
  private messageWorkers(): Supervised[] {
    return this.supervised.filter((entry) => entry.spec.kind === 'message' && !entry.retiring);
  }

  private addMessageWorker(): void {
    // The lowest free number: names stay short and a draining worker's name is not reused.
    const taken = new Set(this.supervised.map((entry) => entry.spec.name));
    let number = 1;
    while (taken.has(`message-${number}`)) number++;
    const entry = this.entry(workerSpec('message', number));
    this.supervised.push(entry);
    this.spawn(entry);
  }

  private retire(entry: Supervised): void {
    entry.retiring = true;
    clearTimeout(entry.restartTimer);
    const child = entry.child;
    if (!child || child.exitCode !== null) {
      this.supervised.splice(this.supervised.indexOf(entry), 1);
      return;
    }
    logger.info({ child: entry.spec.name, pid: child.pid }, 'draining worker');
    child.kill('SIGTERM');
    // worker-start.ts exits by itself after SHUTDOWN_TIMEOUT_MS; this covers one that cannot run at all.
    entry.drainTimer = setTimeout(() => child.kill('SIGKILL'), this.monitor!.drainTimeoutMs);
  }

  private countWorkers(): void {
    const live = new Map<string, number>();
    for (const { spec, child, retiring } of this.supervised) {
      if (spec.kind === 'api') continue;
      const counted = !retiring && child !== undefined && child.exitCode === null;
      live.set(spec.kind, (live.get(spec.kind) ?? 0) + (counted ? 1 : 0));
    }
    for (const [kind, count] of live) supervisorMetrics.workers.set({ kind }, count);
  }

  /** Sends SIGTERM to every child, waits for them up to the bound, then kills stragglers. */
  async stop(timeoutMs = config.SHUTDOWN_TIMEOUT_MS + 2_000): Promise<void> {
    const exits = this.supervised.map((entry) => {
      const child = entry.child;
      if (!child || child.exitCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => child.once('exit', () => resolve()));
    });
    this.abandonChildren();
    const timer = setTimeout(() => {
      for (const entry of this.supervised) entry.child?.kill('SIGKILL');
    }, timeoutMs);
    await Promise.all(exits);
    clearTimeout(timer);
  }

  /**
   * Stops restarting, checking and scaling, and sends SIGTERM to every child, which drains on
   * its own. Synchronous, so a supervisor about to die of its own error can call it last: the
   * next supervisor then finds no orphans holding the port or the streams.
   */
  abandonChildren(): void {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const entry of this.supervised) {
      clearTimeout(entry.restartTimer);
      clearTimeout(entry.drainTimer);
      if (entry.child && entry.child.exitCode === null) entry.child.kill('SIGTERM');
    }
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.supervised.map((entry) => [entry.spec.name, entry.child?.pid]));
  }
}

async function main(): Promise<void> {
  // Made before migrating only so the fatal handler has it; it spawns nothing until start().
  const manager = new WorkerManager(childSpecs(), defaultMonitor());
  exitOnUnhandledErrors({ processName: 'supervisor', beforeExit: () => manager.abandonChildren() });
  if (config.MIGRATE_ON_START) {
    await migrate(config.DATABASE_URL, { log: (line) => logger.info(`migrate: ${line}`) });
  }
  manager.start();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'supervisor stopping');
      manager.stop().then(
        () => {
          logger.info('supervisor stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'supervisor stop failed');
          process.exit(1);
        },
      );
    });
  }
}

if (require.main === module) {
  main().catch((error) => {
    logger.fatal({ err: error }, 'supervisor failed to start');
    process.exit(1);
  });
}
