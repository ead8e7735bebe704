/**
 * What the schema itself guarantees about a tenant's rows, beyond any one model function.
 */
import { db } from '../../src/utils/database';
import { recordReply } from '../../src/models/ReplyTurn';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';

describe('schema', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);

  const countOf = async (table: string, userId: string) =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE user_id = $1`, [userId])).rows[0]!.n;

  it('when a tenant without ledger entries is deleted, then its numbers, conversations and messages go with it, and no other tenant loses anything', async () => {
    const [doomed, other] = [await createTestTenant(), await createTestTenant()];
    for (const tenant of [doomed, other]) {
      const conversation = await createTestConversation(tenant.userId);
      await insertTestMessages(tenant.userId, conversation.id, [{ status: 'pending' }, { direction: 'outbound' }]);
    }

    await db.query('DELETE FROM users WHERE id = $1', [doomed.userId]);

    for (const table of ['phone_numbers', 'conversations', 'messages']) {
      expect(await countOf(table, doomed.userId)).toBe(0);
      expect(await countOf(table, other.userId)).toBeGreaterThan(0);
    }
  });

  it('when a tenant has ledger entries, then it cannot be deleted: the ledger is append-only', async () => {
    const tenant = await createTestTenant({ credits: 50 });
    const conversation = await createTestConversation(tenant.userId);
    const [pending] = await insertTestMessages(tenant.userId, conversation.id, [{ status: 'pending' }]);
    await recordReply(tenant.userId, conversation.id, { answered: [pending!.id], text: 'Hi', replyToMessageId: pending!.id, cost: 5, tokens: 10 });

    await expect(db.query('DELETE FROM users WHERE id = $1', [tenant.userId])).rejects.toThrow('append-only');
    expect(await countOf('messages', tenant.userId)).toBe(2);
  });

  it("when a message names another tenant's conversation, then the database refuses it", async () => {
    const [mine, theirs] = [await createTestTenant(), await createTestTenant()];
    const conversation = await createTestConversation(theirs.userId);

    await expect(insertTestMessages(mine.userId, conversation.id, [{ status: 'pending' }])).rejects.toThrow();
    await expect(
      db.query(
        `INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, status)
         VALUES ($1, $2, 99, 'inbound', 'customer', 'whatsapp', 'text', 'pending')`,
        [mine.userId, conversation.id],
      ),
    ).rejects.toMatchObject({ code: '23503' });
  });
});
