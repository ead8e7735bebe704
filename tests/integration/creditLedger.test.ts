/**
 * creditService and models/CreditLedger against real Postgres: what each write books and
 * returns, and what the ledger lists. (Concurrency, transactions and the HTTP API are in
 * credits.test.ts.)
 */
import { db } from '../../src/utils/database';
import { charge, listLedger, topUp } from '../../src/services/creditService';
import { encodeCursor } from '../../src/utils/pagination';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, createTestExtraction, insertTestMessages } from '../fixtures/conversations';

const ledgerSum = async (userId: string) =>
  Number((await db.query<{ sum: string }>('SELECT COALESCE(sum(amount), 0) AS sum FROM credit_ledger WHERE user_id = $1', [userId])).rows[0]!.sum);
const storedBalance = async (userId: string) =>
  Number((await db.query<{ balance: string }>('SELECT credit_balance AS balance FROM users WHERE id = $1', [userId])).rows[0]!.balance);

describe('credit ledger', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);

  describe('topUp', () => {
    it('when a tenant is topped up, then one entry is booked and the result carries it and the balance after, as numbers', async () => {
      const { userId } = await createTestTenant({ credits: 100 });

      const result = await topUp(userId, 250, 'invoice 7');

      expect(result).toEqual({
        balance: 350,
        entry: {
          id: expect.any(String),
          userId,
          amount: 250,
          reason: 'top_up',
          description: 'invoice 7',
          messageId: null,
          conversationId: null,
          extractionId: null,
          tokens: null,
          createdAt: expect.any(Date),
        },
      });
      expect(await storedBalance(userId)).toBe(350);
      expect(await ledgerSum(userId)).toBe(350);
    });

    it('when no description is given, then the entry has none', async () => {
      const { userId } = await createTestTenant();
      expect((await topUp(userId, 5)).entry.description).toBeNull();
    });
  });

  describe('charge', () => {
    it('when a reply is charged, then the entry names its message, conversation and tokens, and the balance is the ledger sum', async () => {
      const { userId } = await createTestTenant({ credits: 100 });
      const conversation = await createTestConversation(userId);
      const [reply] = await insertTestMessages(userId, conversation.id, [{ direction: 'outbound' }]);

      const result = await charge(userId, 40, { reason: 'reply', messageId: reply!.id, conversationId: conversation.id, tokens: 40 });

      expect(result).toEqual({ charged: 40, balance: 60, entryId: expect.any(String), alreadyCharged: false });
      const { rows } = await db.query('SELECT amount::int, reason, message_id, conversation_id, extraction_id, tokens FROM credit_ledger WHERE id = $1', [result.entryId]);
      expect(rows).toEqual([{ amount: -40, reason: 'reply', message_id: reply!.id, conversation_id: conversation.id, extraction_id: null, tokens: 40 }]);
      expect(await storedBalance(userId)).toBe(await ledgerSum(userId));
    });

    it('when an extraction is charged, then its ids are on the entry; charged again, nothing is taken and alreadyCharged says so', async () => {
      const { userId } = await createTestTenant({ credits: 10 });
      const conversation = await createTestConversation(userId);
      const extraction = await createTestExtraction(userId, conversation.id);

      const first = await charge(userId, 1, { reason: 'extraction', conversationId: conversation.id, extractionId: extraction.id, tokens: 3 });
      const again = await charge(userId, 1, { reason: 'extraction', conversationId: conversation.id, extractionId: extraction.id, tokens: 3 });

      expect(first).toMatchObject({ charged: 1, balance: 9, alreadyCharged: false });
      expect(again).toEqual({ charged: 0, balance: 9, entryId: null, alreadyCharged: true });
      const { rows } = await db.query('SELECT conversation_id, extraction_id, tokens FROM credit_ledger WHERE user_id = $1 AND reason = $2', [userId, 'extraction']);
      expect(rows).toEqual([{ conversation_id: conversation.id, extraction_id: extraction.id, tokens: 3 }]);
    });

    it('when the balance is short, then the charge takes what is left; when empty, it books a zero entry and charged is 0, not -0', async () => {
      const { userId } = await createTestTenant({ credits: 15 });

      expect(await charge(userId, 100, { reason: 'extraction' })).toMatchObject({ charged: 15, balance: 0 });
      const empty = await charge(userId, 100, { reason: 'extraction' });

      expect(empty).toMatchObject({ charged: 0, balance: 0, alreadyCharged: false });
      expect(Object.is(empty.charged, 0)).toBe(true);
      expect(await storedBalance(userId)).toBe(0);
    });
  });

  describe('listLedger', () => {
    it('when there are more entries than the limit, then pages come newest first with a cursor to the next, and a page after the last is empty', async () => {
      const { userId } = await createTestTenant();
      for (const amount of [1, 2, 3]) await topUp(userId, amount);

      const first = await listLedger(userId, { limit: 2 });
      const second = await listLedger(userId, { limit: 2, cursor: first.next_cursor! });

      expect(first.data.map((entry) => entry.amount)).toEqual([3, 2]);
      expect(first.next_cursor).toBe(encodeCursor(first.data[1]!.id));
      expect(second).toEqual({ data: [expect.objectContaining({ amount: 1 })], next_cursor: null });
    });

    it("when another tenant's entry is given as the cursor, then nothing of either tenant is listed", async () => {
      const [mine, theirs] = [await createTestTenant(), await createTestTenant()];
      await topUp(mine.userId, 1);
      const foreign = await topUp(theirs.userId, 1);

      expect(await listLedger(mine.userId, { limit: 20, cursor: encodeCursor(foreign.entry.id) })).toEqual({ data: [], next_cursor: null });
    });
  });
});
