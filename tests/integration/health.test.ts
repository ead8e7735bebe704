import type Redis from 'ioredis';
import request from 'supertest';
import { createApp } from '../../src/app';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { getRedis } from '../../src/utils/redis';
import { httpRequestDuration } from '../../src/utils/metrics';
import { createTestTenant } from '../fixtures/tenants';
import { loadWithEnv } from '../fixtures/isolatedModules';
import type { Express } from 'express';

describe('health endpoints', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  it('when the process is up, then /healthz answers 200 with a request id', async () => {
    const res = await request(app).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('when the caller sends X-Request-Id, then it is echoed', async () => {
    const res = await request(app).get('/healthz').set('X-Request-Id', 'abc-123');
    expect(res.headers['x-request-id']).toBe('abc-123');
  });

  it('when Postgres and Redis answer, then /readyz is 200', async () => {
    const res = await request(app).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body.checks).toEqual({ postgres: 'ok', redis: 'ok' });
  });

  it('when Redis is unreachable, then /readyz is 503 and names it', async () => {
    // A standalone connection: these tests point it at a dead port.
    const redis = getRedis() as Redis;
    // Point the shared client at a port nothing listens on; reconnects keep failing.
    redis.disconnect();
    const original = redis.options.port;
    redis.options.port = 1;
    try {
      const res = await request(app).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body.checks).toEqual({ postgres: 'ok', redis: 'down' });
    } finally {
      redis.options.port = original;
      await redis.connect().catch(() => undefined);
    }
  });

  it('when the route is unknown, then 404 in the error shape', async () => {
    const res = await request(app).get('/nope').set('X-Request-Id', 'r-1');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /nope', request_id: 'r-1' } });
  });

  it('when /metrics is scraped, then Prometheus text comes back', async () => {
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toContain('process_cpu_user_seconds_total');
  });

  it('when /v1 requests succeed or fail, then /metrics labels both with the full route pattern', async () => {
    const tenant = await createTestTenant();
    await request(app).get('/v1/me').set(tenant.auth).expect(200);
    await request(app).get('/v1/me').expect(401);
    await request(app).get('/v1/agents/00000000-0000-4000-8000-000000000000').set(tenant.auth).expect(404);
    await request(app).get('/v1/agents/not-a-uuid').set(tenant.auth).expect(400);
    const routes = (await httpRequestDuration.get()).values
      .filter((value) => value.metricName === 'http_request_duration_seconds_count')
      .map((value) => `${value.labels.route} ${value.labels.status}`);
    expect(routes).toEqual(expect.arrayContaining(['/v1/me 200', '/v1/me 401', '/v1/agents/:id 404', '/v1/agents/:id 400']));
    expect(routes.filter((route) => /^\/(me|agents)\b/.test(route))).toEqual([]);
    expect((await request(app).get('/metrics')).text).toContain('route="/v1/me",status="401"');
  });
});

describe('/metrics with METRICS_TOKEN set', () => {
  const TOKEN = 'a-metrics-token-for-prometheus';
  /* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
  const isolated = loadWithEnv({ METRICS_TOKEN: TOKEN }, () => ({
    createApp: require('../../src/app').createApp as () => Express,
    closeRedis: require('../../src/utils/redis').closeRedis as () => Promise<void>,
    closeDatabase: require('../../src/utils/database').closeDatabase as () => Promise<void>,
  }));
  /* eslint-enable @typescript-eslint/no-require-imports */
  const app = isolated.createApp();

  beforeAll(setupTestDatabase);
  afterAll(async () => {
    await isolated.closeRedis();
    await isolated.closeDatabase();
    await teardownTestDatabase();
  });

  it('when scraped without the token, then 401 unauthorized in the error shape and no series', async () => {
    const res = await request(app).get('/metrics').set('X-Request-Id', 'scrape-1');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String), request_id: 'scrape-1' } });
    expect(res.text).not.toContain('process_cpu_user_seconds_total');
  });

  it('when scraped with a wrong token or another scheme, then 401', async () => {
    expect((await request(app).get('/metrics').set('Authorization', 'Bearer not-the-metrics-token')).status).toBe(401);
    expect((await request(app).get('/metrics').set('Authorization', `Basic ${TOKEN}`)).status).toBe(401);
    expect((await request(app).get('/metrics').set('Authorization', 'Bearer dev-admin-key')).status).toBe(401);
  });

  it('when scraped with the token, then Prometheus text comes back', async () => {
    const res = await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.text).toContain('process_cpu_user_seconds_total');
  });

  it('when the token is set, then /healthz and /readyz stay open', async () => {
    expect((await request(app).get('/healthz')).status).toBe(200);
    expect((await request(app).get('/readyz')).status).toBe(200);
  });
});
