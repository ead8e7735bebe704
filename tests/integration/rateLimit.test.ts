/**
 * The REST API's rate limit on the real app, Redis and Postgres. The app is loaded in an
 * isolated module registry with RATE_LIMIT_PER_MINUTE=5, because config is parsed once at import
 * and this file's other modules must keep the default.
 */
import request from 'supertest';
import type { Express } from 'express';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { db } from '../../src/utils/database';
import { ADMIN_AUTH, createTestTenant } from '../fixtures/tenants';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Server } from 'node:http';

const LIMIT = 5;

interface IsolatedApp {
  createApp: () => Express;
  closeDatabase: () => Promise<void>;
  closeRedis: () => Promise<void>;
  getRedis: () => Redis;
  apiKeys: typeof import('../../src/models/ApiKey');
}

/* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
const loadApp = (env: Record<string, string>): IsolatedApp =>
  loadWithEnv(env, () => ({
    createApp: require('../../src/app').createApp,
    closeDatabase: require('../../src/utils/database').closeDatabase,
    closeRedis: require('../../src/utils/redis').closeRedis,
    getRedis: require('../../src/utils/redis').getRedis,
    apiKeys: require('../../src/models/ApiKey'),
  }));
/* eslint-enable @typescript-eslint/no-require-imports */

const guess = () => ({ Authorization: `Bearer mca_${randomBytes(32).toString('base64url')}` });

describe('rate limit', () => {
  const isolated = loadApp({ RATE_LIMIT_PER_MINUTE: String(LIMIT) });
  // Two apps stand in for two API processes: they share nothing but Redis.
  const first = isolated.createApp();
  const second = isolated.createApp();
  // Behind one load balancer: the address it saw is the client's.
  const proxied = loadApp({ RATE_LIMIT_PER_MINUTE: String(LIMIT), TRUST_PROXY: '1' });
  const behindProxy = proxied.createApp();

  beforeAll(setupTestDatabase);
  afterAll(async () => {
    for (const app of [isolated, proxied]) {
      await app.closeRedis();
      await app.closeDatabase();
    }
    await teardownTestDatabase();
  });
  // Every request of this file comes from 127.0.0.1 and the operator key is shared: each test
  // starts with every budget unspent.
  afterEach(async () => {
    const redis = isolated.getRedis();
    const prefix = redis.options.keyPrefix ?? '';
    const spent = await redis.keys(`${prefix}ratelimit:*`);
    if (spent.length > 0) await redis.del(...spent.map((key) => key.slice(prefix.length)));
  });

  it('when a key goes past the limit, then 429 rate_limited with Retry-After in the error shape', async () => {
    const tenant = await createTestTenant();
    for (let i = 0; i < LIMIT; i += 1) {
      expect((await request(first).get('/v1/me').set(tenant.auth)).status).toBe(200);
    }

    const res = await request(first).get('/v1/me').set(tenant.auth).set('X-Request-Id', 'limited-1');

    expect(res.status).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(res.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String), request_id: 'limited-1' } });
  });

  it('when two API processes serve one key, then they share one budget', async () => {
    const tenant = await createTestTenant();
    const apps = [first, second, first, second, second];
    for (const app of apps) expect((await request(app).get('/v1/me').set(tenant.auth)).status).toBe(200);

    expect((await request(first).get('/v1/me').set(tenant.auth)).status).toBe(429);
    expect((await request(second).get('/v1/me').set(tenant.auth)).status).toBe(429);
  });

  it('when one key is limited, then another key is not', async () => {
    const noisy = await createTestTenant();
    const quiet = await createTestTenant();
    for (let i = 0; i <= LIMIT; i += 1) await request(first).get('/v1/me').set(noisy.auth);
    expect((await request(first).get('/v1/me').set(noisy.auth)).status).toBe(429);
    expect((await request(first).get('/v1/me').set(quiet.auth)).status).toBe(200);
  });

  it('when requests come in parallel, then no more than the limit get through', async () => {
    const tenant = await createTestTenant();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => request(i % 2 ? first : second).get('/v1/me').set(tenant.auth)),
    );
    const statuses = responses.map((res) => res.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(LIMIT);
    expect(statuses.filter((status) => status === 429)).toHaveLength(20 - LIMIT);
  });

  it('when the operator key is used, then it is limited like any other key', async () => {
    // The admin key is shared by this file only: its counter lives under this file's Redis prefix.
    const statuses: number[] = [];
    for (let i = 0; i <= LIMIT; i += 1) statuses.push((await request(second).get('/v1/users').set(ADMIN_AUTH)).status);
    expect(statuses.slice(0, LIMIT).every((status) => status === 200)).toBe(true);
    expect(statuses[LIMIT]).toBe(429);
  });

  it('when the health endpoints are polled, then they are never limited', async () => {
    for (let i = 0; i < LIMIT * 2; i += 1) expect((await request(first).get('/healthz')).status).toBe(200);
  });

  describe('guessing keys', () => {
    /** Spends an address's budget with unknown keys; each answered 401 until it runs out. */
    const spendWithGuesses = async (address: string) => {
      for (let i = 0; i < LIMIT; i += 1) {
        expect((await request(behindProxy).get('/v1/me').set(guess()).set('X-Forwarded-For', address)).status).toBe(401);
      }
    };

    it('when unknown keys come from one address, then they share its budget: the one past it is 429, with a key or without', async () => {
      await spendWithGuesses('198.51.100.1');

      const res = await request(behindProxy).get('/v1/me').set(guess()).set('X-Forwarded-For', '198.51.100.1');
      expect(res.status).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect((await request(behindProxy).get('/v1/me').set('X-Forwarded-For', '198.51.100.1')).status).toBe(429);
    });

    it('when an address has spent its budget on guesses, then a further guess costs no Postgres lookup', async () => {
      await spendWithGuesses('198.51.100.2');
      const lookups = jest.spyOn(proxied.apiKeys, 'findActiveKeyByHash');
      try {
        for (let i = 0; i < 10; i += 1) {
          expect((await request(behindProxy).get('/v1/me').set(guess()).set('X-Forwarded-For', '198.51.100.2')).status).toBe(429);
        }
        expect(lookups).not.toHaveBeenCalled();
      } finally {
        lookups.mockRestore();
      }
    });

    it('when an address has spent its budget on guesses, then valid keys from it keep their own budgets, new ones included', async () => {
      const used = await createTestTenant();
      expect((await request(behindProxy).get('/v1/me').set(used.auth).set('X-Forwarded-For', '198.51.100.3')).status).toBe(200);
      const created = await request(behindProxy).post('/v1/users').set(ADMIN_AUTH).send({ name: 'New', email: `new-${randomBytes(4).toString('hex')}@example.com` });
      expect(created.status).toBe(201);
      await spendWithGuesses('198.51.100.3');

      for (let i = 1; i < LIMIT; i += 1) {
        expect((await request(behindProxy).get('/v1/me').set(used.auth).set('X-Forwarded-For', '198.51.100.3')).status).toBe(200);
      }
      const fresh = { Authorization: `Bearer ${created.body.api_key}` };
      expect((await request(behindProxy).get('/v1/me').set(fresh).set('X-Forwarded-For', '198.51.100.3')).status).toBe(200);
      expect((await request(behindProxy).get('/v1/me').set(used.auth).set('X-Forwarded-For', '198.51.100.3')).status).toBe(429);
    });

    it("when a key is revoked, then its requests count against the address, not the key's old budget", async () => {
      const created = await request(behindProxy).post('/v1/users').set(ADMIN_AUTH).send({ name: 'Gone', email: `gone-${randomBytes(4).toString('hex')}@example.com` });
      const revoked = { Authorization: `Bearer ${created.body.api_key}` };
      expect((await request(behindProxy).get('/v1/me').set(revoked).set('X-Forwarded-For', '198.51.100.4')).status).toBe(200);
      const { rows } = await db.query<{ id: string }>('SELECT id FROM api_keys WHERE user_id = $1', [created.body.user.id]);
      expect((await request(behindProxy).delete(`/v1/users/${created.body.user.id}/api-keys/${rows[0]!.id}`).set(ADMIN_AUTH)).status).toBe(204);

      for (let i = 0; i < LIMIT; i += 1) {
        expect((await request(behindProxy).get('/v1/me').set(revoked).set('X-Forwarded-For', '198.51.100.4')).status).toBe(401);
      }
      // The address is spent: a guess from it is refused, as the revoked key's next try is.
      expect((await request(behindProxy).get('/v1/me').set(guess()).set('X-Forwarded-For', '198.51.100.4')).status).toBe(429);
      expect((await request(behindProxy).get('/v1/me').set(revoked).set('X-Forwarded-For', '198.51.100.4')).status).toBe(429);
    });

    it('when TRUST_PROXY trusts the load balancer, then each client address it names has its own budget', async () => {
      await spendWithGuesses('198.51.100.5');
      expect((await request(behindProxy).get('/v1/me').set(guess()).set('X-Forwarded-For', '198.51.100.6')).status).toBe(401);
    });

    it('when TRUST_PROXY is unset, then a forged X-Forwarded-For buys no fresh budget', async () => {
      for (let i = 0; i < LIMIT; i += 1) {
        expect((await request(first).get('/v1/me').set(guess()).set('X-Forwarded-For', `203.0.113.${i}`)).status).toBe(401);
      }
      expect((await request(first).get('/v1/me').set(guess()).set('X-Forwarded-For', '203.0.113.99')).status).toBe(429);
    });
  });
});

describe('a burst of guessed keys at the default limit', () => {
  const isolated = loadApp({});
  let server: Server;

  beforeAll(async () => {
    await setupTestDatabase();
    server = isolated.createApp().listen(0);
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await isolated.closeRedis();
    await isolated.closeDatabase();
    await teardownTestDatabase();
  });

  it('when 700 requests bring 700 random keys, then the ones past the address budget are 429, and then no guess costs a lookup', async () => {
    const statuses: number[] = [];
    // Fifty at a time: a burst, without 700 sockets at once.
    for (let wave = 0; wave < 14; wave += 1) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => request(server).get('/v1/me').set(guess())));
      statuses.push(...answers.map((res) => res.status));
    }
    expect(statuses.filter((status) => status === 401)).toHaveLength(600);
    expect(statuses.filter((status) => status === 429)).toHaveLength(100);

    const lookups = jest.spyOn(isolated.apiKeys, 'findActiveKeyByHash');
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => request(server).get('/v1/me').set(guess())));
      expect(answers.every((res) => res.status === 429)).toBe(true);
      expect(lookups).not.toHaveBeenCalled();
    } finally {
      lookups.mockRestore();
    }
  }, 60_000);
});
