/**
 * The one error handler: what every kind of throw becomes (code, status, details), the body it
 * answers with, which failures it logs, and that a 500 says nothing of its cause.
 */
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import request from 'supertest';
import { z, ZodError } from 'zod';
import { errorBody, errorHandler, notFoundHandler, sendError, toAppError, zodDetails } from '../../../src/middleware/errorHandler';
import { AppError } from '../../../src/utils/errors';
import { runWithContext } from '../../../src/utils/context';
import { logger } from '../../../src/utils/logger';

const zodErrorOf = (schema: z.ZodType, value: unknown): ZodError => schema.safeParse(value).error!;

/** An app whose one route runs `route`, then the 404 and error handlers, as app.ts orders them. */
function appThat(route: RequestHandler, requestId = 'req-1') {
  const app = express();
  app.use((req, _res, next) => {
    req.requestId = requestId;
    next();
  });
  app.get('/boom', route);
  app.use(notFoundHandler);
  app.use(errorHandler as ErrorRequestHandler);
  return request(app);
}

let logged: jest.SpyInstance;
beforeEach(() => {
  logged = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

describe('zodDetails', () => {
  it('when issues have nested paths, then one detail each, the path dotted', () => {
    const error = zodErrorOf(z.object({ a: z.object({ b: z.array(z.string()) }), c: z.number() }), { a: { b: ['x', 1] }, c: 'no' });

    expect(zodDetails(error)).toEqual([
      { path: 'a.b.1', message: expect.any(String) },
      { path: 'c', message: expect.any(String) },
    ]);
  });

  it('when the issue is about the whole value, then its path is empty', () => {
    expect(zodDetails(zodErrorOf(z.string(), 1))).toEqual([{ path: '', message: expect.any(String) }]);
  });
});

describe('toAppError', () => {
  it('when given an AppError, then the very same error', () => {
    const error = new AppError('conflict', 'taken');

    expect(toAppError(error)).toBe(error);
  });

  it('when given a ZodError, then validation_error with its details', () => {
    const mapped = toAppError(zodErrorOf(z.object({ name: z.string() }), {}));

    expect(mapped).toMatchObject({ code: 'validation_error', status: 400, details: [{ path: 'name' }] });
  });

  it.each([
    ['entity.too.large', 'payload_too_large', 413],
    ['entity.parse.failed', 'invalid_json', 400],
    ['encoding.unsupported', 'validation_error', 400],
    ['charset.unsupported', 'validation_error', 400],
  ])('when body-parser fails with %s, then %s (%i)', (type, code, status) => {
    expect(toAppError(Object.assign(new Error('body'), { type }))).toMatchObject({ code, status });
  });

  it('when given anything else, then internal_error keeping the original as its cause', () => {
    const cause = new TypeError('undefined is not a function');

    const mapped = toAppError(cause);

    expect(mapped).toMatchObject({ code: 'internal_error', status: 500 });
    expect(mapped.cause).toBe(cause);
    expect(mapped.message).not.toContain('undefined is not a function');
  });
});

describe('errorBody', () => {
  it('when the error has details, then code, message, details and the request id', () => {
    const error = new AppError('validation_error', 'bad', [{ path: 'x', message: 'wrong' }]);

    expect(errorBody(error, 'req-9')).toEqual({ error: { code: 'validation_error', message: 'bad', details: [{ path: 'x', message: 'wrong' }], request_id: 'req-9' } });
  });

  it('when it has none, then no details key at all', () => {
    expect(errorBody(new AppError('not_found', 'gone'), 'req-9').error).not.toHaveProperty('details');
  });

  it('when no request id is given, then the current context’s, else null', () => {
    const error = new AppError('not_found', 'gone');

    expect(runWithContext({ requestId: 'from-context' }, () => errorBody(error, undefined).error.request_id)).toBe('from-context');
    expect(errorBody(error, undefined).error.request_id).toBeNull();
  });
});

describe('sendError', () => {
  const rateLimited = (header?: string) =>
    appThat((_req, res) => {
      if (header) res.setHeader('Retry-After', header);
      sendError(res, new AppError('rate_limited', 'slow down'), 'req-2');
    }).get('/boom');

  it('when rate limited without a Retry-After, then 429 with Retry-After 60', async () => {
    const res = await rateLimited();

    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('60');
    expect(res.body.error).toMatchObject({ code: 'rate_limited', request_id: 'req-2' });
  });

  it('when a Retry-After is set already, then it is kept', async () => {
    expect((await rateLimited('17')).headers['retry-after']).toBe('17');
  });
});

describe('errorHandler', () => {
  it('when a route throws an AppError, then its status and the contract body, and nothing is logged', async () => {
    const res = await appThat(() => {
      throw new AppError('forbidden', 'not yours');
    }).get('/boom');

    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error: { code: 'forbidden', message: 'not yours', request_id: 'req-1' } });
    expect(logged).not.toHaveBeenCalled();
  });

  it('when a route throws something unexpected, then 500 internal_error saying nothing of it, and the cause is logged', async () => {
    const cause = new Error('password=hunter2 in a stack trace');

    const res = await appThat(async () => {
      throw cause;
    }).get('/boom');

    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal_error', message: 'Something went wrong on our side', request_id: 'req-1' } });
    expect(res.text).not.toContain('hunter2');
    expect(logged).toHaveBeenCalledWith(expect.objectContaining({ err: cause, path: '/boom' }), 'request failed');
  });

  it('when an AppError of 5xx is thrown, then it is logged as itself', async () => {
    const error = new AppError('unavailable', 'Postgres is down');

    const res = await appThat(() => {
      throw error;
    }).get('/boom');

    expect(res.status).toBe(503);
    expect(logged).toHaveBeenCalledWith(expect.objectContaining({ err: error }), 'request failed');
  });

  it('when the response had started, then it is ended as it was, not answered twice', async () => {
    const res = await appThat((_req, res, next) => {
      res.status(200).write('partial');
      next(new Error('late failure'));
    }).get('/boom');

    expect(res.status).toBe(200);
    expect(res.text).toBe('partial');
  });
});

describe('notFoundHandler', () => {
  it('when no route matches, then 404 not_found naming the method and path', async () => {
    const res = await appThat(() => undefined).post('/nowhere');

    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: 'No route for POST /nowhere', request_id: 'req-1' } });
  });
});
