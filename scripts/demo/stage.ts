/**
 * The set the demo builds and strikes: a fresh database and Redis prefix of its own, the
 * stand-ins for OpenAI and Meta's Graph API (in this process, on 127.0.0.1), and the real product
 * (`npm start`'s supervisor, its API and its workers) as OS processes. `buildTheSet` puts it up
 * step by step; `strikeTheSet` takes down whatever of it went up, each part on its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// The demo creates and drops its own database, which the product's pool cannot do.
import { Client } from 'pg';
import Redis from 'ioredis';
import { config } from '../../src/config';
import { migrate } from '../../src/utils/migrator';
import { startOpenAIStandin, type OpenAIStandin } from '../../tests/fixtures/standins/openaiStandin';
import { startGraphStandin, type GraphStandin } from '../../tests/fixtures/standins/graphStandin';
import { freePort, ROOT } from '../../tests/fixtures/processes';
import { ADMIN_API_KEY, DEMO_REDIS_DB, EXTRACTION_IDLE_SECONDS, META_APP_SECRET, MODEL_LATENCY_MS, shopAssistantReply } from './cast';
import { describeError, secs, waitUntil, type Progress } from './progress';
import type { DemoResult } from './result';

/** Where this run's things live; every name carries the run's random id. */
export interface Stage {
  startedAt: number;
  database: string;
  databaseUrl: URL;
  /** The `postgres` database, from which the demo's own is created and dropped. */
  adminUrl: URL;
  redisUrl: URL;
  redisPrefix: string;
  logFile: string;
}

export function planStage(): Stage {
  const id = randomBytes(4).toString('hex');
  const database = `multichannel_demo_${id}`;
  const databaseUrl = new URL(config.DATABASE_URL);
  databaseUrl.pathname = `/${database}`;
  const adminUrl = new URL(config.DATABASE_URL);
  adminUrl.pathname = '/postgres';
  const redisUrl = new URL(config.REDIS_URL);
  redisUrl.pathname = `/${DEMO_REDIS_DB}`;
  return {
    startedAt: Date.now(),
    database,
    databaseUrl,
    adminUrl,
    redisUrl,
    redisPrefix: `demo:${id}:`,
    logFile: path.join(os.tmpdir(), `multichannel-demo-${id}.log`),
  };
}

/** What went up so far: what the clean-up must take down, whatever failed in between. */
export interface SetPieces {
  databaseTouched: boolean;
  openai?: OpenAIStandin;
  graph?: GraphStandin;
  product?: Product;
  logStream?: WriteStream;
}

export interface TheSet {
  baseUrl: string;
  graph: GraphStandin;
}

/** The first three steps: the database, the stand-ins, the product; each records what it started in `pieces`. */
export async function buildTheSet(progress: Progress, stage: Stage, pieces: SetPieces, signal?: AbortSignal): Promise<TheSet> {
  await progress.step(
    'Check Postgres and Redis, create a fresh demo database',
    async () => {
      await checkServices(stage);
      // From here on there may be a database to drop, whatever happens next.
      pieces.databaseTouched = true;
      return migrate(stage.databaseUrl.toString());
    },
    (migrated) => `database ${stage.database} created, ${migrated.applied.length} migrations applied`,
  );

  const { openai, graph } = await progress.step(
    'Start the stand-ins for OpenAI and for Meta’s Graph API (in this process, on 127.0.0.1)',
    async () => {
      pieces.openai = await startOpenAIStandin({ latencyMs: MODEL_LATENCY_MS, reply: shopAssistantReply, apiKey: 'demo' });
      pieces.graph = await startGraphStandin();
      return { openai: pieces.openai, graph: pieces.graph };
    },
    (s) => `OpenAI at ${s.openai.url} (${MODEL_LATENCY_MS} ms a reply), Graph API at ${s.graph.url}`,
  );

  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  await progress.step(
    'Start the product as `npm start` does: the supervisor, its API and its workers',
    async () => {
      pieces.logStream = createWriteStream(stage.logFile);
      pieces.product = startProduct(productEnv(stage, port, openai, graph), baseUrl, stage.logFile, pieces.logStream);
      await waitUntilReady(pieces.product, signal);
      return pieces.product;
    },
    (p) => `${baseUrl} is ready; processes: supervisor + ${p.children.join(', ')}; logs in ${stage.logFile}`,
  );
  return { baseUrl, graph };
}

async function checkServices(stage: Stage): Promise<void> {
  const { redisUrl, adminUrl } = stage;
  const redis = new Redis(redisUrl.toString(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  // connect() only rejects with "Connection is closed"; the socket's error says why.
  let redisError: Error | undefined;
  redis.on('error', (error: Error) => {
    redisError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(`Redis is not reachable at ${redisUrl.host} (${describeError(redisError ?? error)}); start it, e.g. docker compose up -d`);
  } finally {
    redis.disconnect();
  }
  const admin = new Client({ connectionString: adminUrl.toString(), connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`Postgres is not reachable at ${adminUrl.host} (${describeError(error)}); start it, e.g. docker compose up -d`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** The product's environment: everything pointed at this run's database, prefix and stand-ins. */
function productEnv(stage: Stage, port: number, openai: OpenAIStandin, graph: GraphStandin): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_ENV: 'development',
    PORT: String(port),
    DATABASE_URL: stage.databaseUrl.toString(),
    REDIS_URL: stage.redisUrl.toString(),
    REDIS_KEY_PREFIX: stage.redisPrefix,
    ADMIN_API_KEY,
    META_APP_SECRET,
    META_VERIFY_TOKEN: 'dev-verify-token',
    // A fresh key a run: the demo's tokens are encrypted with a key nobody else has.
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    OPENAI_API_KEY: 'demo',
    OPENAI_BASE_URL: openai.url,
    OPENAI_MODEL: 'gpt-4o-mini',
    META_GRAPH_API_URL: graph.url,
    INSTAGRAM_GRAPH_API_URL: graph.url,
    EXTRACTION_IDLE_SECONDS: String(EXTRACTION_IDLE_SECONDS),
    MESSAGE_WORKERS: '1',
    EXTRACTION_WORKERS: '1',
    // Delivers the tenant events the demo's business receives.
    EVENT_WORKERS: '1',
    SWEEPER_INTERVAL_MS: '1000',
    CREDITS_PER_1K_TOKENS: '1000',
    // The demo polls the API while it waits; the default budget is for real clients.
    RATE_LIMIT_PER_MINUTE: '100000',
    MIGRATE_ON_START: 'true',
    SHUTDOWN_TIMEOUT_MS: '5000',
    // Info, not warn: it goes to the log file (the transcript stays clean), and the demo
    // reads the supervisor's "child started" and the workers' "worker started" from it.
    LOG_LEVEL: 'info',
  };
}

async function waitUntilReady(product: Product, signal?: AbortSignal): Promise<void> {
  await waitUntil(
    'GET /readyz to answer 200 and every worker to start',
    async () => {
      if (product.exitCode !== undefined) throw new Error(`the supervisor exited (${product.exitCode}) while starting`);
      const ready = await fetch(`${product.baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
        (response) => response.status === 200,
        () => false,
      );
      const workers = product.children.filter((name) => name !== 'api').length;
      return ready && workers > 0 && product.workersStarted.length >= workers ? true : undefined;
    },
    60_000,
    signal,
  );
}

/** For `process.on('exit')`: if the demo dies unexpectedly, do not leave the product running behind it. */
export function killProductGroup(product: Product | undefined): void {
  if (product && product.child.exitCode === null && product.child.signalCode === null) {
    try {
      process.kill(-product.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Clean-up: always, each part on its own so one failure does not skip the rest. Records the
 * supervisor's exit code on `result`; true when every part succeeded.
 */
export async function strikeTheSet(progress: Progress, stage: Stage, pieces: SetPieces, result: DemoResult, log: (line: string) => void): Promise<boolean> {
  const { product, openai, graph } = pieces;
  const cleanups: boolean[] = [];
  if (!product && !openai && !graph && !pieces.databaseTouched) log('    nothing was started');
  if (product) {
    cleanups.push(
      await progress.attempt('Stop the product: SIGTERM to the supervisor, which drains its children', async () => {
        const code = await stopProduct(product, 20_000);
        result.supervisorExitCode = code;
        if (code !== 0) throw new Error(`the supervisor exited with ${code}; see ${stage.logFile}`);
        return 'supervisor exited 0';
      }),
    );
    result.supervisorExitCode = product.exitCode;
  }
  if (openai || graph) {
    cleanups.push(
      await progress.attempt('Close the stand-ins', async () => {
        await Promise.all([openai?.close(), graph?.close()]);
        return `OpenAI got ${openai?.completions().length ?? 0} calls, the Graph API ${graph?.sends.length ?? 0}`;
      }),
    );
  }
  if (pieces.databaseTouched) {
    cleanups.push(await progress.attempt(`Drop database ${stage.database}`, () => dropDatabase(stage)));
    cleanups.push(await progress.attempt(`Delete the Redis keys under ${stage.redisPrefix}`, () => deleteRedisKeys(stage)));
  }
  if (pieces.logStream) {
    const stream = pieces.logStream;
    await new Promise<void>((resolve) => stream.end(() => resolve()));
  }
  return cleanups.every(Boolean);
}

async function dropDatabase(stage: Stage): Promise<string> {
  const admin = new Client({ connectionString: stage.adminUrl.toString(), connectionTimeoutMillis: 5_000 });
  await admin.connect();
  try {
    // FORCE: a straggling connection of a killed process must not keep the database alive.
    await admin.query(`DROP DATABASE IF EXISTS "${stage.database}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  return 'dropped';
}

async function deleteRedisKeys(stage: Stage): Promise<string> {
  const redis = new Redis(stage.redisUrl.toString(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${stage.redisPrefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return `${deleted} keys deleted`;
}

// ---------------------------------------------------------------------------------------------
// The product as OS processes

export interface Product {
  child: ChildProcess;
  baseUrl: string;
  logFile: string;
  /** Resolves with the exit code once the supervisor is gone (null when a signal ended it). */
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
  /** Processes the supervisor said it started (`api`, `message-1`, …). */
  children: string[];
  /** Worker kinds that said they were running. */
  workersStarted: string[];
  /** The last warnings, errors and stderr lines: printed when something goes wrong. */
  troubles: string[];
}

/** Spawns `npm start`'s supervisor as its own process group, its output teed to `logFile`. */
function startProduct(env: NodeJS.ProcessEnv, baseUrl: string, logFile: string, out: WriteStream): Product {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'workerManager.ts')], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own group: Ctrl-C reaches the demo only, which then stops the product in order.
    detached: true,
  });
  const product: Product = {
    child,
    baseUrl,
    logFile,
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    // Set by the listener below, registered after `exited`'s, so whoever awaits `exited` sees it.
    exitCode: undefined,
    children: [],
    workersStarted: [],
    troubles: [],
  };
  child.once('exit', (code) => {
    product.exitCode = code;
  });
  const remember = (line: string) => {
    product.troubles.push(line);
    if (product.troubles.length > 12) product.troubles.shift();
  };
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out.write(chunk);
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        remember(text);
        continue;
      }
      if (line.msg === 'child started' && typeof line.child === 'string') product.children.push(line.child);
      if (line.msg === 'worker started' && typeof line.kind === 'string') product.workersStarted.push(line.kind);
      if (line.level === 'error' || line.level === 'fatal') remember(`${String(line.level)}: ${String(line.msg)}`);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    out.write(chunk);
    for (const text of chunk.toString('utf8').split('\n')) if (text.trim() !== '') remember(`stderr: ${text}`);
  });
  return product;
}

/** SIGTERM, then the supervisor's own drain; SIGKILL to the whole group only past the bound. */
async function stopProduct(product: Product, timeoutMs: number): Promise<number | null> {
  if (product.child.exitCode !== null || product.child.signalCode !== null) return product.child.exitCode;
  product.child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  const outcome = await Promise.race([product.exited, timer]);
  if (outcome !== 'timeout') return outcome;
  try {
    process.kill(-product.child.pid!, 'SIGKILL');
  } catch {
    // Already gone between the timeout and the kill.
  }
  await product.exited;
  throw new Error(`the supervisor did not exit within ${secs(timeoutMs)}; killed it and its children`);
}
