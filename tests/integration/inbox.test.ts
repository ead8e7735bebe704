/**
 * The inbox, business-echo and outbound-status models against real Postgres: what each
 * statement accepts, files, finds, sets aside and moves (the webhook's HTTP path over them is
 * in webhook.test.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { db } from '../../src/utils/database';
import {
  acceptCustomerMessages,
  fileInbox,
  findWaitingInbox,
  markUnsentByCustomer,
  setInboxAside,
  type InboxEvent,
  type InboxKey,
} from '../../src/models/Inbox';
import { ingestBusinessEcho } from '../../src/models/BusinessEcho';
import { claimOutboundPart, recordPartSent } from '../../src/models/ReplyTurn';
import { applyOutboundStatus } from '../../src/models/OutboundStatus';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestAgent, createTestConversation, createTestPhoneNumber, insertTestMessages, type TestPhoneNumber } from '../fixtures/conversations';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

const tag = () => randomBytes(5).toString('hex');
/** How long a part in doubt is recognised by its echo (SEND_IN_DOUBT_GRACE_MS's default). */
const GRACE_MS = 15_000;

let userId: string;
let linked: TestPhoneNumber;
let unlinked: TestPhoneNumber;

function inbound(number: TestPhoneNumber, overrides: Partial<InboxEvent> = {}): InboxEvent {
  return {
    channel: number.channel,
    account_id: number.externalId,
    customer_id: `cust-${tag()}`,
    customer_name: 'Ana',
    external_id: `wamid.${tag()}`,
    type: 'text',
    text: 'hello',
    payload: null,
    timestamp: '2025-03-04T05:06:07.000Z',
    answerable: true,
    ...overrides,
  };
}

const keyOf = (number: TestPhoneNumber, fields: InboxEvent): InboxKey => ({ userId, phoneNumberId: number.id, customerId: fields.customer_id });

async function inboxOf(customerId: string): Promise<Row[]> {
  const { rows } = await db.query<Row>('SELECT external_id, attempts, last_error, event FROM inbox WHERE customer_id = $1 ORDER BY id', [customerId]);
  return rows;
}

async function messagesOf(customerId: string): Promise<Row[]> {
  const { rows } = await db.query<Row>(
    `SELECT m.sequence_no, m.text, m.status, m.payload FROM messages m JOIN conversations c ON c.id = m.conversation_id
      WHERE c.customer_external_id = $1 ORDER BY m.sequence_no`,
    [customerId],
  );
  return rows;
}

beforeAll(async () => {
  await setupTestDatabase();
  userId = (await createTestTenant({ credits: 100 })).userId;
  const agent = await createTestAgent(userId);
  linked = await createTestPhoneNumber(userId, { agentId: agent.id });
  unlinked = await createTestPhoneNumber(userId);
});
afterAll(teardownTestDatabase);

describe('acceptCustomerMessages', () => {
  it('when new messages arrive, then each waits in the inbox under its tenant, number and customer, and says whether an agent will answer', async () => {
    const first = inbound(linked);
    const second = inbound(unlinked);

    const results = await acceptCustomerMessages([first, second]);

    expect(results).toEqual([
      { outcome: 'accepted', key: keyOf(linked, first), hasAgent: true },
      { outcome: 'accepted', key: keyOf(unlinked, second), hasAgent: false },
    ]);
    expect((await inboxOf(first.customer_id)).map((r) => r.external_id)).toEqual([first.external_id]);
  });

  it('when one batch holds the same message twice, then the first copy is accepted and the second is a duplicate', async () => {
    const message = inbound(linked);

    const results = await acceptCustomerMessages([message, { ...message }]);

    expect(results.map((r) => (r as { outcome: string }).outcome)).toEqual(['accepted', 'duplicate']);
    expect(await inboxOf(message.customer_id)).toHaveLength(1);
  });

  it('when a message waits in the inbox or was filed already, then a retry of it is a duplicate and stores nothing', async () => {
    const message = inbound(linked);
    await acceptCustomerMessages([message]);
    expect(await acceptCustomerMessages([message])).toEqual([{ outcome: 'duplicate', key: keyOf(linked, message), hasAgent: true }]);

    await fileInbox(keyOf(linked, message));
    expect(await acceptCustomerMessages([message])).toEqual([{ outcome: 'duplicate', key: keyOf(linked, message), hasAgent: true }]);
    expect(await inboxOf(message.customer_id)).toEqual([]);
    expect(await messagesOf(message.customer_id)).toHaveLength(1);
  });

  it('when the account is no tenant\'s, then the item is unknown_account and nothing is stored', async () => {
    const message = inbound(linked, { account_id: `nobody-${tag()}` });

    expect(await acceptCustomerMessages([message])).toEqual([{ outcome: 'unknown_account', key: null, hasAgent: false }]);
    expect(await inboxOf(message.customer_id)).toEqual([]);
  });

  it('when the database refuses one item of a batch, then only that item carries the error and the others are stored', async () => {
    const good = inbound(linked);
    // The inbox's customer_id is NOT NULL: this item alone fails the statement.
    const bad = inbound(linked, { customer_id: null as unknown as string });
    const alsoGood = inbound(linked);

    const results = await acceptCustomerMessages([good, bad, alsoGood]);

    expect(results[0]).toEqual({ outcome: 'accepted', key: keyOf(linked, good), hasAgent: true });
    expect(results[1]).toBeInstanceOf(Error);
    expect(results[2]).toEqual({ outcome: 'accepted', key: keyOf(linked, alsoGood), hasAgent: true });
    expect(await inboxOf(alsoGood.customer_id)).toHaveLength(1);
  });
});

describe('fileInbox', () => {
  it('when a customer has waiting messages, then they are filed in arrival order into one conversation and leave the inbox', async () => {
    const customerId = `cust-${tag()}`;
    const messages = ['one', 'two', 'three'].map((text) => inbound(linked, { customer_id: customerId, text }));
    await acceptCustomerMessages(messages);

    const filed = await fileInbox(keyOf(linked, messages[0]!));

    expect(filed).toEqual({ conversationId: expect.any(String), filed: 3, dropped: 0, refused: 0 });
    expect((await messagesOf(customerId)).map((m) => [m.sequence_no, m.text, m.status])).toEqual([
      [1, 'one', 'pending'],
      [2, 'two', 'pending'],
      [3, 'three', 'pending'],
    ]);
    expect(await inboxOf(customerId)).toEqual([]);
  });

  it('when the number has no agent, then the messages are filed as ignored: no reply is owed', async () => {
    const message = inbound(unlinked);
    await acceptCustomerMessages([message]);

    await fileInbox(keyOf(unlinked, message));

    expect((await messagesOf(message.customer_id)).map((m) => m.status)).toEqual(['ignored']);
  });
});

describe('findWaitingInbox and setInboxAside', () => {
  it('when rows waited longer than the idle time, then their customer is found once; younger rows are not', async () => {
    const customerId = `cust-${tag()}`;
    const messages = [inbound(linked, { customer_id: customerId }), inbound(linked, { customer_id: customerId })];
    await acceptCustomerMessages(messages);
    const key = keyOf(linked, messages[0]!);

    expect(await findWaitingInbox(60_000, 1000)).not.toContainEqual(key);
    await db.query(`UPDATE inbox SET received_at = now() - interval '2 minutes' WHERE customer_id = $1`, [customerId]);
    const waiting = await findWaitingInbox(60_000, 1000);
    expect(waiting.filter((found) => found.customerId === customerId)).toEqual([key]);
  });

  it('when more customers wait than the limit, then only the limit comes back', async () => {
    await acceptCustomerMessages([inbound(linked), inbound(linked), inbound(linked)]);

    expect(await findWaitingInbox(-60_000, 2)).toHaveLength(2);
  });

  it('when a customer is set aside, then their rows keep the reason, the sweeper stops finding them, and the active conversation is named', async () => {
    const customerId = `cust-${tag()}`;
    const conversation = await createTestConversation(userId, { phoneNumber: linked, customerExternalId: customerId });
    const message = inbound(linked, { customer_id: customerId });
    await acceptCustomerMessages([message]);
    const key = keyOf(linked, message);

    expect(await setInboxAside(key, 'poison: test')).toEqual({ setAside: 1, conversationId: conversation.id });

    expect(await inboxOf(customerId)).toEqual([expect.objectContaining({ attempts: 5, last_error: 'poison: test' })]);
    expect(await findWaitingInbox(-60_000, 1000)).not.toContainEqual(key);
  });

  it('when another tenant names the same number and customer, then nothing is set aside', async () => {
    const message = inbound(linked);
    await acceptCustomerMessages([message]);
    const other = await createTestTenant();

    expect(await setInboxAside({ ...keyOf(linked, message), userId: other.userId }, 'poison')).toEqual({ setAside: 0, conversationId: null });
    expect(await inboxOf(message.customer_id)).toEqual([expect.objectContaining({ attempts: 0, last_error: null })]);
  });
});

describe('markUnsentByCustomer', () => {
  it('when the message waits in the inbox, then it is filed flagged deleted', async () => {
    const message = inbound(linked, { payload: { media: { id: 'M' } } });
    await acceptCustomerMessages([message]);

    expect(await markUnsentByCustomer(message.channel, message.external_id)).toBe(true);
    await fileInbox(keyOf(linked, message));

    expect((await messagesOf(message.customer_id))[0].payload).toEqual({ media: { id: 'M' }, deleted: true });
  });

  it('when the message was filed, then the stored row is flagged deleted and kept', async () => {
    // The webhook always sends an object payload (see webhookService.messageFields).
    const message = inbound(linked, { payload: {} });
    await acceptCustomerMessages([message]);
    await fileInbox(keyOf(linked, message));

    expect(await markUnsentByCustomer(message.channel, message.external_id)).toBe(true);
    expect((await messagesOf(message.customer_id)).map((m) => [m.text, m.payload])).toEqual([['hello', { deleted: true }]]);
  });

  it('when no customer message has that id, then false', async () => {
    expect(await markUnsentByCustomer('whatsapp', `wamid.${tag()}`)).toBe(false);
  });
});

describe('ingestBusinessEcho', () => {
  const echo = (number: TestPhoneNumber, customerId: string, text = 'from the app') => ({
    channel: number.channel,
    account_id: number.externalId,
    customer_id: customerId,
    external_id: `mid.${tag()}`,
    type: 'text',
    text,
    payload: null,
    timestamp: new Date().toISOString(),
  });

  it('when a human writes from the app, then it is recorded as a human message, sent, and the bot pauses', async () => {
    const customerId = `cust-${tag()}`;
    const conversation = await createTestConversation(userId, { phoneNumber: linked, customerExternalId: customerId });

    const result = await ingestBusinessEcho(echo(linked, customerId), GRACE_MS);

    expect(result).toEqual({ outcome: 'recorded', userId, conversationId: conversation.id, messageId: expect.any(String), status: null });
    const { rows } = await db.query<Row>('SELECT author, status, (SELECT bot_paused FROM conversations WHERE id = $1) AS paused FROM messages WHERE id = $2', [conversation.id, result.messageId]);
    expect(rows).toEqual([{ author: 'human', status: 'sent', paused: true }]);
  });

  it('when the same echo comes again, then it is a duplicate', async () => {
    const event = echo(linked, `cust-${tag()}`);
    await ingestBusinessEcho(event, GRACE_MS);

    expect((await ingestBusinessEcho(event, GRACE_MS)).outcome).toBe('duplicate');
  });

  it('when our own reply echoes back before its id is stored, then it is parked until the sender stores that id, and the bot stays on', async () => {
    const customerId = `cust-${tag()}`;
    // Echoes are Instagram's.
    const account = await createTestPhoneNumber(userId, { channel: 'instagram', agentId: linked.agentId });
    const conversation = await createTestConversation(userId, { phoneNumber: account, customerExternalId: customerId });
    const [reply] = await insertTestMessages(userId, conversation.id, [{ direction: 'outbound', author: 'agent', status: 'queued', text: 'Our answer' }]);
    // As a worker does before the POST: the part is marked sending, so Graph may have it.
    await claimOutboundPart(userId, reply!.id, 0, 'Our answer', randomUUID(), GRACE_MS, 86_400);
    const event = echo(account, customerId, 'Our answer');

    expect(await ingestBusinessEcho(event, GRACE_MS)).toEqual({ outcome: 'parked', userId, conversationId: conversation.id, messageId: null, status: null });
    await recordPartSent(userId, reply!.id, 0, event.external_id);

    expect(await ingestBusinessEcho(event, GRACE_MS)).toEqual({ outcome: 'own_echo', userId, conversationId: conversation.id, messageId: reply!.id, status: null });
    const { rows } = await db.query<Row>('SELECT bot_paused FROM conversations WHERE id = $1', [conversation.id]);
    expect(rows[0].bot_paused).toBe(false);
  });

  it('when the account is no tenant\'s, then unknown_account', async () => {
    expect((await ingestBusinessEcho({ ...echo(linked, 'c'), account_id: `nobody-${tag()}` }, GRACE_MS)).outcome).toBe('unknown_account');
  });
});

describe('applyOutboundStatus', () => {
  async function sentMessage(): Promise<{ externalId: string; id: string }> {
    const conversation = await createTestConversation(userId, { phoneNumber: linked });
    const externalId = `wamid.OUT${tag()}`;
    const [message] = await insertTestMessages(userId, conversation.id, [{ direction: 'outbound', author: 'agent', status: 'sent', externalId }]);
    return { externalId, id: message!.id };
  }
  const statusOf = async (id: string) => (await db.query<Row>('SELECT status, error_code, error_message FROM messages WHERE id = $1', [id])).rows[0];

  it('when a status moves the message forward, then true and it is stored', async () => {
    const { externalId, id } = await sentMessage();

    expect(await applyOutboundStatus('whatsapp', externalId, 'read', null)).toBe(true);
    expect(await statusOf(id)).toEqual({ status: 'read', error_code: null, error_message: null });
  });

  it('when a status would move it backwards, then false and nothing changes', async () => {
    const { externalId, id } = await sentMessage();
    await applyOutboundStatus('whatsapp', externalId, 'read', null);

    expect(await applyOutboundStatus('whatsapp', externalId, 'delivered', null)).toBe(false);
    expect((await statusOf(id)).status).toBe('read');
  });

  it('when the message failed, then Meta\'s code and text are kept and no later status moves it', async () => {
    const { externalId, id } = await sentMessage();

    expect(await applyOutboundStatus('whatsapp', externalId, 'failed', { code: '131047', message: 'too late' })).toBe(true);
    expect(await applyOutboundStatus('whatsapp', externalId, 'read', null)).toBe(false);
    expect(await statusOf(id)).toEqual({ status: 'failed', error_code: '131047', error_message: 'too late' });
  });

  it('when no outbound message has that id, then false', async () => {
    expect(await applyOutboundStatus('whatsapp', `wamid.${tag()}`, 'delivered', null)).toBe(false);
  });
});
