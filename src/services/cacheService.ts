/**
 * Redis caching operations: get-or-load with a TTL, keys scoped so no entry can answer for
 * another tenant (CONTRACT guarantee 5), explicit invalidation, single-flight loading.
 *
 * - **Keys.** Every entry is named by its scope: a tenant's own data under `cache:{t:<user id>:…}`;
 *   the lookups that *find* the tenant are scoped by what they are looked up by, which belongs to
 *   exactly one tenant: an API key's hash (`cache:{apikey:<sha-256>}`) and a channel's account
 *   (`cache:{acct:<channel>:<account id>}`). Parts are URI-encoded, so no id can forge another
 *   scope's key with a colon or move its hash tag with a brace.
 * - **TTL.** `CACHE_TTL_SECONDS` (300 by default); Redis expires the entry, nothing here keeps a
 *   copy in memory, so no process can serve an entry past its TTL.
 * - **Invalidation.** Whoever changes cached data in Postgres calls `invalidate` after the
 *   commit. It deletes the entry and stamps the key's *generation* with a random token; a load
 *   that started before (it read the old generation) then finds the generation changed and does
 *   not write what it read, so a revoke racing a load cannot leave the old value behind.
 *   `invalidate` throws when Redis cannot be told: the caller reports the failure (the change is
 *   committed; retrying the request invalidates again).
 * - **Single flight.** Concurrent misses of one key in one process share one load. Across
 *   processes there is no lock: each process loads at most once per key at a time, so a herd
 *   over N processes makes at most N loads (indexed reads; a distributed lock would add a round
 *   trip to every miss and a failure mode of its own).
 * - **Redis down.** A read that fails or takes longer than `READ_TIMEOUT_MS` falls back to the
 *   loader (Postgres), and nothing is written; callers are answered correctly, only slower.
 * - Misses (`null`) are not cached unless asked: a guessed key must not fill Redis.
 */
import { randomUUID } from 'node:crypto';
import { config } from '../config';
import { getRedis } from '../utils/redis';
import { logger } from '../utils/logger';
import { AppError } from '../utils/errors';

/** Longest a cache read may take before the loader answers instead. */
export const READ_TIMEOUT_MS = 250;

/** Sets the entry only if the key's generation is still the one read before loading. */
const SET_IF_GENERATION = `
local current = redis.call('GET', KEYS[2])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`;

const part = (value: string) => encodeURIComponent(value);

/**
 * Cache keys, one builder per scope. Each entry's name is a hash tag (`{…}`), so on a Redis
 * Cluster an entry and its generation live in one slot and one script or transaction can touch
 * both (URI-encoding turns any brace inside an id into %7B/%7D, so no id can move the tag).
 */
export const cacheKeys = {
  /** Data of one tenant: `kind` names what it is, `id` which one. */
  tenant: (userId: string, kind: string, id: string) => `cache:{t:${part(userId)}:${part(kind)}:${part(id)}}`,
  /** The live key behind an API key's hash (and so its tenant). */
  apiKey: (keyHash: string) => `cache:{apikey:${part(keyHash)}}`,
  /** What a channel's account routes to (tenant, number, agent). */
  account: (channel: string, accountId: string) => `cache:{acct:${part(channel)}:${part(accountId)}}`,
};

const generationKey = (key: string) => `${key}:gen`;

export interface LoadOptions {
  /** Seconds the entry lives; `CACHE_TTL_SECONDS` by default. */
  ttlSeconds?: number;
  /** Whether a `null` answer is cached too; off by default. */
  cacheNull?: boolean;
}

const inflight = new Map<string, Promise<unknown>>();

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cache read took over ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

async function loadThrough<T>(key: string, load: () => Promise<T | null>, options: LoadOptions): Promise<T | null> {
  let generation: string | undefined;
  try {
    const [cached, current] = await withTimeout(getRedis().mget(key, generationKey(key)), READ_TIMEOUT_MS);
    if (cached !== null && cached !== undefined) return (JSON.parse(cached) as { v: T | null }).v;
    generation = current ?? '';
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'cache unreadable; loading from Postgres');
  }
  const value = await load();
  if (generation === undefined || (value === null && !options.cacheNull)) return value;
  try {
    const ttl = options.ttlSeconds ?? config.CACHE_TTL_SECONDS;
    await getRedis().eval(SET_IF_GENERATION, 2, key, generationKey(key), generation, JSON.stringify({ v: value }), String(ttl));
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'could not fill the cache');
  }
  return value;
}

/**
 * The cached value of `key`, or `load()`'s answer, cached for the TTL. The value must survive
 * JSON (no Dates). Concurrent calls for one key in this process share one load.
 */
export function getOrLoad<T>(key: string, load: () => Promise<T | null>, options: LoadOptions = {}): Promise<T | null> {
  const running = inflight.get(key) as Promise<T | null> | undefined;
  if (running) return running;
  const loading = loadThrough(key, load, options).finally(() => {
    if (inflight.get(key) === loading) inflight.delete(key);
  });
  inflight.set(key, loading);
  return loading;
}

/**
 * Drops the entries in every process (they share Redis) and fences off loads already running;
 * call it after the write that changed the data is committed. Throws `unavailable` when Redis
 * could not be told, so a stale entry is never left silently.
 */
export async function invalidate(...keys: string[]): Promise<void> {
  // Loads of this process that started before the write must not be joined any more.
  for (const key of keys) inflight.delete(key);
  const fenceSeconds = config.CACHE_TTL_SECONDS + 60;
  // One transaction per entry (an entry and its generation share a slot; entries need not).
  const fence = async (key: string) => {
    const results = await getRedis().multi().set(generationKey(key), randomUUID(), 'EX', fenceSeconds).del(key).exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw failed?.[0] ?? new Error('transaction discarded');
  };
  try {
    await Promise.all(keys.map(fence));
  } catch (error) {
    logger.error({ err: { message: (error as Error).message }, keys: keys.length }, 'cache invalidation failed');
    throw new AppError('unavailable', 'The change is saved but could not yet reach every server; retry the request');
  }
}
