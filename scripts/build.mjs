/**
 * `npm run build`: compiles the product (tsconfig.build.json) to `dist/` and copies the SQL
 * migrations beside the compiled migrator, so `dist/` plus production dependencies is all an
 * image needs. With `--if-stale` (what `npm start`, `start:api` and `start:worker` run first)
 * it compiles only when `dist/` is missing or older than the sources, so a fresh clone's
 * `npm ci && npm start` works without a separate build step.
 *
 * Plain JavaScript on purpose: it has to run before anything is compiled, and without tsx.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
/** Written last, with the time the build started: any source touched after it makes dist stale. */
const STAMP = path.join(DIST, '.build-stamp');
/** A directory, because mkdir is atomic: two `npm start`s on a fresh clone must not both compile into dist/. */
const LOCK = path.join(ROOT, '.build.lock');
/** Everything the compiled output depends on (tsconfig.build.json's inputs and the package.json it embeds). */
const INPUTS = ['src', 'scripts/worker-start.ts', 'scripts/migrate.ts', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

const say = (line) => process.stderr.write(`build: ${line}\n`);

/** The newest modification time among the inputs, in ms (0 when none exists, as in an image holding only dist/). */
function newestInput() {
  let newest = 0;
  const visit = (file) => {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) for (const name of readdirSync(file)) visit(path.join(file, name));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  for (const input of INPUTS) visit(path.join(ROOT, input));
  return newest;
}

function isStale() {
  const stamp = statSync(STAMP, { throwIfNoEntry: false });
  return !stamp || newestInput() > stamp.mtimeMs;
}

const pidAlive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
};

/** Takes the build lock, waiting for another build to finish; a lock left by a dead process is taken over. */
function lock() {
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(path.join(LOCK, 'pid'), 'utf8'));
    } catch {
      // The owner has made the directory but not yet written its pid: give it a moment.
    }
    if (Number.isInteger(owner) && !pidAlive(owner)) {
      say(`removing a lock left by process ${owner}, which is gone`);
      rmSync(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${LOCK} held for over 5 minutes; remove it if no build is running`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
}

function compile() {
  const startedAt = new Date();
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    throw new Error('dist/ is missing or older than src/, and TypeScript is not installed to compile it (run `npm ci`, which installs it)');
  }
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`tsc exited with ${result.status ?? result.signal}`);
  // Replaced, not merged: a migration renamed or removed in src/ must not linger in dist/ and be applied.
  const migrations = path.join(DIST, 'src', 'migrations');
  rmSync(migrations, { recursive: true, force: true });
  cpSync(path.join(ROOT, 'src', 'migrations'), migrations, { recursive: true, filter: (file) => !file.endsWith('.md') });
  writeFileSync(STAMP, `${startedAt.toISOString()}\n`);
  utimesSync(STAMP, startedAt, startedAt);
}

function main() {
  const ifStale = process.argv.includes('--if-stale');
  if (ifStale && !existsSync(path.join(ROOT, 'src'))) return; // an image: dist/ is all there is
  if (ifStale && !isStale()) return;
  lock();
  try {
    // Another process may have built while this one waited for the lock.
    if (ifStale && !isStale()) return;
    if (ifStale) say('dist/ is missing or older than src/: compiling (10–20 s on 2 cores)');
    const started = Date.now();
    compile();
    say(`compiled to dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

try {
  main();
} catch (error) {
  say(error.message);
  process.exit(1);
}
