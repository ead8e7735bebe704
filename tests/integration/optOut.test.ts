/**
 * Opt-out and opt-in (issue 16, item 6; CONTRACT §3): a customer message equal to one of the
 * agent's opt_out_keywords opts the customer out on that number (no bot reply, no human or
 * template send: 409 opted_out, one free confirmation); an opt_in_keywords message reverses it;
 * it holds per customer per number, across a relink's new conversation.
 * Through the real webhook, API and message worker.
 */
import request from 'supertest';
import { db } from '../../src/utils/database';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile, type Business, type Row } from '../fixtures/pipeline';

const pipeline = pipelineForFile();
let customerSeq = 0;
const newCustomer = () => `1558${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

afterEach(() => pipeline().reset());

const api = () => request(pipeline().app);

async function conversationsOf(business: Business, customer: string): Promise<Row[]> {
  const res = await api().get('/v1/conversations').set(business.tenant.auth);
  return res.body.data.filter((c: Row) => c.customer.external_id === customer);
}

/** Waits until the customer's message with this text is filed and no longer pending, and returns it. */
async function settled(business: Business, customer: string, text: string): Promise<Row> {
  return eventually(async () => {
    const row = (await messagesOf(business.tenant.userId, customer)).filter((m: Row) => m.text === text).at(-1);
    return row && row.status !== 'pending' ? row : null;
  }, 15_000, `"${text}" settled`);
}

const confirmations = async (business: Business, customer: string) =>
  (await messagesOf(business.tenant.userId, customer)).filter((m: Row) => m.direction === 'outbound' && m.payload?.opt_out_confirmation === true);

/** A customer who wrote and got the bot's reply. */
async function answeredCustomer(business: Business): Promise<{ customer: string; conversation: Row }> {
  const customer = newCustomer();
  await customerWrites(pipeline().app, business, customer, 'Hi there');
  await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));
  return { customer, conversation: (await conversationsOf(business, customer))[0] };
}

describe('opt-out', () => {
  it('when a customer sends STOP (any case, spaces), then they are opted out: one free confirmation, no bot reply, and human and template sends are 409 opted_out', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);
    const creditsBefore = (await ledgerOf(business.tenant.userId)).balance;

    await customerWrites(pipeline().app, business, customer, '  stop ');
    expect((await settled(business, customer, '  stop ')).status).toBe('ignored');
    await pipeline().graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length === 2);
    expect(pipeline().graph.texts(customer)[1]!.text).toBe('You are unsubscribed and will get no more messages from us here. Reply START to subscribe again.');
    const [confirmation] = await eventually(async () => {
      const rows = await confirmations(business, customer);
      return rows.length === 1 && rows[0].status !== 'queued' ? rows : null;
    });
    expect(confirmation).toMatchObject({ author: 'agent', status: expect.stringMatching(/^(sent|delivered)$/) });
    // Free: no ledger entry names it, and the balance did not move.
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.entries.some((e: Row) => e.message_id === confirmation.id)).toBe(false);
    expect(ledger.balance).toBe(creditsBefore);

    const shown = await api().get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth);
    expect(shown.body.opted_out).toBe(true);

    await customerWrites(pipeline().app, business, customer, 'What about my order?');
    expect((await settled(business, customer, 'What about my order?')).status).toBe('ignored');

    const human = await api().post(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth).send({ text: 'Hello from a human' });
    expect(human.status).toBe(409);
    expect(human.body.error.code).toBe('opted_out');
    const template = await api().post(`/v1/conversations/${conversation.id}/template`).set(business.tenant.auth).send({ name: 'order_update', language: 'en' });
    expect(template.status).toBe(409);
    expect(template.body.error.code).toBe('opted_out');

    expect(pipeline().graph.texts(customer)).toHaveLength(2);
    expect(pipeline().graph.templates(customer)).toHaveLength(0);
    expect(pipeline().openai.completions()).toHaveLength(1);
  });

  it('when an opted-out customer sends STOP again, then no second confirmation is queued', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { customer } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'STOP');
    await settled(business, customer, 'STOP');
    await customerWrites(pipeline().app, business, customer, 'UNSUBSCRIBE');
    // Filing queues a confirmation in the transaction that files the message: settled means decided.
    expect((await settled(business, customer, 'UNSUBSCRIBE')).status).toBe('ignored');
    expect(await confirmations(business, customer)).toHaveLength(1);
  });

  it('when the agent has its own opt-out words and message, then those are used', async () => {
    const business = await createBusiness(pipeline().app, { agent: { opt_out_keywords: ['basta'], opt_in_keywords: ['volver'], opt_out_message: 'Listo, no te escribimos más.' } });
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);

    await customerWrites(pipeline().app, business, customer, 'STOP');
    // Not one of this agent's words: an ordinary message, answered.
    await pipeline().graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length === 2);
    expect((await settled(business, customer, 'STOP')).status).toBe('answered');

    await customerWrites(pipeline().app, business, customer, 'Basta');
    await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && s.text === 'Listo, no te escribimos más.'));
    expect((await api().get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth)).body.opted_out).toBe(true);
  });

  it('when an opted-out customer sends START, then they are opted in and the bot answers again', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { customer, conversation } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'STOP');
    await settled(business, customer, 'STOP');

    await customerWrites(pipeline().app, business, customer, 'Start');
    expect((await settled(business, customer, 'Start')).status).toBe('answered');
    await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && (s.text ?? '').includes('Start')));
    const shown = await api().get(`/v1/conversations/${conversation.id}`).set(business.tenant.auth);
    expect(shown.body.opted_out).toBe(false);
    const human = await api().post(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth).send({ text: 'Welcome back' });
    expect(human.status).toBe(202);
  });

  it("when the number is relinked to another agent, then the customer's new conversation still knows they opted out", async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { customer } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'STOP');
    await settled(business, customer, 'STOP');

    const agent = await api().post('/v1/agents').set(business.tenant.auth).send({ name: 'New agent', system_prompt: 'Be nice.' });
    const relink = await api().put(`/v1/phone-numbers/${business.whatsapp.id}/agent`).set(business.tenant.auth).send({ agent_id: agent.body.id });
    expect(relink.status).toBe(200);

    await customerWrites(pipeline().app, business, customer, 'Hello again');
    expect((await settled(business, customer, 'Hello again')).status).toBe('ignored');
    const [latest] = await conversationsOf(business, customer);
    expect(latest).toMatchObject({ agent_id: agent.body.id, is_active: true, opted_out: true });
    const human = await api().post(`/v1/conversations/${latest.id}/messages`).set(business.tenant.auth).send({ text: 'hi' });
    expect(human.body.error.code).toBe('opted_out');
  });

  it('when a customer opts out, then it is recorded for that number and customer only', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const { customer } = await answeredCustomer(business);
    await customerWrites(pipeline().app, business, customer, 'STOP');
    await settled(business, customer, 'STOP');
    const { rows } = await db.query<Row>(`SELECT phone_number_id FROM customer_opt_outs WHERE user_id = $1 AND customer_external_id = $2`, [business.tenant.userId, customer]);
    expect(rows).toEqual([{ phone_number_id: business.whatsapp.id }]);
  });

  it('when the number has no agent, then the default STOP still opts the customer out and the confirmation still goes', async () => {
    const business = await createBusiness(pipeline().app);
    await pipeline().startWorker();
    const unlinked = await api().delete(`/v1/phone-numbers/${business.whatsapp.id}/agent`).set(business.tenant.auth);
    expect(unlinked.status).toBe(200);
    const customer = newCustomer();
    await customerWrites(pipeline().app, business, customer, 'stop');
    // Nothing nudges a number without an agent: the sweeper finds the queued confirmation.
    await pipeline().graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer), 15_000);
    expect(pipeline().graph.texts(customer)[0]!.text).toContain('unsubscribed');
    const [conversation] = await conversationsOf(business, customer);
    expect(conversation.opted_out).toBe(true);
  });

  it('when an agent is created, then it has the default opt-out settings, which can be changed', async () => {
    const business = await createBusiness(pipeline().app);
    const agent = await api().get(`/v1/agents/${business.agentId}`).set(business.tenant.auth);
    expect(agent.body).toMatchObject({ opt_out_keywords: ['STOP', 'UNSUBSCRIBE'], opt_in_keywords: ['START'], opt_out_message: null });
    const changed = await api().patch(`/v1/agents/${business.agentId}`).set(business.tenant.auth).send({ opt_out_keywords: ['ALTO'], opt_out_message: 'Adiós' });
    expect(changed.body).toMatchObject({ opt_out_keywords: ['ALTO'], opt_in_keywords: ['START'], opt_out_message: 'Adiós' });
  });
});
