/**
 * The operator's tenant endpoints and a tenant's `/v1/me`, against the real app, Postgres and
 * Redis: every status each endpoint can answer, and the life of an API key from issue to revoke.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant } from '../fixtures/tenants';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { getRedis } from '../../src/utils/redis';
import { hashApiKey } from '../../src/models/ApiKey';
import { cacheKeys } from '../../src/services/cacheService';
import type { Express } from 'express';

/**
 * Another API process: the app with its own module registry, so its own config, pools, Redis
 * connection and in-process single-flight map; it shares only Postgres and Redis with `app`.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const otherProcess = (env: Record<string, string> = {}) =>
  loadWithEnv(env, () => ({
    app: (require('../../src/app') as typeof import('../../src/app')).createApp() as Express,
    closeDatabase: (require('../../src/utils/database') as typeof import('../../src/utils/database')).closeDatabase,
    closeRedis: (require('../../src/utils/redis') as typeof import('../../src/utils/redis')).closeRedis,
  }));
/* eslint-enable @typescript-eslint/no-require-imports */

const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });
const uniqueEmail = (label = 'user') => `${label}-${randomBytes(4).toString('hex')}@example.com`;

describe('tenant administration API', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  async function createUser(body: Record<string, unknown> = {}) {
    const res = await request(app)
      .post('/v1/users')
      .set(ADMIN_AUTH)
      .send({ name: 'Acme', email: uniqueEmail(), ...body });
    expect(res.status).toBe(201);
    return res.body as { user: { id: string; credit_balance: number }; api_key: string; api_key_id: string };
  }

  describe('POST /v1/users', () => {
    it('when the operator creates a user with credits, then 201 with the user, a working key and one top_up entry', async () => {
      const email = uniqueEmail('Opening');
      const res = await request(app).post('/v1/users').set(ADMIN_AUTH).send({ name: 'Acme Ltd', email, credits: 500 });

      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        user: { id: expect.any(String), name: 'Acme Ltd', email, credit_balance: 500, created_at: expect.any(String) },
        api_key: expect.stringMatching(/^mca_[A-Za-z0-9_-]{43}$/),
        api_key_id: expect.any(String),
      });
      const { rows } = await db.query<{ amount: string; reason: string }>(
        `SELECT amount, reason FROM credit_ledger WHERE user_id = $1`,
        [res.body.user.id],
      );
      expect(rows).toEqual([{ amount: '500', reason: 'top_up' }]);
      const me = await request(app).get('/v1/me').set(bearer(res.body.api_key));
      expect(me.status).toBe(200);
      expect(me.body.id).toBe(res.body.user.id);
    });

    it('when no credits are given, then the balance is 0 and the ledger is empty', async () => {
      const { user } = await createUser();
      expect(user.credit_balance).toBe(0);
      const { rows } = await db.query(`SELECT id FROM credit_ledger WHERE user_id = $1`, [user.id]);
      expect(rows).toHaveLength(0);
    });

    it('when the email is taken in another case, then 409 conflict and nothing is created', async () => {
      const email = uniqueEmail('dup');
      await createUser({ email });
      const before = await db.query(`SELECT count(*)::int AS n FROM api_keys`);

      const res = await request(app).post('/v1/users').set(ADMIN_AUTH).send({ name: 'Again', email: email.toUpperCase(), credits: 10 });

      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({ code: 'conflict', message: expect.any(String), request_id: expect.any(String) });
      const users = await db.query(`SELECT id FROM users WHERE lower(email) = lower($1)`, [email]);
      expect(users.rows).toHaveLength(1);
      const after = await db.query(`SELECT count(*)::int AS n FROM api_keys`);
      expect(after.rows).toEqual(before.rows);
    });

    it('when the same email is created twice at once, then exactly one 201 and one 409', async () => {
      const email = uniqueEmail('race');
      const send = () => request(app).post('/v1/users').set(ADMIN_AUTH).send({ name: 'Racer', email });
      const statuses = (await Promise.all([send(), send()])).map((res) => res.status).sort();
      expect(statuses).toEqual([201, 409]);
    });

    it('when fields are invalid, then 400 validation_error naming each path', async () => {
      const res = await request(app)
        .post('/v1/users')
        .set(ADMIN_AUTH)
        .set('X-Request-Id', 'req-validation')
        .send({ name: '', email: 'not-an-email', credits: -1 });

      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.request_id).toBe('req-validation');
      expect(res.body.error.details.map((detail: { path: string }) => detail.path).sort()).toEqual(['credits', 'email', 'name']);
    });

    it('when credits are not a whole number, then 400 naming credits', async () => {
      const res = await request(app).post('/v1/users').set(ADMIN_AUTH).send({ name: 'A', email: uniqueEmail(), credits: 1.5 });
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'credits', message: expect.any(String) }]);
    });

    it('when the body is missing, then 400 naming name and email', async () => {
      const res = await request(app).post('/v1/users').set(ADMIN_AUTH);
      expect(res.status).toBe(400);
      expect(res.body.error.details.map((detail: { path: string }) => detail.path).sort()).toEqual(['email', 'name']);
    });

    it('when the body is malformed JSON, then 400 invalid_json', async () => {
      const res = await request(app).post('/v1/users').set(ADMIN_AUTH).set('Content-Type', 'application/json').send('{"name": "A",');
      expect(res.status).toBe(400);
      expect(res.body.error).toEqual({ code: 'invalid_json', message: expect.any(String), request_id: expect.any(String) });
    });

    it('when a body is sent without a JSON Content-Type, then 415 unsupported_media_type saying what was sent', async () => {
      const form = await request(app).post('/v1/users').set(ADMIN_AUTH).type('form').send('name=A&email=a%40example.com');
      expect(form.status).toBe(415);
      expect(form.body.error).toEqual({
        code: 'unsupported_media_type',
        message: 'The request body must be JSON (Content-Type: application/json); got application/x-www-form-urlencoded',
        request_id: expect.any(String),
      });
      const text = await request(app).post('/v1/users').set(ADMIN_AUTH).set('Content-Type', 'text/plain').send('{"name":"A"}');
      expect(text.status).toBe(415);
      const withCharset = await request(app).post('/v1/users').set(ADMIN_AUTH).set('Content-Type', 'application/json; charset=utf-8').send(JSON.stringify({ name: 'A', email: uniqueEmail() }));
      expect(withCharset.status).toBe(201);
    });

    it('when the body is over the size limit, then 413 payload_too_large', async () => {
      const huge = JSON.stringify({ name: 'A', email: uniqueEmail(), padding: 'x'.repeat(4 * 1024 * 1024) });
      const res = await request(app).post('/v1/users').set(ADMIN_AUTH).set('Content-Type', 'application/json').send(huge);
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
    });

    it('when there is no key, then 401 unauthorized', async () => {
      const res = await request(app).post('/v1/users').send({ name: 'A', email: uniqueEmail() });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    });

    it('when the key is unknown, then 401 unauthorized', async () => {
      const res = await request(app).post('/v1/users').set(bearer('mca_not-a-real-key')).send({ name: 'A', email: uniqueEmail() });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    });

    it('when a tenant key calls it, then 403 forbidden', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).post('/v1/users').set(tenant.auth).send({ name: 'A', email: uniqueEmail() });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    });
  });

  describe('GET /v1/users', () => {
    it('when listing with a small limit, then pages run newest first without repeats', async () => {
      const created = [];
      for (let i = 0; i < 3; i += 1) created.push((await createUser({ name: `Paged ${i}` })).user.id);

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res: request.Response = await request(app)
          .get('/v1/users')
          .query({ limit: 2, ...(cursor ? { cursor } : {}) })
          .set(ADMIN_AUTH);
        expect(res.status).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(2);
        seen.push(...res.body.data.map((user: { id: string }) => user.id));
        cursor = res.body.next_cursor;
      } while (cursor);

      expect(new Set(seen).size).toBe(seen.length);
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM users`);
      expect(seen).toHaveLength(rows[0]!.n);
      // Newest first: the three just made, in reverse order, lead the list.
      expect(seen.slice(0, 3)).toEqual([...created].reverse());
    });

    it('when listing, then each user carries its credit balance', async () => {
      const { user } = await createUser({ credits: 42 });
      const res = await request(app).get('/v1/users').set(ADMIN_AUTH);
      expect(res.status).toBe(200);
      expect(res.body.data).toContainEqual({ id: user.id, name: 'Acme', email: expect.any(String), credit_balance: 42, created_at: expect.any(String) });
    });

    it('when the limit is out of range, then 400 naming limit', async () => {
      for (const limit of ['0', '101', 'many']) {
        const res = await request(app).get('/v1/users').query({ limit }).set(ADMIN_AUTH);
        expect(res.status).toBe(400);
        expect(res.body.error.details[0].path).toBe('limit');
      }
    });

    it('when the cursor was not handed out by the API, then 400 naming cursor', async () => {
      const res = await request(app).get('/v1/users').query({ cursor: 'garbage' }).set(ADMIN_AUTH);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'cursor', message: expect.any(String) }]);
    });

    it('when a tenant key lists users, then 403', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).get('/v1/users').set(tenant.auth);
      expect(res.status).toBe(403);
    });

    it('when there is no key, then 401', async () => {
      expect((await request(app).get('/v1/users')).status).toBe(401);
    });
  });

  describe('GET /v1/users/:id', () => {
    it('when the user exists, then 200 with its balance', async () => {
      const { user } = await createUser({ credits: 7 });
      const res = await request(app).get(`/v1/users/${user.id}`).set(ADMIN_AUTH);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: user.id, name: 'Acme', email: expect.any(String), credit_balance: 7, created_at: expect.any(String) });
    });

    it('when the user does not exist, then 404', async () => {
      const res = await request(app).get(`/v1/users/${randomUUID()}`).set(ADMIN_AUTH);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    });

    it('when the id is not a uuid, then 400 naming id', async () => {
      const res = await request(app).get('/v1/users/42').set(ADMIN_AUTH);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'id', message: expect.any(String) }]);
    });

    it('when a tenant asks for itself through the operator route, then 403', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).get(`/v1/users/${tenant.userId}`).set(tenant.auth);
      expect(res.status).toBe(403);
    });
  });

  describe('API keys', () => {
    it('when the operator issues another key, then 201 and both keys work', async () => {
      const { user, api_key: first } = await createUser();
      const res = await request(app).post(`/v1/users/${user.id}/api-keys`).set(ADMIN_AUTH);

      expect(res.status).toBe(201);
      expect(res.body).toEqual({ id: expect.any(String), api_key: expect.stringMatching(/^mca_/) });
      expect(res.body.api_key).not.toBe(first);
      expect((await request(app).get('/v1/me').set(bearer(first))).status).toBe(200);
      expect((await request(app).get('/v1/me').set(bearer(res.body.api_key))).status).toBe(200);
    });

    it('when issuing a key for an unknown user, then 404', async () => {
      const res = await request(app).post(`/v1/users/${randomUUID()}/api-keys`).set(ADMIN_AUTH);
      expect(res.status).toBe(404);
    });

    it('when a tenant key issues keys, then 403', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).post(`/v1/users/${tenant.userId}/api-keys`).set(tenant.auth);
      expect(res.status).toBe(403);
    });

    it('when a key is revoked, then its very next request is 401, in this and in a second API process', async () => {
      const { user, api_key: kept } = await createUser();
      const issued = await request(app).post(`/v1/users/${user.id}/api-keys`).set(ADMIN_AUTH);
      const revoked: string = issued.body.api_key;
      // A second app stands in for another API process; it has already seen the key work.
      const secondProcess = createApp();
      expect((await request(secondProcess).get('/v1/me').set(bearer(revoked))).status).toBe(200);

      const res = await request(app).delete(`/v1/users/${user.id}/api-keys/${issued.body.id}`).set(ADMIN_AUTH);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');

      const here = await request(app).get('/v1/me').set(bearer(revoked));
      expect(here.status).toBe(401);
      expect(here.body.error.code).toBe('unauthorized');
      expect((await request(secondProcess).get('/v1/me').set(bearer(revoked))).status).toBe(401);
      expect((await request(secondProcess).get('/v1/credits/ledger').set(bearer(revoked))).status).toBe(401);
      // The tenant's other key is untouched.
      expect((await request(secondProcess).get('/v1/me').set(bearer(kept))).status).toBe(200);
    });

    it('when the first key (from user creation) is revoked, then it stops working', async () => {
      const { user, api_key: key, api_key_id: keyId } = await createUser();
      expect((await request(app).delete(`/v1/users/${user.id}/api-keys/${keyId}`).set(ADMIN_AUTH)).status).toBe(204);
      expect((await request(app).get('/v1/me').set(bearer(key))).status).toBe(401);
    });

    it('when a revoked key is revoked again, then 204 again', async () => {
      const { user, api_key_id: keyId } = await createUser();
      const path = `/v1/users/${user.id}/api-keys/${keyId}`;
      expect((await request(app).delete(path).set(ADMIN_AUTH)).status).toBe(204);
      expect((await request(app).delete(path).set(ADMIN_AUTH)).status).toBe(204);
    });

    it('when the key belongs to another user, then 404 and the key keeps working', async () => {
      const owner = await createUser();
      const other = await createUser();
      const res = await request(app).delete(`/v1/users/${other.user.id}/api-keys/${owner.api_key_id}`).set(ADMIN_AUTH);
      expect(res.status).toBe(404);
      expect((await request(app).get('/v1/me').set(bearer(owner.api_key))).status).toBe(200);
    });

    it('when the key or the user does not exist, then 404', async () => {
      const { user } = await createUser();
      expect((await request(app).delete(`/v1/users/${user.id}/api-keys/${randomUUID()}`).set(ADMIN_AUTH)).status).toBe(404);
      expect((await request(app).delete(`/v1/users/${randomUUID()}/api-keys/${randomUUID()}`).set(ADMIN_AUTH)).status).toBe(404);
    });

    it('when the key id is malformed, then 400 naming keyId', async () => {
      const { user } = await createUser();
      const res = await request(app).delete(`/v1/users/${user.id}/api-keys/nope`).set(ADMIN_AUTH);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'keyId', message: expect.any(String) }]);
    });

    it('when a tenant tries to revoke its own key, then 403 and the key still works', async () => {
      const { user, api_key: key, api_key_id: keyId } = await createUser();
      const res = await request(app).delete(`/v1/users/${user.id}/api-keys/${keyId}`).set(bearer(key));
      expect(res.status).toBe(403);
      expect((await request(app).get('/v1/me').set(bearer(key))).status).toBe(200);
    });

    it('when a key has been issued, then no later response and no database column holds it in plain', async () => {
      const created = await createUser({ credits: 3 });
      const extra = await request(app).post(`/v1/users/${created.user.id}/api-keys`).set(ADMIN_AUTH);
      const keys = [created.api_key, extra.body.api_key as string];

      const later = [
        await request(app).get('/v1/users').query({ limit: 100 }).set(ADMIN_AUTH),
        await request(app).get(`/v1/users/${created.user.id}`).set(ADMIN_AUTH),
        await request(app).get('/v1/me').set(bearer(created.api_key)),
        await request(app).get('/v1/credits/ledger').set(bearer(created.api_key)),
        await request(app).post(`/v1/users/${created.user.id}/credits`).set(ADMIN_AUTH).send({ amount: 1 }),
        await request(app).get('/openapi.json'),
      ];
      for (const res of later) {
        const text = JSON.stringify(res.body) + JSON.stringify(res.headers);
        for (const key of keys) {
          expect(text).not.toContain(key);
          expect(text).not.toContain(key.slice(4));
        }
      }

      // Every text-like column of every table, so a key cannot hide in some other column either.
      const { rows: columns } = await db.query<{ table: string; column: string }>(
        `SELECT table_name AS "table", column_name AS "column" FROM information_schema.columns
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'jsonb', 'json')`,
      );
      expect(columns).toContainEqual({ table: 'api_keys', column: 'key_hash' });
      for (const { table, column } of columns) {
        for (const key of keys) {
          const { rows } = await db.query(`SELECT 1 FROM "${table}" WHERE "${column}"::text LIKE '%' || $1 || '%' LIMIT 1`, [
            key.slice(4),
          ]);
          expect({ table, column, found: rows.length }).toEqual({ table, column, found: 0 });
        }
      }
      const { rows: stored } = await db.query<{ key_hash: string; key_prefix: string }>(
        `SELECT key_hash, key_prefix FROM api_keys WHERE user_id = $1`,
        [created.user.id],
      );
      expect(stored).toHaveLength(2);
      for (const row of stored) {
        expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
        expect(keys.some((key) => key.startsWith(row.key_prefix))).toBe(true);
      }
    });
  });

  describe('the cached key lookup', () => {
    const second = otherProcess();
    // Redis at a port nothing listens on: this process has no cache at all.
    const noRedis = otherProcess({ REDIS_URL: 'redis://127.0.0.1:1/0' });
    afterAll(async () => {
      for (const process of [second, noRedis]) {
        await process.closeRedis();
        await process.closeDatabase();
      }
    });

    it('when a cached key is revoked in one process, then its next request is 401 in another process with its own modules', async () => {
      const { user, api_key: kept } = await createUser();
      const issued = await request(app).post(`/v1/users/${user.id}/api-keys`).set(ADMIN_AUTH);
      const revoked: string = issued.body.api_key;
      // Both processes have used the key, so it is cached in Redis for both.
      expect((await request(second.app).get('/v1/me').set(bearer(revoked))).status).toBe(200);
      expect((await request(app).get('/v1/me').set(bearer(revoked))).status).toBe(200);
      expect(await getRedis().exists(cacheKeys.apiKey(hashApiKey(revoked)))).toBe(1);

      expect((await request(app).delete(`/v1/users/${user.id}/api-keys/${issued.body.id}`).set(ADMIN_AUTH)).status).toBe(204);

      expect((await request(second.app).get('/v1/me').set(bearer(revoked))).status).toBe(401);
      expect((await request(app).get('/v1/me').set(bearer(revoked))).status).toBe(401);
      expect((await request(second.app).get('/v1/me').set(bearer(kept))).status).toBe(200);
    });

    it('when the other process revokes, then this process stops the key at once too', async () => {
      const { user, api_key: key, api_key_id: keyId } = await createUser();
      expect((await request(app).get('/v1/me').set(bearer(key))).status).toBe(200);
      expect((await request(second.app).delete(`/v1/users/${user.id}/api-keys/${keyId}`).set(ADMIN_AUTH)).status).toBe(204);
      expect((await request(app).get('/v1/me').set(bearer(key))).status).toBe(401);
    });

    it("when two tenants' keys are cached, then each request is answered as its own tenant", async () => {
      const first = await createUser();
      const other = await createUser();
      for (let round = 0; round < 2; round += 1) {
        const [a, b] = await Promise.all([
          request(second.app).get('/v1/me').set(bearer(first.api_key)),
          request(second.app).get('/v1/me').set(bearer(other.api_key)),
        ]);
        expect(a.body.id).toBe(first.user.id);
        expect(b.body.id).toBe(other.user.id);
      }
    });

    it('when Redis is down, then keys are still checked in Postgres: a live key works, a revoked one is refused', async () => {
      const { user, api_key: key } = await createUser();
      const issued = await request(app).post(`/v1/users/${user.id}/api-keys`).set(ADMIN_AUTH);
      // Cached while this process's Redis is up…
      expect((await request(app).get('/v1/me').set(bearer(issued.body.api_key))).status).toBe(200);
      expect((await request(noRedis.app).get('/v1/me').set(bearer(key))).status).toBe(200);
      // …revoked by a process that cannot reach Redis: saved in Postgres, answered 503 so it is retried.
      const revoke = await request(noRedis.app).delete(`/v1/users/${user.id}/api-keys/${issued.body.id}`).set(ADMIN_AUTH);
      expect(revoke.status).toBe(503);
      expect((await request(noRedis.app).get('/v1/me').set(bearer(issued.body.api_key))).status).toBe(401);
      // The retry, from a process that reaches Redis, invalidates: the key stops everywhere.
      expect((await request(app).delete(`/v1/users/${user.id}/api-keys/${issued.body.id}`).set(ADMIN_AUTH)).status).toBe(204);
      expect((await request(app).get('/v1/me').set(bearer(issued.body.api_key))).status).toBe(401);
    });
  });

  describe('GET /v1/me', () => {
    it('when a tenant asks, then 200 with exactly its id, name, email, balance and credits held', async () => {
      const tenant = await createTestTenant({ credits: 25, name: 'Me Myself' });
      const res = await request(app).get('/v1/me').set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: tenant.userId, name: 'Me Myself', email: expect.any(String), credit_balance: 25, credits_held: 0 });
    });

    it('when the operator key is used, then 403', async () => {
      const res = await request(app).get('/v1/me').set(ADMIN_AUTH);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    });

    it('when there is no key or a bad one, then 401', async () => {
      expect((await request(app).get('/v1/me')).status).toBe(401);
      expect((await request(app).get('/v1/me').set(bearer('mca_wrong'))).status).toBe(401);
      expect((await request(app).get('/v1/me').set({ Authorization: 'Basic abc' })).status).toBe(401);
    });
  });
});
