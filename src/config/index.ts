/**
 * The one place that reads `process.env`. Parsed once at import; every other module imports
 * the frozen, typed `config` object. Names and defaults follow CONTRACT §2.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import dotenv from 'dotenv';

/** Secrets that `NODE_ENV=production` refuses to default. */
const SECRET_VARIABLES = ['ADMIN_API_KEY', 'ENCRYPTION_KEY', 'META_APP_SECRET', 'META_VERIFY_TOKEN'] as const;

const DEV_SECRETS: Record<(typeof SECRET_VARIABLES)[number], string> = {
  ADMIN_API_KEY: 'dev-admin-key',
  // 32 bytes of hex, public on purpose: it only protects development data.
  ENCRYPTION_KEY: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  META_APP_SECRET: 'dev-app-secret',
  META_VERIFY_TOKEN: 'dev-verify-token',
};

const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const flag = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');
const url = (protocols: string[]) =>
  z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL (${protocols.join(' or ')})`);

/** An AES-256 key: exactly 32 bytes, written as 64 hex digits or as base64. */
const encryptionKey = z.string().transform((value, ctx) => {
  const key = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  if (key.length !== 32) {
    ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, as 64 hex digits or base64' });
    return z.NEVER;
  }
  return key;
});

/** Older AES-256 keys, comma-separated, each written as `ENCRYPTION_KEY` is. */
const previousEncryptionKeys = z.string().transform((value, ctx) => {
  const keys: Buffer[] = [];
  for (const part of value.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const parsed = encryptionKey.safeParse(part);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `key ${keys.length + 1} must be 32 bytes, as 64 hex digits or base64` });
      return z.NEVER;
    }
    keys.push(parsed.data);
  }
  return keys;
});

const price = z.number().finite().min(0).max(1_000_000_000);
/** `MODEL_PRICES`: a JSON object of model name → credits per 1K input and output tokens. */
const modelPrices = z.string().transform((value, ctx) => {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be JSON: {"<model>": {"input": <credits per 1K>, "output": <credits per 1K>}}' });
    return z.NEVER;
  }
  const parsed = z.record(z.string().min(1), z.object({ input: price, output: price }).strict()).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    ctx.addIssue({ code: 'custom', message: `${issue.path.join('.') || 'value'}: ${issue.message}` });
    return z.NEVER;
  }
  return parsed.data as Readonly<Record<string, { readonly input: number; readonly output: number }>>;
});

/** Names Express's `trust proxy` accepts besides addresses and subnets. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Express's `trust proxy` setting: `false`, `true`, a number of proxy hops, or a comma-separated
 * list of proxy addresses, subnets and the names above.
 */
const trustProxy = z.string().transform((value, ctx): boolean | number | string[] => {
  if (value === 'false' || value === '0') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  const entries = value.split(',').map((item) => item.trim());
  const valid = (entry: string) => {
    if (PROXY_NAMES.has(entry)) return true;
    const [address, prefix, ...rest] = entry.split('/');
    return rest.length === 0 && isIP(address ?? '') !== 0 && (prefix === undefined || /^\d{1,3}$/.test(prefix));
  };
  if (!entries.every(valid)) {
    ctx.addIssue({ code: 'custom', message: 'must be true, false, a hop count, or proxy addresses/subnets separated by commas' });
    return z.NEVER;
  }
  return entries;
});

/** The operator key's minimum length in production; the development default is shorter on purpose. */
const PRODUCTION_ADMIN_KEY_LENGTH = 32;

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(0, 65535).default(3000),
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/multichannel_agent'),
  // Sized for WORKER_CONCURRENCY turns sharing one pool; Postgres allows 100 connections by default.
  DATABASE_POOL_SIZE: integer(1, 200).default(20),
  /** Longest a statement of the API or a worker may run before Postgres cancels it; 0 = no limit. */
  DATABASE_STATEMENT_TIMEOUT_MS: integer(0, 3_600_000).default(30_000),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379/0'),
  /** Prepended to every Redis key; tests give each file its own. */
  REDIS_KEY_PREFIX: z.string().refine((p) => !/[{}]/.test(p), 'must not contain { or }: they would take the keys\' hash tags').default('mca:'),
  /** Lifetime of cached tenant data (cacheService); every write that changes it invalidates at once. */
  CACHE_TTL_SECONDS: integer(1, 24 * 3600).default(300),
  /** `host:port,...` of a Redis Cluster's nodes; when set, used instead of REDIS_URL. */
  REDIS_CLUSTER_NODES: z
    .string()
    .regex(/^[^\s,:]+:\d+(,[^\s,:]+:\d+)*$/, 'must be host:port,...')
    .transform((list) => list.split(',').map((node) => ({ host: node.slice(0, node.lastIndexOf(':')), port: Number(node.slice(node.lastIndexOf(':') + 1)) })))
    .optional(),
  /** The message stream is split into this many streams by conversation (more on a cluster). */
  STREAM_SHARDS: integer(1, 256).default(1),
  ADMIN_API_KEY: z.string().min(12, 'must be at least 12 characters'),
  ENCRYPTION_KEY: encryptionKey,
  /** Keys that encrypted tokens before `ENCRYPTION_KEY`; they decrypt until `npm run rotate-keys` ran. */
  ENCRYPTION_KEYS_PREVIOUS: previousEncryptionKeys.default([]),
  META_APP_SECRET: z.string().min(8, 'must be at least 8 characters'),
  META_VERIFY_TOKEN: z.string().min(8, 'must be at least 8 characters'),
  META_GRAPH_API_URL: url(['http:', 'https:']).default('https://graph.facebook.com'),
  INSTAGRAM_GRAPH_API_URL: url(['http:', 'https:']).default('https://graph.instagram.com'),
  META_GRAPH_API_VERSION: z.string().regex(/^v\d+\.\d+$/, 'must look like v25.0').default('v25.0'),
  OPENAI_API_KEY: z.string().min(1).optional(),
  OPENAI_BASE_URL: url(['http:', 'https:']).default('https://api.openai.com/v1'),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OPENAI_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  EXTRACTION_IDLE_SECONDS: integer(1, 30 * 24 * 3600).default(600),
  MESSAGE_WORKERS: integer(0, 64).default(1),
  EXTRACTION_WORKERS: integer(0, 64).default(1),
  /** `npm start` scales message workers between MESSAGE_WORKERS and this, on the queue's backlog. */
  MESSAGE_WORKERS_MAX: integer(0, 64).default(4),
  /** How often workers heartbeat; one silent for 6 beats is stuck (the supervisor replaces it). */
  WORKER_HEARTBEAT_MS: integer(50, 600_000).default(5_000),
  /** How often the supervisor reads the backlog and the heartbeats to scale and to find stuck workers. */
  SUPERVISOR_CHECK_MS: integer(50, 600_000).default(5_000),
  WORKER_CONCURRENCY: integer(1, 10_000).default(50),
  /** A worker's hold on a conversation and on a stream entry; a dead worker's work is taken over after it. */
  WORKER_LEASE_MS: integer(200, 600_000).default(30_000),
  /** A worker process answers GET /healthz here, from its heartbeat (orchestrators' liveness); unset, none: `npm start` runs several workers on one host. */
  WORKER_HEALTH_PORT: integer(1, 65535).optional(),
  /** How often a worker looks for accepted messages that nobody is answering (lost nudges). */
  SWEEPER_INTERVAL_MS: integer(100, 3_600_000).default(15_000),
  /**
   * A send whose worker died (or got no answer) between Graph and our record is in doubt: it
   * waits this long for Meta's status (WhatsApp, by biz_opaque_callback_data) or echo
   * (Instagram) to say it went out, before it is sent again (CONTRACT §2).
   */
  SEND_IN_DOUBT_GRACE_MS: integer(0, 600_000).default(15_000),
  /** Turns a message may take (each a model call with its own retries) before it is failed. */
  MESSAGE_MAX_ATTEMPTS: integer(1, 100).default(8),
  CREDITS_PER_1K_TOKENS: integer(0, 1_000_000_000).default(1000),
  /**
   * Per-model prices, JSON `{ "<model>": { "input": <credits per 1K prompt tokens>, "output": <credits
   * per 1K completion tokens> } }`; when set, agents may use only these models (CONTRACT §2).
   */
  MODEL_PRICES: modelPrices.default({}),
  // --- Inbound media and Meta's send rate (issue 16; CONTRACT §2) -------------------------------
  /** Voice notes are transcribed with it, through `/audio/transcriptions` on OPENAI_BASE_URL. */
  OPENAI_TRANSCRIBE_MODEL: z.string().min(1).default('gpt-4o-mini-transcribe'),
  /** Price of transcription per minute of audio (rounded up to whole credits), a `transcription` ledger entry. */
  CREDITS_PER_AUDIO_MINUTE: integer(0, 1_000_000_000).default(100),
  /** Larger media are not downloaded: the message is answered from its caption and type. */
  MEDIA_MAX_BYTES: integer(1, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Sends per channel account per second, across every worker (a token bucket in Redis). */
  META_SEND_RATE_PER_SECOND: integer(1, 100_000).default(80),
  // --- end of issue 16's block ------------------------------------------------------------------
  RATE_LIMIT_PER_MINUTE: integer(1, 1_000_000).default(600),
  /** Whether (and which) `X-Forwarded-For` entries name the client: Express's `trust proxy`. */
  TRUST_PROXY: trustProxy.default(false),
  /** When set, `/metrics` answers only `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Customer messages waiting to be written by the webhook; past it the webhook answers 503. */
  WEBHOOK_QUEUE_MAX: integer(1, 1_000_000).default(5_000),
  MIGRATE_ON_START: flag.default(true),
  SHUTDOWN_TIMEOUT_MS: integer(100, 600_000).default(10_000),
  BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb or 3mb').default('3mb'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Every variable the product reads; `.env.example` documents each. */
export const CONFIG_VARIABLES = Object.keys(schema.shape);

export type Config = Readonly<z.infer<typeof schema>> & {
  /** Secrets that fell back to public development values; the logger warns about each. */
  readonly defaultedSecrets: readonly string[];
};

/** Raised with every bad variable named at once, so an operator fixes them in one go. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Pure: parses an environment into a config, or throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const source: Record<string, string | undefined> = {};
  // An empty variable means "not set": `.env.example` copies leave blanks behind.
  for (const key of Object.keys(schema.shape)) source[key] = env[key] === '' ? undefined : env[key];

  const production = (source.NODE_ENV ?? 'development') === 'production';
  const problems: string[] = [];
  const defaultedSecrets: string[] = [];
  for (const name of SECRET_VARIABLES) {
    if (source[name] !== undefined) continue;
    if (production) problems.push(`${name}: required when NODE_ENV=production`);
    else {
      source[name] = DEV_SECRETS[name];
      defaultedSecrets.push(name);
    }
  }

  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      const given = source[name] === undefined ? 'missing' : 'invalid';
      if (!problems.some((p) => p.startsWith(`${name}:`))) problems.push(`${name}: ${given} (${issue.message})`);
    }
  }
  // A guessable operator key opens every tenant; production wants one worth brute-forcing.
  const adminKey = source.ADMIN_API_KEY;
  if (production && adminKey !== undefined && adminKey.length < PRODUCTION_ADMIN_KEY_LENGTH && !problems.some((p) => p.startsWith('ADMIN_API_KEY:'))) {
    problems.push(`ADMIN_API_KEY: invalid (must be at least ${PRODUCTION_ADMIN_KEY_LENGTH} characters when NODE_ENV=production)`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ ...parsed.data!, defaultedSecrets: Object.freeze(defaultedSecrets) });
}

function loadFromProcess(): Config {
  // `.env` is optional; real deployments set the environment directly.
  if (process.env.NODE_ENV !== 'test') dotenv.config({ quiet: true });
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Before the logger exists, so plain stderr; one line an operator can act on.
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

export const config: Config = loadFromProcess();
