/**
 * `npm run demo`: the whole product, offline, for someone with Postgres and Redis and no Meta or
 * OpenAI account. It runs the REAL product (`npm start`'s supervisor, its API and its workers,
 * as OS processes) against local stand-ins for OpenAI and Meta's Graph API, sets a tenant up
 * through the REST API, plays customers with signed webhooks in Meta's exact shapes, and prints
 * what a business would see: each conversation, the credits charged and the extracted lead.
 *
 * Everything it makes is its own and goes away at the end: a fresh database
 * (`multichannel_demo_<random>`), a Redis key prefix in a logical database of its own, the
 * stand-ins and the processes. The product's logs go to a file, not to the transcript.
 *
 * `runDemo()` returns what happened as data, so a test asserts on the same run a person reads.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// The demo creates and drops its own database, which the product's pool cannot do.
import { Client } from 'pg';
import Redis from 'ioredis';
import { config } from '../src/config';
import { migrate } from '../src/utils/migrator';
import { isWorkerKind } from '../src/workers/kinds';
import { startOpenAIStandin, trailingUserText, type ChatRequestBody, type OpenAIStandin } from '../tests/fixtures/standins/openaiStandin';
import { startGraphStandin, type GraphStandin } from '../tests/fixtures/standins/graphStandin';
import { freePort, ROOT } from '../tests/fixtures/processes';
import { instagramTextWebhook, newWamid, postSignedWebhook, whatsappStatusWebhook, whatsappTextWebhook, type WhatsAppStatus } from './simulate';

// ---------------------------------------------------------------------------------------------
// The cast and the set

/** The product's development defaults, set explicitly so a developer's `.env` cannot change them. */
const ADMIN_API_KEY = 'dev-admin-key';
const META_APP_SECRET = 'dev-app-secret';

const DEBOUNCE_MS = 1_500;
const MODEL_LATENCY_MS = 300;
const EXTRACTION_IDLE_SECONDS = 3;
/**
 * Test suites FLUSHDB Redis database 0 (and the benches use 12); a logical database of the
 * demo's own keeps a concurrent `npm test` from wiping its streams mid-run.
 */
const DEMO_REDIS_DB = 11;

/** The ids of the shared Meta fixtures, so the demo's webhooks look like the real samples. */
const WHATSAPP_NUMBER = '109876543210123';
const INSTAGRAM_ACCOUNT = '17841455500000001';

const ANA = { waId: '15550001111', name: 'Ana Silva' };
const BEN = { waId: '15550002222', name: 'Ben Carter' };
const INSTAGRAM_CUSTOMER = '6021000000000011';

const SCRIPT = {
  firstQuestion: 'Hi! Do you have the blue tote bag in stock?',
  burst: ["I'd like to order two", 'one of them in navy blue', 'and can you deliver to Lisbon?'],
  duplicate: 'My name is Ana Silva, my email is ana.silva@example.com and my phone is +351 912 345 678',
  instagram: 'Hi! Is the blue tote bag still available?',
  benQuestion: 'Hello, my bag arrived with a broken strap. Can I get a refund?',
  human: "Hi Ben, this is Maria from Demo Shop. I'm so sorry! I'll arrange your refund myself today.",
  benWhilePaused: 'Thank you Maria, that is very kind!',
  benAfterResume: 'One more thing: do you deliver on Saturdays?',
};

/**
 * The stand-in model's voice: a deterministic shop assistant that quotes what the customer just
 * said (every message since its last answer, so a debounced burst shows up whole) and adds a
 * canned line for what it recognises.
 */
export function shopAssistantReply(request: ChatRequestBody): string {
  const said = trailingUserText(request.messages ?? []).replace(/\s+/g, ' ').trim();
  const lower = said.toLowerCase();
  const name = /\b[Mm]y name is\s+(\p{Lu}\p{L}+)/u.exec(said)?.[1];
  const parts = [name ? `Nice to meet you, ${name}!` : 'Hi, thanks for writing to Demo Shop!'];
  // Instagram takes 1000 bytes a message: keep the quote short enough for any channel.
  parts.push(`You said: "${said.length > 300 ? `${said.slice(0, 297)}...` : said}".`);
  if (/\b(tote|bag|stock|available)\b/.test(lower) && !/\brefund\b/.test(lower)) parts.push('Yes, the blue tote bag is in stock at €29.');
  if (/\b(order|buy|reserve)\b/.test(lower)) parts.push('I can reserve them for you right away.');
  if (/\b(deliver|delivery|ship|shipping)\b/.test(lower)) parts.push('We deliver in 2–3 working days, Saturdays included.');
  if (/\b(refund|return|broken|damaged)\b/.test(lower)) parts.push('I am sorry to hear that; a colleague will take care of it.');
  if (name) parts.push('I have noted your details.');
  if (parts.length === 2) parts.push('How else can I help?');
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// What a run returns

export interface TranscriptMessage {
  sequenceNo: number;
  direction: 'inbound' | 'outbound';
  author: 'customer' | 'agent' | 'human';
  text: string | null;
  status: string;
  externalId: string | null;
  error?: { code: string; message: string | null };
}

export interface Transcript {
  conversationId: string;
  channel: 'whatsapp' | 'instagram';
  customer: { externalId: string; name: string | null };
  botPaused: boolean;
  messages: TranscriptMessage[];
}

export interface CreditsReport {
  balance: number;
  ledgerSum: number;
  /** Credits taken by charges (a positive number). */
  charged: number;
  entries: Array<{ amount: number; reason: string; messageId: string | null; conversationId: string | null; createdAt: string }>;
}

export type LeadReport =
  | { status: 'extracted'; conversationId: string; fields: Record<string, unknown>; summary: string | null; extractedAt: string }
  | { status: 'unavailable'; reason: string }
  | { status: 'timeout'; waitedMs: number }
  | { status: 'not_reached' };

export interface DemoCheck {
  name: string;
  passed: boolean;
  detail: string;
}

/** The customers' message ids, so a reader (or a test) can find each scene in the transcripts. */
export interface DemoScenes {
  whatsappPhoneNumberId: string;
  firstQuestion: string;
  burst: string[];
  duplicate: string;
  instagram: string;
  benQuestion: string;
  benWhilePaused: string;
  benAfterResume: string;
}

export interface DemoResult {
  ok: boolean;
  /** What failed, when something did. */
  error?: string;
  elapsedMs: number;
  database: string;
  redisPrefix: string;
  logFile: string;
  extractionAvailable: boolean;
  scenes: Partial<DemoScenes>;
  transcripts: Transcript[];
  credits: CreditsReport | null;
  lead: LeadReport;
  /** Text messages Meta's Graph API (the stand-in) accepted. */
  graphTextSends: number;
  supervisorExitCode: number | null | undefined;
  checks: DemoCheck[];
}

export interface DemoOptions {
  /** Where the transcript goes, one line at a time; default stdout. */
  log?: (line: string) => void;
  /** Aborting stops the scenes and goes straight to the clean-up (Ctrl-C). */
  signal?: AbortSignal;
  /** How long to wait for the lead before reporting it missing. */
  extractionTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Small tools

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const clip = (text: string | null, max = 60) => {
  const flat = (text ?? '').replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};
const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error));

const INTERRUPTED = 'interrupted (Ctrl-C)';

class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Polls `check` until it returns a value; every wait in the demo is bounded by `timeoutMs`. */
async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${secs(timeoutMs)} waiting for ${what}`);
    await sleep(150, signal);
  }
}

/** Numbered steps with ✓/✗ and times, so a newcomer sees where the demo is and how long things take. */
class Progress {
  private count = 0;
  constructor(
    private readonly log: (line: string) => void,
    private readonly startedAt: number,
  ) {}

  async step<T>(title: string, run: () => Promise<T>, summary?: (value: T) => string): Promise<T> {
    const number = ++this.count;
    const began = Date.now();
    this.log(`${String(number).padStart(2)}. ${title}`);
    try {
      const value = await run();
      const detail = summary ? `${summary(value)} ` : '';
      this.log(`    ✓ ${detail}(${secs(Date.now() - began)}; ${secs(Date.now() - this.startedAt)} in)`);
      return value;
    } catch (error) {
      this.log(`    ✗ failed after ${secs(Date.now() - began)}: ${describeError(error)}`);
      throw error;
    }
  }

  /** A step whose failure is reported but does not stop the demo (clean-up must go on). */
  async attempt(title: string, run: () => Promise<string>): Promise<boolean> {
    try {
      await this.step(title, run, (detail) => detail);
      return true;
    } catch {
      return false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The product as OS processes

interface Product {
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
    exitCode: undefined,
    children: [],
    workersStarted: [],
    troubles: [],
  };
  void product.exited.then((code) => {
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

// ---------------------------------------------------------------------------------------------
// The REST API, as a tenant's dashboard would call it

interface ApiConversation {
  id: string;
  channel: 'whatsapp' | 'instagram';
  customer: { external_id: string; name: string | null };
  bot_paused: boolean;
  created_at: string;
}
interface ApiMessage {
  id: string;
  sequence_no: number;
  direction: 'inbound' | 'outbound';
  author: 'customer' | 'agent' | 'human';
  text: string | null;
  status: string;
  external_id: string | null;
  error?: { code: string; message: string | null };
}
interface ApiLedgerEntry {
  amount: number;
  reason: string;
  message_id: string | null;
  conversation_id: string | null;
  created_at: string;
}
interface ApiExtraction {
  conversation_id: string;
  fields: Record<string, unknown>;
  summary: string | null;
  extracted_at: string;
  up_to_sequence_no: number;
}
interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** One bounded request; anything but an expected status is an error naming the call. */
  async call<T>(method: string, route: string, key: string, options: { body?: unknown; expect?: number[] } = {}): Promise<{ status: number; body: T }> {
    if (this.signal?.aborted) throw new Aborted();
    const timeout = AbortSignal.timeout(10_000);
    let response: Response;
    try {
      response = await fetch(new URL(route, this.baseUrl), {
        method,
        headers: { authorization: `Bearer ${key}`, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
        signal: this.signal ? AbortSignal.any([this.signal, timeout]) : timeout,
      });
    } catch (error) {
      if (this.signal?.aborted) throw new Aborted();
      // fetch says only "fetch failed"; the cause (ECONNREFUSED, a timeout) is what helps.
      const cause = (error as { cause?: unknown }).cause;
      throw new Error(`${method} ${route}: ${describeError(cause ?? error)}`);
    }
    const text = await response.text();
    const expected = options.expect ?? [200, 201, 202, 204];
    if (!expected.includes(response.status)) throw new Error(`${method} ${route} answered ${response.status}: ${clip(text, 300)}`);
    return { status: response.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  async get<T>(route: string, key: string): Promise<T> {
    return (await this.call<T>('GET', route, key)).body;
  }

  async post<T>(route: string, key: string, body?: unknown): Promise<T> {
    return (await this.call<T>('POST', route, key, { body })).body;
  }

  /** Every item of a cursor-paginated list. */
  async all<T>(route: string, key: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const separator = route.includes('?') ? '&' : '?';
      const page: Page<T> = await this.get<Page<T>>(`${route}${separator}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, key);
      items.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading the transcripts

/** The agent's messages that answer `externalId`: those after it, up to the next customer message. */
export function agentRepliesAfter(transcript: Transcript, externalId: string): TranscriptMessage[] {
  const index = transcript.messages.findIndex((m) => m.direction === 'inbound' && m.externalId === externalId);
  if (index < 0) return [];
  const replies: TranscriptMessage[] = [];
  for (const message of transcript.messages.slice(index + 1)) {
    if (message.direction === 'inbound') break;
    if (message.author === 'agent') replies.push(message);
  }
  return replies;
}

const DELIVERED_STATUSES = ['sent', 'delivered', 'read'];

function toTranscript(conversation: ApiConversation, messages: ApiMessage[]): Transcript {
  return {
    conversationId: conversation.id,
    channel: conversation.channel,
    customer: { externalId: conversation.customer.external_id, name: conversation.customer.name },
    botPaused: conversation.bot_paused,
    messages: messages.map((m) => ({
      sequenceNo: m.sequence_no,
      direction: m.direction,
      author: m.author,
      text: m.text,
      status: m.status,
      externalId: m.external_id,
      ...(m.error ? { error: m.error } : {}),
    })),
  };
}

function customerLabel(transcript: Pick<Transcript, 'channel' | 'customer'>): string {
  const channel = transcript.channel === 'whatsapp' ? 'WhatsApp' : 'Instagram';
  const who = transcript.customer.name ?? `customer ${transcript.customer.externalId}`;
  return `${channel} · ${who}${transcript.customer.name ? ` (${transcript.customer.externalId})` : ''}`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.replace(/\s+/g, ' ').trim().split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines;
}

function printTranscript(log: (line: string) => void, transcript: Transcript): void {
  const header = `── ${customerLabel(transcript)} ${transcript.botPaused ? '· bot paused ' : ''}`;
  log('');
  log(`  ${header}${'─'.repeat(Math.max(3, 88 - header.length))}`);
  const width = 64;
  for (const message of transcript.messages) {
    const error = message.error ? ` (${message.error.code})` : '';
    const lines = wrap(message.text ?? `[${message.direction}]`, width);
    lines.forEach((line, index) => {
      // The status sits on the first line, right of the text column.
      if (index === 0) log(`    ${message.author.padEnd(9)} ${line.padEnd(width)}  ${message.status}${error}`);
      else log(`    ${''.padEnd(9)} ${line}`);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface Tenant {
  userId: string;
  apiKey: string;
  whatsappId: string;
  instagramId: string;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const signal = options.signal;
  const startedAt = Date.now();
  const id = randomBytes(4).toString('hex');
  const progress = new Progress(log, startedAt);

  const database = `multichannel_demo_${id}`;
  const databaseUrl = new URL(config.DATABASE_URL);
  databaseUrl.pathname = `/${database}`;
  const adminUrl = new URL(config.DATABASE_URL);
  adminUrl.pathname = '/postgres';
  const redisUrl = new URL(config.REDIS_URL);
  redisUrl.pathname = `/${DEMO_REDIS_DB}`;
  const redisPrefix = `demo:${id}:`;
  const logFile = path.join(os.tmpdir(), `multichannel-demo-${id}.log`);

  const result: DemoResult = {
    ok: false,
    elapsedMs: 0,
    database,
    redisPrefix,
    logFile,
    extractionAvailable: isWorkerKind('extraction'),
    scenes: { whatsappPhoneNumberId: WHATSAPP_NUMBER },
    transcripts: [],
    credits: null,
    lead: { status: 'not_reached' },
    graphTextSends: 0,
    supervisorExitCode: undefined,
    checks: [],
  };

  let openai: OpenAIStandin | undefined;
  let graph: GraphStandin | undefined;
  let product: Product | undefined;
  let logStream: WriteStream | undefined;
  let databaseTouched = false;
  // If the demo process dies unexpectedly, do not leave the product running behind it.
  const killOnExit = () => {
    if (product && product.child.exitCode === null && product.child.signalCode === null) {
      try {
        process.kill(-product.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killOnExit);

  log(`Multi-channel AI agent: offline demo (database ${database}, Redis db ${DEMO_REDIS_DB} prefix ${redisPrefix})`);
  log('');

  try {
    // ---- the set -------------------------------------------------------------------------
    await progress.step(
      'Check Postgres and Redis, create a fresh demo database',
      async () => {
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
        // From here on there may be a database to drop, whatever happens next.
        databaseTouched = true;
        return migrate(databaseUrl.toString());
      },
      (migrated) => `database ${database} created, ${migrated.applied.length} migrations applied`,
    );

    await progress.step(
      'Start the stand-ins for OpenAI and for Meta’s Graph API (in this process, on 127.0.0.1)',
      async () => {
        openai = await startOpenAIStandin({ latencyMs: MODEL_LATENCY_MS, reply: shopAssistantReply, apiKey: 'demo' });
        graph = await startGraphStandin();
        return { openai, graph };
      },
      (s) => `OpenAI at ${s.openai.url} (${MODEL_LATENCY_MS} ms a reply), Graph API at ${s.graph.url}`,
    );

    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const api = new ApiClient(baseUrl, signal);
    await progress.step(
      'Start the product as `npm start` does: the supervisor, its API and its workers',
      async () => {
        logStream = createWriteStream(logFile);
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          NODE_ENV: 'development',
          PORT: String(port),
          DATABASE_URL: databaseUrl.toString(),
          REDIS_URL: redisUrl.toString(),
          REDIS_KEY_PREFIX: redisPrefix,
          ADMIN_API_KEY,
          META_APP_SECRET,
          META_VERIFY_TOKEN: 'dev-verify-token',
          // A fresh key a run: the demo's tokens are encrypted with a key nobody else has.
          ENCRYPTION_KEY: randomBytes(32).toString('hex'),
          OPENAI_API_KEY: 'demo',
          OPENAI_BASE_URL: openai!.url,
          OPENAI_MODEL: 'gpt-4o-mini',
          META_GRAPH_API_URL: graph!.url,
          INSTAGRAM_GRAPH_API_URL: graph!.url,
          EXTRACTION_IDLE_SECONDS: String(EXTRACTION_IDLE_SECONDS),
          MESSAGE_WORKERS: '1',
          EXTRACTION_WORKERS: '1',
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
        product = startProduct(env, baseUrl, logFile, logStream);
        const current = product;
        await waitUntil(
          'GET /readyz to answer 200 and every worker to start',
          async () => {
            if (current.exitCode !== undefined) throw new Error(`the supervisor exited (${current.exitCode}) while starting`);
            const ready = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
              (response) => response.status === 200,
              () => false,
            );
            const workers = current.children.filter((name) => name !== 'api').length;
            return ready && workers > 0 && current.workersStarted.length >= workers ? true : undefined;
          },
          60_000,
          signal,
        );
        return current;
      },
      (p) => `${baseUrl} is ready; processes: supervisor + ${p.children.join(', ')}; logs in ${logFile}`,
    );

    // ---- the business --------------------------------------------------------------------
    const tenant = await progress.step(
      'Set up a business through the REST API: tenant with credits, agent, WhatsApp number, Instagram account',
      async (): Promise<Tenant> => {
        const created = await api.post<{ user: { id: string }; api_key: string }>('/v1/users', ADMIN_API_KEY, {
          name: 'Demo Shop',
          email: 'demo@example.com',
          credits: 10_000,
        });
        const key = created.api_key;
        const agent = await api.post<{ id: string }>('/v1/agents', key, {
          name: 'Shop assistant',
          system_prompt: 'You are the friendly shop assistant of Demo Shop, a small bag store. Answer briefly.',
          debounce_ms: DEBOUNCE_MS,
          fallback_message: 'Thanks for your message! A member of our team will get back to you shortly.',
        });
        const whatsapp = await api.post<{ id: string }>('/v1/phone-numbers', key, {
          channel: 'whatsapp',
          external_id: WHATSAPP_NUMBER,
          display_name: 'Demo Shop WhatsApp',
          access_token: 'EAAG-demo-whatsapp-token',
        });
        const instagram = await api.post<{ id: string }>('/v1/phone-numbers', key, {
          channel: 'instagram',
          external_id: INSTAGRAM_ACCOUNT,
          display_name: '@demoshop',
          access_token: 'IGAA-demo-instagram-token',
        });
        for (const number of [whatsapp, instagram]) {
          await api.call('PUT', `/v1/phone-numbers/${number.id}/agent`, key, { body: { agent_id: agent.id } });
        }
        return { userId: created.user.id, apiKey: key, whatsappId: whatsapp.id, instagramId: instagram.id };
      },
      () => `"Demo Shop" with 10000 credits; agent "Shop assistant" (debounce ${DEBOUNCE_MS} ms) on WhatsApp ${WHATSAPP_NUMBER} and Instagram ${INSTAGRAM_ACCOUNT}`,
    );

    // ---- helpers bound to this run --------------------------------------------------------
    const sendWebhook = async (body: string) => {
      if (signal?.aborted) throw new Aborted();
      const answer = await postSignedWebhook(baseUrl, body, META_APP_SECRET).catch((error: Error) => {
        if (signal?.aborted) throw new Aborted();
        throw new Error(`POST /webhooks/meta: ${describeError((error as { cause?: unknown }).cause ?? error)}`);
      });
      if (answer.status !== 200) throw new Error(`the webhook answered ${answer.status}: ${clip(answer.body, 200)}`);
      return answer.status;
    };
    const customerSays = (customer: { waId: string; name: string }, text: string, messageId = newWamid()) =>
      sendWebhook(whatsappTextWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: customer.waId, name: customer.name, text, id: messageId })).then(() => messageId);
    const messagesOf = async (conversationId: string) =>
      api.all<ApiMessage>(`/v1/conversations/${conversationId}/messages`, tenant.apiKey);
    const conversationOf = (phoneNumberId: string, customer: string) =>
      waitUntil(
        `the conversation with ${customer}`,
        async () => {
          const list = await api.all<ApiConversation>(`/v1/conversations?phone_number_id=${phoneNumberId}&is_active=true`, tenant.apiKey);
          return list.find((c) => c.customer.external_id === customer);
        },
        10_000,
        signal,
      );
    /** The agent's reply to the customer message `externalId`, once Meta has accepted it. */
    const replyTo = (conversationId: string, externalId: string) =>
      waitUntil(
        `the agent's reply to ${externalId}`,
        async () => {
          const messages = await messagesOf(conversationId);
          const index = messages.findIndex((m) => m.external_id === externalId && m.direction === 'inbound');
          const inbound = messages[index];
          if (!inbound) return undefined;
          if (['failed', 'insufficient_credits'].includes(inbound.status)) {
            throw new Error(`the customer's message ended ${inbound.status}${inbound.error ? ` (${inbound.error.code}: ${inbound.error.message})` : ''}`);
          }
          const reply = messages.slice(index + 1).find((m) => m.author === 'agent');
          if (reply?.status === 'failed') throw new Error(`the reply failed: ${reply.error?.code} ${reply.error?.message}`);
          return reply && DELIVERED_STATUSES.includes(reply.status) ? reply : undefined;
        },
        20_000,
        signal,
      );

    // ---- the customers -------------------------------------------------------------------
    const scenes = result.scenes;
    const ana = await progress.step(
      'Ana asks a question on WhatsApp (a signed webhook, as Meta sends it)',
      async () => {
        scenes.firstQuestion = await customerSays(ANA, SCRIPT.firstQuestion);
        const conversation = await conversationOf(tenant.whatsappId, ANA.waId);
        const reply = await replyTo(conversation.id, scenes.firstQuestion);
        return { conversation, reply };
      },
      ({ reply }) => `webhook 200; the agent answered: "${clip(reply.text)}"`,
    );

    await progress.step(
      "Meta reports the reply delivered, then read (its wamid read back from the API's external_id)",
      async () => {
        const wamid = ana.reply.external_id!;
        const status = (value: WhatsAppStatus) =>
          sendWebhook(whatsappStatusWebhook({ phoneNumberId: WHATSAPP_NUMBER, wamid, status: value, recipientId: ANA.waId }));
        await status('delivered');
        await status('read');
        // Meta does not promise order: a late "delivered" must not take the message back.
        await status('delivered');
        return waitUntil(
          'the reply to be read',
          async () => (await messagesOf(ana.conversation.id)).find((m) => m.id === ana.reply.id && m.status === 'read'),
          5_000,
          signal,
        );
      },
      (reply) => `${clip(reply.external_id, 28)} is "${reply.status}" (a late "delivered" did not move it back)`,
    );

    await progress.step(
      `Ana sends 3 messages in quick succession (the agent waits ${DEBOUNCE_MS} ms for quiet)`,
      async () => {
        const began = Date.now();
        scenes.burst = [];
        for (const [index, text] of SCRIPT.burst.entries()) {
          // Quick typing; the gaps stay far below the debounce even on a loaded machine.
          if (index > 0) await sleep(150, signal);
          scenes.burst.push(await customerSays(ANA, text));
        }
        const spread = Date.now() - began;
        const reply = await replyTo(ana.conversation.id, scenes.burst.at(-1)!);
        return { spread, reply };
      },
      ({ spread, reply }) => `3 messages within ${secs(spread)} → one reply: "${clip(reply.text, 70)}"`,
    );

    await progress.step(
      'Meta delivers Ana’s next message twice (a retry of the same webhook)',
      async () => {
        scenes.duplicate = newWamid();
        const body = whatsappTextWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: ANA.waId, name: ANA.name, text: SCRIPT.duplicate, id: scenes.duplicate });
        // Both at once, as Meta's retries can be: the database, not timing, makes it one message.
        await Promise.all([sendWebhook(body), sendWebhook(body)]);
        return replyTo(ana.conversation.id, scenes.duplicate);
      },
      (reply) => `both deliveries answered 200; stored once, one reply: "${clip(reply.text, 60)}"`,
    );

    await progress.step(
      'A customer writes to the shop on Instagram',
      async () => {
        const body = instagramTextWebhook({ accountId: INSTAGRAM_ACCOUNT, igsid: INSTAGRAM_CUSTOMER, text: SCRIPT.instagram });
        scenes.instagram = (JSON.parse(body) as { entry: Array<{ messaging: Array<{ message: { mid: string } }> }> }).entry[0]!.messaging[0]!.message.mid;
        await sendWebhook(body);
        const conversation = await conversationOf(tenant.instagramId, INSTAGRAM_CUSTOMER);
        return replyTo(conversation.id, scenes.instagram);
      },
      (reply) => `the agent answered on Instagram: "${clip(reply.text)}"`,
    );

    const ben = await progress.step(
      'Ben asks for a refund on WhatsApp; the bot answers first',
      async () => {
        scenes.benQuestion = await customerSays(BEN, SCRIPT.benQuestion);
        const conversation = await conversationOf(tenant.whatsappId, BEN.waId);
        const reply = await replyTo(conversation.id, scenes.benQuestion);
        return { conversation, reply };
      },
      ({ reply }) => `the agent answered: "${clip(reply.text)}"`,
    );

    await progress.step(
      'A person at the shop takes over: POST /v1/conversations/:id/messages',
      async () => {
        const human = await api.post<ApiMessage>(`/v1/conversations/${ben.conversation.id}/messages`, tenant.apiKey, { text: SCRIPT.human });
        const conversation = await api.get<ApiConversation>(`/v1/conversations/${ben.conversation.id}`, tenant.apiKey);
        if (!conversation.bot_paused) throw new Error('the conversation is not paused after a human wrote');
        return waitUntil(
          "the human's message to go out",
          async () => (await messagesOf(ben.conversation.id)).find((m) => m.id === human.id && DELIVERED_STATUSES.includes(m.status)),
          10_000,
          signal,
        );
      },
      (human) => `202; the bot is paused; Maria's message was ${human.status} through WhatsApp`,
    );

    await progress.step(
      'Ben writes again while a human has the conversation',
      async () => {
        scenes.benWhilePaused = await customerSays(BEN, SCRIPT.benWhilePaused);
        // Long enough for a reply to have come: the debounce, the model's latency and a margin.
        const quietMs = DEBOUNCE_MS + MODEL_LATENCY_MS + 1_000;
        await sleep(quietMs, signal);
        const messages = await messagesOf(ben.conversation.id);
        const index = messages.findIndex((m) => m.external_id === scenes.benWhilePaused);
        if (index < 0) throw new Error("Ben's message was not stored");
        const botReplies = messages.slice(index + 1).filter((m) => m.author === 'agent');
        if (botReplies.length > 0) throw new Error(`the bot answered a paused conversation: "${clip(botReplies[0]!.text)}"`);
        return { status: messages[index]!.status, quietMs };
      },
      ({ status, quietMs }) => `stored as "${status}"; no bot reply in ${secs(quietMs)}`,
    );

    await progress.step(
      'The shop hands back to the bot (POST /v1/conversations/:id/resume); Ben asks one more thing',
      async () => {
        await api.post(`/v1/conversations/${ben.conversation.id}/resume`, tenant.apiKey);
        scenes.benAfterResume = await customerSays(BEN, SCRIPT.benAfterResume);
        return replyTo(ben.conversation.id, scenes.benAfterResume);
      },
      (reply) => `the bot is back: "${clip(reply.text)}"`,
    );

    // ---- the lead ------------------------------------------------------------------------
    if (!result.extractionAvailable) {
      result.lead = { status: 'unavailable', reason: 'no `extraction` kind in src/workers/kinds.ts yet' };
      log(`    · Lead extraction skipped: the extraction worker is not available (${result.lead.reason})`);
    } else {
      const timeoutMs = options.extractionTimeoutMs ?? 25_000;
      const began = Date.now();
      try {
        result.lead = await progress.step(
          `Extract Ana's lead: POST /v1/conversations/:id/extract, then poll GET …/extraction (idle extraction after ${EXTRACTION_IDLE_SECONDS} s may come first)`,
          async (): Promise<LeadReport> => {
            const lastSequenceNo = (await messagesOf(ana.conversation.id)).at(-1)?.sequence_no ?? 0;
            await api.post(`/v1/conversations/${ana.conversation.id}/extract`, tenant.apiKey);
            const extraction = await waitUntil(
              'the extraction',
              async () => {
                const answer = await api.call<ApiExtraction>('GET', `/v1/conversations/${ana.conversation.id}/extraction`, tenant.apiKey, { expect: [200, 404] });
                // Only one that saw the whole conversation counts as Ana's lead.
                return answer.status === 200 && answer.body.up_to_sequence_no >= lastSequenceNo ? answer.body : undefined;
              },
              timeoutMs,
              signal,
            );
            return { status: 'extracted', conversationId: extraction.conversation_id, fields: extraction.fields, summary: extraction.summary, extractedAt: extraction.extracted_at };
          },
          (lead) => (lead.status === 'extracted' ? `${Object.keys(lead.fields).length} fields extracted` : lead.status),
        );
      } catch (error) {
        // A missing lead is a failed check, not a reason to hide the transcripts and credits.
        if (signal?.aborted) throw error;
        result.lead = { status: 'timeout', waitedMs: Date.now() - began };
      }
    }

    // ---- what the business sees ----------------------------------------------------------
    const readBack = await progress.step(
      'Read everything back through the API: conversations, messages, ledger, balance',
      async () => {
        const conversations = await api.all<ApiConversation>('/v1/conversations', tenant.apiKey);
        conversations.sort((a, b) => a.created_at.localeCompare(b.created_at));
        const transcripts = await Promise.all(conversations.map(async (c) => toTranscript(c, await messagesOf(c.id))));
        // Idle extractions may still be charging: read the ledger between two equal balances,
        // so the two describe the same moment.
        const balance = () => api.get<{ credit_balance: number }>('/v1/me', tenant.apiKey).then((me) => me.credit_balance);
        const { ledger, steady } = await waitUntil(
          'a steady credit balance',
          async () => {
            const before = await balance();
            const entries = await api.all<ApiLedgerEntry>('/v1/credits/ledger', tenant.apiKey);
            const after = await balance();
            return before === after ? { ledger: entries, steady: after } : undefined;
          },
          10_000,
          signal,
        );
        const entries = ledger.reverse().map((e) => ({ amount: e.amount, reason: e.reason, messageId: e.message_id, conversationId: e.conversation_id, createdAt: e.created_at }));
        const credits: CreditsReport = {
          balance: steady,
          ledgerSum: entries.reduce((sum, e) => sum + e.amount, 0),
          charged: -entries.filter((e) => e.amount < 0).reduce((sum, e) => sum + e.amount, 0),
          entries,
        };
        return { transcripts, credits };
      },
      ({ transcripts, credits }) => `${transcripts.length} conversations, ${credits.entries.length} ledger entries`,
    );
    result.transcripts = readBack.transcripts;
    result.credits = readBack.credits;
    result.graphTextSends = graph!.texts().length;
    printReport(log, result);
  } catch (error) {
    // Whatever a Ctrl-C cut short (a sleep, a fetch), it reads as the interruption it was.
    result.error = signal?.aborted ? INTERRUPTED : describeError(error);
    log('');
    log(`Demo stopped: ${result.error}`);
    if (product && product.troubles.length > 0) {
      log('  The product said, last:');
      for (const line of product.troubles) log(`    ${clip(line, 160)}`);
    }
    if (product) log(`  Full product logs: ${logFile}`);
  } finally {
    // ---- clean-up: always, each part on its own so one failure does not skip the rest -----
    log('');
    log('Cleaning up');
    const cleanups: boolean[] = [];
    if (!product && !openai && !graph && !databaseTouched) log('    nothing was started');
    if (product) {
      const current = product;
      cleanups.push(
        await progress.attempt('Stop the product: SIGTERM to the supervisor, which drains its children', async () => {
          const code = await stopProduct(current, 20_000);
          result.supervisorExitCode = code;
          if (code !== 0) throw new Error(`the supervisor exited with ${code}; see ${logFile}`);
          return 'supervisor exited 0';
        }),
      );
      result.supervisorExitCode = current.exitCode;
    }
    if (openai || graph) {
      cleanups.push(
        await progress.attempt('Close the stand-ins', async () => {
          await Promise.all([openai?.close(), graph?.close()]);
          return `OpenAI got ${openai?.completions().length ?? 0} calls, the Graph API ${graph?.sends.length ?? 0}`;
        }),
      );
    }
    if (databaseTouched) {
      cleanups.push(
        await progress.attempt(`Drop database ${database}`, async () => {
          const admin = new Client({ connectionString: adminUrl.toString(), connectionTimeoutMillis: 5_000 });
          await admin.connect();
          try {
            // FORCE: a straggling connection of a killed process must not keep the database alive.
            await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
          } finally {
            await admin.end();
          }
          return 'dropped';
        }),
      );
      cleanups.push(
        await progress.attempt(`Delete the Redis keys under ${redisPrefix}`, async () => {
          const redis = new Redis(redisUrl.toString(), { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
          redis.on('error', () => undefined);
          let deleted = 0;
          try {
            await redis.connect();
            let cursor = '0';
            do {
              const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
              cursor = next;
              if (keys.length > 0) deleted += await redis.del(...keys);
            } while (cursor !== '0');
          } finally {
            redis.disconnect();
          }
          return `${deleted} keys deleted`;
        }),
      );
    }
    if (logStream) {
      const stream = logStream;
      await new Promise<void>((resolve) => stream.end(() => resolve()));
    }
    process.removeListener('exit', killOnExit);

    result.checks = computeChecks(result);
    result.elapsedMs = Date.now() - startedAt;
    result.ok = result.error === undefined && cleanups.every(Boolean) && result.checks.every((check) => check.passed);
    printChecks(log, result);
    printEpilogue(log, result);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Checks and the printed report

export function computeChecks(result: DemoResult): DemoCheck[] {
  const { scenes, transcripts, credits, lead } = result;
  const checks: DemoCheck[] = [];
  const add = (name: string, passed: boolean, detail: string) => checks.push({ name, passed, detail });
  const find = (externalId: string | undefined) => transcripts.find((t) => t.messages.some((m) => m.externalId === externalId && m.direction === 'inbound'));
  const repliesTo = (externalId: string | undefined) => {
    const transcript = externalId ? find(externalId) : undefined;
    return transcript && externalId ? agentRepliesAfter(transcript, externalId) : [];
  };
  if (result.error !== undefined && transcripts.length === 0) {
    add('the demo ran to the end', false, result.error);
    return checks;
  }

  const first = repliesTo(scenes.firstQuestion);
  add('the first question got exactly one reply', first.length === 1, `${first.length} agent message(s) after it`);

  const burstReplies = repliesTo(scenes.burst?.at(-1));
  const burstGaps = (scenes.burst ?? []).slice(0, -1).reduce((n, id) => n + repliesTo(id).length, 0);
  const burstText = (burstReplies[0]?.text ?? '').toLowerCase();
  const allWords = SCRIPT.burst.every((text) => text.toLowerCase().split(/\s+/).every((word) => burstText.includes(word)));
  add(
    'the burst of 3 messages got one reply that takes all of them into account',
    burstReplies.length === 1 && burstGaps === 0 && allWords,
    `${burstReplies.length} reply after the burst, ${burstGaps} in between, all words quoted: ${allWords}`,
  );

  const copies = transcripts.flatMap((t) => t.messages).filter((m) => m.externalId === scenes.duplicate && m.direction === 'inbound').length;
  const duplicateReplies = repliesTo(scenes.duplicate);
  add('the message Meta delivered twice was stored once and answered once', copies === 1 && duplicateReplies.length === 1, `${copies} stored, ${duplicateReplies.length} reply`);

  const firstStatus = first[0]?.status;
  add('the first reply’s status reached "read"', firstStatus === 'read', `status ${firstStatus ?? 'none'}`);

  const instagram = repliesTo(scenes.instagram);
  add(
    'the Instagram customer got a reply',
    instagram.length === 1 && DELIVERED_STATUSES.includes(instagram[0]!.status),
    `${instagram.length} reply, ${instagram[0]?.status ?? 'none'}`,
  );

  const benTranscript = find(scenes.benWhilePaused);
  const human = benTranscript?.messages.find((m) => m.author === 'human');
  const paused = scenes.benWhilePaused ? repliesTo(scenes.benWhilePaused) : [];
  const pausedStatus = benTranscript?.messages.find((m) => m.externalId === scenes.benWhilePaused)?.status;
  add(
    "after the human took over, the customer's next message got no bot reply",
    human !== undefined && DELIVERED_STATUSES.includes(human.status) && paused.length === 0 && pausedStatus === 'ignored',
    `human message ${human?.status ?? 'missing'}; customer message ${pausedStatus ?? 'missing'} with ${paused.length} bot reply`,
  );
  const resumed = repliesTo(scenes.benAfterResume);
  add('after resuming, the bot answered again', resumed.length === 1, `${resumed.length} reply`);

  const outbound = transcripts.flatMap((t) => t.messages).filter((m) => m.direction === 'outbound');
  add(
    "Meta's Graph API got exactly one send per outbound message",
    result.graphTextSends === outbound.length,
    `${result.graphTextSends} text sends for ${outbound.length} outbound messages`,
  );

  if (credits) {
    const agentReplies = outbound.filter((m) => m.author === 'agent').length;
    const replyCharges = credits.entries.filter((e) => e.reason === 'reply').length;
    add('credits were charged, one ledger entry per reply', credits.charged > 0 && replyCharges === agentReplies, `${credits.charged} credits; ${replyCharges} reply charges for ${agentReplies} replies`);
    add('the balance equals the sum of the ledger', credits.balance === credits.ledgerSum, `${credits.balance} vs ${credits.ledgerSum}`);
  } else add('credits were read back', false, 'no ledger');

  if (lead.status === 'unavailable') add('lead extraction: the extraction worker is not available, notice printed', true, lead.reason);
  else add('a lead was extracted from the conversation', lead.status === 'extracted', lead.status === 'timeout' ? `none within ${secs(lead.waitedMs)}` : lead.status);

  add('the product stopped cleanly (supervisor exit 0)', result.supervisorExitCode === 0, `exit ${String(result.supervisorExitCode)}`);
  return checks;
}

function printReport(log: (line: string) => void, result: DemoResult): void {
  log('');
  log('Conversations (GET /v1/conversations/:id/messages; status on the right)');
  for (const transcript of result.transcripts) printTranscript(log, transcript);

  const credits = result.credits;
  if (credits) {
    const labels = new Map(result.transcripts.map((t) => [t.conversationId, customerLabel(t)]));
    log('');
    log('Credits (GET /v1/credits/ledger, oldest first; 1 credit = 1 token at CREDITS_PER_1K_TOKENS=1000)');
    for (const entry of credits.entries) {
      const amount = `${entry.amount > 0 ? '+' : ''}${entry.amount}`;
      const what = entry.conversationId ? (labels.get(entry.conversationId) ?? entry.conversationId) : 'opening credits';
      log(`    ${amount.padStart(7)}  ${entry.reason.padEnd(11)} ${what}`);
    }
    log(`    charged ${credits.charged} credits in ${credits.entries.filter((e) => e.amount < 0).length} entries; balance ${credits.balance}, sum of the ledger ${credits.ledgerSum}`);
  }

  log('');
  const lead = result.lead;
  if (lead.status === 'extracted') {
    const owner = result.transcripts.find((t) => t.conversationId === lead.conversationId);
    log(`Lead (GET /v1/conversations/:id/extraction, ${owner ? customerLabel(owner) : lead.conversationId})`);
    for (const [field, value] of Object.entries(lead.fields)) log(`    ${field.padEnd(10)} ${value === null ? '—' : clip(String(value), 100)}`);
    if (lead.summary && !('summary' in lead.fields)) log(`    ${'summary'.padEnd(10)} ${clip(lead.summary, 100)}`);
  } else if (lead.status === 'unavailable') {
    log(`Lead: the extraction worker is not available in this build (${lead.reason}), so no lead was extracted.`);
  } else if (lead.status === 'timeout') {
    log(`Lead: no extraction arrived within ${secs(lead.waitedMs)}; see ${result.logFile}`);
  }
}

function printChecks(log: (line: string) => void, result: DemoResult): void {
  log('');
  log('Checks');
  for (const check of result.checks) log(`    ${check.passed ? '✓' : '✗'} ${check.name} (${check.detail})`);
}

function printEpilogue(log: (line: string) => void, result: DemoResult): void {
  log('');
  const passed = result.checks.filter((check) => check.passed).length;
  if (!result.ok) {
    // The failing step and the product's last words are printed above; no tour after a failure.
    const verdict = result.error === INTERRUPTED ? 'Demo interrupted' : 'Demo FAILED';
    log(`${verdict} after ${secs(result.elapsedMs)} (${passed}/${result.checks.length} checks passed).`);
    return;
  }
  log(`Demo finished in ${secs(result.elapsedMs)}: ${passed}/${result.checks.length} checks passed. Product logs: ${result.logFile}`);
  log('');
  log('Go further, with real accounts:');
  log('  1. cp .env.example .env and set OPENAI_API_KEY; the other secrets have development defaults, and are required only with NODE_ENV=production');
  log('  2. npm start            (API on PORT, default 3000, with its workers)');
  log('  3. npm run seed         (a demo tenant with an API key), or POST /v1/users with your ADMIN_API_KEY');
  log("  4. In Meta's app dashboard, point the webhook at https://<your host>/webhooks/meta with your META_VERIFY_TOKEN");
  log('     and subscribe to messages; register your numbers with POST /v1/phone-numbers and their real access tokens');
  log('  5. Play a customer without a phone: npm run simulate -- --to <Meta phone_number_id, the number\'s external_id> --from 15550001111 --text "Hi"');
  log('  Or keep it offline: npm run start:offline runs the product against these stand-ins (see documentation/examples/)');
  log('  API reference: http://127.0.0.1:3000/docs (and /openapi.json)');
}

// ---------------------------------------------------------------------------------------------
// Command line

if (require.main === module) {
  const controller = new AbortController();
  let interruptedAt = 0;
  process.on('SIGINT', () => {
    if (interruptedAt === 0) {
      interruptedAt = Date.now();
      process.stdout.write('\nInterrupted: cleaning up (Ctrl-C again to quit at once)…\n');
      controller.abort();
      // npm and tsx may relay the terminal's Ctrl-C a moment after it arrived here directly:
      // only a press well after the first one means "quit now".
    } else if (Date.now() - interruptedAt > 1_000) process.exit(130);
  });
  runDemo({ signal: controller.signal }).then(
    (result) => {
      process.exitCode = result.ok ? 0 : 1;
    },
    (error: Error) => {
      process.stderr.write(`demo: ${error.stack ?? error.message}\n`);
      process.exitCode = 1;
    },
  );
}
