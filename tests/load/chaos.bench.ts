/**
 * Chaos bench (issue 13; CONTRACT guarantees 1, 2, 3, 4, 12, 13): a few hundred WhatsApp
 * conversations over a few minutes, through the real API (src/server.ts) and CHAOS_WORKERS real
 * message worker processes, while the bench
 *   - SIGKILLs a random message worker at random moments (and starts a new one after a moment),
 *   - empties Redis (every key of the product's prefix: streams, groups, leases, heartbeats),
 *   - makes the OpenAI and Graph stand-ins fail (503 / Meta code 2 / 130429 with Retry-After)
 *     or hang for stretches, one of them longer than 10 leases,
 *   - has a human take over some conversations through POST /v1/conversations/:id/messages.
 * Then it lets the system drain and checks, from Postgres and what the Graph stand-in accepted:
 *   - every accepted customer message is answered exactly once (its token in one accepted bot
 *     send), or carries a status that says why (ignored after a takeover, stale, failed with an
 *     error, or answered by a reply a takeover cancelled and refunded);
 *   - replies go out in order per conversation; no bot reply goes out after a human's message;
 *   - the ledger sums to the balance and never dipped below zero; every reply charge belongs to
 *     a reply that was sent or was refunded.
 * It prints the counts and exits 1 on any loss, duplicate or broken rule (2 if it could not run).
 *
 * Its own Postgres database (mca_chaos_<random>, dropped at the end) and Redis keys
 * (`bench:<random>:` in logical database 12, deleted at the end); never the developer's.
 *
 * Env: CHAOS_DURATION_S (150) of load and faults, CHAOS_CONVERSATIONS (300), CHAOS_MESSAGES (3)
 * per conversation, CHAOS_WORKERS (3), CHAOS_LEASE_MS (1000: WORKER_LEASE_MS of the workers),
 * CHAOS_KILL_EVERY_MS (4000: mean gap between kills), CHAOS_TAKEOVER_PERCENT (10),
 * CHAOS_REDIS_EMPTIES (2), CHAOS_DRAIN_S (180: the most the end may wait for the backlog),
 * CHAOS_SEED (random; the same seed gives the same schedule), BENCH_DATABASE_URL, BENCH_REDIS_URL.
 */
import http from 'node:http';
import { sign, uniqueWamid, whatsappTextBody } from '../fixtures/meta';
import type { OpenAIStandin } from '../fixtures/standins/openaiStandin';
import { standinAccessToken, type GraphFault } from '../fixtures/standins/graphStandin';
import {
  api,
  Cleanup,
  type BenchDatabase,
  deleteKeysWithPrefix,
  envInt,
  formatTable,
  freePort,
  LOCALHOST,
  machineLine,
  postOnce,
  randomTag,
  sleep,
  startProcess,
  startServer,
  type ManagedProcess,
} from './lib';
import { startBenchStage } from './stage';

const DURATION_S = envInt('CHAOS_DURATION_S', 150, 10, 3_600);
const CONVERSATIONS = envInt('CHAOS_CONVERSATIONS', 300, 1, 100_000);
const MESSAGES = envInt('CHAOS_MESSAGES', 3, 1, 100);
const WORKERS = envInt('CHAOS_WORKERS', 3, 1, 32);
const LEASE_MS = envInt('CHAOS_LEASE_MS', 1_000, 200, 60_000);
const KILL_EVERY_MS = envInt('CHAOS_KILL_EVERY_MS', 4_000, 100, 600_000);
const TAKEOVER_PERCENT = envInt('CHAOS_TAKEOVER_PERCENT', 10, 0, 100);
const REDIS_EMPTIES = envInt('CHAOS_REDIS_EMPTIES', 2, 0, 100);
const DRAIN_S = envInt('CHAOS_DRAIN_S', 180, 10, 3_600);
const SEED = envInt('CHAOS_SEED', Math.floor(Math.random() * 1_000_000_000), 0, 2 ** 31);
/** Logical database 12, keys under a unique prefix: test suites FLUSHDB database 0. */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';
const NUMBERS_PER_TENANT = 2;
const TENANTS = 2;

/** mulberry32: a small seeded generator, so a failing schedule can be replayed (CHAOS_SEED). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = seeded(SEED);
const between = (min: number, max: number) => min + random() * (max - min);

interface Conversation {
  index: number;
  customer: string;
  number: string;
  tenant: Tenant;
  /** Seconds from the start at which each message is posted, ascending. */
  at: number[];
  /** When a human takes over (seconds from the start), if this conversation gets one. */
  takeoverAt?: number;
  accepted: Set<string>;
  humanText?: string;
  humanSent: boolean;
}

interface Tenant {
  userId: string;
  key: string;
  numbers: string[];
}

/** A stretch of one stand-in failing or hanging, seconds from the start. */
interface Fault {
  target: 'openai' | 'graph';
  from: number;
  to: number;
  what: string;
  apply: () => void;
}

async function seedTenant(base: string, adminKey: string, t: number): Promise<Tenant> {
  const tag = randomTag();
  const created = await api<{ user: { id: string }; api_key: string }>(base, 'POST', '/v1/users', adminKey, {
    name: `Chaos tenant ${t + 1}`,
    email: `chaos-${tag}@example.com`,
    credits: 1_000_000_000,
  }, 201);
  const agent = await api<{ id: string }>(base, 'POST', '/v1/agents', created.api_key, { name: 'Chaos agent', system_prompt: 'Be brief.' }, 201);
  const numbers: string[] = [];
  for (let i = 0; i < NUMBERS_PER_TENANT; i++) {
    const externalId = `10988${String(Date.now()).slice(-8)}${t}${i}`;
    const number = await api<{ id: string }>(base, 'POST', '/v1/phone-numbers', created.api_key, {
      channel: 'whatsapp',
      external_id: externalId,
      access_token: standinAccessToken('whatsapp', externalId),
    }, 201);
    await api(base, 'PUT', `/v1/phone-numbers/${number.id}/agent`, created.api_key, { agent_id: agent.id });
    numbers.push(externalId);
  }
  return { userId: created.user.id, key: created.api_key, numbers };
}

/** The faults of the run: short stretches of each kind, and one outage longer than 10 leases. */
function planFaults(openai: { setFault: (f: Parameters<OpenAIStandin['setFault']>[0]) => void }, graph: { setFault: (f: GraphFault | null) => void }): Fault[] {
  const span = DURATION_S * 0.8;
  const stretch = () => between(2, 6);
  const at = () => between(DURATION_S * 0.05, span);
  const long = Math.max(11 * (LEASE_MS / 1000), 12);
  const kinds: Array<Omit<Fault, 'from' | 'to'> & { length: number }> = [
    { target: 'openai', what: 'OpenAI 503', apply: () => openai.setFault({ status: 503 }), length: stretch() },
    { target: 'openai', what: 'OpenAI 429 with Retry-After 1 s', apply: () => openai.setFault({ status: 429, retryAfterSeconds: 1 }), length: stretch() },
    { target: 'openai', what: 'OpenAI hangs', apply: () => openai.setFault({ hang: true }), length: stretch() },
    { target: 'graph', what: 'Graph code 2 (HTTP 500)', apply: () => graph.setFault({ code: 2, kind: 'text' }), length: stretch() },
    { target: 'graph', what: 'Graph 130429 with Retry-After 1 s', apply: () => graph.setFault({ code: 130429, kind: 'text', retryAfterSeconds: 1 }), length: stretch() },
    { target: 'graph', what: 'Graph hangs', apply: () => graph.setFault({ hang: true, kind: 'text' }), length: stretch() },
    { target: random() < 0.5 ? 'openai' : 'graph', what: `long outage (${(long * 1000 / LEASE_MS).toFixed(0)} leases)`, apply: () => undefined, length: long },
  ];
  const longOne = kinds[kinds.length - 1]!;
  longOne.apply = longOne.target === 'openai' ? () => openai.setFault({ status: 503 }) : () => graph.setFault({ code: 2, kind: 'text' });
  longOne.what = `${longOne.target === 'openai' ? 'OpenAI' : 'Graph'} ${longOne.what}`;
  // One stand-in holds one fault at a time: stretches of the same target never overlap.
  const faults: Fault[] = [];
  for (const kind of kinds) {
    for (let tries = 0; tries < 100; tries++) {
      const from = at();
      const to = from + kind.length;
      if (faults.every((f) => f.target !== kind.target || to + 1 < f.from || from > f.to + 1)) {
        faults.push({ target: kind.target, what: kind.what, apply: kind.apply, from, to });
        break;
      }
    }
  }
  return faults.sort((a, b) => a.from - b.from);
}

interface Verdict {
  messages: number;
  accepted: number;
  answeredOnce: number;
  cancelledByTakeover: number;
  ignored: number;
  stale: number;
  failed: number;
  insufficient: number;
  duplicates: number;
  losses: number;
  outOfOrder: number;
  botAfterTakeover: number;
  replies: number;
  humanSends: number;
  refunds: number;
  ledgerProblems: string[];
  examples: string[];
}

async function main(): Promise<number> {
  const cleanup = new Cleanup();
  cleanup.exitOnSignals();
  try {
    const { prefix, appPrefix, database, redis, openai, graph } = await startBenchStage(cleanup, 'mca_chaos', REDIS_URL);
    const secret = `chaos-secret-${randomTag(8)}`;
    const adminKey = `chaos-admin-${randomTag(8)}`;

    const port = await freePort();
    const base = `http://${LOCALHOST}:${port}`;
    // Meta's side: statuses for what the Graph stand-in accepted (they settle sends in doubt).
    graph.setWebhooks({ url: `${base}/webhooks/meta`, appSecret: secret, delayMs: 30 });
    const env: NodeJS.ProcessEnv = {
      NODE_ENV: 'development',
      DATABASE_URL: database.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: appPrefix,
      LOG_LEVEL: process.env.BENCH_APP_LOG_LEVEL ?? 'warn',
      META_APP_SECRET: secret,
      ADMIN_API_KEY: adminKey,
      ENCRYPTION_KEY: randomTag(32),
      OPENAI_BASE_URL: openai.url,
      OPENAI_API_KEY: 'sk-chaos',
      OPENAI_TIMEOUT_MS: '2000',
      META_GRAPH_API_URL: graph.url,
      INSTAGRAM_GRAPH_API_URL: graph.url,
      WORKER_CONCURRENCY: '25',
      WORKER_LEASE_MS: String(LEASE_MS),
      SWEEPER_INTERVAL_MS: String(LEASE_MS),
      SEND_IN_DOUBT_GRACE_MS: String(Math.max(3_000, LEASE_MS * 3)),
      RETRY_BACKOFF_BASE_MS: '200',
      RETRY_BACKOFF_MAX_MS: String(Math.max(2_000, LEASE_MS * 3)),
      RATE_LIMIT_PER_MINUTE: '1000000',
      MIGRATE_ON_START: 'false',
    };
    const apiProc = await startServer({ name: 'API', script: 'src/server.ts', env: { ...env, PORT: String(port) }, readyUrl: `${base}/readyz` });
    cleanup.add('stop the API', () => apiProc.stop());
    let died: string | undefined;
    void apiProc.exited.then(({ code, signal }) => (died ??= `the API exited (code ${code}, signal ${signal}):\n${apiProc.output()}`));

    const tenants: Tenant[] = [];
    for (let t = 0; t < TENANTS; t++) tenants.push(await seedTenant(base, adminKey, t));

    // ---- the schedule ------------------------------------------------------------------------
    const conversations: Conversation[] = [];
    for (let i = 0; i < CONVERSATIONS; i++) {
      const tenant = tenants[i % TENANTS]!;
      const first = between(0, DURATION_S * 0.85);
      const at = [first];
      for (let m = 1; m < MESSAGES; m++) at.push(Math.min(DURATION_S, at[m - 1]! + between(1, 25)));
      const conversation: Conversation = {
        index: i,
        customer: String(15600000000 + i),
        number: tenant.numbers[Math.floor(i / TENANTS) % tenant.numbers.length]!,
        tenant,
        at,
        accepted: new Set(),
        humanSent: false,
      };
      if (random() * 100 < TAKEOVER_PERCENT) conversation.takeoverAt = between(first + 0.5, Math.min(DURATION_S, at[at.length - 1]! + 5));
      conversations.push(conversation);
    }
    const faults = planFaults(openai, graph);

    // ---- workers, killed and restarted ---------------------------------------------------------
    let workerSeq = 0;
    const workers = new Set<ManagedProcess>();
    const startWorker = () => {
      const worker = startProcess({ name: `message worker #${++workerSeq}`, script: 'scripts/worker-start.ts', args: ['message'], env });
      workers.add(worker);
      void worker.exited.then(() => workers.delete(worker));
      return worker;
    };
    cleanup.add('stop the workers', () => Promise.all([...workers].map((w) => w.stop(5_000))));
    for (let w = 0; w < WORKERS; w++) startWorker();

    console.log(
      `chaos bench: ${CONVERSATIONS} conversations × ${MESSAGES} messages over ${DURATION_S} s, ${WORKERS} message workers ` +
        `(WORKER_LEASE_MS=${LEASE_MS}), a SIGKILL every ~${KILL_EVERY_MS} ms, ${REDIS_EMPTIES} Redis empties, ${TAKEOVER_PERCENT}% takeovers, seed ${SEED}`,
    );
    console.log(`machine: ${machineLine()}`);
    console.log(`database ${database.name}, Redis ${REDIS_URL} prefix ${prefix}`);
    console.log(`faults: ${faults.map((f) => `${f.what} ${f.from.toFixed(0)}–${f.to.toFixed(0)} s`).join('; ')}`);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    cleanup.add('close the HTTP agent', () => agent.destroy());
    const webhookUrl = new URL(`${base}/webhooks/meta`);
    const start = Date.now();
    const elapsed = () => (Date.now() - start) / 1000;
    let stopChaos = false;
    let kills = 0;
    let empties = 0;
    let faultStretches = 0;
    let webhookRetries = 0;

    // Posts a customer's messages in order, each retried until Meta would get its 200.
    const customerLoop = async (c: Conversation) => {
      for (let m = 0; m < c.at.length; m++) {
        const wait = start + c.at[m]! * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        const token = `[c${c.index}-${m}]`;
        const body = whatsappTextBody({ phoneNumberId: c.number, from: c.customer, id: uniqueWamid(), text: `Message ${m + 1} ${token}` });
        const headers = { 'content-type': 'application/json', 'x-hub-signature-256': sign(body, secret) };
        for (let attempt = 0; attempt < 60; attempt++) {
          const result = await postOnce(agent, webhookUrl, body, headers);
          if (result.status === 200) {
            c.accepted.add(token);
            break;
          }
          webhookRetries++;
          await sleep(1_000);
        }
      }
    };
    const takeoverLoop = async (c: Conversation) => {
      if (c.takeoverAt === undefined) return;
      const wait = start + c.takeoverAt * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      c.humanText = `A human here, taking over [h${c.index}]`;
      for (let attempt = 0; attempt < 120 && !c.humanSent; attempt++) {
        const { rows } = await database.client.query<{ id: string }>(
          `SELECT id FROM conversations WHERE user_id = $1 AND customer_external_id = $2 AND is_active`,
          [c.tenant.userId, c.customer],
        );
        if (rows[0]) {
          const res = await fetch(`${base}/v1/conversations/${rows[0].id}/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${c.tenant.key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ text: c.humanText }),
          });
          if (res.status === 202) c.humanSent = true;
        }
        if (!c.humanSent) await sleep(500);
      }
    };
    const killLoop = async () => {
      while (!stopChaos) {
        await sleep(between(0.25, 1.75) * KILL_EVERY_MS);
        if (stopChaos) break;
        const alive = [...workers];
        const victim = alive[Math.floor(random() * alive.length)];
        if (!victim) continue;
        victim.child.kill('SIGKILL');
        kills++;
        await victim.exited;
        await sleep(between(200, 1_500));
        startWorker();
      }
    };
    const emptyLoop = async () => {
      const moments = Array.from({ length: REDIS_EMPTIES }, () => between(DURATION_S * 0.1, DURATION_S * 0.9)).sort((a, b) => a - b);
      for (const moment of moments) {
        const wait = start + moment * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        if (stopChaos) return;
        await deleteKeysWithPrefix(redis, appPrefix);
        empties++;
      }
    };
    const faultLoop = async () => {
      for (const fault of faults) {
        const wait = start + fault.from * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        if (stopChaos) return;
        fault.apply();
        faultStretches++;
        await sleep(Math.max(0, start + fault.to * 1000 - Date.now()));
        if (fault.target === 'openai') openai.setFault(null);
        else graph.setFault(null);
      }
    };
    const progress = setInterval(() => {
      const posted = conversations.reduce((n, c) => n + c.accepted.size, 0);
      process.stdout.write(`  ${elapsed().toFixed(0)} s: ${posted} messages accepted, ${graph.texts().filter((s) => s.accepted).length} sends accepted, ${kills} kills, ${empties} Redis empties, ${faultStretches} fault stretches\n`);
    }, 15_000);
    cleanup.add('stop the progress line', () => clearInterval(progress));

    const chaos = Promise.all([killLoop(), emptyLoop(), faultLoop()]);
    await Promise.all(conversations.flatMap((c) => [customerLoop(c), takeoverLoop(c)]));
    const loadEnd = elapsed();
    stopChaos = true;
    await chaos;
    openai.setFault(null);
    graph.setFault(null);
    while (workers.size < WORKERS) startWorker();
    if (died) throw new Error(died);

    // ---- drain ---------------------------------------------------------------------------------
    const drainStart = Date.now();
    let owed = -1;
    while (Date.now() - drainStart < DRAIN_S * 1000) {
      const { rows } = await database.client.query<{ owed: number }>(
        `SELECT (SELECT count(*) FROM messages WHERE status IN ('pending', 'queued'))::int
              + (SELECT count(*) FROM inbox)::int
              + (SELECT count(*) FROM outbound_parts WHERE status = 'sending')::int AS owed`,
      );
      owed = rows[0]!.owed;
      if (owed === 0) break;
      await sleep(500);
    }
    const drainS = (Date.now() - drainStart) / 1000;
    // Statuses of the last sends, and any late straggler, have a moment to land.
    await sleep(1_000);
    clearInterval(progress);

    const verdict = await check(database.client, conversations, graph.texts().filter((s) => s.accepted).map((s) => ({ to: s.to!, text: s.text ?? '', seq: s.seq })));
    const faultLines = faults.map((f) => `${f.what} ${(f.to - f.from).toFixed(1)} s`);
    console.log('');
    console.log(
      formatTable(
        ['messages', 'accepted', 'answered once', 'replies', 'human sends', 'kills', 'Redis empties', 'faults', 'duplicates', 'losses'],
        [[verdict.messages, verdict.accepted, verdict.answeredOnce, verdict.replies, verdict.humanSends, kills, empties, faultStretches, verdict.duplicates, verdict.losses]],
      ),
    );
    console.log('');
    console.log(`set aside with a status that says why: ${verdict.cancelledByTakeover} answered by a reply a takeover cancelled (refunds: ${verdict.refunds}), ${verdict.ignored} ignored (after a takeover), ${verdict.stale} stale, ${verdict.insufficient} insufficient_credits, ${verdict.failed} failed`);
    console.log(`order: ${verdict.outOfOrder} replies out of order; takeovers: ${conversations.filter((c) => c.humanSent).length}, ${verdict.botAfterTakeover} bot replies after a human's message`);
    console.log(`ledger: ${verdict.ledgerProblems.length === 0 ? 'balance = sum of the ledger, never below zero, charges = replies sent + refunds' : verdict.ledgerProblems.join('; ')}`);
    console.log(`faults: ${faultLines.join(', ')}; webhook POSTs retried: ${webhookRetries}`);
    console.log(`load ${loadEnd.toFixed(0)} s, drained in ${drainS.toFixed(1)} s${owed > 0 ? ` (NOT drained: ${owed} still owed)` : ''}`);
    for (const example of verdict.examples.slice(0, 10)) console.log(`  ${example}`);
    const bad = verdict.losses + verdict.duplicates + verdict.outOfOrder + verdict.botAfterTakeover + verdict.ledgerProblems.length;
    console.log(bad === 0 ? 'chaos: OK' : `chaos: FAILED (seed ${SEED})`);
    return bad === 0 ? 0 : 1;
  } catch (error) {
    console.error(`chaos bench could not run: ${(error as Error).stack ?? String(error)}`);
    return 2;
  } finally {
    await cleanup.run();
  }
}

/** The checks, from Postgres and the sends the Graph stand-in accepted (in acceptance order). */
async function check(
  client: BenchDatabase['client'],
  conversations: Conversation[],
  accepted: Array<{ to: string; text: string; seq: number }>,
): Promise<Verdict> {
  const verdict: Verdict = {
    messages: conversations.length * MESSAGES,
    accepted: 0,
    answeredOnce: 0,
    cancelledByTakeover: 0,
    ignored: 0,
    stale: 0,
    failed: 0,
    insufficient: 0,
    duplicates: 0,
    losses: 0,
    outOfOrder: 0,
    botAfterTakeover: 0,
    replies: 0,
    humanSends: 0,
    refunds: 0,
    ledgerProblems: [],
    examples: [],
  };
  const { rows } = await client.query<{ customer: string; direction: string; author: string; status: string; text: string; error_code: string | null }>(
    `SELECT c.customer_external_id AS customer, m.direction, m.author, m.status, m.text, m.error_code
       FROM messages m JOIN conversations c ON c.id = m.conversation_id ORDER BY c.created_at, m.sequence_no`,
  );
  const byCustomer = new Map<string, typeof rows>();
  for (const row of rows) byCustomer.set(row.customer, [...(byCustomer.get(row.customer) ?? []), row]);
  const sendsTo = new Map<string, typeof accepted>();
  for (const send of accepted) sendsTo.set(send.to, [...(sendsTo.get(send.to) ?? []), send]);
  const tokensOf = (text: string) => [...text.matchAll(/\[c(\d+)-(\d+)\]/g)].map((m) => `[c${m[1]}-${m[2]}]`);

  for (const c of conversations) {
    verdict.accepted += c.accepted.size;
    const stored = byCustomer.get(c.customer) ?? [];
    const sends = sendsTo.get(c.customer) ?? [];
    const botSends = sends.filter((s) => s.text.startsWith('Thanks! You said'));
    verdict.replies += botSends.length;
    verdict.humanSends += sends.filter((s) => s.text.startsWith('A human here')).length;
    const cancelledTokens = new Set(stored.filter((m) => m.author === 'agent' && m.status === 'cancelled').flatMap((m) => tokensOf(m.text)));
    for (const token of c.accepted) {
      const message = stored.find((m) => m.direction === 'inbound' && m.text.endsWith(token));
      const copies = botSends.filter((s) => s.text.includes(token)).length;
      if (copies > 1) {
        verdict.duplicates++;
        verdict.examples.push(`duplicate: ${token} in ${copies} replies to ${c.customer}`);
        continue;
      }
      if (!message) {
        verdict.losses++;
        verdict.examples.push(`lost: ${token} (accepted, never stored)`);
        continue;
      }
      if (message.status === 'answered' && copies === 1) verdict.answeredOnce++;
      else if (message.status === 'answered' && cancelledTokens.has(token)) verdict.cancelledByTakeover++;
      else if (message.status === 'ignored') verdict.ignored++;
      else if (message.status === 'stale') verdict.stale++;
      else if (message.status === 'insufficient_credits') verdict.insufficient++;
      else if (message.status === 'failed' && message.error_code) {
        verdict.failed++;
        verdict.examples.push(`failed (${message.error_code}): ${token}`);
      } else {
        verdict.losses++;
        verdict.examples.push(`lost: ${token} is ${message.status} with ${copies} replies sent`);
      }
    }
    // Order: each reply's newest token comes after the previous reply's.
    let last = -1;
    for (const send of botSends) {
      const newest = Math.max(...tokensOf(send.text).map((t) => Number(/-(\d+)\]/.exec(t)![1])));
      if (newest <= last) {
        verdict.outOfOrder++;
        verdict.examples.push(`out of order: ${c.customer}: "${send.text}" after message ${last + 1}`);
      }
      last = Math.max(last, newest);
    }
    // Takeover: no bot reply accepted after the human's message was.
    const human = sends.find((s) => s.text.startsWith('A human here'));
    if (human) {
      const after = botSends.filter((s) => s.seq > human.seq);
      verdict.botAfterTakeover += after.length;
      for (const send of after) verdict.examples.push(`bot after takeover: ${c.customer}: "${send.text}"`);
    }
  }

  const ledger = await client.query<{ balance: string; sum: string; min_running: string; charged: string; sent_charges: string; refunds: string; refund_count: number; unrefunded_cancelled: number; charged_unsent: number }>(
    `WITH running AS (
       SELECT user_id, sum(amount) OVER (PARTITION BY user_id ORDER BY created_at, id) AS running FROM credit_ledger
     ), replies AS (
       SELECT l.amount, m.status FROM credit_ledger l JOIN messages m ON m.id = l.message_id WHERE l.reason = 'reply'
     )
     SELECT (SELECT sum(credit_balance) FROM users) AS balance,
            (SELECT COALESCE(sum(amount), 0) FROM credit_ledger) AS sum,
            (SELECT COALESCE(min(running), 0) FROM running) AS min_running,
            (SELECT COALESCE(-sum(amount), 0) FROM replies) AS charged,
            (SELECT COALESCE(-sum(amount), 0) FROM replies WHERE status IN ('sent', 'delivered', 'read')) AS sent_charges,
            (SELECT COALESCE(sum(amount), 0) FROM credit_ledger WHERE reason = 'refund') AS refunds,
            (SELECT count(*) FROM credit_ledger WHERE reason = 'refund')::int AS refund_count,
            (SELECT count(*) FROM messages m WHERE m.status = 'cancelled' AND m.author = 'agent'
                AND EXISTS (SELECT 1 FROM credit_ledger l WHERE l.message_id = m.id AND l.reason = 'reply' AND l.amount < 0)
                AND NOT EXISTS (SELECT 1 FROM credit_ledger l WHERE l.message_id = m.id AND l.reason = 'refund'))::int AS unrefunded_cancelled,
            (SELECT count(*) FROM replies WHERE status NOT IN ('sent', 'delivered', 'read', 'cancelled'))::int AS charged_unsent`,
  );
  const l = ledger.rows[0]!;
  verdict.refunds = l.refund_count;
  if (l.balance !== l.sum) verdict.ledgerProblems.push(`balance ${l.balance} ≠ sum of the ledger ${l.sum}`);
  if (Number(l.min_running) < 0) verdict.ledgerProblems.push(`the ledger dipped to ${l.min_running}`);
  if (Number(l.charged) !== Number(l.sent_charges) + Number(l.refunds)) {
    verdict.ledgerProblems.push(`reply charges ${l.charged} ≠ replies sent ${l.sent_charges} + refunds ${l.refunds}`);
  }
  if (l.unrefunded_cancelled > 0) verdict.ledgerProblems.push(`${l.unrefunded_cancelled} cancelled replies not refunded`);
  if (l.charged_unsent > 0) verdict.ledgerProblems.push(`${l.charged_unsent} charged replies neither sent nor cancelled`);
  return verdict;
}

void main().then((code) => process.exit(code));
