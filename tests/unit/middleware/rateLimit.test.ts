/**
 * The rate limiter with its edges replaced: Redis by a small fake that speaks the commands
 * rate-limit-redis sends (SCRIPT LOAD, EVALSHA) and the live-key hints use, the key lookup by a
 * fixed set of live keys. Checks what is counted under which key, the 429 it answers, and that
 * a Redis outage does not take the API down.
 */
import express, { type Express } from 'express';
import request from 'supertest';
import type { Request } from 'express';
import { createRateLimiter, rateLimitKey } from '../../../src/middleware/rateLimit';
import { hashApiKey } from '../../../src/models/ApiKey';

/** Counters by key, as Redis would hold them; `failing` makes every command reject. */
const fakeRedis = {
  counters: new Map<string, number>(),
  hints: new Set<string>(),
  failing: false,
  async exists(key: string): Promise<number> {
    if (fakeRedis.failing) throw new Error('Redis is down');
    return fakeRedis.hints.has(key) ? 1 : 0;
  },
  async set(key: string): Promise<string> {
    if (fakeRedis.failing) throw new Error('Redis is down');
    fakeRedis.hints.add(key);
    return 'OK';
  },
  async call(command: string, ...args: string[]): Promise<unknown> {
    if (fakeRedis.failing) throw new Error('Redis is down');
    if (command === 'SCRIPT') return String(args[1]).includes('INCR') ? 'sha-increment' : 'sha-get';
    if (command === 'EVALSHA') {
      const [sha, , key, windowMs] = args as [string, string, string, string];
      if (sha === 'sha-get') return [fakeRedis.counters.get(key) ?? false, 60_000];
      const hits = (fakeRedis.counters.get(key) ?? 0) + 1;
      fakeRedis.counters.set(key, hits);
      return [hits, Number(windowMs)];
    }
    throw new Error(`unexpected command ${command}`);
  },
};

jest.mock('../../../src/utils/redis', () => ({ getRedis: () => fakeRedis, isCluster: () => false }));

/** Tenant keys the fake lookup knows as live; every lookup is counted. */
const LIVE_KEYS = new Set(['k1', 'k', 'a', 'b', 'shared', 'mca_plain'].map((key) => hashApiKey(key)));
const lookups = jest.fn(async (hash: string) => (LIVE_KEYS.has(hash) ? { id: 'key-id', userId: 'user-id' } : null));
jest.mock('../../../src/models/ApiKey', () => ({
  ...jest.requireActual('../../../src/models/ApiKey'),
  findActiveKeyByHash: (hash: string) => lookups(hash),
}));

function appWithLimit(limit: number): Express {
  const app = express();
  app.set('trust proxy', 1);
  app.use((req, _res, next) => {
    req.requestId = 'req-test';
    next();
  });
  app.use(createRateLimiter(limit));
  app.get('/ping', (_req, res) => {
    res.json({ ok: true });
  });
  return app;
}

beforeEach(() => {
  fakeRedis.counters.clear();
  fakeRedis.hints.clear();
  fakeRedis.failing = false;
  lookups.mockClear();
});

describe('rateLimitKey', () => {
  const fake = (authorization: string | undefined, ip = '203.0.113.9') =>
    ({ get: (name: string) => (name.toLowerCase() === 'authorization' ? authorization : undefined), ip }) as unknown as Request;

  it('when a bearer key is sent, then the counter is named by its hash, never the key', () => {
    const key = rateLimitKey(fake('Bearer mca_secret-value'));
    expect(key).toBe(`key:${hashApiKey('mca_secret-value')}`);
    expect(key).not.toContain('secret-value');
  });

  it('when no key is sent, then the counter is named by the client IP', () => {
    expect(rateLimitKey(fake(undefined))).toBe('ip:203.0.113.9');
  });

  it('when IPv6 clients share a /56, then they share a counter', () => {
    expect(rateLimitKey(fake(undefined, '2001:db8:0:1::1'))).toBe(rateLimitKey(fake(undefined, '2001:db8:0:1::2')));
  });
});

describe('createRateLimiter', () => {
  it('when under the limit, then requests pass with RateLimit headers', async () => {
    const app = appWithLimit(2);
    const res = await request(app).get('/ping').set('Authorization', 'Bearer k1');
    expect(res.status).toBe(200);
    expect(res.headers['ratelimit-policy']).toBeDefined();
  });

  it('when past the limit, then 429 rate_limited with Retry-After and the request id', async () => {
    const app = appWithLimit(2);
    for (let i = 0; i < 2; i += 1) expect((await request(app).get('/ping').set('Authorization', 'Bearer k1')).status).toBe(200);

    const res = await request(app).get('/ping').set('Authorization', 'Bearer k1');

    expect(res.status).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.body).toEqual({ error: { code: 'rate_limited', message: 'Too many requests: the limit is 2 a minute', request_id: 'req-test' } });
  });

  it('when counting, then the Redis key is the prefixed hash of the API key', async () => {
    await request(appWithLimit(5)).get('/ping').set('Authorization', 'Bearer mca_plain');
    expect([...fakeRedis.counters.keys()]).toEqual([`ratelimit:key:${hashApiKey('mca_plain')}`]);
  });

  it('when two limiter instances share Redis, then they share the counter', async () => {
    const first = appWithLimit(3);
    const second = appWithLimit(3);
    await request(first).get('/ping').set('Authorization', 'Bearer shared');
    await request(second).get('/ping').set('Authorization', 'Bearer shared');
    await request(first).get('/ping').set('Authorization', 'Bearer shared');
    expect((await request(second).get('/ping').set('Authorization', 'Bearer shared')).status).toBe(429);
  });

  it('when different keys are used, then each has its own budget', async () => {
    const app = appWithLimit(1);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer a')).status).toBe(200);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer b')).status).toBe(200);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer a')).status).toBe(429);
  });

  it('when unknown keys are presented, then they share the address budget, not one budget each', async () => {
    const app = appWithLimit(2);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer guess-1')).status).toBe(200);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer guess-2')).status).toBe(200);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer guess-3')).status).toBe(429);
    expect([...fakeRedis.counters.keys()].filter((key) => key.includes('key:'))).toEqual([]);
  });

  it('when the address has spent its budget on guesses, then a further guess is refused without a lookup', async () => {
    const app = appWithLimit(2);
    for (const guess of ['guess-1', 'guess-2']) await request(app).get('/ping').set('Authorization', `Bearer ${guess}`);
    lookups.mockClear();

    const res = await request(app).get('/ping').set('Authorization', 'Bearer guess-3');

    expect(res.status).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(lookups).not.toHaveBeenCalled();
  });

  it('when the address has spent its budget on guesses, then a live key from it keeps its own budget', async () => {
    const app = appWithLimit(2);
    await request(app).get('/ping').set('Authorization', 'Bearer k1'); // seen live once: hinted
    for (const guess of ['guess-1', 'guess-2', 'guess-3']) await request(app).get('/ping').set('Authorization', `Bearer ${guess}`);

    expect((await request(app).get('/ping').set('Authorization', 'Bearer k1')).status).toBe(200);
    expect((await request(app).get('/ping').set('Authorization', 'Bearer k1')).status).toBe(429);
  });

  it('when Redis is down, then requests are let through rather than failing', async () => {
    const app = appWithLimit(1);
    fakeRedis.failing = true;
    // express-rate-limit reports each store failure on the console; keep the run quiet but check it did.
    const report = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      for (let i = 0; i < 3; i += 1) expect((await request(app).get('/ping').set('Authorization', 'Bearer k')).status).toBe(200);
      expect(report).toHaveBeenCalled();
    } finally {
      report.mockRestore();
    }
  });
});
