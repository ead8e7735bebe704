import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { findConversation } from '../../src/models/Conversation';
import { insertMessage } from '../../src/models/Message';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant, ADMIN_AUTH, type TestTenant } from '../fixtures/tenants';
import { encodeCursor } from '../../src/utils/pagination';
import {
  createTestAgent,
  createTestConversation,
  createTestPhoneNumber,
  insertTestMessages,
  type TestConversation,
} from '../fixtures/conversations';

describe('conversations and messages API', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000);

  /** Every tenant route of this slice, with a body where it needs one. */
  const routes = (id: string): Array<{ method: 'get' | 'post'; path: string; body?: object }> => [
    { method: 'get', path: `/v1/conversations/${id}` },
    { method: 'get', path: `/v1/conversations/${id}/messages` },
    { method: 'post', path: `/v1/conversations/${id}/messages`, body: { text: 'hello' } },
    { method: 'post', path: `/v1/conversations/${id}/pause` },
    { method: 'post', path: `/v1/conversations/${id}/resume` },
  ];

  describe('auth', () => {
    it('when no key is sent, then every route answers 401 unauthorized', async () => {
      for (const route of [{ method: 'get' as const, path: '/v1/conversations' }, ...routes(randomUUID())]) {
        const res = await request(app)[route.method](route.path).send(route.body);
        expect({ route: route.path, status: res.status, code: res.body.error?.code }).toEqual({
          route: route.path,
          status: 401,
          code: 'unauthorized',
        });
      }
    });

    it('when the key is unknown, then 401', async () => {
      const res = await request(app).get('/v1/conversations').set('Authorization', 'Bearer mca_nope');
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    });

    it('when the operator key is used, then 403 forbidden', async () => {
      const res = await request(app).get('/v1/conversations').set(ADMIN_AUTH);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('forbidden');
    });
  });

  describe('tenant isolation', () => {
    it("when a tenant names another tenant's conversation, then every route answers 404 and changes nothing", async () => {
      const owner = await createTestTenant();
      const other = await createTestTenant();
      const conversation = await createTestConversation(owner.userId);
      await insertTestMessages(owner.userId, conversation.id, [{ text: 'private' }]);
      for (const route of routes(conversation.id)) {
        const res = await request(app)[route.method](route.path).set(other.auth).send(route.body);
        expect({ route: `${route.method} ${route.path}`, status: res.status, code: res.body.error?.code }).toEqual({
          route: `${route.method} ${route.path}`,
          status: 404,
          code: 'not_found',
        });
      }
      const after = await findConversation(owner.userId, conversation.id);
      expect(after).toMatchObject({ botPaused: false, lastSequenceNo: 1 });
    });

    it("when a tenant lists conversations, then it never sees another tenant's", async () => {
      const mine = await createTestTenant();
      const theirs = await createTestTenant();
      const own = await createTestConversation(mine.userId);
      const foreign = await createTestConversation(theirs.userId);
      const res = await request(app).get('/v1/conversations').set(mine.auth);
      expect(res.status).toBe(200);
      expect(res.body.data.map((c: { id: string }) => c.id)).toEqual([own.id]);
      const filtered = await request(app).get(`/v1/conversations?phone_number_id=${foreign.phoneNumberId}`).set(mine.auth);
      expect(filtered.body).toEqual({ data: [], next_cursor: null });
    });

    it('when the id is unknown, then 404 on every route', async () => {
      const tenant = await createTestTenant();
      for (const route of routes(randomUUID())) {
        const res = await request(app)[route.method](route.path).set(tenant.auth).send(route.body);
        expect({ route: `${route.method} ${route.path}`, status: res.status }).toEqual({
          route: `${route.method} ${route.path}`,
          status: 404,
        });
      }
    });

    it('when the id is not a uuid, then 400 naming id on every route', async () => {
      const tenant = await createTestTenant();
      for (const route of routes('not-a-uuid')) {
        const res = await request(app)[route.method](route.path).set(tenant.auth).send(route.body);
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('validation_error');
        expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
      }
    });
  });

  describe('GET /v1/conversations', () => {
    let tenant: TestTenant;
    let older: TestConversation;
    let newer: TestConversation;
    let archived: TestConversation;
    let otherNumber: TestConversation;

    beforeAll(async () => {
      tenant = await createTestTenant();
      const agent = await createTestAgent(tenant.userId);
      const number = await createTestPhoneNumber(tenant.userId, { agentId: agent.id });
      archived = await createTestConversation(tenant.userId, { phoneNumber: number, isActive: false, createdAt: minutesAgo(40) });
      older = await createTestConversation(tenant.userId, { phoneNumber: number, createdAt: minutesAgo(30), customerName: null });
      newer = await createTestConversation(tenant.userId, { phoneNumber: number, createdAt: minutesAgo(20), botPaused: true });
      otherNumber = await createTestConversation(tenant.userId, { createdAt: minutesAgo(10) });
    });

    it('when listed, then conversations come newest first in the contract shape', async () => {
      const res = await request(app).get('/v1/conversations').set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      expect(res.body.data.map((c: { id: string }) => c.id)).toEqual([otherNumber.id, newer.id, older.id, archived.id]);
      expect(res.body.data[1]).toEqual({
        id: newer.id,
        phone_number_id: newer.phoneNumberId,
        agent_id: newer.agentId,
        channel: 'whatsapp',
        customer: { external_id: newer.customerExternalId, name: 'Test Customer' },
        is_active: true,
        bot_paused: true,
        paused_by: 'api',
        resumes_at: null,
        last_message_at: null,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        archived_at: null,
        archive_reason: null,
        opted_out: false,
        window_expires_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        extraction_status: 'none',
        extraction_postponed: null,
      });
      expect(res.body.data[2].customer).toEqual({ external_id: older.customerExternalId, name: null });
      expect(res.body.data[3]).toMatchObject({ is_active: false, archived_at: expect.any(String), archive_reason: 'agent_relinked' });
    });

    it('when filtered by phone_number_id, then only that number’s conversations come back', async () => {
      const res = await request(app).get(`/v1/conversations?phone_number_id=${older.phoneNumberId}`).set(tenant.auth);
      expect(res.body.data.map((c: { id: string }) => c.id)).toEqual([newer.id, older.id, archived.id]);
    });

    it('when filtered by agent_id, then only that agent’s conversations come back', async () => {
      const res = await request(app).get(`/v1/conversations?agent_id=${otherNumber.agentId}`).set(tenant.auth);
      expect(res.body.data.map((c: { id: string }) => c.id)).toEqual([otherNumber.id]);
    });

    it('when filtered by is_active, then true and false split the list', async () => {
      const active = await request(app).get('/v1/conversations?is_active=true').set(tenant.auth);
      expect(active.body.data.map((c: { id: string }) => c.id)).toEqual([otherNumber.id, newer.id, older.id]);
      const inactive = await request(app).get('/v1/conversations?is_active=false').set(tenant.auth);
      expect(inactive.body.data.map((c: { id: string }) => c.id)).toEqual([archived.id]);
    });

    it('when filters combine, then all of them apply', async () => {
      const res = await request(app)
        .get(`/v1/conversations?phone_number_id=${older.phoneNumberId}&is_active=false&agent_id=${older.agentId}`)
        .set(tenant.auth);
      expect(res.body.data.map((c: { id: string }) => c.id)).toEqual([archived.id]);
    });

    it.each([
      ['is_active=yes', 'is_active'],
      ['phone_number_id=123', 'phone_number_id'],
      ['agent_id=abc', 'agent_id'],
      ['limit=0', 'limit'],
      ['limit=101', 'limit'],
      ['cursor=garbage', 'cursor'],
    ])('when the query has %s, then 400 naming %s', async (query, path) => {
      const res = await request(app).get(`/v1/conversations?${query}`).set(tenant.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual([expect.objectContaining({ path })]);
      expect(res.body.error.request_id).toEqual(res.headers['x-request-id']);
    });

    it('when paging while conversations are created, then pages have no duplicates and no gaps', async () => {
      const pager = await createTestTenant();
      const number = await createTestPhoneNumber(pager.userId);
      const existing: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        existing.unshift((await createTestConversation(pager.userId, { phoneNumber: number })).id);
      }
      const first = await request(app).get('/v1/conversations?limit=2').set(pager.auth);
      expect(first.body.data.map((c: { id: string }) => c.id)).toEqual(existing.slice(0, 2));
      expect(first.body.next_cursor).toEqual(expect.any(String));

      for (let i = 0; i < 3; i += 1) await createTestConversation(pager.userId, { phoneNumber: number });

      const seen = [...first.body.data.map((c: { id: string }) => c.id)];
      let cursor: string | null = first.body.next_cursor;
      while (cursor) {
        const res = await request(app).get(`/v1/conversations?limit=2&cursor=${cursor}`).set(pager.auth);
        expect(res.status).toBe(200);
        seen.push(...res.body.data.map((c: { id: string }) => c.id));
        cursor = res.body.next_cursor;
      }
      expect(seen).toEqual(existing);
    });

    it('when rows share one created_at, then the id breaks the tie and paging still visits each once', async () => {
      const pager = await createTestTenant();
      const number = await createTestPhoneNumber(pager.userId);
      const at = minutesAgo(5);
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) ids.push((await createTestConversation(pager.userId, { phoneNumber: number, createdAt: at })).id);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res: request.Response = await request(app)
          .get(`/v1/conversations?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
          .set(pager.auth);
        seen.push(...res.body.data.map((c: { id: string }) => c.id));
        cursor = res.body.next_cursor;
      } while (cursor);
      expect(seen).toEqual([...ids].sort().reverse());
    });
  });

  describe('GET /v1/conversations/:id', () => {
    it('when the conversation is the tenant’s, then it comes back', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId, { customerName: 'Ada' });
      const res = await request(app).get(`/v1/conversations/${conversation.id}`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: conversation.id, customer: { external_id: conversation.customerExternalId, name: 'Ada' } });
    });
  });

  describe('GET /v1/conversations/:id/messages', () => {
    it('when a conversation has messages, then they come in sequence order in the contract shape', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      await insertTestMessages(tenant.userId, conversation.id, [
        { text: 'hi', externalId: `wamid.${randomUUID()}` },
        { direction: 'outbound', text: 'hello!', status: 'delivered' },
        { text: 'price?' },
        { direction: 'outbound', text: 'x', status: 'failed', errorCode: 'graph_error', errorMessage: 'Graph said no' },
      ]);
      const res = await request(app).get(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      expect(res.body.data.map((m: { sequence_no: number }) => m.sequence_no)).toEqual([1, 2, 3, 4]);
      expect(res.body.data[0]).toEqual({
        id: expect.any(String),
        sequence_no: 1,
        direction: 'inbound',
        author: 'customer',
        type: 'text',
        text: 'hi',
        status: 'answered',
        external_id: expect.stringMatching(/^wamid\./),
        created_at: expect.any(String),
      });
      expect(res.body.data[1]).toMatchObject({ direction: 'outbound', author: 'agent', status: 'delivered', external_id: null });
      expect(res.body.data[1]).not.toHaveProperty('error');
      expect(res.body.data[3]).toMatchObject({ status: 'failed', error: { code: 'graph_error', message: 'Graph said no' } });
    });

    it('when a conversation has no messages, then the list is empty', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const res = await request(app).get(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth);
      expect(res.body).toEqual({ data: [], next_cursor: null });
    });

    it('when paging while messages arrive, then every message is seen once, in order', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      await insertTestMessages(tenant.userId, conversation.id, Array.from({ length: 5 }, () => ({})));
      const first = await request(app).get(`/v1/conversations/${conversation.id}/messages?limit=2`).set(tenant.auth);
      expect(first.body.data.map((m: { sequence_no: number }) => m.sequence_no)).toEqual([1, 2]);

      await insertTestMessages(tenant.userId, conversation.id, [{}, {}]);

      const seen: number[] = first.body.data.map((m: { sequence_no: number }) => m.sequence_no);
      let cursor: string | null = first.body.next_cursor;
      while (cursor) {
        const res = await request(app).get(`/v1/conversations/${conversation.id}/messages?limit=2&cursor=${cursor}`).set(tenant.auth);
        seen.push(...res.body.data.map((m: { sequence_no: number }) => m.sequence_no));
        cursor = res.body.next_cursor;
      }
      expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    });

    it('when the cursor is not one this list handed out, then 400 naming cursor', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      // A conversation-list cursor (a uuid) is not a message cursor (a sequence number).
      const foreignCursor = encodeCursor(randomUUID());
      const res = await request(app).get(`/v1/conversations/${conversation.id}/messages?cursor=${foreignCursor}`).set(tenant.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'cursor' })]);
    });
  });

  describe('POST /v1/conversations/:id/messages', () => {
    it('when a human writes, then the message is queued (not sent) with the next sequence number and the bot pauses', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      await insertTestMessages(tenant.userId, conversation.id, [{ text: 'is anyone there?' }]);

      const res = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'Yes, Ada here.' });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({
        id: expect.any(String),
        sequence_no: 2,
        direction: 'outbound',
        author: 'human',
        type: 'text',
        text: 'Yes, Ada here.',
        status: 'queued',
        external_id: null,
        created_at: expect.any(String),
      });

      const after = await request(app).get(`/v1/conversations/${conversation.id}`).set(tenant.auth);
      expect(after.body.bot_paused).toBe(true);
      expect(after.body.last_message_at).toEqual(expect.any(String));
      const { rows } = await db.query<{ status: string; channel: string }>(`SELECT status, channel FROM messages WHERE id = $1`, [
        res.body.id,
      ]);
      expect(rows).toEqual([{ status: 'queued', channel: 'whatsapp' }]);
    });

    it('when the conversation is on Instagram, then the message takes that channel', async () => {
      const tenant = await createTestTenant();
      const number = await createTestPhoneNumber(tenant.userId, { channel: 'instagram' });
      const conversation = await createTestConversation(tenant.userId, { phoneNumber: number });
      const res = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'hi' });
      expect(res.status).toBe(202);
      const { rows } = await db.query<{ channel: string }>(`SELECT channel FROM messages WHERE id = $1`, [res.body.id]);
      expect(rows[0]?.channel).toBe('instagram');
    });

    it('when the conversation is archived, then 409 conflict and nothing is stored', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId, { isActive: false });
      const res = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'late' });
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('conflict');
      const { rows } = await db.query(`SELECT 1 FROM messages WHERE conversation_id = $1`, [conversation.id]);
      expect(rows).toHaveLength(0);
      expect(await findConversation(tenant.userId, conversation.id)).toMatchObject({ botPaused: false, lastSequenceNo: 0 });
    });

    it.each([
      ['an empty text', { text: '' }],
      ['a text over 4096 characters', { text: 'x'.repeat(4097) }],
      ['no text', {}],
      ['a text that is not a string', { text: 42 }],
    ])('when the body has %s, then 400 naming text', async (_label, body) => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const res = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'text' })]);
    });

    it('when a text is exactly 4096 characters, then it is accepted', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const res = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'x'.repeat(4096) });
      expect(res.status).toBe(202);
    });

    it('when the body is not JSON, then 400 invalid_json', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const res = await request(app)
        .post(`/v1/conversations/${conversation.id}/messages`)
        .set(tenant.auth)
        .set('Content-Type', 'application/json')
        .send('{"text":');
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_json');
    });

    it('when 20 humans write at once, then they get distinct consecutive sequence numbers', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      await insertTestMessages(tenant.userId, conversation.id, [{}, {}]);
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: `reply ${i}` }),
        ),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(202));
      const numbers = responses.map((r) => r.body.sequence_no as number).sort((a, b) => a - b);
      expect(numbers).toEqual(Array.from({ length: 20 }, (_, i) => i + 3));
      expect(await findConversation(tenant.userId, conversation.id)).toMatchObject({ lastSequenceNo: 22, botPaused: true });
    });
  });

  describe('POST /v1/conversations/:id/pause and /resume', () => {
    it('when paused and resumed, then bot_paused follows and repeating either is harmless', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      for (const [action, expected] of [
        ['pause', true],
        ['pause', true],
        ['resume', false],
        ['resume', false],
      ] as const) {
        const res = await request(app).post(`/v1/conversations/${conversation.id}/${action}`).set(tenant.auth);
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ id: conversation.id, bot_paused: expected });
      }
    });

    it('when a human wrote and the tenant resumes, then the bot is on again and the message stays queued', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const sent = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'hi' });
      const res = await request(app).post(`/v1/conversations/${conversation.id}/resume`).set(tenant.auth);
      expect(res.body.bot_paused).toBe(false);
      const messages = await request(app).get(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth);
      expect(messages.body.data).toEqual([expect.objectContaining({ id: sent.body.id, status: 'queued' })]);
    });
  });

  describe('models used by the webhook and workers', () => {
    it('when insertMessage names another tenant’s conversation, then not_found and no counter moves', async () => {
      const owner = await createTestTenant();
      const other = await createTestTenant();
      const conversation = await createTestConversation(owner.userId);
      await expect(
        insertMessage(other.userId, conversation.id, { direction: 'inbound', author: 'customer', type: 'text', text: 'x', status: 'pending' }),
      ).rejects.toMatchObject({ code: 'not_found' });
      expect(await findConversation(owner.userId, conversation.id)).toMatchObject({ lastSequenceNo: 0 });
    });

    it('when Meta redelivers a message id, then insertMessage refuses it and the counter stays gapless', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const fields = {
        direction: 'inbound' as const,
        author: 'customer' as const,
        type: 'text',
        text: 'hi',
        status: 'pending' as const,
        externalId: `wamid.${randomUUID()}`,
        payload: { context: { id: 'wamid.prev' } },
      };
      const first = await insertMessage(tenant.userId, conversation.id, fields);
      expect(first).toMatchObject({ sequenceNo: 1, channel: 'whatsapp', payload: { context: { id: 'wamid.prev' } } });
      await expect(insertMessage(tenant.userId, conversation.id, fields)).rejects.toMatchObject({ code: '23505' });
      const next = await insertMessage(tenant.userId, conversation.id, { ...fields, externalId: null });
      expect(next.sequenceNo).toBe(2);
    });
  });

  it('when the OpenAPI document is generated, then it describes these routes', async () => {
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    const paths = Object.keys(res.body.paths);
    for (const suffix of ['/conversations', '/conversations/{id}', '/conversations/{id}/messages', '/conversations/{id}/pause']) {
      expect(paths.some((path) => path.endsWith(suffix))).toBe(true);
    }
  });
});
