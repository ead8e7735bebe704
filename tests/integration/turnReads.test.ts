/**
 * The two statements a reply turn makes before its model call, against real Postgres:
 * loadOwedConversation (what is owed, and the history the model reads, in one query) and
 * beginReplyAttempt (the credit hold and the attempt count, in one statement).
 */
import { db } from '../../src/utils/database';
import { beginReplyAttempt, loadOwedConversation } from '../../src/models/ReplyTurn';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';

beforeAll(setupTestDatabase);
afterAll(teardownTestDatabase);

async function attemptsOf(ids: string[]): Promise<number[]> {
  const { rows } = await db.query<{ attempts: number }>('SELECT attempts FROM messages WHERE id = ANY($1::uuid[]) ORDER BY sequence_no', [ids]);
  return rows.map((row) => row.attempts);
}

describe('loadOwedConversation', () => {
  it("when a customer wrote again while the first answer was being made, then the history reads question, answer, next question, at the agent's history_limit", async () => {
    const { userId } = await createTestTenant();
    const conversation = await createTestConversation(userId);
    const [first, second, reply] = await insertTestMessages(userId, conversation.id, [
      { text: 'Do you ship to Lisbon?' },
      { text: 'And to Porto?', status: 'pending' },
      { direction: 'outbound', text: 'Yes, to Lisbon.' },
    ]);
    await db.query('UPDATE messages SET reply_to_message_id = $1 WHERE id = $2', [first!.id, reply!.id]);

    const owed = await loadOwedConversation(userId, conversation.id);
    expect(owed!.owed.map((m) => m.id)).toEqual([second!.id]);
    expect(owed!.history.map((m) => m.text)).toEqual(['Do you ship to Lisbon?', 'Yes, to Lisbon.', 'And to Porto?']);
    expect(owed!.history[0]).toMatchObject({ userId, conversationId: conversation.id, sequenceNo: 1, createdAt: expect.any(Date) });

    await db.query('UPDATE agents SET history_limit = 2 WHERE id = $1', [conversation.agentId]);
    expect((await loadOwedConversation(userId, conversation.id))!.history.map((m) => m.text)).toEqual(['Yes, to Lisbon.', 'And to Porto?']);
  });

  it('when nothing is pending, then there is no history to read; when the conversation has no agent, neither', async () => {
    const { userId } = await createTestTenant();
    const conversation = await createTestConversation(userId);
    await insertTestMessages(userId, conversation.id, [{ text: 'hi' }, { direction: 'outbound', text: 'queued', status: 'queued' }]);
    expect(await loadOwedConversation(userId, conversation.id)).toMatchObject({ owed: [{ text: 'queued' }], history: [] });

    const orphan = await createTestConversation(userId, { agentId: null });
    await insertTestMessages(userId, orphan.id, [{ text: 'hello?', status: 'pending' }]);
    expect(await loadOwedConversation(userId, orphan.id)).toMatchObject({ owed: [{ text: 'hello?' }], history: [] });
  });

  it("when the conversation is another tenant's, then nothing comes back", async () => {
    const owner = await createTestTenant();
    const other = await createTestTenant();
    const conversation = await createTestConversation(owner.userId);
    await insertTestMessages(owner.userId, conversation.id, [{ text: 'secret', status: 'pending' }]);

    await expect(loadOwedConversation(other.userId, conversation.id)).resolves.toBeNull();
  });
});

describe('beginReplyAttempt', () => {
  it('when the balance covers the hold, then the hold is made and the attempt counted, in one statement', async () => {
    const { userId } = await createTestTenant({ credits: 100 });
    const conversation = await createTestConversation(userId);
    const ids = (await insertTestMessages(userId, conversation.id, [{ status: 'pending' }, { status: 'pending' }])).map((m) => m.id);

    const attempt = await beginReplyAttempt(userId, conversation.id, ids, 60, 60_000);

    expect(attempt).toEqual({ holdId: expect.any(String), attempts: 1 });
    const { rows } = await db.query<{ amount: string }>('SELECT amount FROM credit_holds WHERE user_id = $1 AND id = $2', [userId, attempt.holdId]);
    expect(rows.map((row) => Number(row.amount))).toEqual([60]);
    expect(await attemptsOf(ids)).toEqual([1, 1]);
  });

  it('when the balance less what is held cannot cover it, then nothing is held and no attempt is counted', async () => {
    const { userId } = await createTestTenant({ credits: 100 });
    const conversation = await createTestConversation(userId);
    const ids = (await insertTestMessages(userId, conversation.id, [{ status: 'pending' }])).map((m) => m.id);
    await beginReplyAttempt(userId, conversation.id, ids, 60, 60_000);

    await expect(beginReplyAttempt(userId, conversation.id, ids, 60, 60_000)).resolves.toEqual({ holdId: null, attempts: 0 });
    expect(await attemptsOf(ids)).toEqual([1]);
  });
});
