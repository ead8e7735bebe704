/**
 * The 24 h customer-service window (issue 16, item 3; CONTRACT §3): conversations show when it
 * ends, a human's free text outside it is refused at once, the bot sends no free text outside
 * it, and a WhatsApp template (the one send allowed outside it) goes through the same outbound
 * path and statuses. Meta's own refusal (131047) still fails a send with its code.
 * Through the real webhook, API and message worker, with the Graph stand-in posting Meta's
 * status webhooks to the app.
 */
import request from 'supertest';
import { db } from '../../src/utils/database';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { whatsappTextBody } from '../fixtures/meta';
import {
  createBusiness,
  customerWrites,
  customerWritesOnInstagram,
  eventually,
  messagesOf,
  postWebhook,
  startPipeline,
  type Business,
  type Pipeline,
  type Row,
} from '../fixtures/pipeline';

let pipeline: Pipeline;
let customerSeq = 0;
const newCustomer = () => `1556${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
  // Meta's status webhooks and echoes come back to the app, as Meta would post them.
  await pipeline.serveMetaWebhooks(10);
});
afterEach(() => pipeline.reset());
afterAll(async () => {
  await pipeline.close();
  await teardownTestDatabase();
});

async function conversationOf(business: Business, customer: string): Promise<Row> {
  const res = await request(pipeline.app).get('/v1/conversations').set(business.tenant.auth);
  return res.body.data.find((c: Row) => c.customer.external_id === customer);
}

/** A customer who wrote, was answered, and whose last message is now `hoursAgo` old. */
async function answeredCustomer(business: Business, hoursAgo: number): Promise<{ customer: string; conversation: Row }> {
  const customer = newCustomer();
  await customerWrites(pipeline.app, business, customer, 'Hello there');
  await pipeline.graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
  const conversation = await conversationOf(business, customer);
  // Time passes: the window is measured from the customer's newest message.
  await db.query(`UPDATE conversations SET last_customer_message_at = now() - make_interval(hours => $2) WHERE id = $1`, [conversation.id, hoursAgo]);
  return { customer, conversation };
}

describe('the 24 h customer-service window', () => {
  it("when a customer writes, then the conversation's window_expires_at is their message's time plus 24 h", async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const customer = newCustomer();
    const sentAt = Math.floor(Date.now() / 1000) - 600;
    await postWebhook(pipeline.app, whatsappTextBody({ phoneNumberId: business.whatsapp.externalId, from: customer, text: 'Hi', timestamp: sentAt }));
    const conversation = await eventually(() => conversationOf(business, customer));
    expect(new Date(conversation.window_expires_at).getTime()).toBe((sentAt + 24 * 3600) * 1000);

    const one = await request(pipeline.app).get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth);
    expect(one.body.window_expires_at).toBe(conversation.window_expires_at);
  });

  it("when a human writes free text after the window closed, then 409 window_closed at once: nothing is stored or sent and the bot is not paused", async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const { customer, conversation } = await answeredCustomer(business, 25);

    const res = await request(pipeline.app).post(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth).send({ text: 'Still there?' });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('window_closed');

    const after = await request(pipeline.app).get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth);
    expect(after.body.bot_paused).toBe(false);
    expect(new Date(after.body.window_expires_at).getTime()).toBeLessThan(Date.now());
    expect((await messagesOf(business.tenant.userId, customer)).map((m: Row) => m.author)).toEqual(['customer', 'agent']);
  });

  it('when a human writes inside the window, then the message goes (202) as before', async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const { customer, conversation } = await answeredCustomer(business, 23);
    const res = await request(pipeline.app).post(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth).send({ text: 'A human here' });
    expect(res.status).toBe(202);
    await pipeline.graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && s.text === 'A human here'));
  });

  it('when a template is sent outside the window, then Meta gets type template with name, language.code and components, and the message moves through sent to delivered', async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const { customer, conversation } = await answeredCustomer(business, 30);
    const components = [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }];

    const res = await request(pipeline.app)
      .post(`/v1/conversations/${conversation.id}/template`)
      .set(business.tenant.auth)
      .send({ name: 'order_update', language: 'en_US', components });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ direction: 'outbound', author: 'human', type: 'template', text: 'order_update', status: 'queued' });

    await pipeline.graph.waitFor((sends) => sends.some((s) => s.kind === 'template' && s.to === customer));
    const [send] = pipeline.graph.templates(customer);
    expect(send).toMatchObject({ accountId: business.whatsapp.externalId, token: business.whatsapp.token });
    expect(send!.body).toMatchObject({ messaging_product: 'whatsapp', type: 'template', template: { name: 'order_update', language: { code: 'en_US' }, components } });

    const delivered = await eventually(async () => {
      const messages = await request(pipeline.app).get(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth);
      const template = messages.body.data.find((m: Row) => m.id === res.body.id);
      return template.status === 'delivered' ? template : null;
    }, 15_000, 'the template delivered');
    expect(delivered.external_id).toBe(send!.externalId);
    // A template re-opens a conversation; it does not take it over from the bot.
    const after = await request(pipeline.app).get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth);
    expect(after.body.bot_paused).toBe(false);
  });

  it("when Meta refuses a template (an unknown name), then the message fails with Meta's code", async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const { conversation } = await answeredCustomer(business, 30);
    pipeline.graph.setFault({ code: 132001, kind: 'template' });
    const res = await request(pipeline.app).post(`/v1/conversations/${conversation.id}/template`).set(business.tenant.auth).send({ name: 'no_such_template', language: 'en' });
    expect(res.status).toBe(202);
    const failed = await eventually(async () => {
      const [row] = (await db.query<Row>('SELECT * FROM messages WHERE id = $1', [res.body.id])).rows;
      return row.status === 'failed' ? row : null;
    });
    expect(failed.error_code).toBe('132001');
  });

  it('when a template is asked for on Instagram, or is malformed, then 400 and nothing is stored', async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const igsid = `ig${newCustomer()}`;
    await customerWritesOnInstagram(pipeline.app, business, igsid, 'hi');
    const conversation = await eventually(() => conversationOf(business, igsid));
    const onInstagram = await request(pipeline.app).post(`/v1/conversations/${conversation.id}/template`).set(business.tenant.auth).send({ name: 'order_update', language: 'en' });
    expect(onInstagram.status).toBe(400);
    expect(onInstagram.body.error.code).toBe('validation_error');

    const whatsapp = (await answeredCustomer(business, 1)).conversation;
    for (const body of [{ language: 'en' }, { name: 'Order Update', language: 'en' }, { name: 'ok', language: 'english please' }, { name: 'ok', language: 'en', extra: 1 }]) {
      const res = await request(pipeline.app).post(`/v1/conversations/${whatsapp.id}/template`).set(business.tenant.auth).send(body);
      expect(res.status).toBe(400);
    }
    const { rows } = await db.query<Row>(`SELECT count(*)::int AS n FROM messages WHERE user_id = $1 AND type = 'template'`, [business.tenant.userId]);
    expect(rows[0].n).toBe(0);
  });

  it('when a customer message is already older than the window, then the bot sends no free text to them', async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const customer = newCustomer();
    const sentAt = Math.floor(Date.now() / 1000) - 25 * 3600;
    await postWebhook(pipeline.app, whatsappTextBody({ phoneNumberId: business.whatsapp.externalId, from: customer, text: 'Sent yesterday', timestamp: sentAt }));
    // Settled: the customer's message is no longer pending and nothing waits to be sent.
    const rows = await eventually(async () => {
      const messages = await messagesOf(business.tenant.userId, customer);
      return messages.length > 0 && messages.every((m: Row) => m.status !== 'pending' && m.status !== 'queued') ? messages : null;
    });
    expect(pipeline.graph.texts(customer)).toEqual([]);
    for (const reply of rows.filter((m: Row) => m.direction === 'outbound')) expect([reply.status, reply.error_code]).toEqual(['failed', 'window_closed']);
  });

  it("when Meta answers 131047 (the window closed between our check and the send), then the human's message fails with that code", async () => {
    const business = await createBusiness(pipeline.app);
    await pipeline.startWorker();
    const { conversation } = await answeredCustomer(business, 1);
    pipeline.graph.setFault({ code: 131047, kind: 'text' });
    const res = await request(pipeline.app).post(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth).send({ text: 'Are you there?' });
    expect(res.status).toBe(202);
    const failed = await eventually(async () => {
      const [row] = (await db.query<Row>('SELECT * FROM messages WHERE id = $1', [res.body.id])).rows;
      return row.status === 'failed' ? row : null;
    });
    expect(failed.error_code).toBe('131047');
    expect(failed.error_message).toContain('Re-engagement');
  });
});
