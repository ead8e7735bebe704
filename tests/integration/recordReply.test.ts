/**
 * record_reply (src/migrations/R__replies.sql) against real Postgres: the reply, the answered messages and
 * the charge commit together or not at all, whatever happened while the model was thinking.
 */
import { db } from '../../src/utils/database';
import { randomUUID } from 'node:crypto';
import { ANSWERED_ELSEWHERE, claimOutboundPart, recordPartSent, recordReply } from '../../src/models/ReplyTurn';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

async function state(userId: string, conversationId: string) {
  const { rows: messages } = await db.query<Row>(
    'SELECT direction, status, text, sequence_no, reply_to_message_id FROM messages WHERE conversation_id = $1 ORDER BY sequence_no',
    [conversationId],
  );
  const { rows: ledger } = await db.query<Row>(`SELECT amount::int, message_id, tokens FROM credit_ledger WHERE user_id = $1 AND reason = 'reply'`, [userId]);
  const { rows: user } = await db.query<Row>('SELECT credit_balance::int AS balance FROM users WHERE id = $1', [userId]);
  return { messages, ledger, balance: user[0].balance };
}

describe('recordReply', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);

  async function conversationWithPending(credits: number, options: { botPaused?: boolean; isActive?: boolean } = {}) {
    const tenant = await createTestTenant({ credits });
    const conversation = await createTestConversation(tenant.userId, options);
    const [a, b] = await insertTestMessages(tenant.userId, conversation.id, [{ status: 'pending', text: 'a' }, { status: 'pending', text: 'b' }]);
    return { userId: tenant.userId, conversationId: conversation.id, ids: [a!.id, b!.id] };
  }

  it('when the messages are still pending, then they are answered, the reply is queued after them and charged, in one statement', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(100);

    const result = await recordReply(userId, conversationId, { answered: ids, text: 'Hello!', replyToMessageId: ids[1]!, cost: 7, tokens: 120 });

    expect(result).toMatchObject({ outcome: 'recorded', charged: 7, reply: { userId, conversationId, direction: 'outbound', author: 'agent', status: 'queued', text: 'Hello!', sequenceNo: 3 } });
    const after = await state(userId, conversationId);
    expect(after.messages.map((m: Row) => [m.direction, m.status, m.sequence_no])).toEqual([['inbound', 'answered', 1], ['inbound', 'answered', 2], ['outbound', 'queued', 3]]);
    expect(after.messages[2].reply_to_message_id).toBe(ids[1]);
    expect(after.ledger).toEqual([{ amount: -7, message_id: result.outcome === 'recorded' ? result.reply.id : null, tokens: 120 }]);
    expect(after.balance).toBe(93);
  });

  it('when the first part is given, then it is claimed for that token in the same commit: another attempt finds it in doubt, and its record with every id marks the reply sent', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(100);
    const token = randomUUID();

    const result = await recordReply(userId, conversationId, { answered: ids, text: 'Hello!', replyToMessageId: ids[1]!, cost: 7, tokens: 120, firstPart: { text: 'Hello!', token } });
    if (result.outcome !== 'recorded') throw new Error('not recorded');

    const { rows: parts } = await db.query<Row>('SELECT part_no, status, attempt_token, text FROM outbound_parts WHERE message_id = $1', [result.reply.id]);
    expect(parts).toEqual([{ part_no: 0, status: 'sending', attempt_token: token, text: 'Hello!' }]);
    expect(await claimOutboundPart(userId, result.reply.id, 0, 'Hello!', randomUUID(), 60_000, 86_400)).toMatchObject({ outcome: 'in_doubt' });

    await recordPartSent(userId, result.reply.id, 0, 'wamid.FIRST', ['wamid.FIRST']);
    const { rows: sent } = await db.query<Row>('SELECT status, external_id, payload FROM messages WHERE id = $1', [result.reply.id]);
    expect(sent[0]).toMatchObject({ status: 'sent', external_id: 'wamid.FIRST', payload: { external_ids: ['wamid.FIRST'] } });
  });

  it('when the bot may no longer answer, then no part is claimed either', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(100, { botPaused: true });

    expect(await recordReply(userId, conversationId, { answered: ids, text: 'Hi', replyToMessageId: ids[1]!, cost: 5, tokens: 10, firstPart: { text: 'Hi', token: randomUUID() } })).toEqual({ outcome: 'paused_or_archived' });
    const { rows } = await db.query<Row>('SELECT count(*)::int AS n FROM outbound_parts op JOIN messages m ON m.id = op.message_id WHERE m.conversation_id = $1', [conversationId]);
    expect(rows[0].n).toBe(0);
  });

  it('when the cost is more than the balance, then the charge takes what is left and the balance stops at zero', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(3);

    expect(await recordReply(userId, conversationId, { answered: ids, text: 'Hi', replyToMessageId: ids[1]!, cost: 10, tokens: 500 })).toMatchObject({ charged: 3 });
    expect((await state(userId, conversationId)).balance).toBe(0);
  });

  it('when one message was answered elsewhere meanwhile, then it raises ANSWERED_ELSEWHERE and nothing at all is written', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(100);
    await db.query(`UPDATE messages SET status = 'answered' WHERE id = $1`, [ids[0]]);

    await expect(recordReply(userId, conversationId, { answered: ids, text: 'Hi', replyToMessageId: ids[1]!, cost: 5, tokens: 10 })).rejects.toMatchObject({ code: ANSWERED_ELSEWHERE });
    const after = await state(userId, conversationId);
    expect(after.messages.map((m: Row) => m.status)).toEqual(['answered', 'pending']);
    expect(after.ledger).toEqual([]);
    expect(after.balance).toBe(100);
  });

  it.each([
    ['paused by a human', { botPaused: true }],
    ['archived by a relink', { isActive: false }],
  ])('when the conversation was %s, then the outcome says so and nothing is written', async (_what, options) => {
    const { userId, conversationId, ids } = await conversationWithPending(100, options);

    expect(await recordReply(userId, conversationId, { answered: ids, text: 'Hi', replyToMessageId: ids[1]!, cost: 5, tokens: 10 })).toEqual({ outcome: 'paused_or_archived' });
    const after = await state(userId, conversationId);
    expect(after.messages.map((m: Row) => m.status)).toEqual(['pending', 'pending']);
    expect(after.ledger).toEqual([]);
  });

  it("when another tenant's id is given, then nothing of the conversation is touched", async () => {
    const { userId, conversationId, ids } = await conversationWithPending(100);
    const other = await createTestTenant({ credits: 100 });

    expect(await recordReply(other.userId, conversationId, { answered: ids, text: 'Hi', replyToMessageId: ids[1]!, cost: 5, tokens: 10 })).toEqual({ outcome: 'paused_or_archived' });
    expect((await state(userId, conversationId)).messages.map((m: Row) => m.status)).toEqual(['pending', 'pending']);
  });
});
