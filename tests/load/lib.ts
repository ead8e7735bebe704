/**
 * Shared plumbing for the load benchmarks (`*.bench.ts`, run by `npm run bench`): servers as
 * separate OS processes, autocannon runs with exact client-side timing, tables, and a bench
 * database / Redis key space that is created per run and removed afterwards.
 *
 * Nothing here imports `src/config` (directly or through `src/utils/database`), so a bench
 * can choose its DATABASE_URL and REDIS_KEY_PREFIX freely: the servers get them as env vars.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import Redis from 'ioredis';
import { Client } from 'pg';
import { migrate } from '../../src/utils/migrator';

export const ROOT = path.join(__dirname, '..', '..');
export const LOCALHOST = '127.0.0.1';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A short random tag for database names, key prefixes and ids. */
export const randomTag = (bytes = 4) => randomBytes(bytes).toString('hex');

/** An integer from the environment, or `fallback`; anything out of [min, max] is refused. */
export function envInt(name: string, fallback: number, min = 1, max = 10_000_000): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** One line describing the machine, printed with every result (the figures depend on it). */
export function machineLine(): string {
  const load = os.loadavg().map((n) => n.toFixed(2)).join(' ');
  return `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? 'unknown'}), load average ${load}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOCALHOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Cleanup: a stack of undo steps, run once, in reverse order, also on SIGINT/SIGTERM.
// ---------------------------------------------------------------------------------------------

export class Cleanup {
  private steps: Array<{ name: string; run: () => Promise<unknown> | unknown }> = [];
  private running: Promise<void> | undefined;

  add(name: string, run: () => Promise<unknown> | unknown): void {
    this.steps.push({ name, run });
  }

  /** Runs every step (each bounded by `stepTimeoutMs`), newest first; never throws. */
  run(stepTimeoutMs = 20_000): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(step.run),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${stepTimeoutMs} ms`)), stepTimeoutMs);
            }),
          ]);
        } catch (error) {
          console.error(`cleanup: ${step.name} failed: ${(error as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
      }
      this.steps = [];
    })();
    return this.running;
  }

  /** On Ctrl-C or SIGTERM: clean up, then exit 130/143. */
  exitOnSignals(): void {
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      process.once(signal, () => {
        console.error(`\n${signal}: cleaning up`);
        void this.run().finally(() => process.exit(code));
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** The last lines the process wrote (stdout and stderr), for failure reports. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartProcessOptions {
  name: string;
  /** A file, absolute or relative to the repository root: `.ts` runs as `node --import tsx <script>`, compiled `.js` as `node <script>`. */
  script: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: string[];
  keepLines?: number;
  /** Called with each line of stdout as it arrives (timing a log line, say). */
  onLine?: (line: string) => void;
}

export function startProcess(options: StartProcessOptions): ManagedProcess {
  const loader = options.script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, path.resolve(ROOT, options.script), ...(options.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = options.keepLines ?? 200;
  const lines: string[] = [];
  // Both pipes are always drained: a full pipe would block the server mid-benchmark.
  const collect = (stream: NodeJS.ReadableStream | null, tag: string, onLine?: (line: string) => void) => {
    let buffer = '';
    stream?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        onLine?.(buffer.slice(0, newline));
        lines.push(`${tag}${buffer.slice(0, newline)}`);
        buffer = buffer.slice(newline + 1);
        if (lines.length > keep) lines.shift();
      }
      if (buffer.length > 64_000) buffer = buffer.slice(-64_000);
    });
  };
  collect(child.stdout, '', options.onLine);
  collect(child.stderr, 'stderr: ');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      lines.push(`spawn error: ${error.message}`);
      resolve({ code: -1, signal: null });
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const stop = async (graceMs = 12_000) => {
    if (gone) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!gone) child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };
  return { name: options.name, child, output: () => lines.join('\n'), exited, stop };
}

function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
  });
}

/**
 * Starts a server process and waits (at most `readyTimeoutMs`) until GET `readyUrl` answers 200.
 * Throws, with the process's last output, if it exits or never gets ready; it is stopped then.
 */
export async function startServer(options: StartProcessOptions & { readyUrl: string; readyTimeoutMs?: number }): Promise<ManagedProcess> {
  const proc = startProcess(options);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  let exitedEarly: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void proc.exited.then((result) => {
    exitedEarly = result;
  });
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (exitedEarly) {
      throw new Error(`${options.name} exited during startup (code ${exitedEarly.code}, signal ${exitedEarly.signal}):\n${proc.output()}`);
    }
    try {
      const status = await httpStatus(options.readyUrl, 1_000);
      if (status === 200) return proc;
      last = `HTTP ${status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  await proc.stop(2_000);
  throw new Error(`${options.name} not ready at ${options.readyUrl} within the timeout (last: ${last}):\n${proc.output()}`);
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): where a run's CPU went, per process group
// ---------------------------------------------------------------------------------------------

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU of one process so far, in ms; undefined when it is gone (or not Linux). */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may itself contain spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** Pids whose command name (/proc/<pid>/comm) is `name`, e.g. 'postgres', 'redis-server'. */
export function pidsNamed(name: string): number[] {
  try {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((entry) => {
        try {
          return readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name;
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

/** Named groups of pids, resolved at each snapshot (Postgres backends come and go). */
export type CpuGroups = Record<string, () => number[]>;
export type CpuSnapshot = Record<string, Map<number, number>>;

export function cpuSnapshot(groups: CpuGroups): CpuSnapshot {
  const snapshot: CpuSnapshot = {};
  for (const [group, pids] of Object.entries(groups)) {
    const times = new Map<number, number>();
    for (const pid of pids()) {
      const ms = processCpuMs(pid);
      if (ms !== undefined) times.set(pid, ms);
    }
    snapshot[group] = times;
  }
  return snapshot;
}

/**
 * CPU ms each group used between two snapshots. A process that started in between counts
 * from zero; one that exited in between is lost (so keep pools alive across a run).
 */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [group, times] of Object.entries(after)) {
    let total = 0;
    for (const [pid, ms] of times) total += ms - (before[group]?.get(pid) ?? 0);
    delta[group] = total;
  }
  return delta;
}

// ---------------------------------------------------------------------------------------------
// Load: autocannon, timed on the client side from our own listeners
// ---------------------------------------------------------------------------------------------

export interface PreparedRequest {
  body: string | Buffer;
  headers: Record<string, string>;
}

export interface LoadOptions {
  label: string;
  url: string;
  path: string;
  method?: 'POST' | 'PUT' | 'GET';
  /** Exactly this many responses are awaited (autocannon's `amount`). */
  amount: number;
  connections: number;
  /**
   * Requests handed out one per request actually sent, in order. Build them before the run
   * (so their cost is outside the timed window) with headroom: autocannon builds one request
   * per send, so `amount` suffice, but a reconnect may take one more.
   */
  requests: PreparedRequest[];
  /** Per-request timeout in seconds (autocannon's `timeout`). */
  timeoutSeconds?: number;
  /** The run is stopped (and reported incomplete) after this long. */
  maxMs?: number;
  /** Stops the run early when it settles, e.g. the server process's `exited`. */
  abortWhen?: Promise<unknown>;
}

export interface LoadResult {
  label: string;
  amount: number;
  /** Requests built and written (one per setupRequest call). */
  sent: number;
  /** Responses received, any status. */
  responses: number;
  statusCounts: Record<string, number>;
  non2xx: number;
  /** Connection errors and timeouts (autocannon counts timeouts as errors too). */
  errors: number;
  timeouts: number;
  /** From the first request written to the last response received. */
  elapsedMs: number;
  requestsPerSecond: number;
  /** Response times in ms, sorted ascending. */
  latencies: Float64Array;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  stoppedEarly: boolean;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

function finishLatencies(values: ArrayLike<number>): Pick<LoadResult, 'latencies' | 'p50' | 'p90' | 'p99' | 'max'> {
  const latencies = Float64Array.from(values).sort();
  return {
    latencies,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.length ? latencies[latencies.length - 1]! : Number.NaN,
  };
}

/**
 * Sends `amount` requests over `connections` keep-alive connections (closed loop, pipelining
 * 1), each request taking the next prepared body. Latency and throughput are measured here,
 * with sub-millisecond precision, rather than taken from autocannon's 1 s sampling (which
 * would add up to a second of idle time to a fixed-amount run).
 */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { requests } = options;
  if (requests.length < options.amount) throw new Error(`${options.label}: ${requests.length} prepared requests for ${options.amount}`);
  let next = 0;
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let firstSentAt: bigint | undefined;
  let lastResponseAt: bigint | undefined;
  let stoppedEarly = false;
  return new Promise((resolve, reject) => {
    let guard: NodeJS.Timeout | undefined;
    const instance = autocannon(
      {
        url: options.url,
        connections: Math.min(options.connections, options.amount),
        amount: options.amount,
        pipelining: 1,
        timeout: options.timeoutSeconds ?? 10,
        requests: [
          {
            method: options.method ?? 'POST',
            path: options.path,
            setupRequest: (request) => {
              // Past the headroom we repeat a body rather than stall; the bench's checks catch it.
              const prepared = requests[Math.min(next, requests.length - 1)]!;
              next++;
              firstSentAt ??= process.hrtime.bigint();
              return { ...request, body: prepared.body, headers: { ...request.headers, ...prepared.headers } };
            },
          },
        ],
      },
      (error, result) => {
        clearTimeout(guard);
        guard = undefined;
        if (error) {
          reject(error);
          return;
        }
        const elapsedMs = firstSentAt && lastResponseAt ? Number(lastResponseAt - firstSentAt) / 1e6 : Number.NaN;
        const responses = latencies.length;
        resolve({
          label: options.label,
          amount: options.amount,
          sent: next,
          responses,
          statusCounts,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          elapsedMs,
          requestsPerSecond: responses / (elapsedMs / 1000),
          stoppedEarly,
          ...finishLatencies(latencies),
        });
      },
    );
    // autocannon reports invalid options through the callback and returns no instance.
    if (!instance) return;
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      lastResponseAt = process.hrtime.bigint();
      latencies.push(responseTime);
      statusCounts[statusCode] = (statusCounts[statusCode] ?? 0) + 1;
    });
    guard = setTimeout(() => {
      stoppedEarly = true;
      instance.stop();
    }, options.maxMs ?? 120_000);
    void options.abortWhen?.then(() => {
      if (stoppedEarly || !guard) return;
      stoppedEarly = true;
      instance.stop();
    });
  });
}

/** Several runs against one server as one: total responses over total time, pooled latencies. */
export function combineResults(label: string, results: LoadResult[]): LoadResult {
  const sum = (pick: (r: LoadResult) => number) => results.reduce((total, r) => total + pick(r), 0);
  const statusCounts: Record<string, number> = {};
  for (const r of results) for (const [code, n] of Object.entries(r.statusCounts)) statusCounts[code] = (statusCounts[code] ?? 0) + n;
  const pooled: number[] = [];
  for (const r of results) for (const value of r.latencies) pooled.push(value);
  const elapsedMs = sum((r) => r.elapsedMs);
  const responses = sum((r) => r.responses);
  return {
    label,
    amount: sum((r) => r.amount),
    sent: sum((r) => r.sent),
    responses,
    statusCounts,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    elapsedMs,
    requestsPerSecond: responses / (elapsedMs / 1000),
    stoppedEarly: results.some((r) => r.stoppedEarly),
    ...finishLatencies(pooled),
  };
}

/** What went wrong in a run, or [] when every request was answered 2xx. */
export function loadProblems(result: LoadResult): string[] {
  const problems: string[] = [];
  if (result.stoppedEarly) problems.push('stopped at the time limit');
  if (result.responses !== result.amount) problems.push(`${result.responses} responses for ${result.amount} requests`);
  if (result.non2xx > 0) {
    const codes = Object.entries(result.statusCounts)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, n]) => `${n}×${code}`)
      .join(', ');
    problems.push(`${result.non2xx} non-2xx (${codes})`);
  }
  if (result.errors > 0) problems.push(`${result.errors} errors (${result.timeouts} of them timeouts)`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/** A plain-text table; columns whose every cell looks numeric are right-aligned. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((row) => row.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const numeric = headers.map((_, i) => cells.length > 0 && cells.every((row) => /^[-+]?[\d.,]+( ?%|×)?$|^—$/.test(row[i] ?? '')));
  const line = (row: string[]) =>
    row.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '—');

// ---------------------------------------------------------------------------------------------
// Bench database and Redis key space
// ---------------------------------------------------------------------------------------------

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase {
  name: string;
  url: string;
  /** A connected client on the bench database, for seeding and checks (closed by drop()). */
  client: Client;
  drop(): Promise<void>;
}

/**
 * Creates and migrates a fresh database named `<prefix>_<random>` on the server of
 * `serverUrl` (default: BENCH_DATABASE_URL, else local Postgres). drop() removes it, forcibly.
 */
export async function createBenchDatabase(prefix = 'mca_bench', serverUrl = process.env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL): Promise<BenchDatabase> {
  const name = `${prefix}_${randomTag()}`;
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  let client: Client | undefined;
  const drop = async () => {
    await client?.end().catch(() => undefined);
    const connection = new Client({ connectionString: admin.toString() });
    await connection.connect();
    try {
      await connection.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await connection.end();
    }
  };
  try {
    await migrate(url.toString());
    client = new Client({ connectionString: url.toString() });
    await client.connect();
  } catch (error) {
    await drop().catch(() => undefined);
    throw error;
  }
  return { name, url: url.toString(), client, drop };
}

export function benchRedis(url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0'): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2_000, lazyConnect: false });
}

/** Deletes every key starting with `prefix`; returns how many. Refuses a short prefix. */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<number> {
  if (prefix.length < 8) throw new Error(`refusing to delete keys under the short prefix ${JSON.stringify(prefix)}`);
  let cursor = '0';
  let deleted = 0;
  let rounds = 0;
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0' && ++rounds < 100_000);
  return deleted;
}

// ---------------------------------------------------------------------------------------------
// Time, memory, plain HTTP posts, scratch databases and pgbench (added for pipeline.bench.ts)
// ---------------------------------------------------------------------------------------------

/**
 * Epoch milliseconds with sub-millisecond precision, on the same clock as the OpenAI
 * stand-in's `startedAt`/`endedAt` (performance.timeOrigin + performance.now()).
 */
export const nowMs = () => performance.timeOrigin + performance.now();

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...), or undefined when the process is gone. */
export function processStatusKb(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface RssSampler {
  /** The highest VmRSS seen so far, in kB (0 before the first sample). */
  peakKb(): number;
  /** Stops sampling (takes one last sample first) and returns the peak and the sample count. */
  stop(): { peakKb: number; samples: number; lastKb: number };
}

/** Samples a process's VmRSS every `intervalMs` (unref'd timer) and keeps the peak. */
export function sampleRss(pid: number, intervalMs = 100): RssSampler {
  let peak = 0;
  let last = 0;
  let samples = 0;
  const sample = () => {
    const kb = processStatusKb(pid, 'VmRSS');
    if (kb === undefined) return;
    samples++;
    last = kb;
    if (kb > peak) peak = kb;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  let stopped = false;
  return {
    peakKb: () => peak,
    stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        sample();
      }
      return { peakKb: peak, samples, lastKb: last };
    },
  };
}

export interface PostResult {
  status: number;
  /** nowMs() just before the request was written, and when the whole response had been read. */
  sentAt: number;
  doneAt: number;
  error?: string;
}

/** One POST over `agent` (use a keep-alive agent); never rejects: failures come back as status 0. */
export function postOnce(agent: http.Agent, url: URL, body: string | Buffer, headers: Record<string, string>, timeoutMs = 10_000): Promise<PostResult> {
  return new Promise((resolve) => {
    let sentAt = nowMs();
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', agent, timeout: timeoutMs, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } },
      (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0, sentAt, doneAt: nowMs() }));
        res.once('error', (error) => resolve({ status: 0, sentAt, doneAt: nowMs(), error: error.message }));
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.once('error', (error) => resolve({ status: 0, sentAt, doneAt: nowMs(), error: error.message }));
    sentAt = nowMs();
    req.end(body);
  });
}

export interface ScratchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** An empty database `<prefix>_<random>` (not migrated), e.g. for pgbench; drop() removes it, forcibly. */
export async function createScratchDatabase(prefix: string, serverUrl = process.env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomTag()}`;
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  const run = async (sql: string) => {
    const connection = new Client({ connectionString: admin.toString() });
    await connection.connect();
    try {
      await connection.query(sql);
    } finally {
      await connection.end();
    }
  };
  await run(`CREATE DATABASE "${name}"`);
  return { name, url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}

export interface PgbenchRun {
  tps: number;
  transactions: number;
  failed: number;
  latencyMs: number;
  /** The command line, for the report. */
  command: string;
  output: string;
}

/**
 * Runs pgbench (BENCH_PGBENCH, default /usr/bin/pgbench, else `pgbench` on PATH) against
 * `databaseUrl` with `args`; throws if it fails or runs past `timeoutMs`. Without -i, the
 * output's `tps = …` is parsed.
 */
export function runPgbench(databaseUrl: string, args: string[], timeoutMs = 120_000): Promise<PgbenchRun> {
  const url = new URL(databaseUrl);
  const binary = process.env.BENCH_PGBENCH ?? (existsSync('/usr/bin/pgbench') ? '/usr/bin/pgbench' : 'pgbench');
  const connection = ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres')];
  const fullArgs = [...connection, ...args, decodeURIComponent(url.pathname.slice(1))];
  const command = `pgbench ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn(binary, fullArgs, {
      env: { ...process.env, ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    child.stderr.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${command} exited ${code ?? signal}:\n${output.slice(-2_000)}`));
        return;
      }
      const number = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? Number.NaN);
      resolve({
        tps: number(/tps = ([\d.]+)/),
        transactions: number(/number of transactions actually processed: (\d+)/),
        failed: number(/number of failed transactions: (\d+)/),
        latencyMs: number(/latency average = ([\d.]+) ms/),
        command,
        output,
      });
    });
  });
}

/** Machine-wide CPU time from /proc/stat, in clock ticks: busy (everything but idle and iowait) and total. */
export function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((sum, n) => sum + n, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** The share of all cores busy between two machineCpu() readings (every user of the machine counts). */
export function machineBusyShare(before: ReturnType<typeof machineCpu>, after: ReturnType<typeof machineCpu>): number {
  if (!before || !after || after.total === before.total) return Number.NaN;
  return (after.busy - before.busy) / (after.total - before.total);
}

/** Busy CPU ms summed over all cores between two machineCpu() readings (every user of the machine counts). */
export function machineBusyMs(before: ReturnType<typeof machineCpu>, after: ReturnType<typeof machineCpu>): number {
  if (!before || !after) return Number.NaN;
  return ((after.busy - before.busy) * 1000) / ticksPerSecond();
}

/** Committed + rolled-back transactions of one database so far (pg_stat_database; backends report with up to ~1 s delay). */
export async function databaseTransactions(client: Client, databaseName: string): Promise<number> {
  const { rows } = await client.query<{ xacts: string }>('SELECT xact_commit + xact_rollback AS xacts FROM pg_stat_database WHERE datname = $1', [databaseName]);
  return Number(rows[0]?.xacts ?? Number.NaN);
}

/** One JSON call to the product's API as a dashboard makes it; anything but `expect` throws with the answer. */
export async function api<T>(base: string, method: string, path: string, auth: string, body?: unknown, expect = 200): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== expect) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}
