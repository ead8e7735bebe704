/**
 * Guarantee 13: a bot reply recorded while Graph was down is re-checked by the statement that
 * claims it for sending. A human's message, a pause, or an unlink made meanwhile cancels it
 * (`cancelled`, refunded by a `refund` entry naming it); humans' messages always go.
 */
import request from 'supertest';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile, type Business, type Row } from '../fixtures/pipeline';

const pipeline = pipelineForFile();
let customerSeq = 0;
const newCustomer = () => `1556${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

afterEach(() => pipeline().reset());

/** A bot reply recorded and charged while Graph refuses every text send to the business's number. */
async function replyStuckBehindGraph(business: Business, customer: string): Promise<{ conversationId: string; reply: Row }> {
  const { app, graph } = pipeline();
  graph.setFault({ code: 2, kind: 'text', accountId: business.whatsapp.externalId });
  await pipeline().startWorker();
  await customerWrites(app, business, customer, 'hello?');
  const reply = await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.author === 'agent' && m.status === 'queued'));
  await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && !s.ok));
  return { conversationId: reply.conversation_id, reply };
}

async function expectCancelledAndRefunded(business: Business, reply: Row, reason: string): Promise<void> {
  const ledger = await ledgerOf(business.tenant.userId);
  const charge = ledger.entries.find((e) => e.reason === 'reply' && e.message_id === reply.id);
  const refund = ledger.entries.filter((e) => e.reason === 'refund');
  expect(charge).toBeDefined();
  expect(refund).toHaveLength(1);
  expect(refund[0]).toMatchObject({ message_id: reply.id, conversation_id: reply.conversation_id });
  expect(Number(refund[0].amount)).toBe(-Number(charge.amount));
  expect(ledger.balance).toBe(ledger.sum);
  const api = await request(pipeline().app).get(`/v1/conversations/${reply.conversation_id}/messages`).set(business.tenant.auth);
  const shown = api.body.data.find((m: Row) => m.id === reply.id);
  expect(shown).toMatchObject({ status: 'cancelled' });
  expect(shown.error).toMatchObject({ code: reason });
}

describe('takeover is final (guarantee 13)', () => {
  it('when a human writes while the bot reply waits for Graph, then only the human message goes out and the reply is cancelled and refunded', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const { conversationId, reply } = await replyStuckBehindGraph(business, customer);

    const human = await request(app).post(`/v1/conversations/${conversationId}/messages`).set(business.tenant.auth).send({ text: 'Ana here, I will help you.' });
    expect(human.status).toBe(202);
    graph.clearFaults();
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.text === 'Ana here, I will help you.'), 20_000);
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.id === reply.id)?.status === 'cancelled');
    expect(graph.texts(customer).filter((s) => s.ok).map((s) => s.text)).toEqual(['Ana here, I will help you.']);
    await expectCancelledAndRefunded(business, reply, 'bot_paused');
  });

  it('when the conversation is paused while the bot reply waits, then the reply is cancelled and refunded, and a later human message goes', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const { conversationId, reply } = await replyStuckBehindGraph(business, customer);

    expect((await request(app).post(`/v1/conversations/${conversationId}/pause`).set(business.tenant.auth)).status).toBe(200);
    graph.clearFaults();
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.id === reply.id)?.status === 'cancelled', 20_000);
    // The signal that nothing else is coming: a human's message sent after it.
    await request(app).post(`/v1/conversations/${conversationId}/messages`).set(business.tenant.auth).send({ text: 'Ana here.' });
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.text === 'Ana here.'), 20_000);
    expect(graph.texts(customer).filter((s) => s.ok).map((s) => s.text)).toEqual(['Ana here.']);
    await expectCancelledAndRefunded(business, reply, 'bot_paused');
  });

  it('when the number is unlinked while the bot reply waits, then the reply is cancelled and refunded', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const { reply } = await replyStuckBehindGraph(business, customer);

    expect((await request(app).delete(`/v1/phone-numbers/${business.whatsapp.id}/agent`).set(business.tenant.auth)).status).toBeLessThan(300);
    graph.clearFaults();
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.id === reply.id)?.status === 'cancelled', 20_000);
    expect(graph.texts(customer).filter((s) => s.ok)).toEqual([]);
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.entries.filter((e) => e.reason === 'refund').map((e) => e.message_id)).toEqual([reply.id]);
    expect(ledger.balance).toBe(ledger.sum);
  });
});
