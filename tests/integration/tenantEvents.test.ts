/**
 * Tenant events end to end (CONTRACT §3 "Tenant events", issue 17): the real app, real
 * Postgres and Redis, the real message worker and the real event worker posting to a real HTTP
 * receiver, whose deliveries are checked with the documented verifier itself
 * (documentation/examples/verify-webhook.js).
 */
import request from 'supertest';
import type { Express } from 'express';
import { db, withTransaction } from '../../src/utils/database';
import { pauseBot } from '../../src/models/Conversation';
import { emitTenantEvent } from '../../src/models/TenantEvent';
import { EventWorker, type EventWorkerOptions } from '../../src/workers/eventWorker';
import { createBusiness, customerWrites, eventually, pipelineForFile, type Business, type Row } from '../fixtures/pipeline';
import { startEventReceiver, type EventReceiver, type ReceivedEvent } from '../fixtures/eventReceiver';
import { createTestTenant } from '../fixtures/tenants';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { runEntryPoint } from '../fixtures/processes';
import { config } from '../../src/config';

// The very code the documentation shows.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyWebhook } = require('../../documentation/examples/verify-webhook.js') as {
  verifyWebhook: (rawBody: string, header: string | undefined, secret: string, toleranceSeconds?: number) => boolean;
};

const pipeline = pipelineForFile();
beforeAll(async () => {
  // Customers' messages are filed (and answered) by the message worker.
  await pipeline().startWorker();
});

const FAST: EventWorkerOptions = { pollIntervalMs: 25, firstRetryMs: 40, maxRetryMs: 200, timeoutMs: 2_000 };

const receivers: EventReceiver[] = [];
const workers: EventWorker[] = [];

async function receiver(behaviour?: Parameters<typeof startEventReceiver>[0]): Promise<EventReceiver> {
  const started = await startEventReceiver(behaviour);
  receivers.push(started);
  return started;
}

async function eventWorker(options: EventWorkerOptions = {}): Promise<EventWorker> {
  const worker = new EventWorker({ ...FAST, consumerName: `events-${workers.length + 1}`, ...options });
  await worker.start();
  workers.push(worker);
  return worker;
}

const afterAllClose: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const close of afterAllClose) await close();
});

afterEach(async () => {
  // Receivers first: closing them ends hanging posts, so the workers drain at once.
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await Promise.all(workers.splice(0).map((w) => w.close()));
});

async function register(app: Express, auth: Record<string, string>, url: string, events: string[]): Promise<{ id: string; secret: string }> {
  const res = await request(app).post('/v1/webhook-endpoints').set(auth).send({ url, events });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function conversationOf(business: Business, customer: string): Promise<string> {
  return eventually(async () => {
    const { rows } = await db.query<Row>('SELECT id FROM conversations WHERE user_id = $1 AND customer_external_id = $2', [business.tenant.userId, customer]);
    return rows[0]?.id as string | undefined;
  }, 15_000, 'the conversation');
}

const ofType = (events: ReceivedEvent[], type: string) => events.filter((e) => e.body.type === type);

describe('POST /v1/webhook-endpoints', () => {
  it('when a tenant registers an endpoint, then the secret is shown once, stored encrypted, and the endpoint is listed without it', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant();
    const res = await request(app).post('/v1/webhook-endpoints').set(tenant.auth).send({ url: 'http://127.0.0.1:9/hook', events: ['message.received', 'credits.low'] });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ url: 'http://127.0.0.1:9/hook', events: ['message.received', 'credits.low'], status: 'enabled', disabled_reason: null });
    expect(res.body.secret).toMatch(/^whsec_[0-9a-f]{64}$/);

    const { rows } = await db.query<Row>('SELECT secret_encrypted FROM webhook_endpoints WHERE id = $1', [res.body.id]);
    expect(rows[0].secret_encrypted).not.toContain(res.body.secret);
    expect(rows[0].secret_encrypted).toMatch(/^v2:/);

    const list = await request(app).get('/v1/webhook-endpoints').set(tenant.auth);
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(1);
    expect(JSON.stringify(list.body)).not.toContain(res.body.secret);
    expect(list.body.data[0]).not.toHaveProperty('secret');
  });

  it('when another tenant names the endpoint, then every route answers 404', async () => {
    const { app } = pipeline();
    const owner = await createTestTenant();
    const stranger = await createTestTenant();
    const { id } = await register(app, owner.auth, 'http://127.0.0.1:9/hook', ['message.received']);
    for (const [method, path] of [
      ['get', `/v1/webhook-endpoints/${id}`],
      ['get', `/v1/webhook-endpoints/${id}/deliveries`],
      ['post', `/v1/webhook-endpoints/${id}/rotate-secret`],
      ['post', `/v1/webhook-endpoints/${id}/deliveries/${id}/redeliver`],
      ['delete', `/v1/webhook-endpoints/${id}`],
    ] as const) {
      const res = await request(app)[method](path).set(stranger.auth);
      expect([path, res.status, res.body.error?.code]).toEqual([path, 404, 'not_found']);
    }
    expect((await request(app).get(`/v1/webhook-endpoints/${id}`).set(owner.auth)).status).toBe(200);
  });

  it('when the events name an unknown type or none, then it is a validation error', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant();
    for (const events of [['message.nope'], []]) {
      const res = await request(app).post('/v1/webhook-endpoints').set(tenant.auth).send({ url: 'http://127.0.0.1:9/hook', events });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
    }
  });

  it('when private URLs are not allowed, then loopback, private and link-local endpoints are refused at registration, after DNS', async () => {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const isolated = loadWithEnv({ WEBHOOK_ALLOW_PRIVATE_URLS: 'false' }, () => ({
      createApp: require('../../src/app').createApp as () => Express,
      closeRedis: require('../../src/utils/redis').closeRedis as () => Promise<void>,
      closeDatabase: require('../../src/utils/database').closeDatabase as () => Promise<void>,
    }));
    /* eslint-enable @typescript-eslint/no-require-imports */
    const strict = isolated.createApp();
    afterAllClose.push(isolated.closeRedis, isolated.closeDatabase);
    const tenant = await createTestTenant();
    for (const url of ['http://127.0.0.1:8080/hook', 'http://localhost:8080/hook', 'http://10.1.2.3/hook', 'http://169.254.169.254/latest', 'http://[::1]/hook', 'ftp://example.com/x']) {
      const res = await request(strict).post('/v1/webhook-endpoints').set(tenant.auth).send({ url, events: ['message.received'] });
      expect([url, res.status, res.body.error?.details?.[0]?.path]).toEqual([url, 400, 'url']);
    }
    const { rows } = await db.query<Row>('SELECT count(*)::int AS n FROM webhook_endpoints WHERE user_id = $1', [tenant.userId]);
    expect(rows[0].n).toBe(0);
  });
});

describe('deliveries', () => {
  it('when a customer writes and is answered, then the endpoint gets message.received then message.answered, signed as documented, with no access token', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app);
    const hook = await receiver();
    const { secret } = await register(app, business.tenant.auth, hook.url, ['message.received', 'message.answered']);
    await eventWorker();

    await customerWrites(app, business, '15550001001', 'Do you ship to Lisbon?');
    const events = await hook.waitFor(() => (hook.accepted().length >= 2 ? hook.accepted() : undefined), 20_000, 'two events');
    expect(events.map((e) => e.body.type)).toEqual(['message.received', 'message.answered']);
    for (const event of events) {
      expect(verifyWebhook(event.rawBody, event.headers['x-signature'] as string, secret)).toBe(true);
      expect(verifyWebhook(event.rawBody, event.headers['x-signature'] as string, 'whsec_wrong')).toBe(false);
      expect(verifyWebhook(`${event.rawBody} `, event.headers['x-signature'] as string, secret)).toBe(false);
      expect(event.headers['x-event-id']).toBe(event.body.id);
      expect(event.headers['x-event-type']).toBe(event.body.type);
      expect(Object.keys(event.body).sort()).toEqual(['created_at', 'data', 'id', 'type']);
      expect(event.rawBody).not.toContain(business.whatsapp.token);
    }
    const [received, answered] = events as [ReceivedEvent, ReceivedEvent];
    expect(received.body.data).toMatchObject({
      conversation: { channel: 'whatsapp', phone_number_id: business.whatsapp.id, agent_id: business.agentId },
      customer: { external_id: '15550001001' },
      phone_number: { id: business.whatsapp.id, external_id: business.whatsapp.externalId },
      message: { direction: 'inbound', author: 'customer', text: 'Do you ship to Lisbon?' },
    });
    expect(answered.body.data).toMatchObject({
      customer: { external_id: '15550001001' },
      message: { direction: 'outbound', author: 'agent', status: 'sent', reply_to_message_id: (received.body.data.message as Row).id },
    });

    // A timestamp older than 5 minutes is refused by the verifier, even correctly signed.
    const old = Math.floor(Date.now() / 1000) - 301;
    const { signatureHeader } = await import('../../src/utils/webhookSignature');
    expect(verifyWebhook(received.rawBody, signatureHeader([secret], old, received.rawBody), secret)).toBe(false);
  });

  it('when the receiver fails 3 times then succeeds, then each event arrives once more, in order, and the deliveries say so', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app);
    const hook = await receiver((n) => (n < 3 ? 500 : 200));
    const endpoint = await register(app, business.tenant.auth, hook.url, ['message.received', 'conversation.handoff', 'conversation.resumed']);
    await customerWrites(app, business, '15550001002', 'hello');
    const conversationId = await conversationOf(business, '15550001002');
    await request(app).post(`/v1/conversations/${conversationId}/pause`).set(business.tenant.auth).expect(200);
    await request(app).post(`/v1/conversations/${conversationId}/resume`).set(business.tenant.auth).expect(200);
    await eventWorker();

    await hook.waitFor(() => hook.accepted().length === 3, 20_000, 'three accepted events');
    expect(hook.requests.slice(0, 3).every((r) => r.body.type === 'message.received' && r.answered === 500)).toBe(true);
    expect(hook.accepted().map((e) => e.body.type)).toEqual(['message.received', 'conversation.handoff', 'conversation.resumed']);
    expect(ofType(hook.accepted(), 'conversation.handoff')[0]!.body.data).toMatchObject({ paused_by: 'api', conversation: { id: conversationId, bot_paused: true } });
    expect(new Set(hook.accepted().map((e) => e.body.id)).size).toBe(3);

    const deliveries = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries`).set(business.tenant.auth);
    expect(deliveries.status).toBe(200);
    const byType = Object.fromEntries(deliveries.body.data.map((d: Row) => [d.event_type, d]));
    expect(byType['message.received']).toMatchObject({ status: 'delivered', attempts: 4, last_status_code: 200, last_error: null, next_attempt_at: null });
    expect(byType['conversation.resumed']).toMatchObject({ status: 'delivered', attempts: 1 });

    // Pages: one delivery per page, newest first, the cursor walks on.
    const first = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=1`).set(business.tenant.auth);
    const second = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=1&cursor=${first.body.next_cursor}`).set(business.tenant.auth);
    expect([first.body.data[0].event_type, second.body.data[0].event_type]).toEqual(['conversation.resumed', 'conversation.handoff']);
  });

  it('when a delivery is redelivered by id, then the same event arrives again', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant({ credits: 1000 });
    const hook = await receiver();
    const endpoint = await register(app, tenant.auth, hook.url, ['credits.low']);
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -950, 'adjustment')`, [tenant.userId]);
    await eventWorker();
    const [first] = await hook.waitFor(() => (hook.accepted().length === 1 ? hook.accepted() : undefined));
    expect(first!.body).toMatchObject({ type: 'credits.low', data: { credit_balance: 50, threshold: 100, last_top_up: { amount: 1000 } } });

    const list = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries`).set(tenant.auth);
    const redeliver = await request(app).post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${list.body.data[0].id}/redeliver`).set(tenant.auth);
    expect(redeliver.status).toBe(202);
    const again = await hook.waitFor(() => (hook.accepted().length === 2 ? hook.accepted()[1] : undefined));
    expect(again.body.id).toBe(first!.body.id);
  });

  it('when a receiver hangs, then replies still go out and another tenant still gets its events', async () => {
    const { app, graph } = pipeline();
    const slow = await createBusiness(app);
    const other = await createBusiness(app);
    const hanging = await receiver(() => 'hang');
    const healthy = await receiver();
    await register(app, slow.tenant.auth, hanging.url, ['message.received', 'message.answered']);
    await register(app, other.tenant.auth, healthy.url, ['message.received']);
    await eventWorker({ timeoutMs: 30_000, perEndpoint: 2 });

    for (let i = 0; i < 4; i++) await customerWrites(app, slow, `1555000200${i}`, `question ${i}`);
    await hanging.waitFor(() => hanging.requests.length >= 2, 15_000, 'the hanging receiver to be called');
    // Every customer of the hanging tenant is answered while its posts hang.
    await graph.waitFor((sends) => [0, 1, 2, 3].every((i) => sends.some((s) => s.to === `1555000200${i}`)), 20_000);
    await customerWrites(app, other, '15550002009', 'hi');
    await healthy.waitFor(() => healthy.accepted().length === 1, 15_000, "the other tenant's event");
    // One endpoint never holds more than its share of posts.
    expect(hanging.requests.length).toBe(2);
  });

  it('when a URL resolves to a private address at delivery, then nothing is posted and the attempt says why; a checked address is the one connected to', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant({ credits: 1000 });
    const hook = await receiver();
    // Registered while allowed, then moved to a name that resolves (through the worker's resolver) to loopback.
    const endpoint = await register(app, tenant.auth, hook.url, ['credits.low']);
    await db.query('UPDATE webhook_endpoints SET url = $2 WHERE id = $1', [endpoint.id, `http://events.tenant.test:${hook.port}/events`]);
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -950, 'adjustment')`, [tenant.userId]);
    const toLoopback = async () => [{ address: '127.0.0.1', family: 4 as const }];
    await eventWorker({ urlPolicy: { requireHttps: false, allowPrivate: false }, resolve: toLoopback, firstRetryMs: 60_000 });

    const attempted = await eventually(async () => {
      const res = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries`).set(tenant.auth);
      return res.body.data[0]?.attempts === 1 ? res.body.data[0] : undefined;
    });
    expect(attempted).toMatchObject({ status: 'pending', last_status_code: null, last_error: 'resolves to a private, loopback or link-local address' });
    expect(hook.requests).toHaveLength(0);

    // Allowed, the same name reaches the receiver at the resolved address (DNS proper knows no such name).
    await workers.splice(0)[0]!.close();
    await request(app).post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${attempted.id}/redeliver`).set(tenant.auth).expect(202);
    await eventWorker({ urlPolicy: { requireHttps: false, allowPrivate: true }, resolve: toLoopback });
    await hook.waitFor(() => hook.accepted().length === 1);
  });

  it('when the secret is rotated, then deliveries carry two v1 signatures and each secret verifies', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant({ credits: 1000 });
    const hook = await receiver();
    const endpoint = await register(app, tenant.auth, hook.url, ['credits.low']);
    const rotated = await request(app).post(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`).set(tenant.auth);
    expect(rotated.status).toBe(201);
    expect(rotated.body.secret).not.toBe(endpoint.secret);
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -950, 'adjustment')`, [tenant.userId]);
    await eventWorker();
    const [event] = await hook.waitFor(() => (hook.accepted().length === 1 ? hook.accepted() : undefined));
    const header = event!.headers['x-signature'] as string;
    expect(header.match(/v1=/g)).toHaveLength(2);
    expect(verifyWebhook(event!.rawBody, header, rotated.body.secret)).toBe(true);
    expect(verifyWebhook(event!.rawBody, header, endpoint.secret)).toBe(true);
  });

  it('when an endpoint fails for a day, then it is disabled, the tenant reads why, and a redelivery enables it again', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant({ credits: 1000 });
    const hook = await receiver(() => 503);
    const endpoint = await register(app, tenant.auth, hook.url, ['credits.low']);
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -950, 'adjustment')`, [tenant.userId]);
    // A "day" of 1 ms: the second failure comes after it.
    await eventWorker({ disableAfterMs: 1 });
    const disabled = await eventually(async () => {
      const res = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}`).set(tenant.auth);
      return res.body.status === 'disabled' ? res.body : undefined;
    });
    expect(disabled.disabled_reason).toMatch(/failed since .*the endpoint answered 503/);
    const deliveries = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}/deliveries`).set(tenant.auth);
    expect(deliveries.body.data[0]).toMatchObject({ status: 'failed', last_status_code: 503 });
    expect(deliveries.body.data[0].last_error).toMatch(/endpoint disabled/);

    hook.setBehaviour(() => 200);
    await request(app).post(`/v1/webhook-endpoints/${endpoint.id}/deliveries/${deliveries.body.data[0].id}/redeliver`).set(tenant.auth).expect(202);
    await hook.waitFor(() => hook.accepted().length === 1);
    const enabled = await request(app).get(`/v1/webhook-endpoints/${endpoint.id}`).set(tenant.auth);
    expect(enabled.body).toMatchObject({ status: 'enabled', disabled_reason: null });
  });

  it('when the dispatcher is killed mid-delivery, then another one delivers the event: nothing is lost', async () => {
    const { app } = pipeline();
    const tenant = await createTestTenant({ credits: 1000 });
    const hook = await receiver((n) => (n === 0 ? 'hang' : 200));
    const { secret } = await register(app, tenant.auth, hook.url, ['credits.low']);
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -950, 'adjustment')`, [tenant.userId]);

    const dispatcher = runEntryPoint('scripts/worker-start.ts', ['events'], {
      DATABASE_URL: config.DATABASE_URL,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
      // The lease is then the post timeout + 5 s (15 s), the shortest a worker takes.
      WORKER_LEASE_MS: '1000',
    });
    try {
      await hook.waitFor(() => hook.requests.length === 1, 20_000, 'the first post');
      dispatcher.child.kill('SIGKILL');
      await dispatcher.exited;
    } finally {
      if (dispatcher.child.exitCode === null) dispatcher.child.kill('SIGKILL');
    }
    await eventWorker();
    // The killed worker's lease (WORKER_LEASE_MS, at least the post timeout + 5 s) runs out first.
    const [event] = await hook.waitFor(() => (hook.accepted().length === 1 ? hook.accepted() : undefined), 40_000, 'the redelivery');
    expect(event!.body.id).toBe(hook.requests[0]!.body.id);
    expect(verifyWebhook(event!.rawBody, event!.headers['x-signature'] as string, secret)).toBe(true);
  }, 60_000);
});

describe('the outbox', () => {
  it('when the change rolls back, then no event is written; when it commits, the event and its delivery are', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app);
    await register(app, business.tenant.auth, 'http://127.0.0.1:9/hook', ['conversation.handoff', 'customer.opted_out']);
    await customerWrites(app, business, '15550003001', 'hello');
    const conversationId = await conversationOf(business, '15550003001');
    const eventsOf = async () =>
      (await db.query<Row>('SELECT type FROM tenant_events WHERE user_id = $1 AND conversation_id = $2 ORDER BY created_at', [business.tenant.userId, conversationId])).rows.map((r) => r.type);

    await expect(
      withTransaction(async (tx) => {
        await pauseBot(business.tenant.userId, conversationId, 'api', tx);
        await emitTenantEvent(tx, business.tenant.userId, 'customer.opted_out', conversationId, { keyword: 'STOP' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await eventsOf()).toEqual([]);

    await withTransaction(async (tx) => {
      await pauseBot(business.tenant.userId, conversationId, 'api', tx);
      expect(await emitTenantEvent(tx, business.tenant.userId, 'customer.opted_out', conversationId, { keyword: 'STOP' })).toEqual(expect.any(String));
    });
    expect(await eventsOf()).toEqual(['conversation.handoff', 'customer.opted_out']);
    const { rows } = await db.query<Row>('SELECT count(*)::int AS n FROM webhook_deliveries WHERE user_id = $1 AND status = $2', [business.tenant.userId, 'pending']);
    expect(rows[0].n).toBe(2);
  });

  it('when a human writes, an extraction is stored or a message fails, then handoff (by human), extraction.completed and message.failed are emitted with their data', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app);
    await register(app, business.tenant.auth, 'http://127.0.0.1:9/hook', ['conversation.handoff', 'extraction.completed', 'message.failed', 'customer.opted_out']);
    await customerWrites(app, business, '15550003002', 'hello');
    const conversationId = await conversationOf(business, '15550003002');
    const userId = business.tenant.userId;

    await request(app).post(`/v1/conversations/${conversationId}/messages`).set(business.tenant.auth).send({ text: 'A human here' }).expect(202);
    // Sent first, so the send's own status update cannot overwrite the failure below.
    await eventually(async () => (await db.query<Row>(`SELECT 1 FROM messages WHERE conversation_id = $1 AND author = 'human' AND status = 'sent'`, [conversationId])).rows[0]);
    await db.query(
      `INSERT INTO extractions (user_id, conversation_id, agent_id, fields, summary, up_to_sequence_no, model)
       VALUES ($1, $2, $3, '{"name":"Ana","email":"ana@example.com"}', 'wants shoes', 2, 'gpt-4o-mini')`,
      [userId, conversationId, business.agentId],
    );
    await db.query(`UPDATE messages SET status = 'failed', error_code = 'send_failed', error_message = 'Graph said no' WHERE user_id = $1 AND conversation_id = $2 AND author = 'human'`, [userId, conversationId]);
    await db.query(`SELECT emit_customer_opted_out($1, $2, NULL, 'STOP')`, [userId, conversationId]);

    const { rows } = await db.query<Row>('SELECT type, data FROM tenant_events WHERE user_id = $1 ORDER BY created_at', [userId]);
    const data = Object.fromEntries(rows.map((r) => [r.type, r.data]));
    expect(Object.keys(data)).toEqual(['conversation.handoff', 'extraction.completed', 'message.failed', 'customer.opted_out']);
    expect(data['conversation.handoff']).toMatchObject({ paused_by: 'human', customer: { external_id: '15550003002' } });
    expect(data['extraction.completed']).toMatchObject({ extraction: { fields: { name: 'Ana', email: 'ana@example.com' }, summary: 'wants shoes' }, conversation: { id: conversationId } });
    expect(data['message.failed']).toMatchObject({ message: { author: 'human', status: 'failed', error: { code: 'send_failed', message: 'Graph said no' } } });
    expect(data['customer.opted_out']).toMatchObject({ keyword: 'STOP', customer: { external_id: '15550003002' } });
  });

  it('when a customer writes an opt-out or a handoff keyword, then customer.opted_out (with the keyword) and conversation.handoff (by keyword) are emitted', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app, { agent: { handoff_keywords: ['a person please'] } });
    await register(app, business.tenant.auth, 'http://127.0.0.1:9/hook', ['conversation.handoff', 'customer.opted_out']);
    const userId = business.tenant.userId;
    const eventOf = (type: string, customer: string) =>
      eventually(async () => (await db.query<Row>(`SELECT data FROM tenant_events WHERE user_id = $1 AND type = $2 AND data->'customer'->>'external_id' = $3`, [userId, type, customer])).rows[0]?.data, 15_000, type);

    await customerWrites(app, business, '15550003101', '  Stop ');
    expect(await eventOf('customer.opted_out', '15550003101')).toMatchObject({ keyword: 'Stop', message_id: expect.any(String), conversation: { id: await conversationOf(business, '15550003101') } });

    await customerWrites(app, business, '15550003102', 'A person please');
    expect(await eventOf('conversation.handoff', '15550003102')).toMatchObject({ paused_by: 'keyword', conversation: { bot_paused: true, paused_by: 'keyword' } });
  });

  it('when a tenant has no endpoint for a type, then nothing is written for it', async () => {
    const { app } = pipeline();
    const business = await createBusiness(app);
    await register(app, business.tenant.auth, 'http://127.0.0.1:9/hook', ['credits.low']);
    await customerWrites(app, business, '15550003003', 'hello');
    await conversationOf(business, '15550003003');
    await db.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, -999000, 'adjustment')`, [business.tenant.userId]);
    const { rows } = await db.query<Row>('SELECT type FROM tenant_events WHERE user_id = $1', [business.tenant.userId]);
    expect(rows.map((r) => r.type)).toEqual(['credits.low']);
  });
});
