/**
 * The table of contents of the HTTP API, mounted on a bare app with the edges mocked (the fake
 * database, Redis, and a recording stand-in for the rate limiter): what is mounted where, what
 * only /v1 gets (the rate limit, JSON-only bodies), and that the document lists every route.
 */
import express from 'express';
import request from 'supertest';
import { mountRoutes } from '../../src/routes';
import { errorHandler, notFoundHandler } from '../../src/middleware/errorHandler';
import { createRateLimiter } from '../../src/middleware/rateLimit';

jest.mock('../../src/utils/database', () => jest.requireActual('../fixtures/fakeDatabase').fakeDatabaseModule());
jest.mock('../../src/utils/redis', () => ({ getRedis: jest.fn() }));
jest.mock('../../src/middleware/rateLimit', () => jest.requireActual('../fixtures/controllerApp').passThroughRateLimitModule());

const app = express();
app.use(express.json());
mountRoutes(app);
app.use(notFoundHandler);
app.use(errorHandler);
const api = request(app);
const limiter = jest.mocked(createRateLimiter).mock.results[0]!.value as jest.Mock;

beforeEach(() => limiter.mockClear());

describe('mountRoutes', () => {
  it('when mounted, then one rate limiter is made for the API', () => {
    expect(createRateLimiter).toHaveBeenCalledTimes(1);
  });

  it('when the operational routes are called, then they answer at the root, not rate limited', async () => {
    expect((await api.get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await api.get('/openapi.json')).status).toBe(200);
    expect(limiter).not.toHaveBeenCalled();
  });

  it('when /docs is opened, then Swagger UI is served', async () => {
    const res = await api.get('/docs/');

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.text).toContain('swagger-ui');
  });

  it.each(['/v1/me', '/v1/users', '/v1/phone-numbers', '/v1/agents', '/v1/conversations', '/v1/extractions', '/v1/webhook-endpoints'])(
    'when %s is called without a key, then its router answers 401 behind the rate limiter',
    async (path) => {
      const res = await api.get(path);

      expect(res.status).toBe(401);
      expect(limiter).toHaveBeenCalledTimes(1);
    },
  );

  it('when an API path is called without the /v1 prefix, then 404', async () => {
    expect((await api.get('/agents')).status).toBe(404);
  });

  it('when a /v1 body is not JSON, then 415 before any key is checked', async () => {
    const res = await api.post('/v1/agents').set('Content-Type', 'text/plain').send('name=Bot');

    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
  });
});

describe('GET /openapi.json', () => {
  it('when read, then it lists the operational routes and every router’s /v1 routes', async () => {
    const { body } = await api.get('/openapi.json');

    expect(body.openapi).toBe('3.1.0');
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/readyz',
        '/metrics',
        '/v1/users',
        '/v1/me',
        '/v1/credits/ledger',
        '/v1/phone-numbers/{id}/agent',
        '/v1/agents/{id}/archive',
        '/v1/conversations/{id}/messages',
        '/v1/extractions',
        '/v1/conversations/{id}/extract',
        '/v1/webhook-endpoints/{id}/deliveries',
      ]),
    );
  });
});
