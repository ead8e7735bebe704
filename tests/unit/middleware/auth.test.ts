/**
 * Bearer authentication with fake requests and only the database edge mocked: who gets in,
 * which error the rest get, and that tenant keys are looked up by hash on every request.
 */
import type { NextFunction, Request, Response } from 'express';
import { bearerToken, constantTimeEquals, requireAdmin, requireTenant, tenantOf } from '../../../src/middleware/auth';
import * as database from '../../../src/utils/database';
import { fakeDatabaseOf } from '../../fixtures/fakeDatabase';
import { hashApiKey } from '../../../src/models/ApiKey';
import { currentContext, runWithContext } from '../../../src/utils/context';
import { config } from '../../../src/config';
import { getRedis } from '../../../src/utils/redis';
import { forgetApiKey } from '../../../src/services/liveApiKeys';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());
// The key lookup goes through the cache; ioredis-mock stands in for Redis.
jest.mock('../../../src/utils/redis', () => {
  const redis = jest.requireActual('../../fixtures/redisMock').createRedisMock('auth');
  return { getRedis: () => redis };
});

const query = fakeDatabaseOf(database).db.query;
const USER = '11111111-1111-4111-8111-111111111111';
const KEY_ID = '22222222-2222-4222-8222-222222222222';
const TENANT_KEY = 'mca_tenant-key-for-unit-tests';

function fakeRequest(authorization?: string): Request {
  const headers: Record<string, string | undefined> = { authorization };
  return { get: (name: string) => headers[name.toLowerCase()] } as unknown as Request;
}

const res = {} as Response;

/** Makes the key table know exactly one live key. */
function knowsTenantKey(): void {
  query.mockImplementation(async (_sql: string, params: unknown[] = []) =>
    params[0] === hashApiKey(TENANT_KEY) ? { rows: [{ id: KEY_ID, userId: USER }], rowCount: 1 } : { rows: [], rowCount: 0 },
  );
}

beforeEach(async () => {
  query.mockReset();
  knowsTenantKey();
  await getRedis().flushall();
});

describe('bearerToken', () => {
  it('when the header is a bearer token, then the token (scheme case-insensitive, spaces trimmed)', () => {
    expect(bearerToken(fakeRequest('Bearer abc'))).toBe('abc');
    expect(bearerToken(fakeRequest('bearer   abc  '))).toBe('abc');
  });

  it('when the header is missing, another scheme or has two tokens, then null', () => {
    expect(bearerToken(fakeRequest())).toBeNull();
    expect(bearerToken(fakeRequest('Basic abc'))).toBeNull();
    expect(bearerToken(fakeRequest('Bearer'))).toBeNull();
    expect(bearerToken(fakeRequest('Bearer a b'))).toBeNull();
  });
});

describe('constantTimeEquals', () => {
  it('when strings match, then true; when they differ in content or length, then false', () => {
    expect(constantTimeEquals('same', 'same')).toBe(true);
    expect(constantTimeEquals('same', 'sane')).toBe(false);
    expect(constantTimeEquals('short', 'much longer')).toBe(false);
  });
});

describe('requireAdmin', () => {
  it('when the operator key is sent, then next() and the request is marked admin, without a database lookup', async () => {
    const req = fakeRequest(`Bearer ${config.ADMIN_API_KEY}`);
    const next = jest.fn();
    await requireAdmin(req, res, next as NextFunction);
    expect(next).toHaveBeenCalledWith();
    expect(req.isAdmin).toBe(true);
    expect(query).not.toHaveBeenCalled();
  });

  it('when no key is sent, then unauthorized', async () => {
    await expect(requireAdmin(fakeRequest(), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized', status: 401 });
  });

  it('when a live tenant key is sent, then forbidden', async () => {
    const next = jest.fn();
    await expect(requireAdmin(fakeRequest(`Bearer ${TENANT_KEY}`), res, next)).rejects.toMatchObject({ code: 'forbidden', status: 403 });
    expect(next).not.toHaveBeenCalled();
  });

  it('when an unknown key is sent, then unauthorized (not forbidden: nothing confirms it exists)', async () => {
    await expect(requireAdmin(fakeRequest('Bearer mca_unknown'), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized' });
  });
});

describe('requireTenant', () => {
  it('when a live tenant key is sent, then next() with the tenant and key on the request and in the log context', async () => {
    const req = fakeRequest(`Bearer ${TENANT_KEY}`);
    const next = jest.fn();
    const context = { requestId: 'r-1' } as { requestId: string; userId?: string };

    await runWithContext(context, () => requireTenant(req, res, next as NextFunction));

    expect(next).toHaveBeenCalledWith();
    expect(req.userId).toBe(USER);
    expect(req.apiKeyId).toBe(KEY_ID);
    expect(context.userId).toBe(USER);
    expect(currentContext()).toBeUndefined();
  });

  it('when looking a key up, then only its SHA-256 is sent to the database, and only live keys match', async () => {
    await requireTenant(fakeRequest(`Bearer ${TENANT_KEY}`), res, jest.fn());
    const [sql, params] = query.mock.calls[0] as [string, unknown[]];
    expect(params).toEqual([hashApiKey(TENANT_KEY)]);
    expect(JSON.stringify(query.mock.calls)).not.toContain(TENANT_KEY);
    expect(sql).toContain('revoked_at IS NULL');
  });

  it('when the same key is used twice, then the second request is served from the cache; once revoked (forgotten), it is refused at once', async () => {
    await requireTenant(fakeRequest(`Bearer ${TENANT_KEY}`), res, jest.fn());
    const req = fakeRequest(`Bearer ${TENANT_KEY}`);
    await requireTenant(req, res, jest.fn());
    expect(req.userId).toBe(USER);
    expect(query).toHaveBeenCalledTimes(1);

    query.mockResolvedValue({ rows: [], rowCount: 0 }); // revoked in Postgres…
    await forgetApiKey(hashApiKey(TENANT_KEY)); // …and invalidated, as userService.revokeApiKey does
    await expect(requireTenant(fakeRequest(`Bearer ${TENANT_KEY}`), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized' });
    expect(query).toHaveBeenCalledTimes(2);
  });

  it('when the operator key is sent, then forbidden', async () => {
    await expect(requireTenant(fakeRequest(`Bearer ${config.ADMIN_API_KEY}`), res, jest.fn())).rejects.toMatchObject({
      code: 'forbidden',
      status: 403,
    });
  });

  it('when no key or an unknown key is sent, then unauthorized', async () => {
    await expect(requireTenant(fakeRequest(), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(requireTenant(fakeRequest('Bearer nope'), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(requireTenant(fakeRequest(`Basic ${TENANT_KEY}`), res, jest.fn())).rejects.toMatchObject({ code: 'unauthorized' });
  });

  it('when the database fails, then the error propagates (the request fails closed)', async () => {
    query.mockRejectedValue(new Error('connection refused'));
    const next = jest.fn();
    await expect(requireTenant(fakeRequest(`Bearer ${TENANT_KEY}`), res, next)).rejects.toThrow('connection refused');
    expect(next).not.toHaveBeenCalled();
  });
});

describe('tenantOf', () => {
  it('when the request was authenticated as a tenant, then its id', () => {
    const req = fakeRequest();
    req.userId = USER;
    expect(tenantOf(req)).toBe(USER);
  });

  it('when it was not, then unauthorized', () => {
    expect(() => tenantOf(fakeRequest())).toThrow(expect.objectContaining({ code: 'unauthorized' }));
  });
});
