/**
 * Webhook ingestion benchmark: signed, realistic WhatsApp text webhooks, each with a unique
 * wamid, against the real app (src/server.ts, real Postgres and Redis) and, in the same
 * command, the same load against a minimal reference (referenceServer.ts: Express 5 + raw
 * body + HMAC + one XADD). Reports req/s, p50/p99 latency and ours/reference.
 *
 * Target: ours ≥ 0.5× the reference's req/s, and p99 < 50 ms at that load. Missing a target
 * is reported, not failed; a wrong answer (a non-2xx, an error, a message not stored) fails.
 *
 * Env: BENCH_REQUESTS (5000 per run), BENCH_CONNECTIONS (20), BENCH_WARMUP (min(requests, 5000)),
 * BENCH_ROUNDS (2; rounds alternate which server goes first), BENCH_CUSTOMERS (1000),
 * BENCH_NUMBERS (4), BENCH_APP_LOG_LEVEL (warn), BENCH_APP_NODE_ARGS (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof"), BENCH_APP_SCRIPT (src/server.ts; for what-if variants),
 * BENCH_DATABASE_URL (server for the throwaway database), BENCH_REDIS_URL (redis://127.0.0.1:6379/12).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { sign } from '../fixtures/meta';
import {
  benchRedis,
  Cleanup,
  combineResults,
  cpuDelta,
  cpuSnapshot,
  createBenchDatabase,
  deleteKeysWithPrefix,
  envInt,
  fixed,
  formatTable,
  freePort,
  LOCALHOST,
  loadProblems,
  machineLine,
  pidsNamed,
  randomTag,
  runLoad,
  startServer,
  type CpuGroups,
  type LoadResult,
  type ManagedProcess,
  type PreparedRequest,
} from './lib';

const REQUESTS = envInt('BENCH_REQUESTS', 5000);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 20);
/** V8 needs a few thousand requests before a server's CPU per request settles (measured: ~35% more at 500). */
const WARMUP = envInt('BENCH_WARMUP', Math.min(REQUESTS, 5000), 0);
const ROUNDS = envInt('BENCH_ROUNDS', 2, 1, 20);
const CUSTOMERS = envInt('BENCH_CUSTOMERS', 1000);
const NUMBERS = envInt('BENCH_NUMBERS', 4, 1, 100);
const APP_LOG_LEVEL = process.env.BENCH_APP_LOG_LEVEL ?? 'warn';
const APP_NODE_ARGS = (process.env.BENCH_APP_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
/** What-if runs: another entry point that serves the same env (PORT, DATABASE_URL, ...) and GET /readyz. */
const APP_SCRIPT = process.env.BENCH_APP_SCRIPT ?? 'src/server.ts';
/**
 * A logical database of its own (keys still under a unique prefix, deleted at the end): test
 * suites on a shared Redis FLUSHDB database 0, which would wipe the streams mid-run.
 */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';

const TARGET_RATIO = 0.5;
const TARGET_P99_MS = 50;
const WEBHOOK_PATH = '/webhooks/meta';
/** The app's stream (src/utils/queue.ts messageStream(0)) and the reference's. */
const APP_STREAM = 'stream:messages';
const REFERENCE_STREAM = 'stream:webhooks';
/** MAXLEN ~ trims beyond this, so stream lengths are only checked below it. */
const STREAM_MAX_LENGTH = 100_000;

// ---------------------------------------------------------------------------------------------
// Bodies: Meta's compact JSON, non-ASCII escaped as \uXXXX the way Meta sends (and signs) it.
// ---------------------------------------------------------------------------------------------

const CUSTOMER_NAMES = [
  'José García',
  'María Fernanda López',
  'Anh Nguyễn',
  'Chloé Martin',
  'Oluwaseun Adeyemi',
  'Priya Sharma',
  'Lukas Müller',
  'Ahmed Hassan',
  'Emma Johnson',
  'Sakura 田中',
];

const TEXTS = [
  'Hola! Do you have this jacket in size M?',
  'Hi, I ordered a pair of running shoes last Tuesday (order #48213) and the tracking page still says "label created". Can you check whether it has actually shipped? I need them before Saturday.',
  'Quanto custa a entrega para Belo Horizonte? E vocês aceitam Pix?',
  'Thanks! 👍',
  'Good morning. I would like to book a table for four people tomorrow at 8pm, preferably on the terrace if the weather is nice. One of us is vegetarian, is that a problem? Also, is there parking nearby or should we take a taxi?',
  'Is the store on Calle Mayor open on Sunday?',
  "I received the blender but the lid is cracked 😞 I have photos. What's the return process, do I need to send it back first or can you ship a replacement lid?",
  'Can I change the delivery address to my office? It is 221B Baker Street, London NW1 6XE, second floor, reception will sign for it. Please confirm the delivery window stays the same.',
  'Bonjour, est-ce que le modèle bleu est encore disponible en 42 ? Merci beaucoup !',
  'What are your opening hours during the holidays? We are planning to come on the 24th with the kids and want to avoid the queue if possible.',
  'ok',
  'Hello, I am interested in the 2-bedroom apartment you posted. Is it still available? I can visit any day after 6pm this week. Does the rent include water and internet, and is a pet (small, quiet cat) acceptable?',
];

const escapeNonAscii = (json: string) =>
  json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** A small deterministic PRNG (mulberry32): the same customers and texts every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Seed {
  userId: string;
  agentId: string;
  numbers: Array<{ externalId: string; display: string }>;
}

let wamidCounter = 0;
/** Looks like Meta's (base64 of a protobuf); unique by a per-bench counter plus randomness. */
const uniqueWamid = (tag: string) => `wamid.HBgL${tag}${(wamidCounter++).toString(36).padStart(6, '0')}${randomBytes(27).toString('base64')}`;

function makeRequestFactory(seed: Seed, secret: string) {
  const random = prng(0x5eed);
  const tag = randomTag(3);
  return (count: number): PreparedRequest[] => {
    const requests: PreparedRequest[] = [];
    for (let i = 0; i < count; i++) {
      const customer = Math.floor(random() * CUSTOMERS);
      const number = seed.numbers[customer % seed.numbers.length]!;
      const waId = String(15552000000 + customer);
      const body = escapeNonAscii(
        JSON.stringify({
          object: 'whatsapp_business_account',
          entry: [
            {
              id: '210987654321098',
              changes: [
                {
                  value: {
                    messaging_product: 'whatsapp',
                    metadata: { display_phone_number: number.display, phone_number_id: number.externalId },
                    contacts: [{ profile: { name: CUSTOMER_NAMES[customer % CUSTOMER_NAMES.length]! }, wa_id: waId }],
                    messages: [
                      {
                        from: waId,
                        id: uniqueWamid(tag),
                        timestamp: String(Math.floor(Date.now() / 1000)),
                        type: 'text',
                        text: { body: TEXTS[Math.floor(random() * TEXTS.length)]! },
                      },
                    ],
                  },
                  field: 'messages',
                },
              ],
            },
          ],
        }),
      );
      requests.push({
        body,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'facebookexternalua',
          accept: '*/*',
          'x-hub-signature-256': sign(body, secret),
        },
      });
    }
    return requests;
  };
}

// ---------------------------------------------------------------------------------------------

async function seedTenant(client: import('pg').Client): Promise<Seed> {
  const tag = randomTag();
  const user = await client.query<{ id: string }>(`INSERT INTO users (name, email) VALUES ('Bench tenant', $1) RETURNING id`, [`bench-${tag}@example.com`]);
  const userId = user.rows[0]!.id;
  const agent = await client.query<{ id: string }>(
    `INSERT INTO agents (user_id, name, system_prompt, model) VALUES ($1, 'Bench agent', 'You are a helpful shop assistant.', 'gpt-4o-mini') RETURNING id`,
    [userId],
  );
  const agentId = agent.rows[0]!.id;
  const numbers: Seed['numbers'] = [];
  for (let i = 0; i < NUMBERS; i++) {
    const externalId = String(109876543210100 + i);
    await client.query(
      `INSERT INTO phone_numbers (user_id, channel, external_id, display_name, access_token_encrypted, agent_id)
       VALUES ($1, 'whatsapp', $2, $3, 'v1:bench:bench:bench', $4)`,
      [userId, externalId, `Bench number ${i + 1}`, agentId],
    );
    numbers.push({ externalId, display: String(15550001200 + i) });
  }
  return { userId, agentId, numbers };
}

interface Target {
  name: 'ours' | 'reference';
  url: string;
  runs: LoadResult[];
  warmup?: LoadResult;
  /** The server's process: a run in progress is stopped if it exits. */
  proc: ManagedProcess;
  /** Whose CPU to account during this target's measured runs. */
  cpuGroups: CpuGroups;
  /** CPU ms per group over the measured runs. */
  cpu: Record<string, number>;
}

const row = (server: string, run: string, r: LoadResult) => [
  server,
  run,
  r.responses,
  fixed(r.requestsPerSecond, 0),
  fixed(r.p50, 1),
  fixed(r.p90, 1),
  fixed(r.p99, 1),
  fixed(r.max, 1),
  r.non2xx + r.errors,
];

async function main(): Promise<number> {
  const cleanup = new Cleanup();
  cleanup.exitOnSignals();
  const problems: string[] = [];
  try {
    const id = randomTag();
    const secret = `bench-secret-${randomTag(8)}`;
    const prefix = `bench:${id}:`;

    const database = await createBenchDatabase('mca_bench');
    cleanup.add(`drop database ${database.name}`, () => database.drop());
    const redis = benchRedis(REDIS_URL);
    cleanup.add('close Redis', () => redis.quit());
    cleanup.add(`delete Redis keys ${prefix}*`, () => deleteKeysWithPrefix(redis, prefix));
    const seed = await seedTenant(database.client);
    const prepare = makeRequestFactory(seed, secret);

    const [appPort, refPort] = [await freePort(), await freePort()];
    const app = await startServer({
      name: `app (${APP_SCRIPT})`,
      script: APP_SCRIPT,
      nodeArgs: APP_NODE_ARGS,
      env: {
        NODE_ENV: 'development',
        PORT: String(appPort),
        DATABASE_URL: database.url,
        REDIS_URL,
        REDIS_KEY_PREFIX: `${prefix}app:`,
        LOG_LEVEL: APP_LOG_LEVEL,
        META_APP_SECRET: secret,
      },
      readyUrl: `http://${LOCALHOST}:${appPort}/readyz`,
    });
    cleanup.add('stop the app', () => app.stop());
    const reference = await startServer({
      name: 'reference (tests/load/referenceServer.ts)',
      script: 'tests/load/referenceServer.ts',
      env: { PORT: String(refPort), REDIS_URL, REDIS_KEY_PREFIX: `${prefix}ref:`, REFERENCE_STREAM, META_APP_SECRET: secret },
      readyUrl: `http://${LOCALHOST}:${refPort}/healthz`,
    });
    cleanup.add('stop the reference', () => reference.stop());

    const sample = prepare(200);
    const meanBytes = sample.reduce((total, r) => total + Buffer.byteLength(r.body), 0) / sample.length;
    console.log(
      `webhook bench: ${REQUESTS} signed WhatsApp text webhooks (unique wamids, ${CUSTOMERS} customers over ${NUMBERS} numbers, ~${Math.round(meanBytes)} B) ` +
        `per run, ${ROUNDS} round(s), ${CONNECTIONS} connections, warm-up ${WARMUP}`,
    );
    console.log(`machine: ${machineLine()}`);
    console.log(`database ${database.name}, Redis prefix ${prefix}, app ${APP_SCRIPT} pid ${app.child.pid} (LOG_LEVEL=${APP_LOG_LEVEL}), reference pid ${reference.child.pid}`);

    const shared: CpuGroups = {
      postgres: () => pidsNamed('postgres'),
      redis: () => pidsNamed('redis-server'),
      'load generator': () => [process.pid],
    };
    const ours: Target = {
      name: 'ours',
      url: `http://${LOCALHOST}:${appPort}`,
      runs: [],
      proc: app,
      cpuGroups: { app: () => (app.child.pid ? [app.child.pid] : []), ...shared },
      cpu: {},
    };
    const ref: Target = {
      name: 'reference',
      url: `http://${LOCALHOST}:${refPort}`,
      runs: [],
      proc: reference,
      cpuGroups: { reference: () => (reference.child.pid ? [reference.child.pid] : []), ...shared },
      cpu: {},
    };
    const load = async (target: Target, label: string, amount: number, measured: boolean) => {
      const requests = prepare(amount + CONNECTIONS * 2);
      const before = cpuSnapshot(target.cpuGroups);
      const result = await runLoad({
        label,
        url: target.url,
        path: WEBHOOK_PATH,
        amount,
        connections: CONNECTIONS,
        requests,
        maxMs: Math.max(60_000, amount * 20),
        abortWhen: target.proc.exited,
      });
      if (result.stoppedEarly) {
        throw new Error(`${label}: stopped early (the server exited, or the time limit); ${target.proc.name}'s last output:\n${target.proc.output()}`);
      }
      const used = cpuDelta(before, cpuSnapshot(target.cpuGroups));
      if (measured) for (const [group, ms] of Object.entries(used)) target.cpu[group] = (target.cpu[group] ?? 0) + ms;
      return { result, used };
    };

    for (const target of [ref, ours]) {
      if (WARMUP > 0) target.warmup = (await load(target, `${target.name} warm-up`, WARMUP, false)).result;
    }
    // A fresh database's first autovacuum/autoanalyze would otherwise land in the first round.
    await database.client.query('VACUUM (ANALYZE) inbox');
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? [ref, ours] : [ours, ref];
      for (const target of order) {
        const { result, used } = await load(target, `${target.name} round ${round}`, REQUESTS, true);
        target.runs.push(result);
        const cpu = Object.entries(used)
          .map(([group, ms]) => `${group} ${fixed(ms / result.responses, 3)}`)
          .join(', ');
        process.stdout.write(`  round ${round} ${target.name.padEnd(9)} ${fixed(result.requestsPerSecond, 0)} req/s, p99 ${fixed(result.p99, 1)} ms; CPU ms/request: ${cpu}\n`);
      }
    }

    // ---- correctness ---------------------------------------------------------------------
    for (const target of [ref, ours]) {
      for (const run of [...(target.warmup ? [target.warmup] : []), ...target.runs]) {
        for (const problem of loadProblems(run)) problems.push(`${run.label}: ${problem}`);
      }
    }
    const sentTo = (target: Target) => [target.warmup, ...target.runs].reduce((total, r) => total + (r?.sent ?? 0), 0);
    const okFrom = (target: Target) =>
      [target.warmup, ...target.runs].reduce((total, r) => total + Object.entries(r?.statusCounts ?? {}).reduce((n, [code, c]) => n + (code.startsWith('2') ? c : 0), 0), 0);
    // Accepted messages wait in the inbox (no worker runs here to file them into conversations).
    const { rows } = await database.client.query<{ accepted: number; distinct_ids: number; filed: number; customers: number }>(
      `SELECT (SELECT count(*) FROM inbox)::int AS accepted,
              (SELECT count(DISTINCT external_id) FROM inbox)::int AS distinct_ids,
              (SELECT count(*) FROM messages)::int AS filed,
              (SELECT count(DISTINCT (phone_number_id, customer_id)) FROM inbox)::int AS customers`,
    );
    const stored = rows[0]!;
    const oursSent = sentTo(ours);
    const oursOk = okFrom(ours);
    const appNudges = await redis.xlen(`${prefix}app:${APP_STREAM}`);
    const refSent = sentTo(ref);
    const refEntries = await redis.xlen(`${prefix}ref:${REFERENCE_STREAM}`);
    // A 2xx from either server means its writes were acknowledged, so the stream lengths only
    // tell whether something else touched Redis meanwhile (e.g. a FLUSHDB): warnings, not failures.
    const flushHint = ' (a FLUSHDB/FLUSHALL elsewhere during the run would explain a shortfall)';
    const checks: Array<[string, boolean, boolean]> = [
      // [text, ok, gating]
      [`ours: ${oursOk}/${oursSent} requests answered 2xx`, oursOk === oursSent, true],
      [`ours: ${stored.accepted} messages accepted into the inbox (${stored.distinct_ids} distinct wamids) for ${oursSent} requests`, stored.accepted === oursSent && stored.distinct_ids === oursSent, true],
      [`ours: ${stored.customers} customers waiting to be filed, ${stored.filed} messages filed already (none without workers)`, stored.filed === 0, false],
      [`ours: ${appNudges} nudges on ${APP_STREAM} for ${oursSent} requests${appNudges === oursSent ? '' : flushHint}`, oursSent > STREAM_MAX_LENGTH || appNudges === oursSent, false],
      [`reference: ${okFrom(ref)}/${refSent} requests answered 2xx`, okFrom(ref) === refSent, true],
      [`reference: ${refEntries} entries on ${REFERENCE_STREAM} for ${refSent} requests${refEntries === refSent ? '' : flushHint}`, refSent > STREAM_MAX_LENGTH || refEntries === refSent, false],
    ];
    for (const [text, ok, gating] of checks) if (!ok && gating) problems.push(text);

    // ---- report --------------------------------------------------------------------------
    const oursAll = combineResults('ours', ours.runs);
    const refAll = combineResults('reference', ref.runs);
    const tableRows = [];
    for (let i = 0; i < ROUNDS; i++) {
      tableRows.push(row('reference', `round ${i + 1}`, ref.runs[i]!));
      tableRows.push(row('ours', `round ${i + 1}`, ours.runs[i]!));
    }
    if (ROUNDS > 1) {
      tableRows.push(row('reference', 'all', refAll));
      tableRows.push(row('ours', 'all', oursAll));
    }
    console.log('');
    console.log(formatTable(['server', 'run', 'requests', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'], tableRows));
    console.log('');
    const ratio = oursAll.requestsPerSecond / refAll.requestsPerSecond;
    const perRound = ours.runs.map((r, i) => fixed(r.requestsPerSecond / ref.runs[i]!.requestsPerSecond, 2)).join(', ');
    const mark = (met: boolean) => (met ? 'met' : 'MISSED');
    console.log(`ratio (ours / reference) req/s = ${fixed(ratio, 2)} (target ≥ ${TARGET_RATIO.toFixed(2)}: ${mark(ratio >= TARGET_RATIO)})${ROUNDS > 1 ? `  [per round: ${perRound}]` : ''}`);
    console.log(`p99 ours = ${fixed(oursAll.p99, 1)} ms (target < ${TARGET_P99_MS} ms: ${mark(oursAll.p99 < TARGET_P99_MS)}); p99 reference = ${fixed(refAll.p99, 1)} ms`);
    // Where the CPU went: on a small machine the load generator, Postgres and Redis share the
    // cores with the server, so CPU per request bounds req/s more than any one process does.
    console.log('');
    console.log(`CPU per request (ms, from /proc; postgres and redis are machine-wide), ${os.cpus().length} CPUs:`);
    for (const [target, combined] of [
      [ref, refAll],
      [ours, oursAll],
    ] as const) {
      const parts = Object.entries(target.cpu).map(([group, ms]) => [group, ms / combined.responses] as const);
      const total = parts.reduce((sum, [, ms]) => sum + ms, 0);
      const wall = (combined.elapsedMs / combined.responses) * os.cpus().length;
      console.log(
        `  ${target.name.padEnd(9)} ${parts.map(([group, ms]) => `${group} ${fixed(ms, 3)}`).join(', ')}; total ${fixed(total, 3)} ` +
          `of ${fixed(wall, 3)} available (${fixed((100 * total) / wall, 0)}% busy)`,
      );
    }
    console.log('');
    console.log('checks:');
    for (const [text, ok, gating] of checks) console.log(`  ${ok ? 'ok  ' : gating ? 'FAIL' : 'warn'}  ${text}`);
    for (const problem of problems.filter((p) => !checks.some(([text]) => text === p))) console.log(`  FAIL  ${problem}`);
    return problems.length === 0 ? 0 : 1;
  } catch (error) {
    console.error(`webhook bench failed: ${(error as Error).stack ?? String(error)}`);
    return 2;
  } finally {
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
