/**
 * `npm run bench [-- <filter>...]`: runs every tests/load/*.bench.ts, in name order, each as a
 * process of its own, one after another (benchmarks sharing 2 cores must not overlap). A
 * filter keeps the files whose name contains it. Exits non-zero if any bench did; a bench
 * exits non-zero only when it could not run or got wrong answers, never for a missed target.
 *
 * BENCH_TIMEOUT_S (default 600) bounds each bench: SIGTERM (it cleans up), SIGKILL 30 s later.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const timeoutMs = Number(process.env.BENCH_TIMEOUT_S ?? 600) * 1000;
const filters = process.argv.slice(2);
const benches = readdirSync(__dirname)
  .filter((name) => name.endsWith('.bench.ts'))
  .filter((name) => filters.length === 0 || filters.some((filter) => name.includes(filter)))
  .sort();

function runBench(file: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, file)], { stdio: 'inherit', env: process.env });
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      console.error(`${file}: over ${timeoutMs / 1000} s, stopping it`);
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    }, timeoutMs);
    // A supervisor's SIGTERM goes to us alone: pass it on so the bench cleans up. (Ctrl-C
    // reaches the whole process group already; we only wait for the bench to finish.)
    const forward = () => child.kill('SIGTERM');
    process.on('SIGTERM', forward);
    process.on('SIGINT', () => undefined);
    child.once('error', (error) => {
      console.error(`${file}: ${error.message}`);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

async function main(): Promise<number> {
  if (benches.length === 0) {
    console.error(`no *.bench.ts in ${__dirname}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
    return 1;
  }
  const outcomes: Array<[string, number]> = [];
  for (const file of benches) {
    console.log(`\n=== ${file} ===`);
    outcomes.push([file, await runBench(file)]);
  }
  if (benches.length > 1) {
    console.log('');
    for (const [file, code] of outcomes) console.log(`${code === 0 ? 'ok  ' : 'FAIL'}  ${file}${code === 0 ? '' : ` (exit ${code})`}`);
  }
  return outcomes.some(([, code]) => code !== 0) ? 1 : 0;
}

void main().then((code) => process.exit(code));
