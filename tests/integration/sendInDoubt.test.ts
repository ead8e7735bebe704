/**
 * Sends in doubt (issue 19) on real Postgres: a part is marked `sending` before it goes to
 * Graph; an attempt that dies or gets no answer leaves it so, and whoever finds it waits
 * SEND_IN_DOUBT_GRACE_MS for Meta to settle it (a WhatsApp status naming the part in
 * biz_opaque_callback_data, or our Instagram echo) before sending it again. The SQL rules
 * (claim_outbound_part, settle_part_by_status, settle_part_by_echo) first, then the whole way
 * through the app and a worker, with the Graph stand-in playing Meta's webhooks back.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { db } from '../../src/utils/database';
import { claimOutboundPart, recordPartSent } from '../../src/models/ReplyTurn';
import { ingestBusinessEcho } from '../../src/models/BusinessEcho';
import { createGraphClient, partCallbackData } from '../../src/services/metaGraphService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, createTestPhoneNumber, insertTestMessages, type TestConversation } from '../fixtures/conversations';
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
  const phoneNumber = await createTestPhoneNumber(userId, { channel });
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

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', token, GRACE_MS)).toEqual({ outcome: 'claimed' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending', attempt_token: token, text: 'Our answer', channel: 'whatsapp', user_id: userId, external_id: null });

    const again = await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS);
    expect(again).toEqual({ outcome: 'in_doubt', waitMs: expect.any(Number) });
    expect((again as { waitMs: number }).waitMs).toBeGreaterThan(0);
    expect((again as { waitMs: number }).waitMs).toBeLessThanOrEqual(GRACE_MS);
    expect(await partOf(replyId)).toMatchObject({ attempt_token: token });
  });

  it('when the grace passed with nothing from Meta, then the next attempt takes it over once, to send it again', async () => {
    const { userId, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS);
    await sentAgo(replyId, GRACE_MS + 1);
    const taker = randomUUID();

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', taker, GRACE_MS)).toEqual({ outcome: 'resent_after_grace' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sending', attempt_token: taker, resends: 1 });
    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS)).toMatchObject({ outcome: 'in_doubt' });
  });

  it('when its worker recorded Graph\'s answer, then every later claim says settled with the id, and no doubt is reported', async () => {
    const { userId, replyId } = await queuedReply();
    await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS);
    await recordPartSent(userId, replyId, 0, 'wamid.ANSWERED');

    expect(await claimOutboundPart(userId, replyId, 0, 'Our answer', randomUUID(), GRACE_MS)).toEqual({ outcome: 'settled', externalId: 'wamid.ANSWERED' });
    expect(await partOf(replyId)).toMatchObject({ status: 'sent', settled_by: 'answer' });
  });

  it('when another tenant\'s message is named, then it raises and writes nothing', async () => {
    const { replyId } = await queuedReply();
    const { userId: stranger } = await createTestTenant();

    await expect(claimOutboundPart(stranger, replyId, 0, 'x', randomUUID(), GRACE_MS)).rejects.toThrow(/no outbound message/);
    expect(await partOf(replyId)).toBeUndefined();
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
