/**
 * Credits end to end (CONTRACT §4.4): operator top-ups, the tenant's ledger, and the charges the
 * workers make, on real Postgres, including under heavy concurrency. After every scenario the
 * balance must equal the ledger's sum.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db, withTransaction } from '../../src/utils/database';
import { charge, costForTokens, getBalance, hasCredits, topUp } from '../../src/services/creditService';
import { AppError } from '../../src/utils/errors';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant } from '../fixtures/tenants';
import { encodeCursor } from '../../src/utils/pagination';

async function balanceAndSum(userId: string): Promise<{ balance: number; sum: number }> {
  const { rows } = await db.query<{ balance: string; sum: string }>(
    `SELECT u.credit_balance AS balance, (SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = u.id) AS sum
     FROM users u WHERE u.id = $1`,
    [userId],
  );
  return { balance: Number(rows[0]!.balance), sum: Number(rows[0]!.sum) };
}

/** An outbound message of the tenant to charge a reply against (a number, conversation, message). */
async function createOutboundMessage(userId: string): Promise<{ messageId: string; conversationId: string }> {
  const { rows: numbers } = await db.query<{ id: string }>(
    `INSERT INTO phone_numbers (user_id, channel, external_id, access_token_encrypted)
     VALUES ($1, 'whatsapp', $2, 'v1:test') RETURNING id`,
    [userId, `pn-${randomUUID().slice(0, 8)}`],
  );
  const { rows: conversations } = await db.query<{ id: string }>(
    `INSERT INTO conversations (user_id, phone_number_id, channel, customer_external_id)
     VALUES ($1, $2, 'whatsapp', '15550001111') RETURNING id`,
    [userId, numbers[0]!.id],
  );
  const conversationId = conversations[0]!.id;
  const { rows: messages } = await db.query<{ id: string }>(
    `INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, status)
     VALUES ($1, $2, 1, 'outbound', 'agent', 'whatsapp', 'text', 'hello', 'sent') RETURNING id`,
    [userId, conversationId],
  );
  return { messageId: messages[0]!.id, conversationId };
}

describe('credits', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  describe('POST /v1/users/:id/credits', () => {
    it('when the operator tops up, then 201 with the new balance and the top_up entry', async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const res = await request(app).post(`/v1/users/${tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount: 250, reason: 'March invoice' });

      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        credit_balance: 350,
        entry: {
          id: expect.any(String),
          amount: 250,
          reason: 'top_up',
          description: 'March invoice',
          message_id: null,
          conversation_id: null,
          created_at: expect.any(String),
        },
      });
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 350, sum: 350 });
    });

    it('when the amount is not a positive integer, then 400 naming amount and nothing is booked', async () => {
      const tenant = await createTestTenant({ credits: 5 });
      for (const amount of [0, -5, 1.5, '10', null]) {
        const res = await request(app).post(`/v1/users/${tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('validation_error');
        expect(res.body.error.details).toEqual([{ path: 'amount', message: expect.any(String) }]);
      }
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 5, sum: 5 });
    });

    it('when the reason is over 500 characters, then 400 naming reason', async () => {
      const tenant = await createTestTenant();
      const res = await request(app)
        .post(`/v1/users/${tenant.userId}/credits`)
        .set(ADMIN_AUTH)
        .send({ amount: 1, reason: 'x'.repeat(501) });
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([{ path: 'reason', message: expect.any(String) }]);
    });

    it('when the user does not exist, then 404', async () => {
      const res = await request(app).post(`/v1/users/${randomUUID()}/credits`).set(ADMIN_AUTH).send({ amount: 1 });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    });

    it('when the body is malformed JSON, then 400 invalid_json', async () => {
      const tenant = await createTestTenant();
      const res = await request(app)
        .post(`/v1/users/${tenant.userId}/credits`)
        .set(ADMIN_AUTH)
        .set('Content-Type', 'application/json')
        .send('{"amount": ');
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_json');
    });

    it('when a tenant tops itself up, then 403 and the balance is unchanged', async () => {
      const tenant = await createTestTenant({ credits: 1 });
      const res = await request(app).post(`/v1/users/${tenant.userId}/credits`).set(tenant.auth).send({ amount: 1_000_000 });
      expect(res.status).toBe(403);
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 1, sum: 1 });
    });

    it('when there is no key, then 401', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).post(`/v1/users/${tenant.userId}/credits`).send({ amount: 1 });
      expect(res.status).toBe(401);
    });

    it('when 50 top-ups arrive at once, then the balance is the opening plus all of them and equals the ledger sum', async () => {
      const tenant = await createTestTenant({ credits: 1000 });
      const amounts = Array.from({ length: 50 }, (_, i) => i + 1);

      const responses = await Promise.all(
        amounts.map((amount) => request(app).post(`/v1/users/${tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount })),
      );

      expect(responses.map((res) => res.status)).toEqual(amounts.map(() => 201));
      const total = amounts.reduce((a, b) => a + b, 0);
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 1000 + total, sum: 1000 + total });
      // Each response's balance was computed under the row lock, so all 50 are distinct.
      expect(new Set(responses.map((res) => res.body.credit_balance)).size).toBe(50);
      expect(Math.max(...responses.map((res) => res.body.credit_balance as number))).toBe(1000 + total);
    });
  });

  describe('GET /v1/credits/ledger', () => {
    it('when the tenant pages through its ledger, then entries come newest first, each once', async () => {
      const tenant = await createTestTenant({ credits: 10 });
      for (const amount of [1, 2, 3, 4]) await topUp(tenant.userId, amount, `step ${amount}`);

      const amounts: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: request.Response = await request(app)
          .get('/v1/credits/ledger')
          .query({ limit: 2, ...(cursor ? { cursor } : {}) })
          .set(tenant.auth);
        expect(res.status).toBe(200);
        amounts.push(...res.body.data.map((entry: { amount: number }) => entry.amount));
        cursor = res.body.next_cursor;
        pages += 1;
      } while (cursor);

      expect(amounts).toEqual([4, 3, 2, 1, 10]);
      expect(pages).toBe(3);
    });

    it('when a reply was charged, then its entry is negative and names the message and conversation', async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const { messageId, conversationId } = await createOutboundMessage(tenant.userId);
      await charge(tenant.userId, 30, { reason: 'reply', messageId, conversationId, tokens: 30 });

      const res = await request(app).get('/v1/credits/ledger').set(tenant.auth);

      expect(res.status).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      expect(res.body.data[0]).toEqual({
        id: expect.any(String),
        amount: -30,
        reason: 'reply',
        description: null,
        message_id: messageId,
        conversation_id: conversationId,
        created_at: expect.any(String),
      });
    });

    it("when two tenants have ledgers, then each sees only its own, and another's entry is no cursor", async () => {
      const mine = await createTestTenant({ credits: 11 });
      const theirs = await createTestTenant({ credits: 22 });
      const theirEntry = (await topUp(theirs.userId, 5)).entry;

      const res = await request(app).get('/v1/credits/ledger').set(mine.auth);
      expect(res.body.data.map((entry: { amount: number }) => entry.amount)).toEqual([11]);

      const foreignCursor = encodeCursor(theirEntry.id);
      const probe = await request(app).get('/v1/credits/ledger').query({ cursor: foreignCursor }).set(mine.auth);
      expect(probe.status).toBe(200);
      expect(probe.body).toEqual({ data: [], next_cursor: null });
    });

    it('when the cursor or limit is invalid, then 400 naming it', async () => {
      const tenant = await createTestTenant();
      const badCursor = await request(app).get('/v1/credits/ledger').query({ cursor: 'abc' }).set(tenant.auth);
      expect(badCursor.status).toBe(400);
      expect(badCursor.body.error.details).toEqual([{ path: 'cursor', message: expect.any(String) }]);
      const badLimit = await request(app).get('/v1/credits/ledger').query({ limit: 500 }).set(tenant.auth);
      expect(badLimit.status).toBe(400);
      expect(badLimit.body.error.details[0].path).toBe('limit');
    });

    it('when the operator key is used, then 403; without a key, 401', async () => {
      expect((await request(app).get('/v1/credits/ledger').set(ADMIN_AUTH)).status).toBe(403);
      expect((await request(app).get('/v1/credits/ledger')).status).toBe(401);
    });
  });

  describe('charge', () => {
    it('when the balance covers the cost, then exactly the cost is taken as one entry', async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const result = await charge(tenant.userId, 40, { reason: 'extraction', tokens: 40 });
      expect(result).toEqual({ charged: 40, balance: 60, entryId: expect.any(String), alreadyCharged: false });
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 60, sum: 60 });
    });

    it('when the cost exceeds the balance, then the balance goes to zero and no further', async () => {
      const tenant = await createTestTenant({ credits: 25 });
      expect(await charge(tenant.userId, 1000, { reason: 'extraction' })).toMatchObject({ charged: 25, balance: 0 });
      // An empty balance still records the (zero) charge, so the work is accounted for.
      expect(await charge(tenant.userId, 10, { reason: 'extraction' })).toMatchObject({ charged: 0, balance: 0, alreadyCharged: false });
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 0, sum: 0 });
      expect(await hasCredits(tenant.userId)).toBe(false);
    });

    it('when 30 charges that together exceed the balance run at once, then it ends at 0, never below, equal to the ledger', async () => {
      const tenant = await createTestTenant({ credits: 100 });

      const results = await Promise.all(Array.from({ length: 30 }, () => charge(tenant.userId, 7, { reason: 'extraction', tokens: 7 })));

      expect(results.reduce((sum, r) => sum + r.charged, 0)).toBe(100);
      expect(results.every((r) => r.balance >= 0 && r.charged >= 0 && r.charged <= 7)).toBe(true);
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 0, sum: 0 });
      const { rows } = await db.query(`SELECT id FROM credit_ledger WHERE user_id = $1 AND reason = 'extraction'`, [tenant.userId]);
      expect(rows).toHaveLength(30);
    });

    it('when 30 charges each bigger than the whole balance run at once, then exactly the balance is taken', async () => {
      const tenant = await createTestTenant({ credits: 50 });
      const results = await Promise.all(Array.from({ length: 30 }, () => charge(tenant.userId, 80, { reason: 'extraction' })));
      expect(results.map((r) => r.charged).sort((a, b) => b - a)).toEqual([50, ...Array.from({ length: 29 }, () => 0)]);
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 0, sum: 0 });
    });

    it('when top-ups and charges race, then the balance still equals the ledger sum and is never negative', async () => {
      const tenant = await createTestTenant({ credits: 10 });
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? topUp(tenant.userId, 3) : charge(tenant.userId, 5, { reason: 'extraction' }))),
      );
      const { balance, sum } = await balanceAndSum(tenant.userId);
      expect(balance).toBe(sum);
      expect(balance).toBeGreaterThanOrEqual(0);
    });

    it('when the same reply is charged twice, even at once, then only one entry is booked', async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const { messageId } = await createOutboundMessage(tenant.userId);

      const results = await Promise.all([1, 2, 3].map(() => charge(tenant.userId, 10, { reason: 'reply', messageId })));

      expect(results.filter((r) => !r.alreadyCharged)).toHaveLength(1);
      expect(results.filter((r) => r.alreadyCharged).every((r) => r.charged === 0 && r.entryId === null && r.balance === 90)).toBe(true);
      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 90, sum: 90 });
    });

    it("when the caller's transaction rolls back, then the charge is undone with it", async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const { messageId } = await createOutboundMessage(tenant.userId);

      await expect(
        withTransaction(async (tx) => {
          const result = await charge(tenant.userId, 30, { reason: 'reply', messageId }, tx);
          expect(result.balance).toBe(70);
          expect(await getBalance(tenant.userId, tx)).toBe(70);
          throw new Error('sending the reply failed');
        }),
      ).rejects.toThrow('sending the reply failed');

      expect(await balanceAndSum(tenant.userId)).toEqual({ balance: 100, sum: 100 });
      // The reply was never charged, so a retry can charge it.
      expect(await charge(tenant.userId, 30, { reason: 'reply', messageId })).toMatchObject({ charged: 30, alreadyCharged: false });
    });

    it("when the caller's transaction commits, then the charge and the caller's own writes land together", async () => {
      const tenant = await createTestTenant({ credits: 100 });
      const { messageId } = await createOutboundMessage(tenant.userId);
      await withTransaction(async (tx) => {
        await tx.query(`UPDATE messages SET status = 'delivered' WHERE id = $1`, [messageId]);
        await charge(tenant.userId, 12, { reason: 'reply', messageId, tokens: 12 }, tx);
      });
      const { rows } = await db.query<{ status: string; amount: string; tokens: number }>(
        `SELECT m.status, l.amount, l.tokens FROM messages m JOIN credit_ledger l ON l.message_id = m.id WHERE m.id = $1`,
        [messageId],
      );
      expect(rows).toEqual([{ status: 'delivered', amount: '-12', tokens: 12 }]);
    });

    it('when the user does not exist, then not_found', async () => {
      await expect(charge(randomUUID(), 1, { reason: 'extraction' })).rejects.toMatchObject({ code: 'not_found' });
      await expect(topUp(randomUUID(), 1)).rejects.toBeInstanceOf(AppError);
      await expect(getBalance(randomUUID())).rejects.toMatchObject({ code: 'not_found' });
      expect(await hasCredits(randomUUID())).toBe(false);
    });

    it('when usage is priced, then tokens convert at the configured rate, rounded up', () => {
      // The test environment keeps the default: one credit per token.
      expect(costForTokens(1234)).toBe(1234);
      expect(costForTokens(0)).toBe(0);
    });
  });
});
