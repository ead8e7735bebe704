/**
 * `npm run bench -- roundtrip`: what one Postgres round trip costs in CPU, against what one
 * pgbench transaction costs, in the same command. The pipeline bench's (a) target is a share of
 * pgbench's TPS; both are CPU-bound on a 2-core machine, so the target is a CPU budget per
 * answered message counted in pgbench transactions (0.08 of pgbench's TPS: 12.5 of them). This
 * bench shows how much of that budget the round trips alone take, which bounds what merging or
 * batching statements can ever save.
 *
 * Each round runs, one after another (order alternating between rounds):
 * - `pgbench -N -c 10 -j 2 -T BENCH_SECONDS` (as pipeline.bench.ts runs it);
 * - `SELECT $1::int` as a named prepared statement, 10 at a time over 10 connections, for
 *   BENCH_SECONDS: the least a statement sent alone (autocommit) costs;
 * - `BEGIN; SELECT $1::int; COMMIT` the same way: the least a transaction of one statement costs.
 * CPU is machine-wide (/proc/stat busy time over all cores: client, server and kernel), the same
 * measure for all three, so other users of the machine add to every row alike.
 */
import { Pool } from 'pg';
import { Cleanup, createScratchDatabase, envInt, fixed, formatTable, machineBusyMs, machineCpu, machineLine, runPgbench } from './lib';

const SECONDS = envInt('BENCH_SECONDS', 10, 2, 600);
const ROUNDS = envInt('BENCH_ROUNDS', 2, 1, 20);
const CONCURRENCY = 10;

interface Measure {
  label: string;
  /** Statements, transactions (pgbench) or transactions of one statement done. */
  count: number;
  elapsedMs: number;
  /** Machine-wide busy CPU, ms. */
  cpuMs: number;
}

async function measured(label: string, work: () => Promise<number>): Promise<Measure> {
  const before = machineCpu();
  const started = performance.now();
  const count = await work();
  const elapsedMs = performance.now() - started;
  return { label, count, elapsedMs, cpuMs: machineBusyMs(before, machineCpu()) };
}

/** CONCURRENCY loops calling `once` until SECONDS have passed; how many calls finished. */
async function loop(once: (i: number) => Promise<unknown>): Promise<number> {
  const until = performance.now() + SECONDS * 1000;
  let started = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        await once(started++);
        done++;
      }
    }),
  );
  return done;
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  cleanup.exitOnSignals();
  try {
    const database = await createScratchDatabase('mca_bench_roundtrip');
    cleanup.add(`drop database ${database.name}`, () => database.drop());
    await runPgbench(database.url, ['-i', '-q', '-s', '10'], 300_000);
    const pool = new Pool({ connectionString: database.url, max: CONCURRENCY });
    cleanup.add('close the pool', () => pool.end());
    const select = (i: number, client: Pick<Pool, 'query'> = pool) => client.query({ name: 'roundtrip_select', text: 'SELECT $1::int AS n', values: [i] });
    await loop(select); // warm-up: connections open, statements prepared

    console.log(`roundtrip bench: ${ROUNDS} round(s) of ${SECONDS} s each; ${CONCURRENCY} clients; machine: ${machineLine()}`);
    const runs: Record<string, Measure[]> = { pgbench: [], statement: [], transaction: [] };
    const steps: Record<string, () => Promise<Measure>> = {
      pgbench: () =>
        measured('pgbench', async () => (await runPgbench(database.url, ['-N', '-c', '10', '-j', '2', '-T', String(SECONDS)], SECONDS * 1000 + 60_000)).transactions),
      statement: () => measured('statement', () => loop(select)),
      transaction: () =>
        measured('transaction', () =>
          loop(async (i) => {
            const client = await pool.connect();
            try {
              await client.query('BEGIN');
              await select(i, client);
              await client.query('COMMIT');
            } finally {
              client.release();
            }
          }),
        ),
    };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ['pgbench', 'statement', 'transaction'] : ['transaction', 'statement', 'pgbench'];
      for (const step of order) {
        const result = await steps[step]!();
        runs[step]!.push(result);
        process.stdout.write(`  round ${round + 1} ${step}: ${fixed((result.count * 1000) / result.elapsedMs, 0)}/s, ${fixed((result.cpuMs * 1000) / result.count, 1)} µs CPU each\n`);
      }
    }

    const pooled = (key: string) => {
      const all = runs[key]!;
      const count = all.reduce((sum, r) => sum + r.count, 0);
      return {
        perSecond: (count * 1000) / all.reduce((sum, r) => sum + r.elapsedMs, 0),
        cpuUs: (all.reduce((sum, r) => sum + r.cpuMs, 0) * 1000) / count,
      };
    };
    const pgbench = pooled('pgbench');
    const rows = [
      ['pgbench -N transaction', fixed(pgbench.perSecond, 0), fixed(pgbench.cpuUs, 1), '1.00'],
      ...['statement', 'transaction'].map((key) => {
        const figure = pooled(key);
        const label = key === 'statement' ? 'SELECT $1 alone (autocommit)' : 'BEGIN; SELECT $1; COMMIT';
        return [label, fixed(figure.perSecond, 0), fixed(figure.cpuUs, 1), fixed(figure.cpuUs / pgbench.cpuUs, 2)];
      }),
    ];
    console.log(`\nall rounds pooled (machine-wide CPU, ${machineCpu() ? 'all cores' : '/proc/stat unreadable'}):`);
    console.log(formatTable(['what', 'per second', 'CPU µs each', 'in pgbench transactions'], rows));
    console.log(
      `\n0.08 of pgbench's TPS leaves ${fixed(1 / 0.08, 1)} pgbench transactions of CPU per answered message; ` +
        `each statement sent alone takes ${fixed(pooled('statement').cpuUs / pgbench.cpuUs, 2)} of them before it does any work.`,
    );
  } finally {
    await cleanup.run();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
