/**
 * Start-up benchmark: what running the compiled JavaScript (`npm run build`, dist/) saves over
 * running the TypeScript through tsx, for each process the product runs: the API, a message
 * worker, an extraction worker, and the supervisor (`npm start`) with one of each.
 *
 * For each process and variant, one at a time (so they do not share the 2 cores): spawn, time
 * until the process logs that it is up (`API listening`, `worker started`; the supervisor when
 * its API and both workers have), wait 1 s, read VmRSS from /proc, SIGTERM. BENCH_ROUNDS (5)
 * rounds, alternating which variant goes first; medians, and compiled ÷ tsx.
 *
 * It builds dist/ first if it is stale. Env: BENCH_ROUNDS (5), BENCH_SETTLE_MS (1000),
 * BENCH_DATABASE_URL (server for the throwaway database), BENCH_REDIS_URL (redis://127.0.0.1:6379/12).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  benchRedis,
  Cleanup,
  createBenchDatabase,
  deleteKeysWithPrefix,
  envInt,
  fixed,
  formatTable,
  freePort,
  machineLine,
  nowMs,
  percentile,
  processStatusKb,
  randomTag,
  ROOT,
  sleep,
  startProcess,
} from './lib';

const ROUNDS = envInt('BENCH_ROUNDS', 5, 1, 50);
const SETTLE_MS = envInt('BENCH_SETTLE_MS', 1000, 0, 60_000);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';

type Variant = 'tsx' | 'compiled';
const VARIANTS: Variant[] = ['tsx', 'compiled'];

interface Subject {
  name: string;
  script: Record<Variant, string>;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Log messages that must all have appeared (as many times as listed) for the process to be up. */
  upWhen: string[];
}

const SUBJECTS: Subject[] = [
  { name: 'API', script: { tsx: 'src/server.ts', compiled: 'dist/src/server.js' }, args: [], upWhen: ['API listening'] },
  {
    name: 'message worker',
    script: { tsx: 'scripts/worker-start.ts', compiled: 'dist/scripts/worker-start.js' },
    args: ['message'],
    upWhen: ['worker started'],
  },
  {
    name: 'extraction worker',
    script: { tsx: 'scripts/worker-start.ts', compiled: 'dist/scripts/worker-start.js' },
    args: ['extraction'],
    upWhen: ['worker started'],
  },
  {
    name: 'supervisor (npm start)',
    script: { tsx: 'src/workers/workerManager.ts', compiled: 'dist/src/workers/workerManager.js' },
    args: [],
    env: { MESSAGE_WORKERS: '1', EXTRACTION_WORKERS: '1' },
    upWhen: ['API listening', 'worker started', 'worker started'],
  },
];

interface Sample {
  startMs: number;
  rssKb: number;
  /** The supervisor's whole tree (itself and its children); its own process otherwise. */
  treeRssKb: number;
}

async function measure(subject: Subject, variant: Variant, env: NodeJS.ProcessEnv): Promise<Sample> {
  const port = await freePort();
  const messages: string[] = [];
  const childPids: number[] = [];
  let upAt: number | undefined;
  const onLine = (line: string) => {
    let parsed: { msg?: string; pid?: number };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      return; // not a log line
    }
    if (parsed.msg === 'child started' && typeof parsed.pid === 'number') childPids.push(parsed.pid);
    if (!parsed.msg) return;
    messages.push(parsed.msg);
    const missing = [...subject.upWhen];
    for (const message of messages) {
      const index = missing.indexOf(message);
      if (index >= 0) missing.splice(index, 1);
    }
    if (missing.length === 0) upAt ??= nowMs();
  };
  const spawnedAt = nowMs();
  const proc = startProcess({
    name: `${subject.name} (${variant})`,
    script: subject.script[variant],
    args: subject.args,
    env: { ...env, ...subject.env, PORT: String(port) },
    onLine,
  });
  try {
    const deadline = Date.now() + 60_000;
    while (upAt === undefined) {
      if (proc.child.exitCode !== null || Date.now() > deadline) throw new Error(`${proc.name} did not come up:\n${proc.output()}`);
      await sleep(5);
    }
    await sleep(SETTLE_MS);
    const rssKb = processStatusKb(proc.child.pid!, 'VmRSS') ?? Number.NaN;
    const treeRssKb = childPids.reduce((sum, pid) => sum + (processStatusKb(pid, 'VmRSS') ?? 0), rssKb);
    return { startMs: upAt - spawnedAt, rssKb, treeRssKb };
  } finally {
    await proc.stop(15_000);
  }
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.exitOnSignals();
  try {
    const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--if-stale'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('the build failed');

    const database = await createBenchDatabase();
    cleanup.add('drop the bench database', () => database.drop());
    const prefix = `bench:${randomTag()}:`;
    const redis = benchRedis(REDIS_URL);
    cleanup.add('delete the bench keys', async () => {
      await deleteKeysWithPrefix(redis, prefix);
      redis.disconnect();
    });
    const env: NodeJS.ProcessEnv = {
      NODE_ENV: 'development',
      LOG_LEVEL: 'info',
      DATABASE_URL: database.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      OPENAI_API_KEY: 'bench-not-used',
    };

    console.log(`startup bench: ${ROUNDS} rounds, RSS read ${SETTLE_MS} ms after the process is up; ${machineLine()}`);
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating which variant goes first, so a slow patch of the machine hits both alike.
      const order = round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const subject of SUBJECTS) {
        for (const variant of order) {
          const sample = await measure(subject, variant, env);
          const key = `${subject.name}|${variant}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.log(`round ${round + 1}: ${subject.name}, ${variant}: up in ${fixed(sample.startMs, 0)} ms, RSS ${fixed(sample.rssKb / 1024)} MB`);
        }
      }
    }

    const of = (subject: Subject, variant: Variant, field: keyof Sample) => median(samples.get(`${subject.name}|${variant}`)!.map((s) => s[field]));
    const rows = SUBJECTS.map((subject) => {
      const [startTsx, startJs] = [of(subject, 'tsx', 'startMs'), of(subject, 'compiled', 'startMs')];
      const [rssTsx, rssJs] = [of(subject, 'tsx', 'rssKb') / 1024, of(subject, 'compiled', 'rssKb') / 1024];
      return [subject.name, fixed(startTsx, 0), fixed(startJs, 0), fixed(startJs / startTsx, 2), fixed(rssTsx), fixed(rssJs), fixed(rssJs / rssTsx, 2)];
    });
    const supervisor = SUBJECTS.at(-1)!;
    const [treeTsx, treeJs] = [of(supervisor, 'tsx', 'treeRssKb') / 1024, of(supervisor, 'compiled', 'treeRssKb') / 1024];
    rows.push(['npm start, whole tree (4 processes)', '', '', '', fixed(treeTsx), fixed(treeJs), fixed(treeJs / treeTsx, 2)]);
    console.log(`\nmedians of ${ROUNDS} rounds (start: spawn → logged up; RSS: VmRSS)`);
    console.log(formatTable(['process', 'start tsx ms', 'start compiled ms', 'ratio', 'RSS tsx MB', 'RSS compiled MB', 'ratio'], rows));
  } finally {
    await cleanup.run();
  }
}

main().catch((error: Error) => {
  console.error(`startup bench failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
