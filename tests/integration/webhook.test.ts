import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { config } from '../../src/config';
import { claimOutboundPart } from '../../src/models/ReplyTurn';
import { getRedis } from '../../src/utils/redis';
import { messageStream } from '../../src/utils/queue';
import { fileInbox, findWaitingInbox, type InboxKey } from '../../src/models/Inbox';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestAgent, createTestPhoneNumber } from '../fixtures/conversations';
import {
  FIXTURE_IDS,
  fixtureBytes,
  instagramMessageBody,
  sign,
  uniqueWamid,
  whatsappStatusBody,
  whatsappTextBody,
} from '../fixtures/meta';

const app = createApp();

function post(body: string | Buffer, signature: string | null = sign(body)) {
  const req = request(app).post('/webhooks/meta').set('Content-Type', 'application/json');
  if (signature !== null) req.set('X-Hub-Signature-256', signature);
  // A string goes out byte for byte; superagent would JSON-encode a Buffer.
  return req.send(body.toString());
}

// Rows are read loosely: the assertions themselves check their shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

async function messagesWhere(sql: string, params: unknown[] = []): Promise<Row[]> {
  const { rows } = await db.query<Row>(`SELECT * FROM messages WHERE ${sql} ORDER BY created_at, sequence_no`, params);
  return rows;
}

async function inboxWhere(sql: string, params: unknown[] = []): Promise<Row[]> {
  const { rows } = await db.query<Row>(`SELECT * FROM inbox WHERE ${sql} ORDER BY id`, params);
  return rows;
}

/** What a worker does with each nudge: files the customer's accepted messages into their conversation. */
async function fileWaiting(): Promise<void> {
  const { rows } = await db.query<InboxKey>(
    `SELECT DISTINCT user_id AS "userId", phone_number_id AS "phoneNumberId", customer_id AS "customerId" FROM inbox`,
  );
  for (const key of rows) await fileInbox(key);
}

/** Meta delivers a body; the 200 is checked, then what it accepted is filed. */
async function deliver(body: string | Buffer): Promise<void> {
  expect((await post(body)).status).toBe(200);
  await fileWaiting();
}

async function streamEntries(): Promise<Record<string, string>[]> {
  const entries = await getRedis().xrange(messageStream(0), '-', '+');
  return entries.map(([, fields]) => Object.fromEntries(fields.flatMap((_, i) => (i % 2 ? [] : [[fields[i], fields[i + 1]]]))));
}

describe('Meta webhook', () => {
  let userId: string;
  let waNumberId: string;
  let igNumberId: string;

  beforeAll(async () => {
    await setupTestDatabase();
    const tenant = await createTestTenant({ credits: 1000 });
    userId = tenant.userId;
    const agent = await createTestAgent(userId);
    waNumberId = (await createTestPhoneNumber(userId, { externalId: FIXTURE_IDS.whatsappPhoneNumberId, agentId: agent.id })).id;
    igNumberId = (await createTestPhoneNumber(userId, { channel: 'instagram', externalId: FIXTURE_IDS.instagramAccountId, agentId: agent.id })).id;
  });
  afterAll(teardownTestDatabase);
  beforeEach(() => getRedis().del(messageStream(0)));

  describe('GET handshake', () => {
    it('when the verify token matches, then the challenge comes back as plain text', async () => {
      const res = await request(app).get('/webhooks/meta').query({ 'hub.mode': 'subscribe', 'hub.verify_token': 'dev-verify-token', 'hub.challenge': '1158201444' });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.text).toBe('1158201444');
    });

    it('when the token or mode is wrong, then 403', async () => {
      const wrongToken = await request(app).get('/webhooks/meta').query({ 'hub.mode': 'subscribe', 'hub.verify_token': 'nope', 'hub.challenge': '1' });
      const wrongMode = await request(app).get('/webhooks/meta').query({ 'hub.mode': 'unsubscribe', 'hub.verify_token': 'dev-verify-token', 'hub.challenge': '1' });
      const missing = await request(app).get('/webhooks/meta');
      for (const res of [wrongToken, wrongMode, missing]) {
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
    });
  });

  describe('signature', () => {
    it('when the signature is missing, wrong, or from another secret, then 401 and nothing is stored or queued', async () => {
      const body = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: '15550009999', text: 'unsigned' });
      const before = (await messagesWhere('true')).length;
      for (const signature of [null, 'sha256=deadbeef', sign(body, 'another-secret'), sign(`${body} `), 'sha1=abc']) {
        const res = await post(body, signature);
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('invalid_signature');
      }
      expect((await messagesWhere('true')).length).toBe(before);
      expect(await streamEntries()).toEqual([]);
    });

    it('when the body is not JSON and unsigned, then 401, not a parse error', async () => {
      const res = await post('{not json', 'sha256=' + '0'.repeat(64));
      expect(res.status).toBe(401);
    });

    it('when a signed body is not JSON, then 400 invalid_json', async () => {
      const res = await post('{not json');
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_json');
    });

    it('when Meta sends escaped unicode, then the signature over the raw bytes verifies', async () => {
      const raw = fixtureBytes('whatsapp_image.json');
      expect(raw.toString()).toContain('\\u00e9');
      await deliver(raw);
      const [message] = await messagesWhere('external_id = $1', ['wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNAA=']);
      expect(message).toMatchObject({ type: 'image', text: 'This one', status: 'pending' });
      const { rows } = await db.query<Row>('SELECT customer_name FROM conversations WHERE id = $1', [message.conversation_id]);
      expect(rows[0].customer_name).toBe('José García');
    });
  });

  describe('customer messages', () => {
    it('when a text arrives for a linked number, then 200 means it is in the inbox and its customer is queued with tenant, number and request id', async () => {
      const wamid = 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMAA=';
      const res = await post(fixtureBytes('whatsapp_text.json')).set('X-Request-Id', 'meta-req-1');
      expect(res.status).toBe(200);
      expect(await inboxWhere('external_id = $1', [wamid])).toEqual([
        expect.objectContaining({ channel: 'whatsapp', user_id: userId, phone_number_id: waNumberId, customer_id: '15550102030', attempts: 0 }),
      ]);
      expect(await streamEntries()).toEqual([{ user_id: userId, phone_number_id: waNumberId, customer_id: '15550102030', request_id: 'meta-req-1' }]);
    });

    it('when a worker files an accepted text, then it is stored pending in the customer\'s conversation and leaves the inbox', async () => {
      const wamid = 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMAA=';
      const [key] = await findWaitingInbox(-60_000, 10);
      expect(key).toEqual({ userId, phoneNumberId: waNumberId, customerId: '15550102030' });
      const filed = await fileInbox(key!);
      const [message] = await messagesWhere('external_id = $1', [wamid]);
      expect(message).toMatchObject({
        direction: 'inbound',
        author: 'customer',
        channel: 'whatsapp',
        type: 'text',
        text: 'Hola! Do you have this jacket in size M?',
        status: 'pending',
        user_id: userId,
      });
      expect(filed).toEqual({ conversationId: message.conversation_id, filed: 1, dropped: 0, refused: 0 });
      expect(await inboxWhere('external_id = $1', [wamid])).toEqual([]);
      // Filed already (a redelivered nudge): nothing more, and the conversation is still named.
      expect(await fileInbox(key!)).toEqual({ conversationId: message.conversation_id, filed: 0, dropped: 0, refused: 0 });
    });

    it('when one body batches messages from two customers, then each is stored in its own conversation and both are queued', async () => {
      await deliver(fixtureBytes('whatsapp_multi_messages_batch.json'));
      const rows = await messagesWhere('external_id = ANY($1)', [[
        'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMgA=',
        'wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FGQUtFMDAwMDAwMDAwMDAwMDMA',
      ]]);
      expect(rows).toHaveLength(2);
      expect(new Set(rows.map((r) => r.conversation_id)).size).toBe(2);
      const { rows: customers } = await db.query<Row>('SELECT customer_external_id FROM conversations WHERE id = ANY($1)', [rows.map((r) => r.conversation_id)]);
      expect((await streamEntries()).map((e) => e.customer_id).sort()).toEqual(customers.map((c) => c.customer_external_id).sort());
    });

    it('when reactions, locations and button replies arrive, then they are stored; only answerable ones are owed a reply', async () => {
      for (const name of ['whatsapp_reaction.json', 'whatsapp_location.json', 'whatsapp_interactive_button_reply.json', 'instagram_reaction.json']) {
        await deliver(fixtureBytes(name));
      }
      const [reaction] = await messagesWhere(`type = 'reaction' AND channel = 'whatsapp'`);
      expect(reaction).toMatchObject({ status: 'ignored', text: '👍' });
      const [location] = await messagesWhere(`type = 'location'`);
      expect(location.status).toBe('pending');
      expect(location.text).toContain('Example Store');
      const [button] = await messagesWhere(`type = 'interactive'`);
      expect(button).toMatchObject({ status: 'pending', text: 'Yes, size M' });
      const [igReaction] = await messagesWhere(`type = 'reaction' AND channel = 'instagram'`);
      expect(igReaction.status).toBe('ignored');
    });

    it('when the same message is delivered five times, four at once and one later, then it is recorded and queued once', async () => {
      const id = uniqueWamid();
      const body = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: '15550001111', text: 'only once', id });
      const concurrent = await Promise.all([post(body), post(body), post(body), post(body)]);
      expect(concurrent.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(await inboxWhere('external_id = $1', [id])).toHaveLength(1);
      expect((await streamEntries()).filter((e) => e.customer_id === '15550001111')).toHaveLength(1);
      await fileWaiting();
      // Meta's later retry, after filing: nothing in Redis remembers it, only Postgres does.
      await getRedis().flushdb();
      expect((await post(body)).status).toBe(200);
      expect(await inboxWhere('external_id = $1', [id])).toHaveLength(0);
      expect(await messagesWhere('external_id = $1', [id])).toHaveLength(1);
      const { rows } = await db.query<Row>(`SELECT count(*)::int AS n FROM conversations WHERE customer_external_id = '15550001111'`);
      expect(rows[0].n).toBe(1);
      expect(await streamEntries()).toHaveLength(0); // flushed; the retry queued nothing new
    });

    it('when messages follow each other, then they get consecutive sequence numbers in one conversation', async () => {
      const from = '15550002222';
      // Accepted one after the other and filed together: arrival order is kept.
      for (const text of ['one', 'two', 'three']) {
        expect((await post(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from, text }))).status).toBe(200);
      }
      await fileWaiting();
      const rows = await messagesWhere(`conversation_id = (SELECT id FROM conversations WHERE customer_external_id = $1)`, [from]);
      expect(rows.map((r) => [r.sequence_no, r.text])).toEqual([[1, 'one'], [2, 'two'], [3, 'three']]);
    });

    it('when a signed body holds NUL or lone surrogates, then 200, and text, name and payload are stored with them replaced', async () => {
      const wamid = uniqueWamid();
      const customer = '15550100777';
      // JSON.stringify writes these as \u0000 and \ud83d escapes, as a hostile sender would.
      const body = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: customer, name: 'Ann\u0000', text: 'Hi\u0000there \ud83d end \udc00', id: wamid });
      expect(body).toContain('\\u0000');
      await deliver(body);
      const igBody = instagramMessageBody({ accountId: FIXTURE_IDS.instagramAccountId, igsid: '6021000000000777', text: '\u0000\ud800' });
      await deliver(igBody);
      const [message] = await messagesWhere('external_id = $1', [wamid]);
      expect(message).toMatchObject({ text: 'Hi\ufffdthere \ufffd end \ufffd', status: 'pending' });
      expect(JSON.stringify(message.payload ?? {})).not.toMatch(/\\u0000|\\ud8/);
      const { rows } = await db.query<Row>('SELECT customer_name FROM conversations WHERE id = $1', [message.conversation_id]);
      expect(rows[0].customer_name).toBe('Ann\ufffd');
      const [instagram] = await messagesWhere("channel = 'instagram' AND text = $1", ['\ufffd\ufffd']);
      expect(instagram).toMatchObject({ status: 'pending' });
      // The Instagram tests below count this account's messages from a clean slate.
      await db.query('DELETE FROM messages WHERE conversation_id = $1', [instagram.conversation_id]);
      await db.query('DELETE FROM conversations WHERE id = $1', [instagram.conversation_id]);
    });

    it('when the account is unknown, then 200 and nothing is stored', async () => {
      const body = whatsappTextBody({ phoneNumberId: '999999999', from: '15550003333', text: 'hello?' });
      expect((await post(body)).status).toBe(200);
      expect(await inboxWhere(`customer_id = '15550003333'`)).toHaveLength(0);
      expect(await streamEntries()).toEqual([]);
      await fileWaiting();
      expect(await messagesWhere(`text = 'hello?'`)).toHaveLength(0);
    });

    it('when the number has no agent, then the message is stored (filed at once, ignored) and nothing is queued', async () => {
      const number = await createTestPhoneNumber(userId, { externalId: 'no-agent-number' });
      const body = whatsappTextBody({ phoneNumberId: number.externalId, from: '15550004444', text: 'anyone there?' });
      expect((await post(body)).status).toBe(200);
      const [message] = await messagesWhere(`text = 'anyone there?'`);
      expect(message.status).toBe('ignored');
      expect(await inboxWhere(`customer_id = '15550004444'`)).toEqual([]);
      expect(await streamEntries()).toEqual([]);
    });

    it('when the conversation is paused, then new messages are stored and owe no reply', async () => {
      const from = '15550005555';
      await deliver(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from, text: 'first' }));
      await db.query(`UPDATE conversations SET bot_paused = true WHERE customer_external_id = $1`, [from]);
      await deliver(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from, text: 'second' }));
      const [second] = await messagesWhere(`text = 'second'`);
      expect(second.status).toBe('ignored');
    });

    it('when Redis is unreachable, then the webhook still answers 200 and the message waits in Postgres for the sweeper', async () => {
      // A standalone connection: these tests point it at a dead port.
      const redis = getRedis() as Redis;
      redis.disconnect();
      const original = redis.options.port;
      redis.options.port = 1;
      try {
        const id = uniqueWamid();
        const res = await post(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: '15550006666', text: 'redis down', id }));
        expect(res.status).toBe(200);
        expect(await inboxWhere('external_id = $1', [id])).toHaveLength(1);
        expect(await findWaitingInbox(-60_000, 1000)).toContainEqual({ userId, phoneNumberId: waNumberId, customerId: '15550006666' });
      } finally {
        redis.options.port = original;
        await redis.connect().catch(() => undefined);
      }
    });
  });

  describe('statuses', () => {
    async function outbound(externalId: string, status = 'sent') {
      const { rows } = await db.query<Row>(`SELECT id, conversation_id FROM messages WHERE channel = 'whatsapp' AND direction = 'inbound' LIMIT 1`);
      const conversationId = rows[0].conversation_id;
      const { rows: seq } = await db.query<Row>(
        `UPDATE conversations SET last_sequence_no = last_sequence_no + 1 WHERE id = $1 RETURNING last_sequence_no`,
        [conversationId],
      );
      await db.query(
        `INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, status, external_id)
         VALUES ($1, $2, $3, 'outbound', 'agent', 'whatsapp', 'text', 'reply', $4, $5)`,
        [userId, conversationId, seq[0].last_sequence_no, status, externalId],
      );
    }
    const statusOf = async (externalId: string) => (await messagesWhere('external_id = $1', [externalId]))[0];

    it('when statuses arrive out of order, then the message only moves forward', async () => {
      const wamid = 'wamid.HBgLMTU1NTAxMDIwMzAVAgARGBJGQUtFT1VUMDAwMDAwMDAwMDEA';
      await outbound(wamid);
      expect((await post(fixtureBytes('whatsapp_status_delivered.json'))).status).toBe(200);
      expect((await statusOf(wamid)).status).toBe('delivered');
      await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid, status: 'sent' }));
      expect((await statusOf(wamid)).status).toBe('delivered');
      await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid, status: 'read' }));
      await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid, status: 'delivered' }));
      expect((await statusOf(wamid)).status).toBe('read');
    });

    it('when a send failed, then the message is failed with Meta code and text, and stays failed', async () => {
      const wamid = 'wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSRkFLRU9VVDAwMDAwMDAwMDAzAA==';
      await outbound(wamid);
      expect((await post(fixtureBytes('whatsapp_status_failed.json'))).status).toBe(200);
      expect(await statusOf(wamid)).toMatchObject({
        status: 'failed',
        error_code: '131047',
        error_message: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
      });
      await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid, status: 'delivered' }));
      expect((await statusOf(wamid)).status).toBe('failed');
    });

    it('when Meta reports a failure without errors, then the message is failed with an unknown code', async () => {
      const wamid = uniqueWamid();
      await outbound(wamid);
      const res = await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid, status: 'failed' }));
      expect(res.status).toBe(200);
      expect(await statusOf(wamid)).toMatchObject({ status: 'failed', error_code: 'unknown' });
    });

    it('when a status names no message of ours, then 200 and nothing changes', async () => {
      const res = await post(whatsappStatusBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, wamid: 'wamid.unknown', status: 'delivered' }));
      expect(res.status).toBe(200);
    });
  });

  describe('Instagram', () => {
    it('when a customer writes and sends an image, then both are stored pending under the IGSID', async () => {
      await deliver(fixtureBytes('instagram_text.json'));
      await deliver(fixtureBytes('instagram_attachment_image.json'));
      const rows = await messagesWhere(`channel = 'instagram' AND direction = 'inbound' AND type <> 'reaction'`);
      expect(rows.map((r) => [r.type, r.status])).toEqual([['text', 'pending'], ['image', 'pending']]);
      const { rows: conversation } = await db.query<Row>('SELECT customer_external_id, phone_number_id FROM conversations WHERE id = $1', [rows[0].conversation_id]);
      expect(conversation[0]).toEqual({ customer_external_id: FIXTURE_IDS.igsid, phone_number_id: igNumberId });
    });

    it('when a human writes from the Instagram app (echo), then it is recorded as a human message and the bot pauses', async () => {
      expect((await post(fixtureBytes('instagram_echo.json'))).status).toBe(200);
      const [echo] = await messagesWhere(`channel = 'instagram' AND author = 'human'`);
      expect(echo).toMatchObject({ direction: 'outbound', status: 'sent', text: 'Yes, it is! Would you like the link?' });
      const { rows } = await db.query<Row>('SELECT bot_paused FROM conversations WHERE id = $1', [echo.conversation_id]);
      expect(rows[0].bot_paused).toBe(true);
    });

    it('when a customer unsends a message, then it is flagged deleted whether it was filed already or still waits in the inbox', async () => {
      const igsid = '6021000000000077';
      const unsend = (mid: string) =>
        JSON.stringify({
          object: 'instagram',
          entry: [{ id: FIXTURE_IDS.instagramAccountId, time: Date.now(), messaging: [
            { sender: { id: igsid }, recipient: { id: FIXTURE_IDS.instagramAccountId }, timestamp: Date.now(), message: { mid, is_deleted: true } },
          ] }],
        });
      await deliver(instagramMessageBody({ accountId: FIXTURE_IDS.instagramAccountId, igsid, text: 'filed then unsent', mid: 'mid.unsend-filed' }));
      expect((await post(instagramMessageBody({ accountId: FIXTURE_IDS.instagramAccountId, igsid, text: 'unsent while waiting', mid: 'mid.unsend-waiting' }))).status).toBe(200);
      expect((await post(unsend('mid.unsend-filed'))).status).toBe(200);
      expect((await post(unsend('mid.unsend-waiting'))).status).toBe(200);
      await fileWaiting();
      const rows = await messagesWhere(`external_id IN ('mid.unsend-filed', 'mid.unsend-waiting')`);
      expect(rows.map((r) => [r.text, r.payload.deleted])).toEqual([['filed then unsent', true], ['unsent while waiting', true]]);
    });

    it('when our own reply echoes back, then it is not taken for a human and the bot stays on', async () => {
      const igsid = '6021000000000099';
      await deliver(instagramMessageBody({ accountId: FIXTURE_IDS.instagramAccountId, igsid, text: 'hi there' }));
      const [inbound] = await messagesWhere(`text = 'hi there'`);
      // The worker's reply, committed and marked sending before Graph answered with its id.
      const { rows: [reply] } = await db.query<Row>(
        `WITH seq AS (UPDATE conversations SET last_sequence_no = last_sequence_no + 1 WHERE id = $1 RETURNING last_sequence_no)
         INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, status)
         SELECT $2, $1, last_sequence_no, 'outbound', 'agent', 'instagram', 'text', 'Hello! How can I help?', 'queued' FROM seq
         RETURNING id`,
        [inbound.conversation_id, userId],
      );
      await claimOutboundPart(userId, reply.id, 0, 'Hello! How can I help?', randomUUID(), config.SEND_IN_DOUBT_GRACE_MS, 86_400);
      await post(instagramMessageBody({ accountId: FIXTURE_IDS.instagramAccountId, igsid, text: 'Hello! How can I help?', echo: true }));
      expect(await messagesWhere(`author = 'human' AND conversation_id = $1`, [inbound.conversation_id])).toEqual([]);
      const { rows } = await db.query<Row>('SELECT bot_paused FROM conversations WHERE id = $1', [inbound.conversation_id]);
      expect(rows[0].bot_paused).toBe(false);
    });
  });

  describe('under concurrent load', () => {
    it('when many webhooks arrive at once, then they share batches and every message is recorded once, numbered per customer', async () => {
      const bodies: string[] = [];
      const ids: string[] = [];
      for (let customer = 0; customer < 10; customer++) {
        for (let n = 1; n <= 4; n++) {
          const id = uniqueWamid();
          ids.push(id);
          bodies.push(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: `1555030${String(customer).padStart(4, '0')}`, text: `msg ${n}`, id }));
        }
      }
      // Each customer's messages in order, all customers at once, plus every body twice.
      const responses = await Promise.all([...bodies, ...bodies].map((body) => post(body)));
      expect(responses.every((res) => res.status === 200)).toBe(true);
      expect(await inboxWhere('external_id = ANY($1)', [ids])).toHaveLength(40);
      await fileWaiting();
      const rows = await messagesWhere('external_id = ANY($1)', [ids]);
      expect(rows).toHaveLength(40);
      const byConversation = new Map<string, number[]>();
      for (const row of rows) byConversation.set(row.conversation_id, [...(byConversation.get(row.conversation_id) ?? []), row.sequence_no]);
      expect(byConversation.size).toBe(10);
      for (const sequence of byConversation.values()) expect(sequence.sort()).toEqual([1, 2, 3, 4]);
    });

    it('when several workers file one customer at once, then each message is filed once, in arrival order', async () => {
      const customer = '15550500001';
      const texts = Array.from({ length: 12 }, (_, n) => `burst ${n + 1}`);
      for (const text of texts) expect((await post(whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: customer, text }))).status).toBe(200);
      const key = { userId, phoneNumberId: waNumberId, customerId: customer };
      const results = await Promise.all(Array.from({ length: 4 }, () => fileInbox(key)));
      expect(results.reduce((total, r) => total + r.filed, 0)).toBe(12);
      expect(new Set(results.map((r) => r.conversationId)).size).toBe(1);
      const rows = await messagesWhere(`conversation_id = $1`, [results[0]!.conversationId]);
      expect(rows.map((r) => [r.sequence_no, r.text])).toEqual(texts.map((text, i) => [i + 1, text]));
    });

    it('when the database refuses to file one message, then the others are filed and it waits in the inbox with the reason, then is set aside', async () => {
      const customer = '15550400002';
      const good = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: customer, text: 'fine' });
      // A text the messages table refuses (the CHECK below): accepted, then refused at filing.
      const bad = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: customer, text: 'xxxxxxxxxx' });
      const later = whatsappTextBody({ phoneNumberId: FIXTURE_IDS.whatsappPhoneNumberId, from: customer, text: 'still fine' });
      await db.query(`ALTER TABLE messages ADD CONSTRAINT test_refuse_poison CHECK (text IS DISTINCT FROM 'xxxxxxxxxx') NOT VALID`);
      try {
        for (const body of [good, bad, later]) expect((await post(body)).status).toBe(200);
        const key = { userId, phoneNumberId: waNumberId, customerId: customer };
        expect(await fileInbox(key)).toEqual(expect.objectContaining({ filed: 2, refused: 1 }));
        const rows = await messagesWhere(`conversation_id IN (SELECT id FROM conversations WHERE customer_external_id = $1)`, [customer]);
        expect(rows.map((r) => [r.sequence_no, r.text])).toEqual([[1, 'fine'], [2, 'still fine']]);
        const [refused] = await inboxWhere('customer_id = $1', [customer]);
        expect(refused).toMatchObject({ attempts: 1, last_error: expect.stringContaining('test_refuse_poison') });
        // Refused on every try: after a few, filing and the sweeper leave it aside (kept, for inspection).
        for (let attempt = 2; attempt <= 5; attempt++) await fileInbox(key);
        expect(await fileInbox(key)).toEqual(expect.objectContaining({ filed: 0, refused: 0 }));
        expect(await inboxWhere('customer_id = $1', [customer])).toEqual([expect.objectContaining({ attempts: 5 })]);
        expect(await findWaitingInbox(-60_000, 1000)).not.toContainEqual(key);
      } finally {
        await db.query('ALTER TABLE messages DROP CONSTRAINT test_refuse_poison');
      }
    });
  });
});
