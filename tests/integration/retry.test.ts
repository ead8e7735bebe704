/**
 * POST /v1/conversations/:id/retry (CONTRACT §3): failed messages of a conversation are tried
 * again, inbound back to `pending`, outbound back to `queued`; `409` when none failed.
 */
import request from 'supertest';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile } from '../fixtures/pipeline';

const pipeline = pipelineForFile();

afterEach(() => pipeline().reset());

describe('POST /v1/conversations/:id/retry', () => {
  it('when a customer message failed and the cause is gone, then retry puts it back to pending and it is answered once', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    openai.setFault({ status: 400 });
    await pipeline().startWorker();
    const customer = '15553330001';
    await customerWrites(app, business, customer, 'will you answer me?');
    const [failed] = await eventually(async () => {
      const rows = await messagesOf(business.tenant.userId, customer);
      return rows[0]?.status === 'failed' ? rows : null;
    });
    openai.setFault(null);

    const res = await request(app).post(`/v1/conversations/${failed.conversation_id}/retry`).set(business.tenant.auth);
    expect(res.status).toBe(202);
    expect(res.body.data).toEqual([expect.objectContaining({ id: failed.id, direction: 'inbound', status: 'pending' })]);
    expect(res.body.data[0].error).toBeUndefined();

    await graph.waitFor((sends) => sends.some((s) => s.ok && s.to === customer && s.kind === 'text'));
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r[1]?.status === 'sent' ? r : null;
    });
    expect(rows.map((m) => [m.direction, m.status])).toEqual([['inbound', 'answered'], ['outbound', 'sent']]);
    expect(graph.texts(customer).filter((s) => s.ok)).toHaveLength(1);
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply')).toHaveLength(1);
  });

  it('when a reply failed at Graph, then retry queues it again and it is sent, without a second charge', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    graph.setFault({ code: 131047, kind: 'text' });
    await pipeline().startWorker();
    const customer = '15553330002';
    await customerWrites(app, business, customer, 'hello again');
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r[1]?.status === 'failed' ? r : null;
    });
    graph.clearFaults();

    const res = await request(app).post(`/v1/conversations/${rows[0].conversation_id}/retry`).set(business.tenant.auth);
    expect(res.status).toBe(202);
    expect(res.body.data).toEqual([expect.objectContaining({ id: rows[1].id, direction: 'outbound', status: 'queued' })]);

    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[1]?.status === 'sent');
    expect(graph.texts(customer).filter((s) => s.ok).map((s) => s.text)).toEqual(['Thanks! You said: "hello again"']);
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply')).toHaveLength(1);
  });

  it('when nothing failed, then 409; another tenant\'s conversation is 404', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    const other = await createBusiness(app);
    await pipeline().startWorker();
    const customer = '15553330003';
    await customerWrites(app, business, customer, 'all good');
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.to === customer && s.kind === 'text'));
    const [inbound] = await messagesOf(business.tenant.userId, customer);

    const none = await request(app).post(`/v1/conversations/${inbound.conversation_id}/retry`).set(business.tenant.auth);
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe('conflict');
    const stranger = await request(app).post(`/v1/conversations/${inbound.conversation_id}/retry`).set(other.tenant.auth);
    expect(stranger.status).toBe(404);
  });
});
