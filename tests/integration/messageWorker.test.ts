import type Redis from 'ioredis';
import request from 'supertest';
import { db } from '../../src/utils/database';
import { getRedis } from '../../src/utils/redis';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { deadLetterStream } from '../../src/utils/queue';
import {
  createBusiness,
  customerWrites,
  customerWritesOnInstagram,
  eventually,
  ledgerOf,
  messagesOf,
  startPipeline,
  type Pipeline,
} from '../fixtures/pipeline';

let pipeline: Pipeline;
let customerSeq = 0;
const newCustomer = () => `1555${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
});
afterAll(async () => {
  await pipeline.close();
  await teardownTestDatabase();
});
afterEach(() => pipeline.reset());

describe('message workers (CONTRACT §4)', () => {
  it('when a customer writes, then exactly one reply goes out from that number to that customer with its token, charged once', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'Do you ship to Spain?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    const [send] = graph.texts(customer);
    expect(send).toMatchObject({ channel: 'whatsapp', accountId: business.whatsapp.externalId, token: business.whatsapp.token, text: 'Thanks! You said: "Do you ship to Spain?"' });

    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r.length === 2 && r[1].status === 'sent' ? r : null;
    });
    expect(rows.map((m) => [m.direction, m.author, m.status])).toEqual([['inbound', 'customer', 'answered'], ['outbound', 'agent', 'sent']]);
    expect(rows[1].external_id).toBe(send!.externalId);

    const ledger = await ledgerOf(business.tenant.userId);
    const replyEntries = ledger.entries.filter((e) => e.reason === 'reply');
    expect(replyEntries).toHaveLength(1);
    expect(replyEntries[0].message_id).toBe(rows[1].id);
    const usage = pipeline.openai.completions()[0]!.usage!;
    expect(Number(replyEntries[0].amount)).toBe(-usage.total_tokens);
    expect(ledger.balance).toBe(ledger.sum);
    // Marked as read, with a typing indicator, before the reply.
    expect(graph.sends.some((s) => s.kind === 'read' && s.messageId)).toBe(true);
  });

  it('when Meta delivers the same message five times, at once and later, then one reply', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    await pipeline.startWorker();
    const customer = newCustomer();
    const id = await customerWrites(app, business, customer, 'only once please');
    await Promise.all([1, 2, 3].map(() => customerWrites(app, business, customer, 'only once please', id)));
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    await customerWrites(app, business, customer, 'only once please', id);
    // A later message's reply is the signal: had the late copy been filed, it would sit before
    // this message and be answered first or quoted with it.
    await customerWrites(app, business, customer, 'and one more thing');
    await graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length >= 2);
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Thanks! You said: "only once please"', 'Thanks! You said: "and one more thing"']);
    expect(pipeline.openai.completions()).toHaveLength(2);
    const inbound = (await messagesOf(business.tenant.userId, customer)).filter((m) => m.direction === 'inbound');
    expect(inbound.map((m) => m.external_id)).toEqual([id, expect.any(String)]);
  });

  it('when a customer writes several times, then replies go out in order and model calls of one conversation never overlap', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setLatency(150);
    await Promise.all([pipeline.startWorker(), pipeline.startWorker()]);
    const customers = [newCustomer(), newCustomer(), newCustomer()];
    for (const text of ['first', 'second', 'third']) {
      await Promise.all(customers.map((customer) => customerWrites(app, business, customer, `${text} from ${customer}`)));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await eventually(async () => {
      const all = await Promise.all(customers.map((c) => messagesOf(business.tenant.userId, c)));
      return all.every((rows) => rows.filter((m) => m.direction === 'inbound').every((m) => m.status === 'answered')) &&
        all.every((rows) => rows.filter((m) => m.direction === 'outbound').every((m) => m.status === 'sent'));
    });
    expect(openai.overlaps()).toEqual([]);
    expect(openai.maxConcurrentPerKey()).toBe(1);
    // Different conversations did run side by side.
    expect(openai.maxInFlight()).toBeGreaterThan(1);
    for (const customer of customers) {
      const rows = await messagesOf(business.tenant.userId, customer);
      // Each reply answers what came before it, and sends follow the order of the replies.
      const replies = rows.filter((m) => m.direction === 'outbound').map((m) => m.text);
      expect(graph.texts(customer).map((s) => s.text)).toEqual(replies);
      const lastReply = replies[replies.length - 1];
      expect(lastReply).toContain(`third from ${customer}`);
    }
  });

  it('when messages arrive within the debounce window, then one reply sees all of them', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app, { agent: { debounce_ms: 600 } });
    await pipeline.startWorker();
    const customer = newCustomer();
    for (const text of ['Hi', 'I need a jacket', 'size M']) {
      await customerWrites(app, business, customer, text);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    // A later message's reply is the signal: a second reply to the burst would come before it,
    // or quote part of the burst with it.
    await customerWrites(app, business, customer, 'thanks');
    await graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length >= 2);
    expect(openai.completions()).toHaveLength(2);
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Thanks! You said: "Hi / I need a jacket / size M"', 'Thanks! You said: "thanks"']);
  });

  it('when 25 customers write at once and the credits cover 3 dearest outcomes, then at most 3 model calls run at once, none beyond the credits, and the balance equals the ledger', async () => {
    const { app, openai } = pipeline;
    // A hold is the prompt estimate plus the agent's max_tokens (512) at 1 credit a token: ~540.
    // Three fit in 1,700; while three are held a fourth does not (guarantee 14).
    const business = await createBusiness(app, { credits: 1_700 });
    await Promise.all([pipeline.startWorker(), pipeline.startWorker()]);
    // Live holds, sampled while the workers run: one per model call in flight.
    const holdsSeen: number[] = [];
    const watch = setInterval(() => {
      void db
        .query<{ n: number }>('SELECT count(*)::int AS n FROM credit_holds WHERE user_id = $1 AND expires_at > now()', [business.tenant.userId])
        .then(({ rows }) => holdsSeen.push(rows[0]!.n))
        .catch(() => undefined);
    }, 5);
    const customers = Array.from({ length: 25 }, newCustomer);
    await Promise.all(customers.map((customer) => customerWrites(app, business, customer, 'Is this still available?')));
    const settled = await eventually(async () => {
      const { rows } = await db.query<{ status: string }>(
        `SELECT status FROM messages WHERE user_id = $1 AND direction = 'inbound'`,
        [business.tenant.userId],
      );
      return rows.length === 25 && rows.every((r) => r.status !== 'pending') ? rows : null;
    });
    clearInterval(watch);
    expect(Math.max(0, ...holdsSeen)).toBeLessThanOrEqual(3);
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.balance).toBeGreaterThanOrEqual(0);
    expect(ledger.sum).toBe(ledger.balance);
    const answered = settled.filter((r) => r.status === 'answered').length;
    expect(answered).toBeGreaterThanOrEqual(1);
    expect(answered + settled.filter((r) => r.status === 'insufficient_credits').length).toBe(25);
    expect(ledger.entries.filter((e) => e.reason === 'reply')).toHaveLength(answered);
    expect(openai.completions()).toHaveLength(answered);
  });

  it('when the balance is above zero but cannot cover one dearest outcome, then a new message makes no model call at all', async () => {
    const { app, openai } = pipeline;
    const business = await createBusiness(app, { credits: 100 });
    await pipeline.startWorker();
    const calls = openai.completions().length;
    const late = newCustomer();
    await customerWrites(app, business, late, 'anyone?');
    await eventually(async () => (await messagesOf(business.tenant.userId, late))[0]?.status === 'insufficient_credits');
    expect(openai.completions()).toHaveLength(calls);
    expect((await ledgerOf(business.tenant.userId)).balance).toBe(100);
  });

  it('when the tenant has no credits and the agent has a fallback, then the fallback goes out free', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app, { credits: 0, agent: { fallback_message: 'We will get back to you soon.' } });
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'hello?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['We will get back to you soon.']);
    expect(openai.completions()).toHaveLength(0);
    const rows = await messagesOf(business.tenant.userId, customer);
    expect(rows[0].status).toBe('insufficient_credits');
    expect((await ledgerOf(business.tenant.userId)).entries).toHaveLength(0);
  });

  it('when OpenAI fails for a while, then the message is answered once it recovers', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    // More failures than one turn retries: the turn is postponed and taken up after the lease.
    openai.setFault({ status: 503, count: 5 });
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'are you there?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer), 20_000);
    expect(graph.texts(customer)).toHaveLength(1);
    const rows = await messagesOf(business.tenant.userId, customer);
    expect(rows[0].status).toBe('answered');
  });

  it('when OpenAI rejects the request (400), then the message fails visibly, uncharged and unsent', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setFault({ status: 400 });
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'bad request please');
    const [message] = await eventually(async () => {
      const rows = await messagesOf(business.tenant.userId, customer);
      return rows[0]?.status === 'failed' ? rows : null;
    });
    expect(message.error_code).toBe('model_bad_request');
    expect(openai.completions()).toHaveLength(1);
    expect(graph.texts(customer)).toHaveLength(0);
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply')).toHaveLength(0);
    const api = await request(app).get(`/v1/conversations/${message.conversation_id}/messages`).set(business.tenant.auth);
    expect(api.body.data[0]).toMatchObject({ status: 'failed', error: { code: 'model_bad_request' } });
  });

  it('when Graph refuses for good (131047), then the reply is failed with Meta code and text, visible in the API', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    graph.setFault({ code: 131047, kind: 'text' });
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'late reply');
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r[1]?.status === 'failed' ? r : null;
    });
    expect(rows[1]).toMatchObject({ direction: 'outbound', error_code: '131047' });
    const attempts = graph.sends.filter((s) => s.kind === 'text' && s.to === customer);
    expect(attempts).toHaveLength(1);
    const api = await request(app).get(`/v1/conversations/${rows[0].conversation_id}/messages`).set(business.tenant.auth);
    expect(api.body.data[1].error.code).toBe('131047');
  });

  it('when Graph throttles (130429) for a moment, then the reply is retried and sent once', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    graph.setFault({ code: 130429, kind: 'text', count: 2 });
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'busy?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && s.ok), 20_000);
    expect(graph.texts(customer)).toHaveLength(1);
  });

  it('when an Instagram customer writes, then the reply goes to the IGSID through the Instagram endpoint with its token', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    await pipeline.startWorker();
    const igsid = `60210${newCustomer()}`;
    await customerWritesOnInstagram(app, business, igsid, 'Is the tote still available?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === igsid));
    expect(graph.texts(igsid)[0]).toMatchObject({ channel: 'instagram', accountId: business.instagram.externalId, token: business.instagram.token });
  });

  it('when the bot is paused, then customers get no reply; a human message from the API is sent and pauses it', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'first');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    const [inbound] = await messagesOf(business.tenant.userId, customer);
    const human = await request(app)
      .post(`/v1/conversations/${inbound.conversation_id}/messages`)
      .set(business.tenant.auth)
      .send({ text: 'Hi, Ana here from the shop.' });
    expect(human.status).toBe(202);
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.text === 'Hi, Ana here from the shop.'));
    await customerWrites(app, business, customer, 'thanks Ana');
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).some((m) => m.text === 'thanks Ana' && m.status === 'ignored'));
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Thanks! You said: "first"', 'Hi, Ana here from the shop.']);
  });

  it('when Redis is flushed after the webhook said 200, then the message is still answered', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'did you lose me?');
    await getRedis().flushdb();
    await pipeline.startWorker();
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer), 20_000);
    expect(graph.texts(customer)).toHaveLength(1);
  });

  it('when workers run, then /metrics shows their heartbeat, the queue and reply series', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'metrics please');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    const res = await request(app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/worker_heartbeat_age_seconds\{worker="test-worker-\d+",kind="message"\}/);
    expect(res.text).toMatch(/worker_in_flight\{worker="test-worker-\d+",kind="message"\}/);
    expect(res.text).toMatch(/queue_lag_entries\{stream="stream:\{messages:0\}"\} \d+/);
    expect(res.text).toMatch(/queue_pending_entries\{stream="stream:\{messages:0\}"\} \d+/);
    expect(res.text).toMatch(/replies_sent_total\{channel="whatsapp",author="agent"\} \d+/);
    expect(res.text).toContain('model_call_duration_seconds_bucket');
    expect(res.text).toContain('graph_send_duration_seconds_bucket');
    expect(res.text).toContain('credits_charged_total');
  });

  it('when a conversation keeps crashing its worker, then after N deliveries it is dead-lettered and what it owed fails', async () => {
    const { app } = pipeline;
    const business = await createBusiness(app);
    // A token that no longer decrypts (the encryption key was changed): every turn throws.
    await db.query(`UPDATE phone_numbers SET access_token_encrypted = 'v1:AAAA:AAAA:AAAA' WHERE id = $1`, [business.whatsapp.id]);
    await pipeline.startWorker({ leaseMs: 300, maxDeliveries: 3, sweepIntervalMs: 60_000 });
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'this will not work');
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r[0]?.status === 'failed' ? r : null;
    }, 20_000, 'the message failed as poison');
    expect(rows.map((m) => [m.direction, m.status, m.error_code])).toEqual([['inbound', 'failed', 'poison']]);
    expect(pipeline.openai.completions()).toHaveLength(0);
    const dead = await getRedis().xrange(deadLetterStream(0), '-', '+');
    expect(dead.length).toBeGreaterThanOrEqual(1);
    expect(dead[0]![1]).toEqual(expect.arrayContaining(['deliveries', 'phone_number_id', business.whatsapp.id]));
  });

  it('when a customer writes again while a reply is being made, then the next turn reads question, answer, next question', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setLatency(400);
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'first question');
    await openai.waitFor((requests) => requests.length === 1);
    await customerWrites(app, business, customer, 'second question');
    await graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length === 2, 10_000);
    const second = openai.completions()[1]!.body!.messages!.map((m) => [m.role, m.content]);
    expect(second).toEqual([
      ['system', 'You are the shop assistant. Be brief.'],
      ['user', 'first question'],
      ['assistant', 'Thanks! You said: "first question"'],
      ['user', 'second question'],
    ]);
  });

  it('when a human takes over while the model is thinking, then the bot reply is dropped, unsent and uncharged', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setLatency(600);
    await pipeline.startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'can a person help me?');
    await openai.waitFor((requests) => requests.length === 1);
    const [inbound] = await messagesOf(business.tenant.userId, customer);
    const human = await request(app).post(`/v1/conversations/${inbound.conversation_id}/messages`).set(business.tenant.auth).send({ text: 'Hi, Ana here.' });
    expect(human.status).toBe(202);
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.text === 'Hi, Ana here.'));
    // Marked ignored by the turn that dropped the reply, once it went round again.
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[0]?.status === 'ignored');
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply')).toHaveLength(0);
    // Then the bot is handed back and answers a later message: the signal that the conversation
    // moved on, and had the dropped reply been kept, it would have gone out before this one.
    const resumed = await request(app).post(`/v1/conversations/${inbound.conversation_id}/resume`).set(business.tenant.auth);
    expect(resumed.status).toBe(200);
    await customerWrites(app, business, customer, 'still there?');
    await graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length >= 2);
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Hi, Ana here.', 'Thanks! You said: "still there?"']);
    const rows = await messagesOf(business.tenant.userId, customer);
    expect(rows.filter((m) => m.author === 'agent').map((m) => m.text)).toEqual(['Thanks! You said: "still there?"']);
    const charges = (await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply');
    expect(charges.map((e) => e.message_id)).toEqual([rows.find((m) => m.author === 'agent')!.id]);
  });

  it('when Redis is down as the webhook arrives, then Meta still gets 200 and the message is answered once Redis is back', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    const customer = newCustomer();
    // A standalone connection: these tests point it at a dead port.
    const redis = getRedis() as Redis;
    redis.disconnect();
    const port = redis.options.port;
    redis.options.port = 1;
    try {
      await customerWrites(app, business, customer, 'is anyone there?');
    } finally {
      redis.options.port = port;
      await redis.connect().catch(() => undefined);
    }
    await pipeline.startWorker();
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer), 20_000);
    expect(graph.texts(customer)).toHaveLength(1);
  });
});
