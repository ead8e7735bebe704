import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { decryptSecret } from '../../src/utils/encryption';
import { accessTokenContext, findLiveByExternalId, getAccessToken } from '../../src/models/PhoneNumber';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant, type TestTenant } from '../fixtures/tenants';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

const newExternalId = () => `1${randomBytes(6).readUIntBE(0, 6)}`;
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** A token the Graph stand-in accepts for exactly this account (jest's globalSetup runs one for the app). */
const newToken = (channel: 'whatsapp' | 'instagram', externalId: string) => standinAccessToken(channel, externalId);

describe('phone numbers API', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  /** Every response body seen, to prove no token ever leaves the API. */
  const seenBodies: string[] = [];
  const seenTokens: string[] = [];
  const record = <T extends { text: string }>(res: T): T => {
    seenBodies.push(res.text);
    return res;
  };

  async function createNumber(tenant: TestTenant, overrides: Record<string, unknown> = {}) {
    const fields = { channel: 'whatsapp', external_id: newExternalId(), display_name: 'Front desk', ...overrides };
    const body = { access_token: newToken(fields.channel as 'whatsapp', String(fields.external_id)), ...fields };
    if (typeof body.access_token === 'string' && body.access_token.length > 10) seenTokens.push(body.access_token);
    const res = record(await request(app).post('/v1/phone-numbers').set(tenant.auth).send(body));
    return { res, body };
  }

  async function storedToken(id: string): Promise<string> {
    const { rows } = await db.query<{ token: string }>('SELECT access_token_encrypted AS token FROM phone_numbers WHERE id = $1', [id]);
    return rows[0]!.token;
  }

  async function seedConversation(tenant: TestTenant, phoneNumberId: string): Promise<string> {
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO conversations (user_id, phone_number_id, channel, customer_external_id) VALUES ($1, $2, 'whatsapp', $3) RETURNING id`,
      [tenant.userId, phoneNumberId, newExternalId()],
    );
    return rows[0]!.id;
  }

  describe('POST /v1/phone-numbers', () => {
    it('when the body is valid, then 201 with the number and without the token', async () => {
      const tenant = await createTestTenant();
      const { res, body } = await createNumber(tenant);
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        channel: 'whatsapp',
        external_id: body.external_id,
        display_name: 'Front desk',
        agent_id: null,
        created_at: expect.any(String),
      });
      expect(res.text).not.toContain(body.access_token);
    });

    it('when stored, then the column is the encrypted token, not the token, and decrypts back to it', async () => {
      const tenant = await createTestTenant();
      const { res, body } = await createNumber(tenant);
      const stored = await storedToken(res.body.id);
      expect(stored).toMatch(/^v2:[0-9a-f]{8}:[^:]+:[^:]+:[^:]+$/);
      expect(stored).not.toContain(body.access_token);
      expect(decryptSecret(stored, accessTokenContext(res.body.id))).toBe(body.access_token);
      expect(await getAccessToken(tenant.userId, res.body.id)).toBe(body.access_token);
    });

    it('when display_name is omitted, then it is null; when Instagram, then the channel is kept', async () => {
      const tenant = await createTestTenant();
      const { res } = await createNumber(tenant, { channel: 'instagram', display_name: undefined });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ channel: 'instagram', display_name: null });
    });

    it('when another tenant already has the account live, then 409 conflict', async () => {
      const [first, second] = [await createTestTenant(), await createTestTenant()];
      const { body } = await createNumber(first);
      const { res } = await createNumber(second, { external_id: body.external_id });
      expect(res.status).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'conflict', request_id: expect.any(String) });
    });

    it('when the same tenant registers the account twice, then 409 conflict', async () => {
      const tenant = await createTestTenant();
      const { body } = await createNumber(tenant);
      const { res } = await createNumber(tenant, { external_id: body.external_id });
      expect(res.status).toBe(409);
    });

    it('when the same id is registered on the other channel, then it is a different account (201)', async () => {
      const tenant = await createTestTenant();
      const { body } = await createNumber(tenant);
      const { res } = await createNumber(tenant, { external_id: body.external_id, channel: 'instagram' });
      expect(res.status).toBe(201);
    });

    it('when the account was deleted, then another tenant can register it', async () => {
      const [first, second] = [await createTestTenant(), await createTestTenant()];
      const { res: created, body } = await createNumber(first);
      expect((await request(app).delete(`/v1/phone-numbers/${created.body.id}`).set(first.auth)).status).toBe(204);
      const { res } = await createNumber(second, { external_id: body.external_id });
      expect(res.status).toBe(201);
    });

    it.each([
      [{ channel: 'sms' }, 'channel'],
      [{ external_id: 'has spaces' }, 'external_id'],
      [{ external_id: 'x'.repeat(65) }, 'external_id'],
      [{ access_token: undefined }, 'access_token'],
      [{ access_token: '' }, 'access_token'],
      [{ display_name: 'x'.repeat(201) }, 'display_name'],
      [{ agent_id: randomUUID() }, ''],
    ])('when the body has %j, then 400 naming "%s"', async (overrides, path) => {
      const tenant = await createTestTenant();
      const { res } = await createNumber(tenant, overrides);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    });

    it('when the body is not JSON, then 400 invalid_json', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).post('/v1/phone-numbers').set(tenant.auth).set('Content-Type', 'application/json').send('{"channel":');
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_json');
    });
  });

  describe('GET /v1/phone-numbers', () => {
    it('when the tenant has numbers, then pages list them newest first, without deleted or foreign ones', async () => {
      const [tenant, other] = [await createTestTenant(), await createTestTenant()];
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await createNumber(tenant)).res.body.id);
      await createNumber(other);
      const deleted = ids.splice(2, 1)[0]!;
      await request(app).delete(`/v1/phone-numbers/${deleted}`).set(tenant.auth);

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res: request.Response = record(
          await request(app)
            .get('/v1/phone-numbers')
            .query({ limit: 2, ...(cursor ? { cursor } : {}) })
            .set(tenant.auth),
        );
        expect(res.status).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(2);
        seen.push(...res.body.data.map((n: { id: string }) => n.id));
        cursor = res.body.next_cursor;
      } while (cursor);
      expect(seen).toEqual([...ids].reverse());
    });

    it('when no limit is given, then up to 20 and next_cursor null at the end', async () => {
      const tenant = await createTestTenant();
      await createNumber(tenant);
      const res = await request(app).get('/v1/phone-numbers').set(tenant.auth);
      expect(res.body).toEqual({ data: [expect.objectContaining({ channel: 'whatsapp' })], next_cursor: null });
    });

    it.each([
      [{ limit: 0 }, 'limit'],
      [{ limit: 101 }, 'limit'],
      [{ cursor: 'not-a-cursor' }, 'cursor'],
    ])('when the query is %j, then 400 naming "%s"', async (query, path) => {
      const tenant = await createTestTenant();
      const res = await request(app).get('/v1/phone-numbers').query(query).set(tenant.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path })]);
    });
  });

  describe('GET /v1/phone-numbers/:id', () => {
    it('when the number is the tenant’s, then 200 with it', async () => {
      const tenant = await createTestTenant();
      const { res: created } = await createNumber(tenant);
      const res = record(await request(app).get(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth));
      expect(res.status).toBe(200);
      expect(res.body).toEqual(created.body);
    });

    it('when the id is unknown, then 404; when malformed, then 400 naming id', async () => {
      const tenant = await createTestTenant();
      const missing = await request(app).get(`/v1/phone-numbers/${randomUUID()}`).set(tenant.auth);
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('not_found');
      const malformed = await request(app).get('/v1/phone-numbers/123').set(tenant.auth);
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
    });
  });

  describe('ownership: Graph must vouch for the token (guarantee 10)', () => {
    async function countLive(externalId: string): Promise<number> {
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM phone_numbers WHERE external_id = $1 AND deleted_at IS NULL', [externalId]);
      return Number(rows[0]!.n);
    }

    const expectRefusal = (res: { status: number; body: { error?: { code?: string; message?: string } }; text: string }, reason: RegExp, token: string) => {
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 422, code: 'account_verification_failed' });
      expect(res.body.error?.message).toMatch(reason);
      expect(res.text).not.toContain(token);
    };

    it('when the token is not one Graph knows, then 422 with Graph’s reason, without the token, and nothing is stored', async () => {
      const tenant = await createTestTenant();
      const token = `EAAG${randomBytes(24).toString('hex')}`;
      const { res, body } = await createNumber(tenant, { access_token: token });
      expectRefusal(res, /Invalid OAuth access token.*code 190/, token);
      expect(await countLive(String(body.external_id))).toBe(0);
    });

    it("when a tenant claims a competitor's WhatsApp number with a token of its own number, then 422, and the owner can still register it", async () => {
      const [intruder, owner] = [await createTestTenant(), await createTestTenant()];
      const [theirs, mine] = [newExternalId(), newExternalId()];
      const token = newToken('whatsapp', mine);
      const { res } = await createNumber(intruder, { external_id: theirs, access_token: token });
      expectRefusal(res, new RegExp(`Object with ID '${theirs}' does not exist, cannot be loaded due to missing permissions.*code 100`), token);
      expect(await countLive(theirs)).toBe(0);
      expect((await createNumber(owner, { external_id: theirs })).res.status).toBe(201);
    });

    it("when a tenant claims a competitor's Instagram account with its own account's token, then 422 naming whose the token is", async () => {
      const tenant = await createTestTenant();
      const [theirs, mine] = [newExternalId(), newExternalId()];
      const token = newToken('instagram', mine);
      const { res } = await createNumber(tenant, { channel: 'instagram', external_id: theirs, access_token: token });
      expectRefusal(res, new RegExp(`token acts for account ${mine}, not ${theirs}`), token);
      expect(await countLive(theirs)).toBe(0);
    });

    it('when a WhatsApp token is given for an Instagram account, then 422', async () => {
      const tenant = await createTestTenant();
      const externalId = newExternalId();
      const token = newToken('whatsapp', externalId);
      expectRefusal((await createNumber(tenant, { channel: 'instagram', external_id: externalId, access_token: token })).res, /code 190/, token);
    });

    it("when a PATCH swaps in a token for another account, then 422 and the stored token is the old one", async () => {
      const tenant = await createTestTenant();
      const { res: created, body } = await createNumber(tenant);
      for (const token of [newToken('whatsapp', newExternalId()), 'EAAG-not-a-token-at-all']) {
        const res = record(await request(app).patch(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth).send({ access_token: token, display_name: 'Sales' }));
        expectRefusal(res, /Graph does not let this token act for whatsapp account/, token);
      }
      expect(await getAccessToken(tenant.userId, created.body.id)).toBe(body.access_token);
      expect((await request(app).get(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth)).body.display_name).toBe('Front desk');
    });
  });

  describe('PATCH /v1/phone-numbers/:id', () => {
    it('when the display name changes, then 200 with it and the token is unchanged', async () => {
      const tenant = await createTestTenant();
      const { res: created, body } = await createNumber(tenant);
      const res = record(await request(app).patch(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth).send({ display_name: 'Sales' }));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ...created.body, display_name: 'Sales' });
      expect(await getAccessToken(tenant.userId, created.body.id)).toBe(body.access_token);
    });

    it('when the access token changes, then the new one is stored encrypted and not returned', async () => {
      const tenant = await createTestTenant();
      const { res: created } = await createNumber(tenant);
      const token = newToken('whatsapp', created.body.external_id);
      seenTokens.push(token);
      const res = record(await request(app).patch(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth).send({ access_token: token }));
      expect(res.status).toBe(200);
      expect(res.body).toEqual(created.body);
      const stored = await storedToken(created.body.id);
      expect(stored).not.toContain(token);
      expect(decryptSecret(stored, accessTokenContext(created.body.id))).toBe(token);
    });

    it('when display_name is null, then it is cleared', async () => {
      const tenant = await createTestTenant();
      const { res: created } = await createNumber(tenant);
      const res = await request(app).patch(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth).send({ display_name: null });
      expect(res.body.display_name).toBeNull();
    });

    it.each([
      [{}, ''],
      [{ channel: 'instagram' }, ''],
      [{ access_token: '' }, 'access_token'],
    ])('when the body is %j, then 400 naming "%s"', async (body, path) => {
      const tenant = await createTestTenant();
      const { res: created } = await createNumber(tenant);
      const res = await request(app).patch(`/v1/phone-numbers/${created.body.id}`).set(tenant.auth).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    });
  });

  describe('DELETE /v1/phone-numbers/:id', () => {
    it('when deleted, then 204, it is gone from the API and the webhook lookup, and its conversations are archived', async () => {
      const tenant = await createTestTenant();
      const { res: created, body } = await createNumber(tenant);
      const id = created.body.id as string;
      const { rows: agents } = await db.query<{ id: string }>(
        `INSERT INTO agents (user_id, name, system_prompt, model) VALUES ($1, 'A', 'p', 'm') RETURNING id`,
        [tenant.userId],
      );
      await request(app).put(`/v1/phone-numbers/${id}/agent`).set(tenant.auth).send({ agent_id: agents[0]!.id });
      const conversationId = await seedConversation(tenant, id);

      const res = await request(app).delete(`/v1/phone-numbers/${id}`).set(tenant.auth);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect((await request(app).get(`/v1/phone-numbers/${id}`).set(tenant.auth)).status).toBe(404);
      expect((await request(app).delete(`/v1/phone-numbers/${id}`).set(tenant.auth)).status).toBe(404);
      expect(await findLiveByExternalId('whatsapp', body.external_id)).toBeNull();
      expect(await getAccessToken(tenant.userId, id)).toBeNull();

      const { rows } = await db.query(
        `SELECT p.deleted_at IS NOT NULL AS deleted, p.agent_id, c.is_active, c.archive_reason, c.archived_at IS NOT NULL AS archived
         FROM phone_numbers p JOIN conversations c ON c.phone_number_id = p.id WHERE c.id = $1`,
        [conversationId],
      );
      expect(rows[0]).toEqual({ deleted: true, agent_id: null, is_active: false, archive_reason: 'phone_number_deleted', archived: true });
    });
  });

  describe('findLiveByExternalId (webhook routing)', () => {
    it('when an account is registered, then it is found by channel and id without knowing the tenant', async () => {
      const tenant = await createTestTenant();
      const { res, body } = await createNumber(tenant);
      expect(await findLiveByExternalId('whatsapp', body.external_id)).toEqual({
        id: res.body.id,
        userId: tenant.userId,
        agentId: null,
        channel: 'whatsapp',
        externalId: body.external_id,
      });
      expect(await findLiveByExternalId('instagram', body.external_id)).toBeNull();
      expect(await findLiveByExternalId('whatsapp', newExternalId())).toBeNull();
    });
  });

  describe('auth and tenant walls', () => {
    const routes = (id: string): [Method, string, object?][] => [
      ['post', '/v1/phone-numbers', { channel: 'whatsapp', external_id: newExternalId(), access_token: 't' }],
      ['get', '/v1/phone-numbers'],
      ['get', `/v1/phone-numbers/${id}`],
      ['patch', `/v1/phone-numbers/${id}`, { display_name: 'x' }],
      ['delete', `/v1/phone-numbers/${id}`],
      ['put', `/v1/phone-numbers/${id}/agent`, { agent_id: randomUUID() }],
      ['delete', `/v1/phone-numbers/${id}/agent`],
    ];

    it('when no key is sent, then every route is 401 unauthorized', async () => {
      for (const [method, path, body] of routes(randomUUID())) {
        const res = await request(app)[method](path).send(body);
        expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({ method, path, status: 401, code: 'unauthorized' });
      }
    });

    it('when the operator key is sent, then every route is 403 forbidden', async () => {
      for (const [method, path, body] of routes(randomUUID())) {
        const res = await request(app)[method](path).set(ADMIN_AUTH).send(body);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 403 });
      }
    });

    it('when another tenant’s number is addressed, then every id route is 404 and nothing changes', async () => {
      const [owner, intruder] = [await createTestTenant(), await createTestTenant()];
      const { res: created } = await createNumber(owner);
      const id = created.body.id as string;
      const { rows: agents } = await db.query<{ id: string }>(
        `INSERT INTO agents (user_id, name, system_prompt, model) VALUES ($1, 'A', 'p', 'm') RETURNING id`,
        [intruder.userId],
      );
      for (const [method, path, body] of routes(id).slice(2)) {
        const payload = method === 'put' ? { agent_id: agents[0]!.id } : body;
        const res = record(await request(app)[method](path).set(intruder.auth).send(payload));
        expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({ method, path, status: 404, code: 'not_found' });
      }
      const list = await request(app).get('/v1/phone-numbers').set(intruder.auth);
      expect(list.body.data).toEqual([]);
      const still = await request(app).get(`/v1/phone-numbers/${id}`).set(owner.auth);
      expect(still.body).toEqual(created.body);
    });
  });

  // Last on purpose: it checks every body the tests above recorded.
  it('when every test above is done, then no response body contained any access token', () => {
    expect(seenBodies.length).toBeGreaterThan(20);
    for (const token of seenTokens) for (const body of seenBodies) expect(body).not.toContain(token);
  });
});
