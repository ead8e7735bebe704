/**
 * Liveness, readiness and metrics with the edges mocked: the Postgres and Redis pings readyz
 * makes, and the fleet's metrics text. A probe that fails or hangs makes readyz a 503 naming it.
 */
import express from 'express';
import request from 'supertest';
import { healthRouter } from '../../../src/controllers/health';
import { pingDatabase } from '../../../src/utils/database';
import { pingRedis } from '../../../src/utils/redis';
import { fleetMetricsText } from '../../../src/utils/fleetMetrics';
import { registry } from '../../../src/utils/metrics';

jest.mock('../../../src/utils/database', () => ({ pingDatabase: jest.fn() }));
jest.mock('../../../src/utils/redis', () => ({ pingRedis: jest.fn() }));
jest.mock('../../../src/utils/fleetMetrics', () => ({ fleetMetricsText: jest.fn() }));

const postgres = jest.mocked(pingDatabase);
const redis = jest.mocked(pingRedis);
const api = request(express().use(healthRouter));

beforeEach(() => {
  jest.clearAllMocks();
  postgres.mockResolvedValue(undefined);
  redis.mockResolvedValue(undefined);
});

describe('GET /healthz', () => {
  it('when the process serves HTTP, then 200 {status: ok} without pinging anything', async () => {
    const res = await api.get('/healthz');

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(postgres).not.toHaveBeenCalled();
    expect(redis).not.toHaveBeenCalled();
  });
});

describe('GET /readyz', () => {
  it('when Postgres and Redis answer, then 200 ready with both ok', async () => {
    const res = await api.get('/readyz');

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('when Postgres rejects, then 503 unavailable naming Postgres down and Redis ok', async () => {
    postgres.mockRejectedValue(new Error('ECONNREFUSED'));

    const res = await api.get('/readyz');

    expect(res.status).toBe(503);
    expect(res.body).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'ok' } });
  });

  it('when Redis hangs, then readyz still answers, after its 1 s budget, with Redis down', async () => {
    redis.mockReturnValue(new Promise(() => {}));
    const started = Date.now();

    const res = await api.get('/readyz');

    expect(res.status).toBe(503);
    expect(res.body.checks).toEqual({ postgres: 'ok', redis: 'down' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('GET /metrics', () => {
  it('when scraped, then the fleet’s Prometheus text with the registry’s content type', async () => {
    jest.mocked(fleetMetricsText).mockResolvedValue('# HELP up 1\nup 1\n');

    const res = await api.get('/metrics');

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain(registry.contentType.split(';')[0]);
    expect(res.text).toBe('# HELP up 1\nup 1\n');
  });
});
