/**
 * Sends in doubt (issue 19) on real Postgres: a part is marked `sending` before it goes to
 * Graph; an attempt that dies or gets no answer leaves it so, and whoever finds it waits
 * SEND_IN_DOUBT_GRACE_MS for Meta to settle it (a WhatsApp status naming the part in
 * biz_opaque_callback_data, or our Instagram echo) before sending it again. The SQL rules
 * (claim_outbound_part, settle_part_by_status, record_part_sent and parked echoes) first, then the whole way
 * through the app and a worker, with the Graph stand-in playing Meta's webhooks back.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { db, withTransaction } from '../../src/utils/database';
import { claimOutboundPart, recordPartSent, releasePart } from '../../src/models/ReplyTurn';
import { ingestBusinessEcho } from '../../src/models/BusinessEcho';
import { createGraphClient, partCallbackData } from '../../src/services/metaGraphService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestAgent, createTestConversation, createTestPhoneNumber, insertTestMessages, type TestConversation } from '../fixtures/conversations';
import { whatsappStatusBody } from '../fixtures/meta';
import {
  createBusiness,
  customerWrites,
  customerWritesOnInstagram,
  eventually,
  messagesOf,
  postWebhook,
  startPipeline,
  type Pipeline,
} from '../fixtures/pipeline';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

/** Short, so the tests that let it pass stay quick. */
const GRACE_MS = 1_500;

let pipeline: Pipeline;
let server: http.Server;

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
  // Meta's webhooks need the app on a real port: the stand-in posts them as Meta would.
  server = http.createServer(pipeline.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterEach(async () => {
  await pipeline.stopWorkers();
  pipeline.graph.reset();
  pipeline.graph.setWebhooks(null);
});
afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    // The stand-in's webhook posts keep idle connections open.
    server.closeAllConnections();
  });
  await pipeline.close();
  await teardownTestDatabase();
});

async function queuedReply(channel: 'whatsapp' | 'instagram' = 'whatsapp', text = 'Our answer') {
  const { userId } = await createTestTenant();
  // Linked to an agent: a bot reply is claimed only while the bot may still speak (guarantee 13).
  const agent = await createTestAgent(userId);
  const phoneNumber = await createTestPhoneNumber(userId, { channel, agentId: agent.id });
  const conversation = await createTestConversation(userId, { phoneNumber });
  const [reply] = await insertTestMessages(userId, conversation.id, [{ direction: 'outbound', author: 'agent', status: 'queued', text }]);
  return { userId, phoneNumber, conversation, replyId: reply!.id };
}

const partOf = async (messageId: string, partNo = 0): Promise<Row> =>
  (await db.query<Row>('SELECT * FROM outbound_parts WHERE message_id = $1 AND part_no = $2', [messageId, partNo])).rows[0];

/** Moves a part's send back in time, as if its attempt had been made `ms` ago. */
const sentAgo = (messageId: string, ms: number) =>
  db.query(`UPDATE outbound_parts SET sending_since = now() - make_interval(secs => $2::double precision / 1000) WHERE message_id = $1`, [messageId, ms]);

describe('claim_outbound_part', () => {
  it('when a part is claimed, then it is marked sending with the attempt\'s token; a second attempt finds it in doubt with the time left', async () => {
    const { userId, replyId } = await queuedReply();
    const token = randomUUID();

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', token, GRACE_MS, 86_400)).toEqual({ outcome: 'claimed' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending', attempt_token: token, text: 'Our answer', channel: 'whatsapp', user_id: userId, external_id: null });

    const again = await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    expect(again).toEqual({ outcome: 'in_doubt', waitMs: expect.any(Number) });
    expect((again as { waitMs: number }).waitMs).toBeGreaterThan(0);
    expect((again as { waitMs: number }).waitMs).toBeLessThanOrEqual(GRACE_MS);
    expect(await partOf(replyId)).toMatchObject({ attempt_token: token });
  });

  it('when the grace passed with nothing from Meta, then the next attempt takes it over once, to send it again', async () => {
    const { userId, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    await sentAgo(replyId, GRACE_MS + 1);
    const taker = randomUUID();

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', taker, GRACE_MS, 86_400)).toEqual({ outcome: 'resent_after_grace' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending', attempt_token: taker, resends: 1 });
    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400)).toMatchObject({ outcome: 'in_doubt' });
  });

  it('when its worker recorded Graph\'s answer, then every later claim says settled with the id, and no doubt is reported', async () => {
    const { userId, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    await recordPartSent(userId, replyId, 0, 'wamid.ANSWERED');

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400)).toEqual({ outcome: 'settled', externalId: 'wamid.ANSWERED' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sent', settled_by: 'answer' });
  });

  it('when another tenant\'s message is named, then it raises and writes nothing', async () => {
    const { replyId } = await queuedReply();
    const { userId: stranger } = await createTestTenant();

    await expect(claimOutboundPart(stranger, replyId, 0, 'x', randomUUID(), GRACE_MS, 86_400)).rejects.toThrow(/no outbound message/);
    expect(await partOf(replyId)).toBeUndefined();
  });
});

describe('a WhatsApp status naming a part (settle_part_by_status, through the webhook)', () => {
  const statusFor = (accountId: string, wamid: string, status: 'sent' | 'delivered' | 'read' | 'failed', callback: string, errorCode?: number) =>
    postWebhook(pipeline.app, whatsappStatusBody({ phoneNumberId: accountId, wamid, status, bizOpaqueCallbackData: callback, errorCode }));

  it('when the part is in doubt, then the status settles it with Meta\'s id and status, and the next claim reports it once', async () => {
    const { userId, phoneNumber, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);

    await statusFor(phoneNumber.externalId, 'wamid.FROM_META', 'sent', partCallbackData(replyId, 0));
    await statusFor(phoneNumber.externalId, 'wamid.FROM_META', 'delivered', partCallbackData(replyId, 0));

    expect(await partOf(replyId)).toMatchObject({ status: 'sent', external_id: 'wamid.FROM_META', settled_by: 'status', meta_status: 'delivered' });
    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400)).toEqual({ outcome: 'settled_by_status', externalId: 'wamid.FROM_META' });
    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400)).toEqual({ outcome: 'settled', externalId: 'wamid.FROM_META' });
  });

  it('when Meta failed the part, then it is settled as failed with Meta\'s error', async () => {
    const { userId, phoneNumber, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);

    await statusFor(phoneNumber.externalId, 'wamid.FAILED', 'failed', partCallbackData(replyId, 0), 131026);

    expect(await partOf(replyId)).toMatchObject({ status: 'sent', external_id: 'wamid.FAILED', meta_status: 'failed', error_code: '131026' });
  });

  it('when the status comes for another number than the message\'s, then nothing is settled', async () => {
    const { userId, replyId } = await queuedReply();
    const { userId: other } = await createTestTenant();
    const otherNumber = await createTestPhoneNumber(other);
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);

    await statusFor(otherNumber.externalId, 'wamid.FORGED', 'delivered', partCallbackData(replyId, 0));

    expect(await partOf(replyId)).toMatchObject({ status: 'sending', external_id: null, settled_by: null });
  });

  it('when a late status names a part since sent again under another id, then nothing changes', async () => {
    const { userId, phoneNumber, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    await recordPartSent(userId, replyId, 0, 'wamid.SECOND');

    await statusFor(phoneNumber.externalId, 'wamid.FIRST', 'delivered', partCallbackData(replyId, 0));

    expect(await partOf(replyId)).toMatchObject({ external_id: 'wamid.SECOND', settled_by: 'answer', meta_status: null });
  });
});

describe('an Instagram echo (by the id Graph returned; parked while a part of ours is in flight)', () => {
  const echo = (conversation: TestConversation, accountId: string, text: string) => ({
    channel: 'instagram',
    account_id: accountId,
    customer_id: conversation.customerExternalId,
    external_id: `mid.${randomUUID()}`,
    type: 'text',
    text,
    payload: null,
    timestamp: new Date().toISOString(),
  });
  const humansIn = async (conversationId: string) =>
    (await db.query<Row>(`SELECT text FROM messages WHERE conversation_id = $1 AND author = 'human'`, [conversationId])).rows.map((row: Row) => row.text);
  const paused = async (conversationId: string) => (await db.query<Row>('SELECT bot_paused FROM conversations WHERE id = $1', [conversationId])).rows[0].bot_paused;

  it('when it comes before the sender stored Graph\'s id, then it is parked, and the sender storing that id makes it ours: no human message, the bot stays on', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram');
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    const event = echo(conversation, phoneNumber.externalId, 'Our answer');

    expect(await ingestBusinessEcho(event, GRACE_MS)).toMatchObject({ outcome: 'parked' });
    await recordPartSent(userId, replyId, 0, event.external_id);
    expect(await humansIn(conversation.id)).toEqual([]);
    expect(await paused(conversation.id)).toBe(false);
    // The same echo again is known by its id now.
    expect(await ingestBusinessEcho(event, GRACE_MS)).toMatchObject({ outcome: 'own_echo', messageId: replyId });
  });

  it('when a human\'s echo with our reply\'s very text comes while our part is in flight, then Graph\'s id tells them apart: it is a human\'s message and the bot pauses', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram', 'Hi');
    await claimOutboundPart(userId, replyId, 0, 'Hi', randomUUID(), GRACE_MS, 86_400);

    expect(await ingestBusinessEcho(echo(conversation, phoneNumber.externalId, 'Hi'), GRACE_MS)).toMatchObject({ outcome: 'parked' });
    await recordPartSent(userId, replyId, 0, `mid.${randomUUID()}`);
    expect(await humansIn(conversation.id)).toEqual(['Hi']);
    expect(await paused(conversation.id)).toBe(true);
  });

  it('when the sending worker stores the same id while the echo is being matched, then the echo is still ours', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram');
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    const event = echo(conversation, phoneNumber.externalId, 'Our answer');

    let echoed: Promise<unknown> = Promise.resolve();
    await withTransaction(async (tx) => {
      // Graph answered the worker: it stores the id, and holds the conversation's row until it commits.
      await recordPartSent(userId, replyId, 0, event.external_id, null, tx);
      echoed = ingestBusinessEcho(event, GRACE_MS);
      await eventually(async () => (await db.query<Row>(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows.length > 0, 5_000, 'the echo waiting on the conversation');
    });

    expect(await echoed).toMatchObject({ outcome: 'own_echo', messageId: replyId });
    expect(await humansIn(conversation.id)).toEqual([]);
  });

  it('when it has the text of a queued reply never marked sending, then it is a human\'s message: unsent replies are not matched by text', async () => {
    const { phoneNumber, conversation } = await queuedReply('instagram');

    expect(await ingestBusinessEcho(echo(conversation, phoneNumber.externalId, 'Our answer'), GRACE_MS)).toMatchObject({ outcome: 'recorded' });
    expect(await humansIn(conversation.id)).toEqual(['Our answer']);
  });

  it('when the part in doubt was sent longer ago than the grace, then the echo is a human\'s message and the part stays in doubt', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram');
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    await sentAgo(replyId, GRACE_MS + 1);

    expect(await ingestBusinessEcho(echo(conversation, phoneNumber.externalId, 'Our answer'), GRACE_MS)).toMatchObject({ outcome: 'recorded' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending' });
  });

  it('when the sender died and an echo with the part\'s text was parked, then the next claim settles the part by it; one with other text becomes a human\'s', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram');
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    const ours = echo(conversation, phoneNumber.externalId, 'Our answer');
    expect(await ingestBusinessEcho(echo(conversation, phoneNumber.externalId, 'Something else'), GRACE_MS)).toMatchObject({ outcome: 'parked' });
    expect(await ingestBusinessEcho(ours, GRACE_MS)).toMatchObject({ outcome: 'parked' });

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400)).toEqual({ outcome: 'settled_by_echo', externalId: ours.external_id });
    expect(await humansIn(conversation.id)).toEqual(['Something else']);
  });

  it('when Graph refuses the part in flight, then an echo parked meanwhile was not it: a human\'s message', async () => {
    const { userId, phoneNumber, conversation, replyId } = await queuedReply('instagram');
    const token = randomUUID();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', token, GRACE_MS, 86_400);
    expect(await ingestBusinessEcho(echo(conversation, phoneNumber.externalId, 'Our answer'), GRACE_MS)).toMatchObject({ outcome: 'parked' });

    await releasePart(userId, replyId, 0, token);
    expect(await humansIn(conversation.id)).toEqual(['Our answer']);
  });

  it('when the part is in flight in another conversation, then the echo is a human\'s message at once', async () => {
    const { userId, phoneNumber, replyId } = await queuedReply('instagram');
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    const elsewhere = await createTestConversation(userId, { phoneNumber });

    expect(await ingestBusinessEcho(echo(elsewhere, phoneNumber.externalId, 'Our answer'), GRACE_MS)).toMatchObject({ outcome: 'recorded' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending' });
  });
});

describe('a worker whose send got no answer, with Meta playing its webhooks back', () => {
  /**
   * Graph takes each send but answers after the client gave up: the in-process equivalent of a
   * worker killed between Graph's acceptance and its record (the kill itself is in
   * killDuringSend.test.ts, with real processes).
   */
  async function acceptedButUnanswered(webhooks: { drop?: boolean } = {}) {
    const { graph } = pipeline;
    graph.setWebhooks({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/meta`, delayMs: 20, drop: () => webhooks.drop ?? false });
    graph.setAnswerDelay(700);
    await pipeline.startWorker({
      sendInDoubtGraceMs: GRACE_MS,
      graph: createGraphClient({ whatsappBaseUrl: graph.url, instagramBaseUrl: graph.url, timeoutMs: 300 }),
    });
    // Once the first copy is in, answers come at once: only the doubt is left to settle.
    const off = graph.onAccepted((send) => {
      if (send.kind !== 'text') return;
      off();
      graph.setAnswerDelay(0);
    });
  }

  async function inDoubtMetric(outcome: string): Promise<number> {
    const res = await request(pipeline.app).get('/metrics');
    const line = res.text.split('\n').find((l) => l.startsWith(`send_in_doubt_resolutions_total{outcome="${outcome}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  it('when Meta\'s status names the part, then it is not sent again: one copy, Meta\'s id and status stored, counted in /metrics as settled_by_status', async () => {
    const business = await createBusiness(pipeline.app);
    const before = await inDoubtMetric('settled_by_status');
    await acceptedButUnanswered();
    const customer = '15557600001';

    await customerWrites(pipeline.app, business, customer, 'are you open today?');
    const reply = await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.direction === 'outbound' && m.status !== 'queued'), 15_000, 'the reply settled');

    const copies = pipeline.graph.texts(customer);
    expect(copies).toHaveLength(1);
    expect(copies[0]!.bizOpaqueCallbackData).toBe(partCallbackData(reply.id, 0));
    expect(reply).toMatchObject({ external_id: copies[0]!.externalId, status: expect.stringMatching(/^(sent|delivered)$/) });
    expect(await inDoubtMetric('settled_by_status')).toBe(before + 1);
    // Meta's `delivered` that settled it while it waited is not lost: the message gets it.
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).find((m) => m.id === reply.id)?.status === 'delivered', 5_000, 'delivered');
  });

  it('when our Instagram echo comes back, then it is not sent again, the bot stays on, and it counts as settled_by_echo', async () => {
    const business = await createBusiness(pipeline.app);
    const before = await inDoubtMetric('settled_by_echo');
    await acceptedButUnanswered();
    const igsid = '6021760000002';

    await customerWritesOnInstagram(pipeline.app, business, igsid, 'do you ship abroad?');
    await eventually(async () => (await messagesOf(business.tenant.userId, igsid)).some((m) => m.direction === 'outbound' && m.status === 'sent'), 15_000, 'the reply settled');

    expect(pipeline.graph.texts(igsid)).toHaveLength(1);
    const rows = await messagesOf(business.tenant.userId, igsid);
    expect(rows.map((m) => [m.direction, m.author, m.status])).toEqual([['inbound', 'customer', 'answered'], ['outbound', 'agent', 'sent']]);
    expect(rows[1].external_id).toBe(pipeline.graph.texts(igsid)[0]!.externalId);
    expect(await inDoubtMetric('settled_by_echo')).toBe(before + 1);
  });

  it('when nothing comes from Meta, then the part is sent again, but only once the grace has passed, and it counts as resent_after_grace', async () => {
    const business = await createBusiness(pipeline.app);
    const before = await inDoubtMetric('resent_after_grace');
    await acceptedButUnanswered({ drop: true });
    const customer = '15557600003';

    await customerWrites(pipeline.app, business, customer, 'anyone there?');
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).some((m) => m.direction === 'outbound' && m.status === 'sent'), 15_000, 'the reply sent');

    // The one duplicate left by design: Graph took the first copy, and Meta never said so.
    const copies = pipeline.graph.texts(customer);
    expect(copies).toHaveLength(2);
    expect(copies[1]!.receivedAt - copies[0]!.receivedAt).toBeGreaterThanOrEqual(GRACE_MS);
    expect(copies.map((send) => send.bizOpaqueCallbackData)).toEqual([copies[0]!.bizOpaqueCallbackData, copies[0]!.bizOpaqueCallbackData]);
    expect((await messagesOf(business.tenant.userId, customer))[1].external_id).toBe(copies[1]!.externalId);
    expect(await inDoubtMetric('resent_after_grace')).toBe(before + 1);
  });
});
