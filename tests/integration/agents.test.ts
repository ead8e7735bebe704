import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { config } from '../../src/config';
import { db } from '../../src/utils/database';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant, type TestTenant } from '../fixtures/tenants';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

const newExternalId = () => `1${randomBytes(6).readUIntBE(0, 6)}`;

const leadFields = [
  { name: 'full_name', description: 'Who is writing', type: 'string' },
  { name: 'budget', description: 'Budget in euros', type: 'number' },
  { name: 'wants_call', description: 'Asked to be called back', type: 'boolean' },
  { name: 'product', description: 'Product of interest', type: 'enum', values: ['basic', 'pro'] },
];

describe('agents API', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  async function createAgent(tenant: TestTenant, body: Record<string, unknown> = {}) {
    return request(app)
      .post('/v1/agents')
      .set(tenant.auth)
      .send({ name: 'Sales bot', system_prompt: 'You sell things politely.', ...body });
  }

  async function createNumber(tenant: TestTenant): Promise<string> {
    const externalId = newExternalId();
    const res = await request(app)
      .post('/v1/phone-numbers')
      .set(tenant.auth)
      .send({ channel: 'whatsapp', external_id: externalId, access_token: standinAccessToken('whatsapp', externalId) });
    return res.body.id;
  }

  describe('POST /v1/agents', () => {
    it('when only name and system_prompt are given, then 201 with the defaults', async () => {
      const tenant = await createTestTenant();
      const res = await createAgent(tenant);
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Sales bot',
        system_prompt: 'You sell things politely.',
        model: config.OPENAI_MODEL,
        temperature: 0.7,
        max_tokens: 512,
        history_limit: 20,
        max_prompt_tokens: 8000,
        debounce_ms: 0,
        lead_fields: null,
        fallback_message: null,
        resume_after_minutes: null,
        handoff_keywords: [],
        opt_out_keywords: ['STOP', 'UNSUBSCRIBE'],
        opt_in_keywords: ['START'],
        opt_out_message: null,
        archived_at: null,
        created_at: expect.any(String),
        updated_at: expect.any(String),
      });
    });

    it('when every field is given, then 201 with them all, temperature as a number', async () => {
      const tenant = await createTestTenant();
      const body = {
        model: 'gpt-4.1',
        temperature: 1.25,
        max_tokens: 16384,
        history_limit: 200,
        max_prompt_tokens: 1_000_000,
        debounce_ms: 30000,
        lead_fields: leadFields,
        fallback_message: 'We are away, back soon.',
      };
      const res = await createAgent(tenant, body);
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject(body);
      expect(typeof res.body.temperature).toBe('number');
    });

    it.each([
      [{ name: undefined }, 'name'],
      [{ name: '   ' }, 'name'],
      [{ system_prompt: '' }, 'system_prompt'],
      [{ system_prompt: 'x'.repeat(32001) }, 'system_prompt'],
      [{ temperature: 2.5 }, 'temperature'],
      [{ temperature: -0.1 }, 'temperature'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ max_tokens: 16385 }, 'max_tokens'],
      [{ max_tokens: 1.5 }, 'max_tokens'],
      [{ history_limit: 201 }, 'history_limit'],
      [{ max_prompt_tokens: 499 }, 'max_prompt_tokens'],
      [{ max_prompt_tokens: 1_000_001 }, 'max_prompt_tokens'],
      [{ debounce_ms: 30001 }, 'debounce_ms'],
      [{ fallback_message: 'x'.repeat(4097) }, 'fallback_message'],
      [{ model: '' }, 'model'],
      [{ lead_fields: [] }, 'lead_fields'],
      [{ lead_fields: 'name' }, 'lead_fields'],
      [{ lead_fields: Array.from({ length: 31 }, (_, i) => ({ name: `f${i}`, description: 'd', type: 'string' })) }, 'lead_fields'],
      [{ lead_fields: [{ name: 'Full Name', description: 'd', type: 'string' }] }, 'lead_fields.0.name'],
      [{ lead_fields: [{ name: '1st', description: 'd', type: 'string' }] }, 'lead_fields.0.name'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'string' }, { name: 'a', description: 'd', type: 'number' }] }, 'lead_fields.1.name'],
      [{ lead_fields: [{ name: 'a', description: 'x'.repeat(501), type: 'string' }] }, 'lead_fields.0.description'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'date' }] }, 'lead_fields.0.type'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'enum' }] }, 'lead_fields.0.values'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'enum', values: [] }] }, 'lead_fields.0.values'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'enum', values: ['x', 'x'] }] }, 'lead_fields.0.values.1'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'string', values: ['x'] }] }, 'lead_fields.0.values'],
      [{ color: 'blue' }, ''],
    ])('when the body has %j, then 400 naming "%s"', async (overrides, path) => {
      const tenant = await createTestTenant();
      const res = await createAgent(tenant, overrides);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    });
  });

  describe('GET /v1/agents', () => {
    it('when some are archived, then they are hidden unless include_archived=true, newest first, paged', async () => {
      const tenant = await createTestTenant();
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await createAgent(tenant, { name: `Agent ${i}` })).body.id);
      await request(app).post(`/v1/agents/${ids[1]}/archive`).set(tenant.auth);
      await createAgent(await createTestTenant());

      const visible = await request(app).get('/v1/agents').set(tenant.auth);
      expect(visible.status).toBe(200);
      expect(visible.body.data.map((a: { id: string }) => a.id)).toEqual([ids[3], ids[2], ids[0]]);
      expect(visible.body.next_cursor).toBeNull();

      const all: string[] = [];
      let cursor: string | null = null;
      do {
        const res: request.Response = await request(app)
          .get('/v1/agents')
          .query({ include_archived: 'true', limit: 3, ...(cursor ? { cursor } : {}) })
          .set(tenant.auth);
        all.push(...res.body.data.map((a: { id: string }) => a.id));
        cursor = res.body.next_cursor;
      } while (cursor);
      expect(all).toEqual([...ids].reverse());
    });

    it.each([
      [{ include_archived: 'yes' }, 'include_archived'],
      [{ limit: 'ten' }, 'limit'],
      [{ cursor: '!!' }, 'cursor'],
    ])('when the query is %j, then 400 naming "%s"', async (query, path) => {
      const tenant = await createTestTenant();
      const res = await request(app).get('/v1/agents').query(query).set(tenant.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path })]);
    });
  });

  describe('GET /v1/agents/:id', () => {
    it('when the agent is archived, then it is still readable by id', async () => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant);
      await request(app).post(`/v1/agents/${created.body.id}/archive`).set(tenant.auth);
      const res = await request(app).get(`/v1/agents/${created.body.id}`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body.archived_at).toEqual(expect.any(String));
    });

    it('when the id is unknown, then 404; when malformed, then 400 naming id', async () => {
      const tenant = await createTestTenant();
      expect((await request(app).get(`/v1/agents/${randomUUID()}`).set(tenant.auth)).status).toBe(404);
      const malformed = await request(app).get('/v1/agents/nope').set(tenant.auth);
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
    });
  });

  describe('PATCH /v1/agents/:id', () => {
    it('when a subset is given, then only it changes and updated_at moves on', async () => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant, { fallback_message: 'Away', lead_fields: leadFields });
      const res = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send({ temperature: 0.2, name: 'Renamed', max_prompt_tokens: 4000 });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ...created.body, temperature: 0.2, name: 'Renamed', max_prompt_tokens: 4000, updated_at: expect.any(String) });
      expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.body.updated_at));
    });

    it('when lead_fields and fallback_message are null, then they reset to the defaults and none', async () => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant, { fallback_message: 'Away', lead_fields: leadFields });
      const res = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send({ lead_fields: null, fallback_message: null });
      expect(res.body).toMatchObject({ lead_fields: null, fallback_message: null });
    });

    it('when lead_fields are replaced, then the new list is stored as given', async () => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant);
      const res = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send({ lead_fields: leadFields.slice(3) });
      expect(res.body.lead_fields).toEqual(leadFields.slice(3));
      expect((await request(app).get(`/v1/agents/${created.body.id}`).set(tenant.auth)).body.lead_fields).toEqual(leadFields.slice(3));
    });

    it.each([
      [{}, ''],
      [{ name: null }, 'name'],
      [{ debounce_ms: -1 }, 'debounce_ms'],
      [{ lead_fields: [{ name: 'a', description: 'd', type: 'enum' }] }, 'lead_fields.0.values'],
    ])('when the body is %j, then 400 naming "%s"', async (body, path) => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant);
      const res = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    });

    it('when the agent is archived, then 409 conflict and nothing changes', async () => {
      const tenant = await createTestTenant();
      const created = await createAgent(tenant);
      await request(app).post(`/v1/agents/${created.body.id}/archive`).set(tenant.auth);
      const res = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send({ name: 'Back' });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('conflict');
      expect((await request(app).get(`/v1/agents/${created.body.id}`).set(tenant.auth)).body.name).toBe('Sales bot');
    });
  });

  describe('POST /v1/agents/:id/archive', () => {
    it('when archived, then it is unlinked from every number, their active conversations are archived, and it cannot be linked', async () => {
      const tenant = await createTestTenant();
      const agent = (await createAgent(tenant)).body.id as string;
      const keep = (await createAgent(tenant)).body.id as string;
      const [first, second, other] = [await createNumber(tenant), await createNumber(tenant), await createNumber(tenant)];
      for (const number of [first, second]) await request(app).put(`/v1/phone-numbers/${number}/agent`).set(tenant.auth).send({ agent_id: agent });
      await request(app).put(`/v1/phone-numbers/${other}/agent`).set(tenant.auth).send({ agent_id: keep });
      const conversations = new Map<string, string>();
      for (const number of [first, second, other]) {
        const { rows } = await db.query<{ id: string }>(
          `INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id)
           SELECT user_id, id, agent_id, channel, 'customer-1' FROM phone_numbers WHERE id = $1 RETURNING id`,
          [number],
        );
        conversations.set(number, rows[0]!.id);
      }

      const res = await request(app).post(`/v1/agents/${agent}/archive`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: agent, archived_at: expect.any(String) });

      for (const number of [first, second]) {
        expect((await request(app).get(`/v1/phone-numbers/${number}`).set(tenant.auth)).body.agent_id).toBeNull();
      }
      expect((await request(app).get(`/v1/phone-numbers/${other}`).set(tenant.auth)).body.agent_id).toBe(keep);
      const { rows } = await db.query<{ id: string; is_active: boolean; archive_reason: string | null }>(
        `SELECT id, is_active, archive_reason FROM conversations WHERE id = ANY($1::uuid[])`,
        [[...conversations.values()]],
      );
      const byId = new Map(rows.map((row) => [row.id, row]));
      expect(byId.get(conversations.get(first)!)).toMatchObject({ is_active: false, archive_reason: 'agent_archived' });
      expect(byId.get(conversations.get(second)!)).toMatchObject({ is_active: false, archive_reason: 'agent_archived' });
      expect(byId.get(conversations.get(other)!)).toMatchObject({ is_active: true, archive_reason: null });

      const link = await request(app).put(`/v1/phone-numbers/${first}/agent`).set(tenant.auth).send({ agent_id: agent });
      expect(link.status).toBe(409);
      expect(link.body.error.code).toBe('conflict');
    });

    it('when archived twice, then the second call is 200 and keeps the first archived_at', async () => {
      const tenant = await createTestTenant();
      const agent = (await createAgent(tenant)).body.id as string;
      const first = await request(app).post(`/v1/agents/${agent}/archive`).set(tenant.auth);
      const second = await request(app).post(`/v1/agents/${agent}/archive`).set(tenant.auth);
      expect(second.status).toBe(200);
      expect(second.body.archived_at).toBe(first.body.archived_at);
    });

    it('when the agent is unknown, then 404', async () => {
      const tenant = await createTestTenant();
      expect((await request(app).post(`/v1/agents/${randomUUID()}/archive`).set(tenant.auth)).status).toBe(404);
    });
  });

  describe('auth and tenant walls', () => {
    const routes = (id: string): [Method, string, object?][] => [
      ['post', '/v1/agents', { name: 'n', system_prompt: 'p' }],
      ['get', '/v1/agents'],
      ['get', `/v1/agents/${id}`],
      ['patch', `/v1/agents/${id}`, { name: 'x' }],
      ['post', `/v1/agents/${id}/archive`],
    ];

    it('when no key is sent, then every route is 401 unauthorized', async () => {
      for (const [method, path, body] of routes(randomUUID())) {
        const res = await request(app)[method](path).send(body);
        expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({ method, path, status: 401, code: 'unauthorized' });
      }
    });

    it('when a revoked or unknown key is sent, then 401', async () => {
      const res = await request(app).get('/v1/agents').set('Authorization', 'Bearer mca_unknown');
      expect(res.status).toBe(401);
    });

    it('when the operator key is sent, then every route is 403 forbidden', async () => {
      for (const [method, path, body] of routes(randomUUID())) {
        const res = await request(app)[method](path).set(ADMIN_AUTH).send(body);
        expect({ method, path, status: res.status }).toEqual({ method, path, status: 403 });
      }
    });

    it('when another tenant’s agent is addressed, then every id route is 404 and nothing changes', async () => {
      const [owner, intruder] = [await createTestTenant(), await createTestTenant()];
      const created = await createAgent(owner);
      for (const [method, path, body] of routes(created.body.id).slice(2)) {
        const res = await request(app)[method](path).set(intruder.auth).send(body);
        expect({ method, path, status: res.status, code: res.body.error?.code }).toEqual({ method, path, status: 404, code: 'not_found' });
      }
      expect((await request(app).get('/v1/agents?include_archived=true').set(intruder.auth)).body.data).toEqual([]);
      expect((await request(app).get(`/v1/agents/${created.body.id}`).set(owner.auth)).body).toEqual(created.body);
    });
  });
});
