/**
 * Live API keys, in two forms kept in Redis:
 *
 * - **The key → tenant lookup**, through the cache (cacheService: `cache:{apikey:<hash>}`, for
 *   `CACHE_TTL_SECONDS`), so a request authenticates without Postgres while its key is cached.
 *   Revoking invalidates it in every process before the revoke answers (`forgetApiKey`).
 * - **A "seen live" hint** for the rate limiter: once an address has spent its budget on unknown
 *   keys, a guess must not cost a lookup, but a real key from the same address (a shared NAT)
 *   must still be served. The hint only decides whether a lookup is worth making, so a stale hint
 *   costs one lookup, never access.
 */
import { getRedis } from '../utils/redis';
import { logger } from '../utils/logger';
import { findActiveKeyByHash } from '../models/ApiKey';
import { cacheKeys, getOrLoad, invalidate } from './cacheService';

/** The live key with this hash and its tenant, or null (unknown or revoked; misses are not cached). */
export function findLiveApiKey(keyHash: string): Promise<{ id: string; userId: string } | null> {
  return getOrLoad(cacheKeys.apiKey(keyHash), () => findActiveKeyByHash(keyHash));
}

/** Long enough that a key in regular use never loses it; it is refreshed on use. */
const HINT_TTL_SECONDS = 30 * 24 * 3600;
const hintKey = (keyHash: string) => `apikey:live:${keyHash}`;

/** Best effort: without the hint a key is still served, only not from a spent address. */
export async function markApiKeyLive(keyHash: string): Promise<void> {
  try {
    await getRedis().set(hintKey(keyHash), '1', 'EX', HINT_TTL_SECONDS);
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'could not record a live API key hint');
  }
}

/**
 * After a revoke is committed: the cached lookup is invalidated in every process (throws
 * `unavailable` when Redis cannot be told, so the revoke is retried rather than half-done), and
 * the hint is dropped, best effort, so the key's guesses count as any guess's do.
 */
export async function forgetApiKey(keyHash: string): Promise<void> {
  await invalidate(cacheKeys.apiKey(keyHash));
  try {
    await getRedis().del(hintKey(keyHash));
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'could not drop a live API key hint');
  }
}

/** Whether the hash was a live key when last seen; false when Redis cannot say. */
export async function isApiKeyKnownLive(keyHash: string): Promise<boolean> {
  try {
    return (await getRedis().exists(hintKey(keyHash))) === 1;
  } catch {
    return false;
  }
}
