/**
 * Top-ups wake the waiting (CONTRACT guarantee 4 with issue 13): a top-up re-queues the tenant's
 * `insufficient_credits` messages still inside the stale window, so the real answer follows the
 * fallback that already went, and it ends extraction's "no credits" postponement.
 */
import request from 'supertest';
import { db } from '../../src/utils/database';
import { ADMIN_AUTH } from '../fixtures/tenants';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile } from '../fixtures/pipeline';

const pipeline = pipelineForFile();

afterEach(() => pipeline().reset());

describe('a top-up wakes the waiting', () => {
  it('when a tenant without credits tops up, then the message kept insufficient_credits is answered, after the fallback that already went and without a second one', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app, { credits: 0, agent: { fallback_message: 'We will get back to you soon.' } });
    await pipeline().startWorker();
    const customer = '15559990001';
    await customerWrites(app, business, customer, 'how much is the blue bag?');
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.to === customer && s.text === 'We will get back to you soon.'));
    const [waiting] = await messagesOf(business.tenant.userId, customer);
    expect(waiting).toMatchObject({ status: 'insufficient_credits' });
    // The extraction worker had postponed the conversation for lack of credits.
    await db.query(`UPDATE conversations SET extraction_retry_at = now() + interval '10 minutes' WHERE id = $1`, [waiting.conversation_id]);

    const topUp = await request(app).post(`/v1/users/${business.tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount: 100_000 });
    expect(topUp.status).toBe(201);

    await graph.waitFor((sends) => sends.filter((s) => s.ok && s.to === customer && s.kind === 'text').length >= 2, 15_000);
    expect(graph.texts(customer).filter((s) => s.ok).map((s) => s.text)).toEqual(['We will get back to you soon.', 'Thanks! You said: "how much is the blue bag?"']);
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r.every((m) => m.status !== 'queued') ? r : null;
    });
    expect(rows.map((m) => [m.author, m.status])).toEqual([['customer', 'answered'], ['agent', 'sent'], ['agent', 'sent']]);
    const { rows: [conversation] } = await db.query('SELECT extraction_retry_at FROM conversations WHERE id = $1', [waiting.conversation_id]);
    expect(conversation!.extraction_retry_at).toBeNull();
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.balance).toBe(ledger.sum);
  });

  it('when the top-up still does not cover a reply, then the message waits again and the fallback is not sent twice', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app, { credits: 0, agent: { fallback_message: 'Back soon.' } });
    await pipeline().startWorker();
    const customer = '15559990002';
    await customerWrites(app, business, customer, 'hello?');
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.to === customer));

    expect((await request(app).post(`/v1/users/${business.tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount: 1 })).status).toBe(201);
    // Re-queued (pending once the top-up answered), then kept insufficient_credits again by the
    // turn that found 1 credit too few.
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[0]?.status === 'insufficient_credits');
    // The signal that the worker went round: a second customer message gets its own (only) fallback.
    await customerWrites(app, business, customer, 'anyone?');
    await graph.waitFor((sends) => sends.filter((s) => s.ok && s.to === customer).length >= 2);
    expect(graph.texts(customer).filter((s) => s.ok).map((s) => s.text)).toEqual(['Back soon.', 'Back soon.']);
    const fallbacks = (await messagesOf(business.tenant.userId, customer)).filter((m) => m.author === 'agent');
    expect(fallbacks.map((m) => m.reply_to_message_id)).toHaveLength(2);
    expect(new Set(fallbacks.map((m) => m.reply_to_message_id)).size).toBe(2);
  });
});
