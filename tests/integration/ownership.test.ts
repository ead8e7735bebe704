/**
 * Guarantee 10, second half: a message belongs to the tenant whose number the webhook routed it
 * to when it accepted it (200), even when the account changes hands before a worker files it.
 * Through the real API, webhook and message worker, with the Graph and OpenAI stand-ins.
 */
import request from 'supertest';
import { standinAccessToken } from '../fixtures/standins/graphStandin';
import { createBusiness, customerWrites, eventually, messagesOf, pipelineForFile } from '../fixtures/pipeline';
import { db } from '../../src/utils/database';

const pipelineOf = pipelineForFile();

describe('ownership of accepted messages', () => {
  it("when tenant A deletes a number and tenant B registers it between acceptance and filing, then the message lands in A's records, never B's", async () => {
    const pipeline = pipelineOf();
    const { app, graph } = pipeline;
    const [a, b] = [await createBusiness(app), await createBusiness(app)];
    const account = a.whatsapp.externalId;
    const customer = `1555${String(process.pid).slice(-4)}001`;

    // Accepted while A has the number; no worker runs yet, so it waits in the inbox.
    const early = await customerWrites(app, a, customer, 'Is my order for A ready?');
    const { rows: waiting } = await db.query('SELECT user_id FROM inbox WHERE external_id = $1', [early]);
    expect(waiting).toEqual([{ user_id: a.tenant.userId }]);

    // The account changes hands through the API: A lets it go, B proves it holds it and links its agent.
    expect((await request(app).delete(`/v1/phone-numbers/${a.whatsapp.id}`).set(a.tenant.auth)).status).toBe(204);
    const bToken = standinAccessToken('whatsapp', account);
    const taken = await request(app).post('/v1/phone-numbers').set(b.tenant.auth).send({ channel: 'whatsapp', external_id: account, access_token: bToken });
    expect(taken.status).toBe(201);
    expect((await request(app).put(`/v1/phone-numbers/${taken.body.id}/agent`).set(b.tenant.auth).send({ agent_id: b.agentId })).status).toBe(200);

    // Written after the handover: B's, and answered by B. Its reply is the later thing that did happen.
    const later = await customerWrites(app, { ...b, whatsapp: { id: taken.body.id, externalId: account, token: bToken } }, customer, 'Hello B');
    await pipeline.startWorker();
    await graph.waitFor((sends) => sends.some((send) => send.kind === 'text' && send.ok && send.to === customer), 15_000);
    await eventually(async () => (await db.query('SELECT 1 FROM inbox WHERE external_id = ANY($1)', [[early, later]])).rowCount === 0, 15_000, 'inbox drained');

    const ofA = await messagesOf(a.tenant.userId, customer);
    const ofB = await messagesOf(b.tenant.userId, customer);
    expect(ofA.map((m) => [m.external_id, m.status])).toEqual([[early, 'ignored']]);
    expect(ofB.filter((m) => m.direction === 'inbound').map((m) => m.external_id)).toEqual([later]);
    // Filed under A's deleted number, in an archived conversation: kept, readable, never answered.
    const conversation = await request(app).get(`/v1/conversations/${ofA[0].conversation_id}`).set(a.tenant.auth);
    expect(conversation.body).toMatchObject({ phone_number_id: a.whatsapp.id, is_active: false });
    // One reply, to B's message, with B's token.
    expect(graph.texts(customer).map((send) => send.token)).toEqual([bToken]);
  });
});
