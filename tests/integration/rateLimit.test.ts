/**
 * The REST API's rate limit on the real app, Redis and Postgres. The app is loaded in an
 * isolated module registry with RATE_LIMIT_PER_MINUTE=5, because config is parsed once at import
 * and this file's other modules must keep the default.
 */
import request from 'supertest';
import type { Express } from 'express';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant } from '../fixtures/tenants';

const LIMIT = 5;

interface IsolatedApp {
  createApp: () => Express;
  closeDatabase: () => Promise<void>;
  closeRedis: () => Promise<void>;
}

function loadAppWithLimit(limit: number): IsolatedApp {
  let loaded: IsolatedApp | undefined;
  const previous = process.env.RATE_LIMIT_PER_MINUTE;
  process.env.RATE_LIMIT_PER_MINUTE = String(limit);
  try {
    jest.isolateModules(() => {
      /* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
      loaded = {
        createApp: require('../../src/app').createApp,
        closeDatabase: require('../../src/utils/database').closeDatabase,
        closeRedis: require('../../src/utils/redis').closeRedis,
      };
      /* eslint-enable @typescript-eslint/no-require-imports */
    });
  } finally {
    if (previous === undefined) delete process.env.RATE_LIMIT_PER_MINUTE;
    else process.env.RATE_LIMIT_PER_MINUTE = previous;
  }
  return loaded!;
}

describe('rate limit', () => {
  const isolated = loadAppWithLimit(LIMIT);
  // Two apps stand in for two API processes: they share nothing but Redis.
  const first = isolated.createApp();
  const second = isolated.createApp();

  beforeAll(setupTestDatabase);
  afterAll(async () => {
    await isolated.closeRedis();
    await isolated.closeDatabase();
    await teardownTestDatabase();
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
});
