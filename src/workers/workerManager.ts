/**
 * `npm start`: migrates (unless MIGRATE_ON_START=false), then runs the API and every worker
 * kind as separate OS processes, restarting any that dies with capped exponential backoff.
 * SIGTERM stops intake everywhere and waits for children to drain before exiting 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { config } from '../config';
import { logger } from '../utils/logger';
import { migrate } from '../utils/migrator';
import { exitOnUnhandledErrors } from '../utils/process';
import { WORKER_KINDS } from './kinds';

interface ChildSpec {
  name: string;
  script: string;
  args: string[];
}

interface Supervised {
  spec: ChildSpec;
  child?: ChildProcess;
  startedAt: number;
  failures: number;
  restartTimer?: NodeJS.Timeout;
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

export function childSpecs(): ChildSpec[] {
  const specs: ChildSpec[] = [{ name: 'api', script: path.join(ROOT, 'src', `server${EXT}`), args: [] }];
  for (const [kind, { processes }] of Object.entries(WORKER_KINDS)) {
    for (let i = 0; i < processes; i++) {
      specs.push({ name: `${kind}-${i + 1}`, script: path.join(ROOT, 'scripts', `worker-start${EXT}`), args: [kind] });
    }
  }
  return specs;
}

export class WorkerManager {
  private readonly supervised: Supervised[];
  private stopping = false;

  constructor(specs: ChildSpec[] = childSpecs()) {
    this.supervised = specs.map((spec) => ({ spec, startedAt: 0, failures: 0 }));
  }

  start(): void {
    for (const entry of this.supervised) this.spawn(entry);
  }

  private spawn(entry: Supervised): void {
    // The same node flags this process runs under: tsx's loader when it runs TypeScript, none compiled.
    const child = spawn(process.execPath, [...process.execArgv, entry.spec.script, ...entry.spec.args], {
      stdio: 'inherit',
      env: process.env,
    });
    entry.child = child;
    entry.startedAt = Date.now();
    logger.info({ child: entry.spec.name, pid: child.pid }, 'child started');
    child.once('exit', (code, signal) => {
      entry.child = undefined;
      if (this.stopping) return;
      entry.failures = Date.now() - entry.startedAt > HEALTHY_AFTER_MS ? 1 : entry.failures + 1;
      const delay = restartDelay(entry.failures);
      logger.error({ child: entry.spec.name, code, signal, restart_in_ms: delay }, 'child exited unexpectedly; restarting');
      entry.restartTimer = setTimeout(() => this.spawn(entry), delay);
    });
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
   * Stops restarting and sends SIGTERM to every child, which drains on its own. Synchronous, so
   * a supervisor about to die of its own error can call it last: the next supervisor then finds
   * no orphans holding the port or the streams.
   */
  abandonChildren(): void {
    this.stopping = true;
    for (const entry of this.supervised) {
      clearTimeout(entry.restartTimer);
      if (entry.child && entry.child.exitCode === null) entry.child.kill('SIGTERM');
    }
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.supervised.map((entry) => [entry.spec.name, entry.child?.pid]));
  }
}

async function main(): Promise<void> {
  // Made before migrating only so the fatal handler has it; it spawns nothing until start().
  const manager = new WorkerManager();
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
