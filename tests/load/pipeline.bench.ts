/**
 * Message pipeline benchmark: signed WhatsApp text webhooks → the real API (src/server.ts) →
 * Redis stream → ONE real message worker process (scripts/worker-start.ts message) → the local
 * OpenAI and Graph stand-ins (run in this process, so their recorded times share our clock).
 *
 * (a) throughput: BENCH_MESSAGES (4000) messages from BENCH_CUSTOMERS (¾ of them) customers
 *     over BENCH_NUMBERS (4) numbers, model latency 0, posted by BENCH_CONNECTIONS (10) keep-alive
 *     connections in a closed loop. Messages answered per second, from the first POST to the
 *     last Graph text send, next to `pgbench -N` TPS measured in this same command (before and
 *     after (a); their mean is the reference). Target: answered/s ≥ 0.05 × TPS.
 * (b) concurrency: BENCH_B_CONVERSATIONS (500) conversations, one message each, model latency
 *     BENCH_B_MODEL_MS (1000), a fresh worker with WORKER_CONCURRENCY = BENCH_WORKER_CONCURRENCY
 *     (50). Replies/s over the run (target ≥ 0.8 × WORKER_CONCURRENCY) and the worker's peak RSS
 *     (VmRSS every 100 ms; target < 200 MB).
 * (d) bursts: BENCH_D_CUSTOMERS (400) customers each writing BENCH_D_BURST (5) messages at once
 *     (a customer's messages are posted one after another, as people chat), model latency 0, the
 *     same closed loop; answered/s next to pgbench TPS measured right after (a) and right after
 *     (d) (their mean). Target: answered/s ≥ 0.06 × TPS.
 * (c) overhead: a light run, BENCH_C_MESSAGES (300) at BENCH_C_RATE (20)/s open loop, model
 *     latency BENCH_C_MODEL_MS (200): per message, webhook POST written → Graph stand-in got the
 *     text send, minus the model call as the OpenAI stand-in timed it. Targets p50 < 20 ms,
 *     p99 < 100 ms.
 *
 * Correctness (failures exit 1): every POST answered 200; every inbound message ends `answered`;
 * every message's unique token appears in exactly one accepted Graph text send to its customer;
 * per customer, Graph text sends = outbound replies stored as sent (one send per turn).
 * A missed target is reported, not failed. A process that fails to start or dies exits 2.
 *
 * Other env: BENCH_WARMUP (2000 messages first, not measured), BENCH_TENANTS (1), BENCH_PHASES ("a,b,c"),
 * BENCH_PGBENCH_SECONDS (15), BENCH_PGBENCH_SCALE (10), BENCH_APP_LOG_LEVEL (warn),
 * BENCH_APP_NODE_ARGS / BENCH_WORKER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"),
 * BENCH_DATABASE_URL, BENCH_REDIS_URL (redis://127.0.0.1:6379/12).
 */
import http from 'node:http';
import os from 'node:os';
import { Client } from 'pg';
import { sign, uniqueWamid, whatsappTextBody } from '../fixtures/meta';
import { type OpenAIStandin, type RecordedRequest } from '../fixtures/standins/openaiStandin';
import { standinAccessToken, type GraphStandin, type RecordedSend } from '../fixtures/standins/graphStandin';
import {
  api,
  benchRedis,
  Cleanup,
  cpuDelta,
  cpuSnapshot,
  createScratchDatabase,
  databaseTransactions,
  DEFAULT_DATABASE_URL,
  envInt,
  fixed,
  formatTable,
  freePort,
  LOCALHOST,
  machineBusyShare,
  machineCpu,
  machineLine,
  nowMs,
  percentile,
  pidsNamed,
  postOnce,
  processStatusKb,
  randomTag,
  runPgbench,
  sampleRss,
  sleep,
  startProcess,
  startServer,
  type BenchDatabase,
  type CpuGroups,
  type ManagedProcess,
  type PgbenchRun,
  type PostResult,
} from './lib';
import { startBenchStage } from './stage';

const MESSAGES = envInt('BENCH_MESSAGES', 4000);
const CUSTOMERS = envInt('BENCH_CUSTOMERS', Math.round(MESSAGES * 0.75));
const NUMBERS = envInt('BENCH_NUMBERS', 4, 1, 50);
/**
 * Tenants the numbers are shared among. Every reply of a tenant charges its one balance row,
 * so one tenant's replies queue on that row's lock: with 1 (the default) (a) measures a single
 * tenant's ceiling; with more, the machine's.
 */
const TENANTS = envInt('BENCH_TENANTS', 1, 1, NUMBERS);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 10, 1, 200);
/**
 * Fresh processes need thousands of messages before V8 has compiled their hot paths: measured
 * after 300, the API, the worker and the stand-ins used ~25% more CPU per reply than after 2000.
 */
const WARMUP = envInt('BENCH_WARMUP', 2000, 0);
const WORKER_CONCURRENCY = envInt('BENCH_WORKER_CONCURRENCY', 50, 1, 10_000);
const B_CONVERSATIONS = envInt('BENCH_B_CONVERSATIONS', 500);
const B_MODEL_MS = envInt('BENCH_B_MODEL_MS', 1000, 0, 60_000);
const C_MESSAGES = envInt('BENCH_C_MESSAGES', 300);
const C_RATE = envInt('BENCH_C_RATE', 20, 1, 10_000);
const C_MODEL_MS = envInt('BENCH_C_MODEL_MS', 200, 0, 60_000);
const PGBENCH_SECONDS = envInt('BENCH_PGBENCH_SECONDS', 15, 1, 600);
const PGBENCH_SCALE = envInt('BENCH_PGBENCH_SCALE', 10, 1, 1000);
const PHASES = new Set((process.env.BENCH_PHASES ?? 'a,d,b,c').split(',').map((p) => p.trim()).filter(Boolean));
const APP_LOG_LEVEL = process.env.BENCH_APP_LOG_LEVEL ?? 'warn';
const APP_NODE_ARGS = (process.env.BENCH_APP_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const WORKER_NODE_ARGS = (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
/** Logical database 12, keys under a unique prefix: test suites FLUSHDB database 0. */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';

const D_CUSTOMERS = envInt('BENCH_D_CUSTOMERS', 400);
const D_BURST = envInt('BENCH_D_BURST', 5, 1, 100);

const TARGET_RATIO = 0.08;
const TARGET_D_RATIO = 0.06;
const TARGET_REPLIES_SHARE = 0.8;
const TARGET_RSS_MB = 200;
const TARGET_P50_MS = 20;
const TARGET_P99_MS = 100;

if (CUSTOMERS * 2 < MESSAGES || CUSTOMERS > MESSAGES) {
  throw new Error(`BENCH_CUSTOMERS must be between BENCH_MESSAGES/2 and BENCH_MESSAGES (got ${CUSTOMERS} for ${MESSAGES})`);
}

const TEXTS = [
  'Hola! Do you have this jacket in size M?',
  'Hi, I ordered running shoes last Tuesday (order #48213) and tracking still says "label created". Has it shipped?',
  'Quanto custa a entrega para Belo Horizonte? E vocês aceitam Pix?',
  'Thanks! 👍',
  'Is the store on Calle Mayor open on Sunday?',
  "I received the blender but the lid is cracked 😞 What's the return process?",
  'Bonjour, est-ce que le modèle bleu est encore disponible en 42 ? Merci !',
  'ok',
];
const NAMES = ['José García', 'Anh Nguyễn', 'Chloé Martin', 'Priya Sharma', 'Lukas Müller', 'Sakura 田中'];
/** Every message carries `[<phase>-<index>]`; the stand-in's echo reply repeats it. */
const TOKEN = /\[([wabcd]-\d+)\]/g;

type PhaseKey = 'w' | 'a' | 'b' | 'c' | 'd';

interface PhaseSpec {
  key: PhaseKey;
  label: string;
  messages: number;
  customers: number;
  /**
   * Set: each customer's messages are consecutive, this many each (a burst written at once).
   * Unset: every customer writes once first, then the first ones again.
   */
  burst?: number;
  modelMs: number;
  /** POSTs in flight at most. */
  connections: number;
  /** Open loop at this rate; closed loop (as fast as answered) when undefined. */
  ratePerSecond?: number;
  timeoutMs: number;
}

interface Tracked {
  token: string;
  customer: string;
  body: string;
  headers: Record<string, string>;
  post?: PostResult;
}

interface Latencies {
  count: number;
  /** Per message: POST written → Graph got the text, minus the model call. */
  overhead: Float64Array;
  /** POST written → model request arrived. */
  beforeModel: Float64Array;
  /** Model answer written → Graph got the text. */
  afterModel: Float64Array;
  /** POST written → 200 read (the webhook alone). */
  ingest: Float64Array;
  model: Float64Array;
  skipped: number;
}

interface PhaseResult {
  spec: PhaseSpec;
  tracked: Tracked[];
  elapsedMs: number;
  /** First text send → last text send, for a steady-state rate. */
  sendSpanMs: number;
  /** First POST written → last POST answered. */
  postSpanMs: number;
  /** POST written → 200 read, every message, ascending. */
  postLatencies: Float64Array;
  answered: number;
  turns: number;
  completions: number;
  peakModelInFlight: number;
  /**
   * From the first model call's start to the last one's end: the share of WORKER_CONCURRENCY
   * slots spent inside model calls, and the mean slot time per reply spent outside them (the
   * worker's own work per turn, plus any time a slot sat empty).
   */
  slots?: { modelShare: number; outsideMsPerReply: number; firstCallAfterPostMs: number; lastSendAfterCallMs: number };
  cpu: Record<string, number>;
  /** Share of all cores busy machine-wide (everyone's processes) during the phase. */
  machineBusy: number;
  /** Postgres transactions in the bench database during the phase (API + worker). */
  xacts: number;
  rss: { peakKb: number; samples: number };
  latencies?: Latencies;
  problems: string[];
  warnings: string[];
}

interface Context {
  database: BenchDatabase;
  openai: OpenAIStandin;
  graph: GraphStandin;
  webhookUrl: URL;
  agent: http.Agent;
  secret: string;
  numbers: string[];
  api: ManagedProcess;
  worker: () => ManagedProcess;
  /** Set when a process we did not stop exits. */
  died: () => string | undefined;
  /** A connection to the server's `postgres` database, for pg_stat_database. */
  stats: Client;
  /** Queries this bench ran on the bench database (subtracted from its transaction count). */
  ownQueries: number;
}

const sorted = (values: number[]) => Float64Array.from(values).sort();

function buildMessages(ctx: Context, spec: PhaseSpec): Tracked[] {
  const base = { w: 15551000000, a: 15552000000, b: 15553000000, c: 15554000000, d: 15555000000 }[spec.key];
  const tracked: Tracked[] = [];
  for (let i = 0; i < spec.messages; i++) {
    // A burst: each customer's messages one after another. Otherwise first one message from
    // every customer, then second messages from the first ones.
    const customer = spec.burst ? Math.floor(i / spec.burst) : i % spec.customers;
    const from = String(base + customer);
    const token = `${spec.key}-${i}`;
    const body = whatsappTextBody({
      phoneNumberId: ctx.numbers[customer % ctx.numbers.length]!,
      from,
      name: NAMES[customer % NAMES.length],
      id: uniqueWamid(),
      text: `${TEXTS[i % TEXTS.length]} [${token}]`,
    });
    tracked.push({
      token,
      customer: from,
      body,
      headers: { 'content-type': 'application/json', 'user-agent': 'facebookexternalua', 'x-hub-signature-256': sign(body, ctx.secret) },
    });
  }
  return tracked;
}

async function postAll(ctx: Context, spec: PhaseSpec, tracked: Tracked[]): Promise<void> {
  let next = 0;
  const start = nowMs();
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= tracked.length) return;
      if (spec.ratePerSecond) {
        const wait = start + (i * 1000) / spec.ratePerSecond - nowMs();
        if (wait > 1) await sleep(wait);
      }
      const message = tracked[i]!;
      if (ctx.died()) {
        message.post = { status: 0, sentAt: nowMs(), doneAt: nowMs(), error: 'not sent: a process died' };
        continue;
      }
      message.post = await postOnce(ctx.agent, ctx.webhookUrl, message.body, message.headers);
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.connections, tracked.length) }, lane));
}

/** The most requests overlapping in time (sweep over start/end). */
function peakOverlap(requests: RecordedRequest[]): number {
  const events: Array<[number, number]> = [];
  for (const r of requests) events.push([r.startedAt, 1], [r.endedAt ?? nowMs(), -1]);
  events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let current = 0;
  let peak = 0;
  for (const [, delta] of events) peak = Math.max(peak, (current += delta));
  return peak;
}

function slotUse(calls: RecordedRequest[], firstPost: number, lastSendAt: number): PhaseResult['slots'] {
  const ended = calls.filter((c) => c.endedAt !== undefined);
  if (ended.length === 0) return undefined;
  const start = Math.min(...ended.map((c) => c.startedAt));
  const end = Math.max(...ended.map((c) => c.endedAt!));
  const inModel = ended.reduce((sum, c) => sum + (c.endedAt! - c.startedAt), 0);
  const capacity = WORKER_CONCURRENCY * (end - start);
  return {
    modelShare: inModel / capacity,
    outsideMsPerReply: (capacity - inModel) / ended.length,
    firstCallAfterPostMs: start - firstPost,
    lastSendAfterCallMs: lastSendAt - end,
  };
}

interface CustomerRow {
  customer: string;
  conversation_ids: string[];
  inbound: number;
  answered: number;
  pending: number;
  sent: number;
  unsent: number;
}

async function customerRows(ctx: Context, customers: string[]): Promise<CustomerRow[]> {
  ctx.ownQueries++;
  const { rows } = await ctx.database.client.query<CustomerRow>(
    `SELECT c.customer_external_id AS customer,
            array_agg(DISTINCT c.id::text) AS conversation_ids,
            count(*) FILTER (WHERE m.direction = 'inbound')::int AS inbound,
            count(*) FILTER (WHERE m.direction = 'inbound' AND m.status = 'answered')::int AS answered,
            count(*) FILTER (WHERE m.direction = 'inbound' AND m.status = 'pending')::int AS pending,
            count(*) FILTER (WHERE m.direction = 'outbound' AND m.status = 'sent')::int AS sent,
            count(*) FILTER (WHERE m.direction = 'outbound' AND m.status <> 'sent')::int AS unsent
       FROM conversations c JOIN messages m ON m.conversation_id = c.id
      WHERE c.customer_external_id = ANY($1)
      GROUP BY c.customer_external_id`,
    [customers],
  );
  return rows;
}

async function sentExternalIds(ctx: Context, customers: string[]): Promise<string[]> {
  ctx.ownQueries++;
  const { rows } = await ctx.database.client.query<{ external_id: string }>(
    `SELECT m.external_id FROM conversations c JOIN messages m ON m.conversation_id = c.id
      WHERE c.customer_external_id = ANY($1) AND m.direction = 'outbound' AND m.status = 'sent'`,
    [customers],
  );
  return rows.map((r) => r.external_id);
}

async function runPhase(ctx: Context, spec: PhaseSpec): Promise<PhaseResult> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const tracked = buildMessages(ctx, spec);
  const customers = new Set(tracked.map((m) => m.customer));
  const tokens = new Map<string, number>(tracked.map((m) => [m.token, 0]));
  ctx.openai.setLatency(spec.modelMs);

  const worker = ctx.worker();
  const workerPid = worker.child.pid!;
  const groups: CpuGroups = {
    api: () => [ctx.api.child.pid!],
    worker: () => [workerPid],
    'bench (load+stand-ins)': () => [process.pid],
    postgres: () => pidsNamed('postgres'),
    redis: () => pidsNamed('redis-server'),
  };
  // The Graph stand-in stamps Date.now(); everything else here is nowMs().
  const graphOffset = Date.now() - nowMs();
  const sendsFrom = ctx.graph.sends.length;
  const requestsFrom = ctx.openai.requests.length;
  const xactsBefore = await databaseTransactions(ctx.stats, ctx.database.name);
  const ownBefore = ctx.ownQueries;
  const rss = sampleRss(workerPid, 100);
  const machineBefore = machineCpu();
  const before = cpuSnapshot(groups);
  const startedAt = nowMs();

  let postingDone = false;
  const posting = postAll(ctx, spec, tracked).finally(() => (postingDone = true));

  // Watch the Graph stand-in until every token has been sent (or time runs out).
  const phaseTexts: RecordedSend[] = [];
  const badSends: RecordedSend[] = [];
  let scanned = sendsFrom;
  let seen = 0;
  let lastSendAt = Number.NaN;
  const deadline = startedAt + spec.timeoutMs;
  const scan = () => {
    const sends = ctx.graph.sends;
    while (scanned < sends.length) {
      const send = sends[scanned]!;
      if (send.status === undefined) break; // still being answered
      scanned++;
      if (send.kind !== 'text' || !send.to || !customers.has(send.to)) continue;
      if (!send.ok) {
        badSends.push(send);
        continue;
      }
      phaseTexts.push(send);
      lastSendAt = send.receivedAt - graphOffset;
      for (const match of (send.text ?? '').matchAll(TOKEN)) {
        const count = tokens.get(match[1]!);
        if (count === undefined) continue;
        if (count === 0) seen++;
        tokens.set(match[1]!, count + 1);
      }
    }
  };
  let timedOut = false;
  for (;;) {
    scan();
    if (postingDone && seen === tracked.length) break;
    if (postingDone && tracked.some((m) => m.post?.status !== 200) && seen === tracked.filter((m) => m.post?.status === 200).length) break;
    if (ctx.died()) break;
    if (nowMs() > deadline) {
      timedOut = true;
      break;
    }
    await sleep(20);
  }
  const after = cpuSnapshot(groups);
  const machineAfter = machineCpu();
  const rssResult = rss.stop();
  await posting;
  if (ctx.died()) throw new Error(`${spec.label}: ${ctx.died()}`);
  if (timedOut) problems.push(`${spec.label}: only ${seen}/${tracked.length} messages answered within ${spec.timeoutMs / 1000} s`);

  // Settle: nothing left pending or queued for these customers, then a moment for strays.
  const customerList = [...customers];
  const settleBy = nowMs() + 15_000;
  let rows = await customerRows(ctx, customerList);
  while (rows.some((r) => r.pending > 0 || r.unsent > 0) && nowMs() < settleBy && !timedOut) {
    await sleep(100);
    rows = await customerRows(ctx, customerList);
  }
  // Strays (a second send) would arrive now; backends report transactions within ~1 s.
  await sleep(1_500);
  scan();
  const xacts = (await databaseTransactions(ctx.stats, ctx.database.name)) - xactsBefore - (ctx.ownQueries - ownBefore);
  rows = await customerRows(ctx, customerList);

  // ---- checks ----------------------------------------------------------------------------
  const postFailures = tracked.filter((m) => m.post?.status !== 200);
  if (postFailures.length > 0) {
    const example = postFailures[0]!.post;
    problems.push(`${spec.label}: ${postFailures.length} webhook POSTs not answered 200 (e.g. ${example?.status} ${example?.error ?? ''})`);
  }
  const inbound = rows.reduce((n, r) => n + r.inbound, 0);
  const answered = rows.reduce((n, r) => n + r.answered, 0);
  if (inbound !== tracked.length) problems.push(`${spec.label}: ${inbound} inbound messages stored for ${tracked.length} posted`);
  if (answered !== inbound) problems.push(`${spec.label}: ${answered}/${inbound} inbound messages ended answered`);
  // Every message reached the model and its reply went out: its token is echoed in a send.
  const missing = [...tokens].filter(([, n]) => n === 0).map(([t]) => t);
  if (missing.length > 0) problems.push(`${spec.label}: ${missing.length} messages never echoed in a Graph text send (e.g. ${missing.slice(0, 3).join(', ')})`);
  // A token echoed twice is not a second send: the model was shown an already answered
  // message again (see the README: the reply to it is left out of the next turn's history).
  const reshown = [...tokens].filter(([, n]) => n > 1).length;
  if (reshown > 0) warnings.push(`${spec.label}: ${reshown} already answered messages were shown to the model again in a later turn (its echo repeats them)`);
  if (badSends.length > 0) problems.push(`${spec.label}: ${badSends.length} Graph text sends refused (e.g. ${badSends[0]!.status} ${badSends[0]!.errorCode})`);
  // One send per turn: per customer, accepted text sends = replies stored as sent, never more
  // sends than messages, exactly one for a customer who wrote once; and each send's Meta id is
  // stored on exactly one reply (a reply sent twice leaves an id no reply holds).
  const messagesPerCustomer = new Map<string, number>();
  for (const m of tracked) messagesPerCustomer.set(m.customer, (messagesPerCustomer.get(m.customer) ?? 0) + 1);
  const sendsPerCustomer = new Map<string, number>();
  for (const send of phaseTexts) sendsPerCustomer.set(send.to!, (sendsPerCustomer.get(send.to!) ?? 0) + 1);
  const mismatched = rows.filter((r) => {
    const sends = sendsPerCustomer.get(r.customer) ?? 0;
    const wrote = messagesPerCustomer.get(r.customer) ?? 0;
    return sends !== r.sent || r.unsent > 0 || sends > wrote || (wrote === 1 && sends !== 1);
  });
  if (mismatched.length > 0) {
    const r = mismatched[0]!;
    problems.push(
      `${spec.label}: ${mismatched.length} customers whose Graph text sends ≠ replies stored as sent (e.g. ${r.customer}: wrote ${messagesPerCustomer.get(r.customer)}, ` +
        `${sendsPerCustomer.get(r.customer) ?? 0} sends, ${r.sent} replies sent, ${r.unsent} not sent)`,
    );
  }
  const storedIds = await sentExternalIds(ctx, customerList);
  const sentIds = phaseTexts.map((s) => s.externalId ?? '');
  const storedSet = new Set(storedIds);
  const unmatched = sentIds.filter((id) => !storedSet.has(id)).length;
  if (unmatched > 0 || new Set(sentIds).size !== storedIds.length || storedSet.size !== storedIds.length) {
    problems.push(`${spec.label}: ${sentIds.length} Graph text sends vs ${storedIds.length} Meta ids stored on replies (${unmatched} sends no reply holds: duplicates)`);
  }
  const turns = rows.reduce((n, r) => n + r.sent, 0);
  const conversationOf = new Map<string, string>();
  const customerOf = new Map<string, string>();
  for (const r of rows) {
    if (r.conversation_ids.length !== 1) warnings.push(`${spec.label}: customer ${r.customer} has ${r.conversation_ids.length} conversations`);
    conversationOf.set(r.customer, r.conversation_ids[0]!);
    for (const id of r.conversation_ids) customerOf.set(id, r.customer);
  }
  const completions = ctx.openai.requests
    .slice(requestsFrom)
    .filter((r) => r.path === '/v1/chat/completions' && r.conversationKey !== undefined && customerOf.has(r.conversationKey));
  const answeredCalls = completions.filter((r) => r.outcome === 'answered');
  if (completions.length !== turns) warnings.push(`${spec.label}: ${completions.length} model calls for ${turns} replies (retries or rolled-back turns)`);

  // ---- timing ----------------------------------------------------------------------------
  const firstPost = Math.min(...tracked.map((m) => m.post?.sentAt ?? Number.POSITIVE_INFINITY));
  const sendTimes = phaseTexts.map((s) => s.receivedAt - graphOffset);
  const elapsedMs = lastSendAt - firstPost;
  const sendSpanMs = sendTimes.length > 1 ? Math.max(...sendTimes) - Math.min(...sendTimes) : Number.NaN;
  const posted = tracked.filter((m) => m.post !== undefined).map((m) => m.post!);
  const postSpanMs = Math.max(...posted.map((p) => p.doneAt)) - firstPost;
  const postLatencies = sorted(posted.map((p) => p.doneAt - p.sentAt));

  let latencies: Latencies | undefined;
  if (spec.customers === spec.messages) {
    // One message per conversation: one model call and one send each, so times pair up.
    const callsBy = new Map<string, RecordedRequest[]>();
    for (const call of answeredCalls) callsBy.set(call.conversationKey!, [...(callsBy.get(call.conversationKey!) ?? []), call]);
    const sendBy = new Map<string, RecordedSend[]>();
    for (const send of phaseTexts) sendBy.set(send.to!, [...(sendBy.get(send.to!) ?? []), send]);
    const overhead: number[] = [];
    const beforeModel: number[] = [];
    const afterModel: number[] = [];
    const ingest: number[] = [];
    const model: number[] = [];
    let skipped = 0;
    for (const message of tracked) {
      const calls = callsBy.get(conversationOf.get(message.customer) ?? '') ?? [];
      const sends = sendBy.get(message.customer) ?? [];
      if (calls.length !== 1 || sends.length !== 1 || !message.post || calls[0]!.endedAt === undefined) {
        skipped++;
        continue;
      }
      const call = calls[0]!;
      const sentToGraph = sends[0]!.receivedAt - graphOffset;
      const modelMs = call.endedAt! - call.startedAt;
      model.push(modelMs);
      overhead.push(sentToGraph - message.post.sentAt - modelMs);
      beforeModel.push(call.startedAt - message.post.sentAt);
      afterModel.push(sentToGraph - call.endedAt!);
      ingest.push(message.post.doneAt - message.post.sentAt);
    }
    if (skipped > 0) warnings.push(`${spec.label}: ${skipped} messages left out of the latency figures (not exactly one model call and one send)`);
    latencies = {
      count: overhead.length,
      overhead: sorted(overhead),
      beforeModel: sorted(beforeModel),
      afterModel: sorted(afterModel),
      ingest: sorted(ingest),
      model: sorted(model),
      skipped,
    };
  }

  return {
    spec,
    tracked,
    elapsedMs,
    sendSpanMs,
    postSpanMs,
    postLatencies,
    answered,
    turns,
    completions: completions.length,
    peakModelInFlight: peakOverlap(completions),
    slots: slotUse(answeredCalls, firstPost, lastSendAt),
    cpu: cpuDelta(before, after),
    machineBusy: machineBusyShare(machineBefore, machineAfter),
    xacts,
    rss: rssResult,
    latencies,
    problems,
    warnings,
  };
}

// ---------------------------------------------------------------------------------------------

/** `TENANTS` tenants, each with an agent, sharing `NUMBERS` WhatsApp numbers, made through the API. */
async function seedThroughApi(base: string, adminKey: string): Promise<{ numbers: string[] }> {
  const numbers: string[] = [];
  for (let tenant = 0; tenant < TENANTS; tenant++) {
    const count = Math.floor(NUMBERS / TENANTS) + (tenant < NUMBERS % TENANTS ? 1 : 0);
    numbers.push(...(await seedTenant(base, adminKey, count, numbers.length)));
  }
  return { numbers };
}

/** A tenant, an agent and `count` WhatsApp numbers linked to it. */
async function seedTenant(base: string, adminKey: string, count: number, firstNumber: number): Promise<string[]> {
  const tag = randomTag();
  const created = await api<{ user: { id: string }; api_key: string }>(base, 'POST', '/v1/users', adminKey, {
    name: 'Pipeline bench tenant',
    email: `pipeline-bench-${tag}@example.com`,
    credits: 1_000_000_000,
  }, 201);
  const key = created.api_key;
  const agent = await api<{ id: string }>(base, 'POST', '/v1/agents', key, {
    name: 'Bench agent',
    system_prompt: 'You are the shop assistant. Be brief.',
  }, 201);
  const numbers: string[] = [];
  for (let i = firstNumber; i < firstNumber + count; i++) {
    const externalId = `10987${String(Date.now()).slice(-8)}${i}`;
    const number = await api<{ id: string }>(base, 'POST', '/v1/phone-numbers', key, {
      channel: 'whatsapp',
      external_id: externalId,
      display_name: `Bench number ${i + 1}`,
      access_token: standinAccessToken('whatsapp', externalId),
    }, 201);
    await api(base, 'PUT', `/v1/phone-numbers/${number.id}/agent`, key, { agent_id: agent.id });
    numbers.push(externalId);
  }
  return numbers;
}

/** Starts a message worker and waits for its first heartbeat (it is reading by then). */
async function startWorker(env: NodeJS.ProcessEnv, redis: ReturnType<typeof benchRedis>, heartbeatKey: string, label: string): Promise<ManagedProcess> {
  const worker = startProcess({ name: label, script: 'scripts/worker-start.ts', args: ['message'], env, nodeArgs: WORKER_NODE_ARGS });
  let exited = false;
  void worker.exited.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${label} exited during startup:\n${worker.output()}`);
    const beats = await redis.hvals(heartbeatKey);
    if (beats.some((beat) => (JSON.parse(beat) as { pid?: number }).pid === worker.child.pid)) return worker;
    await sleep(100);
  }
  await worker.stop(2_000);
  throw new Error(`${label} sent no heartbeat within 30 s:\n${worker.output()}`);
}

const mb = (kb: number) => kb / 1024;
const mark = (met: boolean) => (met ? 'met' : 'MISSED');

async function main(): Promise<number> {
  const cleanup = new Cleanup();
  cleanup.exitOnSignals();
  const problems: string[] = [];
  const warnings: string[] = [];
  try {
    const { prefix, appPrefix, database, redis, openai, graph } = await startBenchStage(cleanup, 'mca_bench', REDIS_URL);
    const secret = `bench-secret-${randomTag(8)}`;
    const adminKey = `bench-admin-${randomTag(8)}`;

    const env: NodeJS.ProcessEnv = {
      NODE_ENV: 'development',
      DATABASE_URL: database.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: appPrefix,
      LOG_LEVEL: APP_LOG_LEVEL,
      META_APP_SECRET: secret,
      ADMIN_API_KEY: adminKey,
      ENCRYPTION_KEY: randomTag(32),
      OPENAI_BASE_URL: openai.url,
      OPENAI_API_KEY: 'sk-bench',
      META_GRAPH_API_URL: graph.url,
      INSTAGRAM_GRAPH_API_URL: graph.url,
      WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
      MIGRATE_ON_START: 'false',
    };
    const port = await freePort();
    const base = `http://${LOCALHOST}:${port}`;
    const apiProc = await startServer({
      name: 'API (src/server.ts)',
      script: 'src/server.ts',
      nodeArgs: APP_NODE_ARGS,
      env: { ...env, PORT: String(port) },
      readyUrl: `${base}/readyz`,
    });
    cleanup.add('stop the API', () => apiProc.stop());

    let deathNote: string | undefined;
    const expectedStops = new Set<ManagedProcess>();
    const watch = (proc: ManagedProcess) =>
      void proc.exited.then(({ code, signal }) => {
        if (!expectedStops.has(proc)) deathNote ??= `${proc.name} (pid ${proc.child.pid}) exited (code ${code}, signal ${signal}):\n${proc.output()}`;
      });
    watch(apiProc);

    const seed = await seedThroughApi(base, adminKey);
    const heartbeatKey = `${appPrefix}{workers}:heartbeat`;
    let worker = await startWorker(env, redis, heartbeatKey, 'message worker #1');
    cleanup.add('stop the worker', () => worker.stop());
    watch(worker);

    const statsUrl = new URL(process.env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL);
    statsUrl.pathname = '/postgres';
    const stats = new Client({ connectionString: statsUrl.toString() });
    await stats.connect();
    cleanup.add('close the stats connection', () => stats.end());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    cleanup.add('close the HTTP agent', () => agent.destroy());
    const ctx: Context = {
      database,
      openai,
      graph,
      webhookUrl: new URL(`${base}/webhooks/meta`),
      agent,
      secret,
      numbers: seed.numbers,
      api: apiProc,
      worker: () => worker,
      died: () => deathNote,
      stats,
      ownQueries: 0,
    };

    console.log(
      `pipeline bench: webhook → API → stream → 1 message worker (WORKER_CONCURRENCY=${WORKER_CONCURRENCY}) → OpenAI/Graph stand-ins (in the bench process); ` +
        `${NUMBERS} WhatsApp numbers of ${TENANTS} tenant(s), LOG_LEVEL=${APP_LOG_LEVEL}`,
    );
    console.log(`machine: ${machineLine()}`);
    console.log(`database ${database.name}, Redis ${REDIS_URL} prefix ${prefix}, API pid ${apiProc.child.pid}, worker pid ${worker.child.pid}`);

    const results: PhaseResult[] = [];
    const run = async (spec: PhaseSpec) => {
      const result = await runPhase(ctx, spec);
      problems.push(...result.problems);
      warnings.push(...result.warnings);
      process.stdout.write(
        `  ${spec.label}: ${result.answered} answered in ${result.turns} replies, ${fixed(result.elapsedMs / 1000, 1)} s → ${fixed((result.answered * 1000) / result.elapsedMs, 1)} answered/s` +
          `${result.problems.length ? ` (${result.problems.length} problems)` : ''}\n`,
      );
      return result;
    };

    if (WARMUP > 0) {
      await run({ key: 'w', label: 'warm-up', messages: WARMUP, customers: WARMUP, modelMs: 0, connections: CONNECTIONS, timeoutMs: 60_000 + WARMUP * 100 });
      // A fresh database's first autovacuum/autoanalyze would otherwise land in a measured run.
      await database.client.query('VACUUM (ANALYZE) messages, conversations, credit_ledger, users');
    }

    // ---- (a) throughput, between two pgbench runs -------------------------------------------
    const pgbench: PgbenchRun[] = [];
    let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
    if (PHASES.has('a') || PHASES.has('d')) {
      const created = await createScratchDatabase('mca_bench_pgbench');
      scratch = created;
      cleanup.add(`drop database ${created.name}`, () => created.drop());
      await runPgbench(created.url, ['-i', '-q', '-s', String(PGBENCH_SCALE)], 300_000);
    }
    const pg = async (when: string) => {
      const reference = ['-N', '-c', '10', '-j', '2', '-T', String(PGBENCH_SECONDS)];
      const result = await runPgbench(scratch!.url, reference, PGBENCH_SECONDS * 1000 + 60_000);
      pgbench.push(result);
      process.stdout.write(`  pgbench ${when}: ${fixed(result.tps, 0)} TPS (${result.failed} failed, latency ${fixed(result.latencyMs, 2)} ms)\n`);
    };
    let phaseA: PhaseResult | undefined;
    let pgbenchA: PgbenchRun[] = [];
    if (PHASES.has('a')) {
      await pg('before (a)');
      phaseA = await run({
        key: 'a',
        label: '(a) throughput',
        messages: MESSAGES,
        customers: CUSTOMERS,
        modelMs: 0,
        connections: CONNECTIONS,
        timeoutMs: 120_000 + MESSAGES * 100,
      });
      results.push(phaseA);
      await pg('after (a)');
      pgbenchA = pgbench.slice(-2);
    }

    // ---- (d) bursts: several messages per customer at once, then pgbench again ------------------
    let phaseD: PhaseResult | undefined;
    let pgbenchD: PgbenchRun[] = [];
    if (PHASES.has('d')) {
      if (!PHASES.has('a')) await pg('before (d)');
      phaseD = await run({
        key: 'd',
        label: `(d) bursts ${D_CUSTOMERS}×${D_BURST}`,
        messages: D_CUSTOMERS * D_BURST,
        customers: D_CUSTOMERS,
        burst: D_BURST,
        modelMs: 0,
        connections: CONNECTIONS,
        timeoutMs: 120_000 + D_CUSTOMERS * D_BURST * 100,
      });
      results.push(phaseD);
      await pg('after (d)');
      // The runs on either side of (d): the last before it and the one after.
      pgbenchD = pgbench.slice(-2);
    }
    await scratch?.drop();

    // ---- (c) overhead at a light load ----------------------------------------------------------
    let phaseC: PhaseResult | undefined;
    if (PHASES.has('c')) {
      phaseC = await run({
        key: 'c',
        label: '(c) overhead',
        messages: C_MESSAGES,
        customers: C_MESSAGES,
        modelMs: C_MODEL_MS,
        connections: 50,
        ratePerSecond: C_RATE,
        timeoutMs: 60_000 + (C_MESSAGES * 1000) / C_RATE,
      });
      results.push(phaseC);
    }

    // ---- (b) concurrency, in a fresh worker --------------------------------------------------
    let phaseB: PhaseResult | undefined;
    let bHighWaterKb: number | undefined;
    if (PHASES.has('b')) {
      expectedStops.add(worker);
      await worker.stop();
      worker = await startWorker(env, redis, heartbeatKey, 'message worker #2');
      watch(worker);
      process.stdout.write(`  fresh worker for (b): pid ${worker.child.pid}, VmRSS at start ${fixed(mb(processStatusKb(worker.child.pid!, 'VmRSS') ?? Number.NaN), 1)} MB\n`);
      phaseB = await run({
        key: 'b',
        label: '(b) concurrency',
        messages: B_CONVERSATIONS,
        customers: B_CONVERSATIONS,
        modelMs: B_MODEL_MS,
        connections: CONNECTIONS,
        timeoutMs: 60_000 + ((B_CONVERSATIONS * Math.max(B_MODEL_MS, 10)) / WORKER_CONCURRENCY) * 4,
      });
      bHighWaterKb = processStatusKb(worker.child.pid!, 'VmHWM');
      results.push(phaseB);
    }
    openai.setLatency(0);

    // ---- report ----------------------------------------------------------------------------
    const cores = os.cpus().length;
    console.log('');
    console.log(
      formatTable(
        ['phase', 'messages', 'customers', 'model ms', 'POSTs/s', 'POST→200 p50/p99 ms', 'replies', 'model calls', 'peak calls in flight', 'elapsed s', 'answered/s', 'replies/s', 'steady replies/s', 'worker peak RSS MB'],
        results.map((r) => [
          r.spec.label,
          r.tracked.length,
          r.spec.customers,
          r.spec.modelMs,
          fixed((r.tracked.length * 1000) / r.postSpanMs, 0),
          `${fixed(percentile(r.postLatencies, 50), 1)} / ${fixed(percentile(r.postLatencies, 99), 1)}`,
          r.turns,
          r.completions,
          r.peakModelInFlight,
          fixed(r.elapsedMs / 1000, 2),
          fixed((r.answered * 1000) / r.elapsedMs, 1),
          fixed((r.turns * 1000) / r.elapsedMs, 1),
          fixed(((r.turns - 1) * 1000) / r.sendSpanMs, 1),
          fixed(mb(r.rss.peakKb), 1),
        ]),
      ),
    );

    console.log('');
    console.log(`CPU ms per reply (from /proc; postgres and redis are machine-wide), ${cores} CPUs:`);
    console.log(
      formatTable(
        ['phase', ...Object.keys(results[0]?.cpu ?? {}), 'total', 'ours: busy of all cores', 'machine-wide busy', 'PG xacts/reply'],
        results.map((r) => {
          const total = Object.values(r.cpu).reduce((a, b) => a + b, 0);
          return [
            r.spec.label,
            ...Object.values(r.cpu).map((ms) => fixed(ms / r.turns, 2)),
            fixed(total / r.turns, 2),
            `${fixed((100 * total) / (r.elapsedMs * cores), 0)}%`,
            `${fixed(100 * r.machineBusy, 0)}%`,
            fixed(r.xacts / r.turns, 1),
          ];
        }),
      ),
    );
    console.log('');
    console.log('CPU ms per answered message (a reply may answer several of a customer\'s messages):');
    console.log(
      formatTable(
        ['phase', ...Object.keys(results[0]?.cpu ?? {}), 'total', 'PG xacts/answered'],
        results.map((r) => {
          const total = Object.values(r.cpu).reduce((x, y) => x + y, 0);
          return [r.spec.label, ...Object.values(r.cpu).map((ms) => fixed(ms / r.answered, 2)), fixed(total / r.answered, 2), fixed(r.xacts / r.answered, 1)];
        }),
      ),
    );

    const slotRows = results.filter((r) => r.spec.key === 'b' && r.slots);
    for (const r of slotRows) {
      const slots = r.slots!;
      console.log('');
      console.log(
        `${r.spec.label}: the ${WORKER_CONCURRENCY} slots spent ${fixed(100 * slots.modelShare, 1)}% of the time from the first model call to the last inside model calls; ` +
          `${fixed(slots.outsideMsPerReply, 1)} ms of slot time per reply went elsewhere. First model call ${fixed(slots.firstCallAfterPostMs, 0)} ms after the first POST, ` +
          `last send ${fixed(slots.lastSendAfterCallMs, 0)} ms after the last model answer.`,
      );
    }

    const latencyRows = results.filter((r) => r.latencies && r.latencies.count > 0);
    if (latencyRows.length > 0) {
      console.log('');
      console.log('Per message, ms (POST = webhook request written; model = the stand-in call; Graph = text send received):');
      const pct = (values: Float64Array) => `${fixed(percentile(values, 50), 1)} / ${fixed(percentile(values, 99), 1)}`;
      console.log(
        formatTable(
          ['phase', 'n', 'overhead p50 / p99', 'POST→200', 'POST→model call', 'model', 'model answer→Graph'],
          latencyRows.map((r) => [r.spec.label, r.latencies!.count, pct(r.latencies!.overhead), pct(r.latencies!.ingest), pct(r.latencies!.beforeModel), pct(r.latencies!.model), pct(r.latencies!.afterModel)]),
        ),
      );
      console.log('  (each cell p50 / p99; overhead = (POST→model call) + (model answer→Graph); in (b) it includes waiting for a free slot)');
    }

    console.log('');
    const targets: Array<Array<string | number>> = [];
    const againstPgbench = (key: string, phase: PhaseResult, runs: PgbenchRun[], target: number) => {
      if (runs.length === 0) return;
      const answeredPerSecond = (phase.answered * 1000) / phase.elapsedMs;
      const repliesPerSecond = (phase.turns * 1000) / phase.elapsedMs;
      const tps = runs.reduce((sum, r) => sum + r.tps, 0) / runs.length;
      const ratio = answeredPerSecond / tps;
      targets.push([`${key} messages answered/s`, fixed(answeredPerSecond, 1), '', '']);
      targets.push([`${key} pgbench -N -c 10 -j 2 -T ${PGBENCH_SECONDS} TPS (mean of ${runs.map((r) => fixed(r.tps, 0)).join(', ')})`, fixed(tps, 0), '', '']);
      targets.push([`${key} answered/s ÷ pgbench TPS`, fixed(ratio, 4), `≥ ${target}`, mark(ratio >= target)]);
      targets.push([`${key} replies/s ÷ pgbench TPS (info: replies, not messages)`, fixed(repliesPerSecond / tps, 4), '', '']);
    };
    if (phaseA) againstPgbench('(a)', phaseA, pgbenchA, TARGET_RATIO);
    if (phaseD) againstPgbench('(d)', phaseD, pgbenchD, TARGET_D_RATIO);
    if (phaseB) {
      const repliesPerSecond = (phaseB.turns * 1000) / phaseB.elapsedMs;
      const target = TARGET_REPLIES_SHARE * WORKER_CONCURRENCY;
      const peakMb = mb(phaseB.rss.peakKb);
      targets.push([`(b) replies/s, model ${B_MODEL_MS} ms, WORKER_CONCURRENCY=${WORKER_CONCURRENCY}`, fixed(repliesPerSecond, 1), `≥ ${fixed(target, 1)}`, mark(repliesPerSecond >= target)]);
      targets.push([`(b) worker peak RSS, MB (VmRSS every 100 ms, ${phaseB.rss.samples} samples; VmHWM ${fixed(mb(bHighWaterKb ?? Number.NaN), 1)})`, fixed(peakMb, 1), `< ${TARGET_RSS_MB}`, mark(peakMb < TARGET_RSS_MB)]);
    }
    if (phaseC?.latencies && phaseC.latencies.count > 0) {
      const p50 = percentile(phaseC.latencies.overhead, 50);
      const p99 = percentile(phaseC.latencies.overhead, 99);
      targets.push([`(c) overhead p50, ms (${C_MESSAGES} msgs at ${C_RATE}/s, model ${C_MODEL_MS} ms)`, fixed(p50, 1), `< ${TARGET_P50_MS}`, mark(p50 < TARGET_P50_MS)]);
      targets.push(['(c) overhead p99, ms', fixed(p99, 1), `< ${TARGET_P99_MS}`, mark(p99 < TARGET_P99_MS)]);
    }
    console.log(formatTable(['figure', 'value', 'target', 'result'], targets));

    console.log('');
    console.log('checks:');
    for (const r of results) {
      if (r.problems.length === 0) console.log(`  ok    ${r.spec.label}: ${r.tracked.length} POSTs 200, all answered, each message in exactly one text send, sends = replies stored`);
    }
    for (const warning of warnings) console.log(`  warn  ${warning}`);
    for (const problem of problems) console.log(`  FAIL  ${problem}`);
    return problems.length === 0 ? 0 : 1;
  } catch (error) {
    console.error(`pipeline bench failed: ${(error as Error).stack ?? String(error)}`);
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
