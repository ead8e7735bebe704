/**
 * Request correlation: which X-Request-Id a request gets, that the rest of the request runs in
 * its context, and the one log line and duration observation per request, labelled by route
 * pattern (never the raw URL).
 */
import express from 'express';
import request from 'supertest';
import { requestContext } from '../../../src/middleware/logging';
import { currentContext } from '../../../src/utils/context';
import { httpRequestDuration } from '../../../src/utils/metrics';
import { logger } from '../../../src/utils/logger';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const app = express();
app.use(requestContext);
app.get('/things/:id', (req, res) => {
  res.json({ seen: req.requestId, context: currentContext()?.requestId });
});
app.get('/fail', (_req, res) => {
  res.status(503).end();
});
const api = request(app);

let observe: jest.SpyInstance;
let info: jest.SpyInstance;
let error: jest.SpyInstance;
beforeEach(() => {
  observe = jest.spyOn(httpRequestDuration, 'observe');
  info = jest.spyOn(logger, 'info').mockImplementation(() => undefined);
  error = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

/** Resolves once the response's `finish` listeners ran (supertest may see the body first). */
const finished = () => new Promise((resolve) => setImmediate(resolve));

describe('requestContext', () => {
  it('when the caller sends no X-Request-Id, then a fresh UUID is echoed, set on the request and in the context', async () => {
    const res = await api.get('/things/1');

    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.body).toEqual({ seen: res.headers['x-request-id'], context: res.headers['x-request-id'] });
  });

  it('when two requests come without one, then each gets its own', async () => {
    const [a, b] = await Promise.all([api.get('/things/1'), api.get('/things/2')]);

    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });

  it('when the caller sends a tame id, then it is kept', async () => {
    const res = await api.get('/things/1').set('X-Request-Id', 'client.trace:42_a-b');

    expect(res.headers['x-request-id']).toBe('client.trace:42_a-b');
    expect(res.body.context).toBe('client.trace:42_a-b');
  });

  it.each([
    ['spaces', 'has spaces'],
    ['a percent sign', 'a%0Ab'],
    ['more than 128 characters', 'x'.repeat(129)],
  ])('when the caller’s id has %s, then a fresh UUID replaces it', async (_what, given) => {
    const res = await api.get('/things/1').set('X-Request-Id', given);

    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('when a routed request finishes, then its duration is observed under the route pattern and one info line is logged', async () => {
    const res = await api.get('/things/abc-123');
    await finished();

    expect(observe).toHaveBeenCalledWith({ method: 'GET', route: '/things/:id', status: '200' }, expect.any(Number));
    expect(info).toHaveBeenCalledWith(
      expect.objectContaining({ request_id: res.headers['x-request-id'], method: 'GET', path: '/things/abc-123', status: 200, ms: expect.any(Number) }),
      'request',
    );
  });

  it('when no route matched, then the label is `unmatched`', async () => {
    await api.get('/nowhere/at/all');
    await finished();

    expect(observe).toHaveBeenCalledWith({ method: 'GET', route: 'unmatched', status: '404' }, expect.any(Number));
  });

  it('when the answer is a 5xx, then the request line is logged at error', async () => {
    await api.get('/fail');
    await finished();

    expect(error).toHaveBeenCalledWith(expect.objectContaining({ status: 503, path: '/fail' }), 'request');
    expect(info).not.toHaveBeenCalledWith(expect.anything(), 'request');
  });
});
