/**
 * The live-key hint with Redis as ioredis-mock: a key marked live is known live (for about a
 * month, refreshed on use), a forgotten or never-seen one is not, and Redis failing never throws
 * to the caller: marking and forgetting log a warning naming no key, and the question answers
 * "not known" (a lookup is then made, so a failure costs work, never access). How the rate
 * limiter uses it runs in tests/unit/middleware/rateLimit.test.ts and
 * tests/integration/rateLimit.test.ts.
 */
import type Redis from 'ioredis';
import { forgetApiKey, isApiKeyKnownLive, markApiKeyLive } from '../../../src/services/liveApiKeys';
import { getRedis } from '../../../src/utils/redis';
import { logger } from '../../../src/utils/logger';
import { closeRedisMock, createRedisMock } from '../../fixtures/redisMock';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn() }));

const HASH = 'a'.repeat(64);
const OTHER_HASH = 'b'.repeat(64);
const MONTH_SECONDS = 30 * 24 * 3600;

let redis: Redis;

beforeEach(() => {
  jest.restoreAllMocks();
  redis = createRedisMock('live-keys-test');
  jest.mocked(getRedis).mockReturnValue(redis);
});

afterEach(() => closeRedisMock(redis));

/** Redis refusing every command the hint uses. */
function redisDown(): void {
  const down = new Error('connect ECONNREFUSED 127.0.0.1:6379');
  for (const command of ['set', 'del', 'exists'] as const) jest.spyOn(redis, command).mockRejectedValue(down);
}

describe('markApiKeyLive and isApiKeyKnownLive', () => {
  it('when a key is marked live, then it is known live, and another key is not', async () => {
    await markApiKeyLive(HASH);

    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(true);
    await expect(isApiKeyKnownLive(OTHER_HASH)).resolves.toBe(false);
  });

  it('when a key was never seen, then it is not known live', async () => {
    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(false);
  });

  it('when a key is marked, then the hint expires after about a month, and marking it again on use renews it', async () => {
    await markApiKeyLive(HASH);
    const key = (await redis.keys('*')).map((name) => name.slice(String(redis.options.keyPrefix).length));
    expect(key).toHaveLength(1);
    const ttl = await redis.ttl(key[0]!);
    expect(ttl).toBeGreaterThan(MONTH_SECONDS - 60);
    expect(ttl).toBeLessThanOrEqual(MONTH_SECONDS);

    await redis.expire(key[0]!, 10);
    await markApiKeyLive(HASH);

    expect(await redis.ttl(key[0]!)).toBeGreaterThan(MONTH_SECONDS - 60);
  });
});

describe('forgetApiKey', () => {
  it('when a live key is forgotten (revoked), then it is no longer known live, and other keys keep their hint', async () => {
    await markApiKeyLive(HASH);
    await markApiKeyLive(OTHER_HASH);

    await forgetApiKey(HASH);

    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(false);
    await expect(isApiKeyKnownLive(OTHER_HASH)).resolves.toBe(true);
  });

  it('when a key never seen is forgotten, then nothing fails', async () => {
    await expect(forgetApiKey(HASH)).resolves.toBeUndefined();
    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(false);
  });
});

describe('when Redis is down', () => {
  it('then marking and forgetting resolve, each with a warning that names neither the key nor its hash', async () => {
    redisDown();
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);

    await expect(markApiKeyLive(HASH)).resolves.toBeUndefined();
    await expect(forgetApiKey(HASH)).resolves.toBeUndefined();

    expect(warn).toHaveBeenCalledTimes(2);
    expect(JSON.stringify(warn.mock.calls)).not.toContain(HASH);
    expect(JSON.stringify(warn.mock.calls)).toContain('ECONNREFUSED');
  });

  it('then no key is known live (the caller looks it up instead)', async () => {
    await markApiKeyLive(HASH);
    redisDown();

    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(false);
  });

  it('then, even when getRedis itself throws, marking resolves, forgetting refuses (the revoke must reach the cache: a 503), and no key is known live', async () => {
    jest.mocked(getRedis).mockImplementation(() => {
      throw new Error('REDIS_URL unreachable');
    });
    jest.spyOn(logger, 'warn').mockImplementation(() => undefined);

    await expect(markApiKeyLive(HASH)).resolves.toBeUndefined();
    await expect(forgetApiKey(HASH)).rejects.toThrow();
    await expect(isApiKeyKnownLive(HASH)).resolves.toBe(false);
  });
});
