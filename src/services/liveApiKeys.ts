/**
 * Which key hashes are known to be live, kept in Redis as a hint for the rate limiter: once an
 * address has spent its budget on unknown keys, a guess must not cost a Postgres lookup, but a
 * real key from the same address (a shared NAT) must still be served. The hint only decides
 * whether a lookup is worth making; every request is still authenticated in Postgres, so a
 * stale hint costs one lookup, never access.
 */
import { getRedis } from '../utils/redis';
import { logger } from '../utils/logger';

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

/** A revoked key's guesses then count as any guess's do. Best effort, as above. */
export async function forgetApiKey(keyHash: string): Promise<void> {
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
