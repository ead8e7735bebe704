/**
 * Hostile input through the real API: cursors the server never issued, and strings Postgres
 * cannot store (NUL, lone surrogates). Each is the caller's mistake, a 400, never a 500.
 */
import request from 'supertest';
import { createApp } from '../../src/app';
import { openapiDocument } from '../../src/utils/openapi';
import { encodeCursor } from '../../src/utils/pagination';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant, type TestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages, type TestConversation } from '../fixtures/conversations';

const app = createApp();

const expectCursorRefused = (res: request.Response) => {
  expect({ status: res.status, body: res.body }).toEqual({
    status: 400,
    body: { error: expect.objectContaining({ code: 'validation_error', details: [expect.objectContaining({ path: 'cursor' })] }) },
  });
};

describe('hostile input', () => {
  let tenant: TestTenant;
  let conversation: TestConversation;
  let endpointId: string;

  beforeAll(async () => {
    await setupTestDatabase();
    tenant = await createTestTenant({ credits: 100 });
    conversation = await createTestConversation(tenant.userId);
    await insertTestMessages(tenant.userId, conversation.id, [
      { direction: 'inbound', author: 'customer', text: 'one' },
      { direction: 'inbound', author: 'customer', text: 'two' },
      { direction: 'inbound', author: 'customer', text: 'three' },
    ]);
    const endpoint = await request(app).post('/v1/webhook-endpoints').set(tenant.auth).send({ url: 'http://127.0.0.1:9/hook', events: ['message.received'] });
    endpointId = endpoint.body.id;
  });
  afterAll(teardownTestDatabase);

  describe('cursors', () => {
    it("when a conversation's messages are asked after [3000000000], a cursor never issued, then 400 naming cursor, not 500", async () => {
      expectCursorRefused(await request(app).get(`/v1/conversations/${conversation.id}/messages?cursor=WzMwMDAwMDAwMDBd`).set(tenant.auth));
    });

    it("when a conversation's messages are paged with the cursors the server hands out, then they still page through", async () => {
      const first = await request(app).get(`/v1/conversations/${conversation.id}/messages?limit=2`).set(tenant.auth);
      expect(first.body.data.map((m: { text: string }) => m.text)).toEqual(['one', 'two']);
      const second = await request(app).get(`/v1/conversations/${conversation.id}/messages?limit=2&cursor=${first.body.next_cursor}`).set(tenant.auth);
      expect({ status: second.status, texts: second.body.data.map((m: { text: string }) => m.text) }).toEqual({ status: 200, texts: ['three'] });
    });

    /** Every list's path parameters; a new list with parameters must be added here to be covered. */
    const PATH_IDS: Record<string, () => Record<string, string>> = {
      '/v1/conversations/{id}/messages': () => ({ id: conversation.id }),
      '/v1/webhook-endpoints/{id}/deliveries': () => ({ id: endpointId }),
    };

    it('when any list gets a forged cursor (unsigned, re-signed with another value, or its MAC cut), then 400 naming cursor', async () => {
      type Get = { parameters?: Array<{ name?: string }>; security?: Array<Record<string, unknown>> };
      const { paths } = openapiDocument() as { paths: Record<string, { get?: Get }> };
      const lists = Object.entries(paths).filter(([, item]) => (item.get?.parameters ?? []).some((parameter) => parameter.name === 'cursor'));
      expect(lists.length).toBeGreaterThanOrEqual(7);
      const issued = encodeCursor(1);
      const forged = [
        'WzMwMDAwMDAwMDBd',
        Buffer.from(JSON.stringify(['00000000-0000-4000-8000-000000000000'])).toString('base64url'),
        `${Buffer.from('[2]').toString('base64url')}.${issued.split('.')[1]}`,
        issued.slice(0, -3),
      ];
      for (const [template, item] of lists) {
        const params = template.includes('{') ? PATH_IDS[template]?.() : {};
        if (!params) throw new Error(`${template}: add its path parameters to PATH_IDS`);
        const path = template.replace(/\{(\w+)\}/g, (_, name: string) => params[name]!);
        const admin = (item.get?.security ?? []).some((scheme) => 'operatorKey' in scheme);
        for (const cursor of forged) {
          const res = await request(app).get(path).query({ cursor }).set(admin ? ADMIN_AUTH : tenant.auth);
          expect({ path, cursor, status: res.status }).toEqual({ path, cursor, status: 400 });
          expectCursorRefused(res);
        }
      }
    });
  });

  describe('strings the database cannot store', () => {
    const refusal = (path: string) => ({
      status: 400,
      body: { error: expect.objectContaining({ code: 'validation_error', details: expect.arrayContaining([expect.objectContaining({ path })]) }) },
    });

    it('when an agent is created with a NUL in its name, then 400 naming the field, not 500', async () => {
      const res = await request(app).post('/v1/agents').set(tenant.auth).send({ name: 'Shop\u0000', system_prompt: 'Be brief.' });
      expect({ status: res.status, body: res.body }).toEqual(refusal('name'));
    });

    it('when a lone surrogate hides deep in lead_fields (stored as jsonb), then 400 naming its path', async () => {
      const res = await request(app)
        .post('/v1/agents')
        .set(tenant.auth)
        .send({ name: 'Shop', system_prompt: 'Be brief.', lead_fields: [{ name: 'size', description: 'size \ud800', type: 'string' }] });
      expect({ status: res.status, body: res.body }).toEqual(refusal('lead_fields.0.description'));
    });

    it('when a key of the body, a query value or a path segment holds a NUL, then 400 too', async () => {
      const key = await request(app).post('/v1/agents').set(tenant.auth).send({ name: 'Shop', system_prompt: 'x', 'bad\u0000': 1 });
      expect({ status: key.status, body: key.body }).toEqual(refusal('bad\u0000'));
      const query = await request(app).get('/v1/conversations?phone_number_id=%00').set(tenant.auth);
      expect({ status: query.status, body: query.body }).toEqual(refusal('phone_number_id'));
      const segment = await request(app).get('/v1/conversations/%00').set(tenant.auth);
      expect({ status: segment.status, body: segment.body }).toEqual(refusal('id'));
    });

    it("when a human's message or an operator's user name holds one, then 400 and nothing is stored", async () => {
      const human = await request(app).post(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth).send({ text: 'Hello \ud83d' });
      expect({ status: human.status, body: human.body }).toEqual(refusal('text'));
      const user = await request(app).post('/v1/users').set(ADMIN_AUTH).send({ name: 'Eve\u0000', email: 'eve@example.com' });
      expect({ status: user.status, body: user.body }).toEqual(refusal('name'));
      const messages = await request(app).get(`/v1/conversations/${conversation.id}/messages`).set(tenant.auth);
      expect(messages.body.data).toHaveLength(3);
    });
  });
});
