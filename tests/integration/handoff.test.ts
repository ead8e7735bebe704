/**
 * Handoff and hand-back (issue 16, item 5; CONTRACT §3): the agent's handoff_keywords pause the
 * bot, a human's pause resumes by itself after resume_after_minutes without a human message
 * (each one restarting the clock), and conversations say who paused them and when they resume.
 * Through the real webhook, API and message workers; the resume timer runs in the workers' sweep.
 */
import request from 'supertest';
import { db } from '../../src/utils/database';
import { createBusiness, customerWrites, eventually, messagesOf, pipelineForFile, type Business, type Row } from '../fixtures/pipeline';

const pipeline = pipelineForFile();
let customerSeq = 0;
const newCustomer = () => `1557${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

afterEach(() => pipeline().reset());

const api = () => request(pipeline().app);

async function conversationOf(business: Business, customer: string): Promise<Row> {
  const res = await api().get('/v1/conversations').set(business.tenant.auth);
  return res.body.data.find((c: Row) => c.customer.external_id === customer);
}

async function getConversation(business: Business, id: string): Promise<Row> {
  return (await api().get(`/v1/conversations/${id}`).set(business.tenant.auth)).body;
}

/** Waits until the customer's message with this text is no longer pending, and returns it. */
async function settled(business: Business, customer: string, text: string): Promise<Row> {
  return eventually(async () => {
    const row = (await messagesOf(business.tenant.userId, customer)).find((m: Row) => m.text === text);
    return row && row.status !== 'pending' ? row : null;
  }, 15_000, `"${text}" settled`);
}

/** A customer who wrote and got the bot's reply: the conversation is open and the bot running. */
async function answeredCustomer(business: Business): Promise<{ customer: string; conversation: Row }> {
  const customer = newCustomer();
  await customerWrites(pipeline().app, business, customer, 'Hi, I have a question');
  await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
  return { customer, conversation: await conversationOf(business, customer) };
}

async function humanWrites(business: Business, conversationId: string, text: string): Promise<void> {
  const res = await api().post(`/v1/conversations/${conversationId}/messages`).set(business.tenant.auth).send({ text });
  expect(res.status).toBe(202);
}

/** The clock runs out: what resume_after_minutes would do after that many minutes of no human message. */
async function timeRunsOut(conversationId: string): Promise<void> {
  await db.query(`UPDATE conversations SET resumes_at = now() - interval '1 second' WHERE id = $1 AND resumes_at IS NOT NULL`, [conversationId]);
}

describe('handoff keywords', () => {
  it('when a customer sends a handoff keyword (any case, surrounding spaces), then the bot pauses by keyword and answers neither it nor what follows', async () => {
    const business = await createBusiness(pipeline().app, { agent: { handoff_keywords: ['human', 'Talk to a person'] } });
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);

    await customerWrites(pipeline().app, business, customer, '  talk to a PERSON \n');
    expect((await settled(business, customer, '  talk to a PERSON \n')).status).toBe('ignored');
    const paused = await getConversation(business, conversation.id);
    expect(paused).toMatchObject({ bot_paused: true, paused_by: 'keyword', resumes_at: null });

    await customerWrites(pipeline().app, business, customer, 'Hello? Anyone?');
    expect((await settled(business, customer, 'Hello? Anyone?')).status).toBe('ignored');
    expect(pipeline().graph.texts(customer)).toHaveLength(1);
    expect(pipeline().openai.completions()).toHaveLength(1);
  });

  it('when a message only contains a keyword among other words, then it is an ordinary message and is answered', async () => {
    const business = await createBusiness(pipeline().app, { agent: { handoff_keywords: ['human'] } });
    await pipeline().startWorker();
    const customer = newCustomer();
    await customerWrites(pipeline().app, business, customer, 'Are you a human?');
    await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
    expect((await conversationOf(business, customer))).toMatchObject({ bot_paused: false, paused_by: null });
  });

  it('when the API resumes a keyword handoff, then the bot answers the next message', async () => {
    const business = await createBusiness(pipeline().app, { agent: { handoff_keywords: ['agent'] } });
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'AGENT');
    await settled(business, customer, 'AGENT');

    const resumed = await api().post(`/v1/conversations/${conversation.id}/resume`).set(business.tenant.auth);
    expect(resumed.body).toMatchObject({ bot_paused: false, paused_by: null, resumes_at: null });
    await customerWrites(pipeline().app, business, customer, 'Back to the bot');
    await pipeline().graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length === 2);
    expect(pipeline().graph.texts(customer)[1]!.text).toContain('Back to the bot');
  });
});

describe('who paused, and the resume timer', () => {
  it('when a human writes and the agent has resume_after_minutes, then paused_by is human and resumes_at that long after; a second human message restarts the clock', async () => {
    const business = await createBusiness(pipeline().app, { agent: { resume_after_minutes: 30 } });
    await pipeline().startWorker();
    const { conversation } = await answeredCustomer(business);

    const before = Date.now();
    await humanWrites(business, conversation.id, 'A human here');
    const first = await getConversation(business, conversation.id);
    expect(first).toMatchObject({ bot_paused: true, paused_by: 'human' });
    const firstResume = new Date(first.resumes_at).getTime();
    expect(firstResume).toBeGreaterThanOrEqual(before + 30 * 60_000 - 1_000);
    expect(firstResume).toBeLessThanOrEqual(Date.now() + 30 * 60_000 + 1_000);

    // Time passes; the human writes again.
    await db.query(`UPDATE conversations SET resumes_at = resumes_at - interval '10 minutes' WHERE id = $1`, [conversation.id]);
    await humanWrites(business, conversation.id, 'Still on it');
    const second = await getConversation(business, conversation.id);
    expect(new Date(second.resumes_at).getTime()).toBeGreaterThan(firstResume - 10 * 60_000);
    expect(new Date(second.resumes_at).getTime()).toBeGreaterThanOrEqual(Date.now() + 30 * 60_000 - 5_000);
  });

  it('when no human wrote for resume_after_minutes, then a worker resumes the conversation and the bot answers the next message', async () => {
    const business = await createBusiness(pipeline().app, { agent: { resume_after_minutes: 5 } });
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);
    await humanWrites(business, conversation.id, 'Let me check that for you');
    await customerWrites(pipeline().app, business, customer, 'Thanks, waiting');
    expect((await settled(business, customer, 'Thanks, waiting')).status).toBe('ignored');

    await timeRunsOut(conversation.id);
    const resumed = await eventually(async () => {
      const row = await getConversation(business, conversation.id);
      return row.bot_paused ? null : row;
    }, 10_000, 'the timer resumed the conversation');
    expect(resumed).toMatchObject({ bot_paused: false, paused_by: null, resumes_at: null });

    await customerWrites(pipeline().app, business, customer, 'Anything new?');
    await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && (s.text ?? '').includes('Anything new?')));
  });

  it('when many workers run and many conversations are due at once, then every one is resumed', async () => {
    const business = await createBusiness(pipeline().app, { agent: { resume_after_minutes: 1 } });
    await Promise.all([pipeline().startWorker(), pipeline().startWorker(), pipeline().startWorker()]);
    const conversations: Row[] = [];
    for (let i = 0; i < 4; i++) {
      const { conversation } = await answeredCustomer(business);
      await humanWrites(business, conversation.id, 'A human here');
      conversations.push(conversation);
    }
    await Promise.all(conversations.map((c) => timeRunsOut(c.id)));
    await eventually(async () => {
      const { rows } = await db.query<Row>(`SELECT count(*)::int AS n FROM conversations WHERE id = ANY($1::uuid[]) AND bot_paused`, [conversations.map((c) => c.id)]);
      return rows[0].n === 0;
    }, 10_000, 'every due conversation resumed');
    const { rows } = await db.query<Row>(`SELECT paused_by, resumes_at FROM conversations WHERE id = ANY($1::uuid[])`, [conversations.map((c) => c.id)]);
    expect(rows).toEqual(conversations.map(() => ({ paused_by: null, resumes_at: null })));
  });

  it('when the agent has no resume_after_minutes, then a human pause has no resumes_at and stays', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { conversation } = await answeredCustomer(business);
    await humanWrites(business, conversation.id, 'Human takes over');
    expect(await getConversation(business, conversation.id)).toMatchObject({ bot_paused: true, paused_by: 'human', resumes_at: null });
  });

  it('when the API paused the conversation, then a human message keeps paused_by api with no timer, and the API resumes it', async () => {
    const business = await createBusiness(pipeline().app, { agent: { resume_after_minutes: 5 } });
    await pipeline().startWorker();
    const { conversation } = await answeredCustomer(business);

    const paused = await api().post(`/v1/conversations/${conversation.id}/pause`).set(business.tenant.auth);
    expect(paused.body).toMatchObject({ bot_paused: true, paused_by: 'api', resumes_at: null });
    await humanWrites(business, conversation.id, 'Writing while paused');
    expect(await getConversation(business, conversation.id)).toMatchObject({ bot_paused: true, paused_by: 'api', resumes_at: null });

    const resumed = await api().post(`/v1/conversations/${conversation.id}/resume`).set(business.tenant.auth);
    expect(resumed.body).toMatchObject({ bot_paused: false, paused_by: null, resumes_at: null });
  });

  it('when a human answers a keyword handoff, then the pause becomes the human’s and its clock starts', async () => {
    const business = await createBusiness(pipeline().app, { agent: { handoff_keywords: ['operator'], resume_after_minutes: 10 } });
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'Operator');
    await settled(business, customer, 'Operator');
    expect(await getConversation(business, conversation.id)).toMatchObject({ paused_by: 'keyword', resumes_at: null });

    await humanWrites(business, conversation.id, 'Hi, I am Sam from support');
    const after = await getConversation(business, conversation.id);
    expect(after).toMatchObject({ bot_paused: true, paused_by: 'human' });
    expect(after.resumes_at).not.toBeNull();
  });
});

describe('agent settings', () => {
  it('when an agent is created without them, then resume_after_minutes is null and handoff_keywords empty; both can be set and cleared', async () => {
    const business = await createBusiness(pipeline().app);
    const agent = await api().get(`/v1/agents/${business.agentId}`).set(business.tenant.auth);
    expect(agent.body).toMatchObject({ resume_after_minutes: null, handoff_keywords: [] });

    const set = await api().patch(`/v1/agents/${business.agentId}`).set(business.tenant.auth).send({ resume_after_minutes: 15, handoff_keywords: [' Human ', 'agent please'] });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ resume_after_minutes: 15, handoff_keywords: ['Human', 'agent please'] });

    const cleared = await api().patch(`/v1/agents/${business.agentId}`).set(business.tenant.auth).send({ resume_after_minutes: null, handoff_keywords: [] });
    expect(cleared.body).toMatchObject({ resume_after_minutes: null, handoff_keywords: [] });
  });

  it.each([
    ['resume_after_minutes of 0', { resume_after_minutes: 0 }],
    ['a fractional resume_after_minutes', { resume_after_minutes: 1.5 }],
    ['an empty keyword', { handoff_keywords: ['  '] }],
    ['a keyword listed twice', { handoff_keywords: ['Human', 'human'] }],
  ])('when an agent is given %s, then 400', async (_what, body) => {
    const business = await createBusiness(pipeline().app);
    const res = await api().patch(`/v1/agents/${business.agentId}`).set(business.tenant.auth).send(body);
    expect(res.status).toBe(400);
  });
});
