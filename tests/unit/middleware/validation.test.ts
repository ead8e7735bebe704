/**
 * `defineRoute` and `requireJsonBody` on a bare app, auth replaced by the controller tests'
 * stand-in: what a handler receives (parsed params, query and body), what it answers (status,
 * body or none), who gets through, and what each route registers in the OpenAPI document.
 */
import express, { Router } from 'express';
import request from 'supertest';
import { z } from 'zod';
import { API_PREFIX, defineRoute, requireJsonBody, type RouteSpec } from '../../../src/middleware/validation';
import { openapiRegistry } from '../../../src/utils/openapi';
import { errorHandler } from '../../../src/middleware/errorHandler';
import { AS_OPERATOR, AS_TENANT, SOME_ID, TENANT, controllerApp, errorShape } from '../../fixtures/controllerApp';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());

/** Each test's routes live under a path of their own: the OpenAPI registry is one per process. */
let routeCount = 0;
const uniquePath = (suffix = '') => `/validation-test-${++routeCount}${suffix}`;

/** The registered OpenAPI operation of `path` (Express form) and `method`. */
function registered(method: string, path: string) {
  const openapiPath = `${API_PREFIX}${path}`.replace(/:([A-Za-z_]+)/g, '{$1}');
  const found = openapiRegistry.definitions.find((d) => d.type === 'route' && d.route.method === method && d.route.path === openapiPath);
  if (!found || found.type !== 'route') throw new Error(`${method} ${openapiPath} not registered`);
  return found.route;
}

/** One route on its own router and app; `handler` sees what defineRoute parsed. */
function oneRoute(spec: Omit<RouteSpec<unknown, unknown, unknown>, 'summary' | 'tag'>, handler: Parameters<typeof defineRoute>[2]) {
  const router = Router();
  defineRoute(router, { summary: 'test route', tag: 'Test', ...spec }, handler);
  return request(controllerApp(router));
}

describe('API_PREFIX', () => {
  it('when routes are mounted, then under /v1', () => {
    expect(API_PREFIX).toBe('/v1');
  });
});

describe('defineRoute: requests', () => {
  it('when params, query and body are valid, then the handler gets them parsed (coerced, defaulted, trimmed) and 200 with its result', async () => {
    const path = uniquePath('/:id');
    const handler = jest.fn(async (input: { params: unknown; query: unknown; body: unknown }) => ({ got: [input.params, input.query, input.body] }));
    const api = oneRoute(
      {
        method: 'post',
        path,
        auth: 'none',
        params: z.object({ id: z.uuid() }),
        query: z.object({ n: z.coerce.number(), flag: z.string().default('off') }),
        body: z.object({ name: z.string().trim() }),
      },
      handler,
    );

    const res = await api.post(`/v1${path.replace(':id', SOME_ID)}?n=7`).send({ name: '  Ana ' });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ got: [{ id: SOME_ID }, { n: 7, flag: 'off' }, { name: 'Ana' }] });
  });

  it('when params and body are both wrong, then 400 naming the params only (params are checked first)', async () => {
    const path = uniquePath('/:id');
    const handler = jest.fn();
    const api = oneRoute({ method: 'post', path, auth: 'none', params: z.object({ id: z.uuid() }), body: z.object({ name: z.string() }) }, handler);

    const res = await api.post(`/v1${path.replace(':id', 'nope')}`).send({});

    expect(res.status).toBe(400);
    expect(res.body).toMatchObject(errorShape('validation_error'));
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
    expect(handler).not.toHaveBeenCalled();
  });

  it('when a body schema is declared and no body is sent, then it is parsed as {} (a 400 naming the missing fields)', async () => {
    const path = uniquePath();
    const api = oneRoute({ method: 'post', path, auth: 'none', body: z.object({ name: z.string() }) }, jest.fn());

    const res = await api.post(`/v1${path}`);

    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'name' })]);
  });

  it('when a status is declared, then the result is sent with it', async () => {
    const path = uniquePath();

    const res = await oneRoute({ method: 'post', path, auth: 'none', status: 202 }, () => ({ status: 'queued' })).post(`/v1${path}`);

    expect(res.status).toBe(202);
    expect(res.body).toEqual({ status: 'queued' });
  });

  it('when the status is 204, or the handler returns nothing, then the response has no body', async () => {
    const noContent = uniquePath();
    const nothing = uniquePath();

    const a = await oneRoute({ method: 'delete', path: noContent, auth: 'none', status: 204 }, () => ({ ignored: true })).delete(`/v1${noContent}`);
    const b = await oneRoute({ method: 'get', path: nothing, auth: 'none' }, () => undefined).get(`/v1${nothing}`);

    expect([a.status, a.text]).toEqual([204, '']);
    expect([b.status, b.text]).toEqual([200, '']);
  });

  it('when the handler answered by itself, then defineRoute sends nothing more', async () => {
    const path = uniquePath();
    const api = oneRoute({ method: 'get', path, auth: 'none' }, ({ res }) => {
      res.status(302).location('/elsewhere').end();
      return { never: 'sent' };
    });

    const res = await api.get(`/v1${path}`);

    expect(res.status).toBe(302);
    expect(res.text).toBe('');
  });

  it('when the handler rejects, then the error handler answers for it', async () => {
    const path = uniquePath();

    const res = await oneRoute({ method: 'get', path, auth: 'none' }, async () => Promise.reject(new Error('db down'))).get(`/v1${path}`);

    expect(res.status).toBe(500);
    expect(res.body).toMatchObject(errorShape('internal_error'));
  });

  it('when the route matched, then the request carries its full pattern for the metrics label', async () => {
    const path = uniquePath('/:id');
    const api = oneRoute({ method: 'get', path, auth: 'none' }, ({ req }) => ({ pattern: req.routePattern }));

    expect((await api.get(`/v1${path.replace(':id', '42')}`)).body).toEqual({ pattern: `/v1${path}` });
  });
});

describe('defineRoute: who may call', () => {
  it('when the route is for tenants, then a tenant gets in (its id on the request), the operator gets 403, no key 401', async () => {
    const path = uniquePath();
    const api = oneRoute({ method: 'get', path, auth: 'tenant' }, ({ req }) => ({ tenant: req.userId }));

    expect((await api.get(`/v1${path}`).set(AS_TENANT)).body).toEqual({ tenant: TENANT });
    expect((await api.get(`/v1${path}`).set(AS_OPERATOR)).status).toBe(403);
    expect((await api.get(`/v1${path}`)).status).toBe(401);
  });

  it('when the route is for the operator, then the operator gets in and a tenant gets 403', async () => {
    const path = uniquePath();
    const api = oneRoute({ method: 'get', path, auth: 'admin' }, () => ({ ok: true }));

    expect((await api.get(`/v1${path}`).set(AS_OPERATOR)).status).toBe(200);
    expect((await api.get(`/v1${path}`).set(AS_TENANT)).status).toBe(403);
  });

  it('when the guard refuses, then the body is never parsed (401 rather than 400)', async () => {
    const path = uniquePath();

    const res = await oneRoute({ method: 'post', path, auth: 'tenant', body: z.object({ x: z.string() }) }, jest.fn()).post(`/v1${path}`).send({});

    expect(res.status).toBe(401);
  });
});

describe('defineRoute: the OpenAPI document', () => {
  it('when a tenant route with params and a body is defined, then its path uses {param}, the tenant scheme and every error it can give', () => {
    const path = uniquePath('/:id');
    defineRoute(
      Router(),
      { method: 'patch', path, summary: 'Change', tag: 'Things', auth: 'tenant', params: z.object({ id: z.uuid() }), body: z.object({ a: z.string() }), errors: ['not_found'] },
      () => undefined,
    );

    const route = registered('patch', path);

    expect(route.path).toBe(`/v1${path.replace(':id', '{id}')}`);
    expect(route.tags).toEqual(['Things']);
    expect(route.security).toEqual([{ tenantKey: [] }]);
    expect(route.description).toContain("A tenant's key only");
    expect(Object.keys(route.responses).sort()).toEqual(['200', '400', '401', '403', '404', '413', '415', '429', '500']);
    expect(route.request?.body).toBeDefined();
    expect(route.request?.params).toBeDefined();
  });

  it('when an open route without input is defined, then no security, no 4xx, its own description first', () => {
    const path = uniquePath();
    defineRoute(Router(), { method: 'get', path, summary: 'Open', description: 'Says hello.', tag: 'Things', auth: 'none', status: 204 }, () => undefined);

    const route = registered('get', path);

    expect(route.security).toEqual([]);
    expect(Object.keys(route.responses).sort()).toEqual(['204', '500']);
    expect(route.responses['204']).toMatchObject({ description: 'Done; no body' });
    expect(route.description).toBe('Says hello.\n\nNo key needed.');
  });

  it('when an operator route is defined, then the operator scheme', () => {
    const path = uniquePath();
    defineRoute(Router(), { method: 'get', path, summary: 'Ops', tag: 'Things', auth: 'admin' }, () => undefined);

    expect(registered('get', path).security).toEqual([{ operatorKey: [] }]);
  });
});

describe('requireJsonBody', () => {
  const app = express();
  app.use(express.json());
  app.use(requireJsonBody);
  app.all('/echo', (req, res) => {
    res.json({ body: req.body ?? null });
  });
  app.use(errorHandler);
  const api = request(app);

  it('when the body is JSON, then it passes', async () => {
    expect((await api.post('/echo').send({ a: 1 })).body).toEqual({ body: { a: 1 } });
  });

  it('when there is no body, then it passes whatever the Content-Type', async () => {
    expect((await api.get('/echo')).status).toBe(200);
    expect((await api.delete('/echo').set('Content-Type', 'text/plain')).status).toBe(200);
  });

  it('when a body is sent as text, then 415 unsupported_media_type naming the type given', async () => {
    const res = await api.post('/echo').set('Content-Type', 'text/plain').send('a=1');

    expect(res.status).toBe(415);
    expect(res.body.error).toMatchObject({ code: 'unsupported_media_type', message: expect.stringContaining('text/plain') });
  });

  it('when a chunked body comes with no Content-Type, then 415 saying none was given', async () => {
    const req = api.post('/echo').set('Transfer-Encoding', 'chunked');
    req.write('{"a":1}');

    const res = await req;

    expect(res.status).toBe(415);
    expect(res.body.error.message).toContain('no Content-Type');
  });
});
