/**
 * The cache with ioredis-mock standing in for Redis: get-or-load, tenant-scoped keys, the
 * generation fence against a load racing an invalidation, single flight, and Redis failing.
 */
import type Redis from 'ioredis';
import { cacheKeys, getOrLoad, invalidate, READ_TIMEOUT_MS } from '../../../src/services/cacheService';
import { getRedis } from '../../../src/utils/redis';
import { config } from '../../../src/config';

jest.mock('../../../src/utils/redis', () => {
  const redis = jest.requireActual('../../fixtures/redisMock').createRedisMock('cache');
  return { getRedis: jest.fn(() => redis) };
});

const redis = (getRedis as jest.Mock)() as Redis;
const TENANT_A = '11111111-1111-4111-8111-111111111111';
const TENANT_B = '22222222-2222-4222-8222-222222222222';

beforeEach(async () => {
  await redis.flushall();
  (getRedis as jest.Mock).mockImplementation(() => redis);
});

describe('cacheKeys', () => {
  it('when two tenants cache the same kind and id, then their keys differ', () => {
    expect(cacheKeys.tenant(TENANT_A, 'agent', 'x')).not.toBe(cacheKeys.tenant(TENANT_B, 'agent', 'x'));
  });

  it('when an id carries a colon, then it cannot forge another scope or tenant', () => {
    expect(cacheKeys.tenant(TENANT_A, 'agent', `x:t:${TENANT_B}`)).not.toContain(`:t:${TENANT_B}`);
    expect(cacheKeys.account('whatsapp', 'a:b')).toBe('cache:{acct:whatsapp:a%3Ab}');
    expect(cacheKeys.account('whatsapp', 'a:b')).not.toBe(cacheKeys.account('whatsapp:a', 'b'));
  });

  it('when an id carries braces, then the key keeps one hash tag: the whole entry name (entry and generation share a cluster slot)', () => {
    const key = cacheKeys.tenant(TENANT_A, 'agent', '}{x');
    expect(key.match(/[{}]/g)).toEqual(['{', '}']);
    expect(key.endsWith('}')).toBe(true);
  });
});

describe('getOrLoad', () => {
  it('when the key is cold, then it loads once, caches for CACHE_TTL_SECONDS, and the next call is a hit', async () => {
    const load = jest.fn(async () => ({ userId: TENANT_A }));
    const key = cacheKeys.apiKey('h1');
    await expect(getOrLoad(key, load)).resolves.toEqual({ userId: TENANT_A });
    await expect(getOrLoad(key, load)).resolves.toEqual({ userId: TENANT_A });
    expect(load).toHaveBeenCalledTimes(1);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(config.CACHE_TTL_SECONDS - 5);
    expect(ttl).toBeLessThanOrEqual(config.CACHE_TTL_SECONDS);
  });

  it('when two tenants cache the same kind and id, then each gets its own value back', async () => {
    await getOrLoad(cacheKeys.tenant(TENANT_A, 'agent', 'same'), async () => ({ owner: TENANT_A }));
    await getOrLoad(cacheKeys.tenant(TENANT_B, 'agent', 'same'), async () => ({ owner: TENANT_B }));
    const loadNothing = jest.fn(async () => null);
    await expect(getOrLoad(cacheKeys.tenant(TENANT_A, 'agent', 'same'), loadNothing)).resolves.toEqual({ owner: TENANT_A });
    await expect(getOrLoad(cacheKeys.tenant(TENANT_B, 'agent', 'same'), loadNothing)).resolves.toEqual({ owner: TENANT_B });
    expect(loadNothing).not.toHaveBeenCalled();
  });

  it('when the loader finds nothing, then nothing is cached (unless asked), so guesses do not fill Redis', async () => {
    const load = jest.fn(async () => null);
    await getOrLoad(cacheKeys.apiKey('unknown'), load);
    await getOrLoad(cacheKeys.apiKey('unknown'), load);
    expect(load).toHaveBeenCalledTimes(2);
    expect(await redis.exists(cacheKeys.apiKey('unknown'))).toBe(0);

    await getOrLoad(cacheKeys.account('instagram', '1'), load, { cacheNull: true, ttlSeconds: 30 });
    await getOrLoad(cacheKeys.account('instagram', '1'), load, { cacheNull: true, ttlSeconds: 30 });
    expect(load).toHaveBeenCalledTimes(3);
    expect(await redis.ttl(cacheKeys.account('instagram', '1'))).toBeLessThanOrEqual(30);
  });

  it('when a herd of callers misses one key at once, then one load answers them all', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const load = jest.fn(async () => {
      await gate;
      return { n: 1 };
    });
    const herd = Array.from({ length: 50 }, () => getOrLoad(cacheKeys.apiKey('herd'), load));
    release();
    expect(await Promise.all(herd)).toEqual(Array.from({ length: 50 }, () => ({ n: 1 })));
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('when the load fails, then every waiter sees the error and the next call loads again', async () => {
    const load = jest.fn().mockRejectedValueOnce(new Error('db down')).mockResolvedValue({ ok: true });
    await expect(Promise.all([getOrLoad(cacheKeys.apiKey('f'), load), getOrLoad(cacheKeys.apiKey('f'), load)])).rejects.toThrow('db down');
    await expect(getOrLoad(cacheKeys.apiKey('f'), load)).resolves.toEqual({ ok: true });
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('when an invalidation lands while a load is running, then the load does not write its old answer', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const key = cacheKeys.apiKey('race');
    const stale = getOrLoad(key, async () => {
      await gate; // read Postgres before the revoke committed…
      return { id: 'live' };
    });
    await new Promise((resolve) => setImmediate(resolve));
    await invalidate(key); // …the revoke commits and invalidates…
    release();
    await expect(stale).resolves.toEqual({ id: 'live' }); // …the racing request was concurrent with it…
    expect(await redis.exists(key)).toBe(0); // …but its answer is not cached
    const fresh = jest.fn(async () => null);
    await expect(getOrLoad(key, fresh)).resolves.toBeNull();
    expect(fresh).toHaveBeenCalledTimes(1);
  });

  it('when Redis fails, then the loader (Postgres) answers every call and nothing is written', async () => {
    const broken = { mget: jest.fn().mockRejectedValue(new Error('ECONNREFUSED')), eval: jest.fn() };
    (getRedis as jest.Mock).mockImplementation(() => broken);
    const load = jest.fn(async () => ({ v: 1 }));
    await expect(getOrLoad(cacheKeys.apiKey('down'), load)).resolves.toEqual({ v: 1 });
    await expect(getOrLoad(cacheKeys.apiKey('down'), load)).resolves.toEqual({ v: 1 });
    expect(load).toHaveBeenCalledTimes(2);
    expect(broken.eval).not.toHaveBeenCalled();
  });

  it('when Redis hangs, then the loader answers after READ_TIMEOUT_MS', async () => {
    const hanging = { mget: jest.fn(() => new Promise(() => undefined)), eval: jest.fn() };
    (getRedis as jest.Mock).mockImplementation(() => hanging);
    const started = Date.now();
    await expect(getOrLoad(cacheKeys.apiKey('hang'), async () => 'from postgres')).resolves.toBe('from postgres');
    expect(Date.now() - started).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 10);
    expect(hanging.eval).not.toHaveBeenCalled();
  });
});

describe('invalidate', () => {
  it('when an entry is invalidated, then the next call loads afresh', async () => {
    const key = cacheKeys.tenant(TENANT_A, 'balance', TENANT_A);
    await getOrLoad(key, async () => 10);
    await invalidate(key);
    await expect(getOrLoad(key, async () => 7)).resolves.toBe(7);
  });

  it('when Redis cannot be told, then it throws unavailable (the caller must not pretend it worked)', async () => {
    const multi = { set: jest.fn().mockReturnThis(), del: jest.fn().mockReturnThis(), exec: jest.fn().mockRejectedValue(new Error('ECONNREFUSED')) };
    (getRedis as jest.Mock).mockImplementation(() => ({ multi: () => multi }));
    await expect(invalidate(cacheKeys.apiKey('x'))).rejects.toMatchObject({ code: 'unavailable', status: 503 });
  });
});
