/**
 * creditService with only the database edge mocked: what it refuses before any SQL, which
 * client it uses, and how rows become results. What the statements book and return against
 * real Postgres: tests/integration/creditLedger.test.ts and credits.test.ts.
 */
import { allowedModels, charge, costForTokens, costForUsage, getBalance, hasCredits, holdTtlMs, listLedger, MAX_CREDIT_AMOUNT, priceOf, topUp, topUpAndWake } from '../../../src/services/creditService';
import * as replyTurn from '../../../src/models/ReplyTurn';
import * as extraction from '../../../src/models/Extraction';
import * as queue from '../../../src/utils/queue';
import { withTransaction } from '../../../src/utils/database';
import { config } from '../../../src/config';
import { db, type Queryable } from '../../../src/utils/database';
import { encodeCursor } from '../../../src/utils/pagination';
import { AppError } from '../../../src/utils/errors';
import { forgetCredits } from '../../../src/services/cachedLookups';

jest.mock('../../../src/services/cachedLookups', () => ({ forgetCredits: jest.fn(async () => undefined) }));
jest.mock('../../../src/utils/database', () => ({
  db: { query: jest.fn() },
  withTransaction: jest.fn(),
}));
jest.mock('../../../src/models/ReplyTurn');
jest.mock('../../../src/models/Extraction');
jest.mock('../../../src/utils/queue');

const query = db.query as jest.Mock;
const USER = '11111111-1111-4111-8111-111111111111';
const ENTRY = '22222222-2222-4222-8222-222222222222';
const MESSAGE = '33333333-3333-4333-8333-333333333333';
const createdAt = new Date('2025-01-02T03:04:05Z');

/** A ledger row as the model selects it (amount is bigint, so a string). */
function entryRow(amount: string, overrides: Record<string, unknown> = {}) {
  return {
    id: ENTRY,
    userId: USER,
    amount,
    reason: 'top_up',
    description: null,
    messageId: null,
    conversationId: null,
    extractionId: null,
    tokens: null,
    createdAt,
    ...overrides,
  };
}

/** A row as the write statements return it: the entry's columns plus the balance after. */
const writeRow = (amount: string, balance: string, overrides: Record<string, unknown> = {}) => ({
  ...entryRow(amount, overrides),
  balance,
});

const nothingInserted = (balance: string) =>
  Object.fromEntries(Object.entries(writeRow('0', balance)).map(([key, value]) => [key, key === 'balance' ? value : null]));


beforeEach(() => query.mockReset());

describe('topUp', () => {
  it('when the user exists, then one statement books the entry and the bigint columns come back as numbers', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('250', '350', { description: 'invoice 7' })], rowCount: 1 });

    const result = await topUp(USER, 250, 'invoice 7');

    expect(query).toHaveBeenCalledTimes(1);
    expect(result).toEqual({
      balance: 350,
      entry: { id: ENTRY, userId: USER, amount: 250, reason: 'top_up', description: 'invoice 7', messageId: null, conversationId: null, extractionId: null, tokens: null, createdAt },
    });
  });

  it('when the user does not exist, then a not_found AppError', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(topUp(USER, 5)).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });

  it('when the amount is not a positive safe integer, then it is refused before any SQL', async () => {
    for (const amount of [0, -1, 1.5, Number.NaN, MAX_CREDIT_AMOUNT + 1]) {
      await expect(topUp(USER, amount)).rejects.toBeInstanceOf(RangeError);
    }
    expect(query).not.toHaveBeenCalled();
  });

  it("when a transaction client is passed, then the statement runs on it, not on the pool", async () => {
    const tx: Queryable = { query: jest.fn().mockResolvedValue({ rows: [writeRow('5', '5')], rowCount: 1 }) } as unknown as Queryable;
    await topUp(USER, 5, 'x', tx);
    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(query).not.toHaveBeenCalled();
  });
});

describe('the cached "has credits" pre-check', () => {
  beforeEach(() => jest.mocked(forgetCredits).mockClear());

  it('when a top-up commits on its own, then the pre-check is forgotten everywhere; inside a caller\'s transaction, the caller does it', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('250', '250')], rowCount: 1 });
    await topUp(USER, 250);
    expect(forgetCredits).toHaveBeenCalledWith(USER);

    jest.mocked(forgetCredits).mockClear();
    const tx = { query: jest.fn().mockResolvedValue({ rows: [writeRow('250', '250')], rowCount: 1 }) } as unknown as Queryable;
    await topUp(USER, 250, null, tx);
    expect(forgetCredits).not.toHaveBeenCalled();
  });

  it('when Redis cannot be told after a top-up, then unavailable (the top-up stands)', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('250', '250')], rowCount: 1 });
    jest.mocked(forgetCredits).mockRejectedValueOnce(new AppError('unavailable', 'x'));
    await expect(topUp(USER, 250)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('when a charge empties the balance, then the pre-check is forgotten (best effort); a charge that leaves some does not', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('-40', '60', { reason: 'extraction' })], rowCount: 1 });
    await charge(USER, 40, { reason: 'extraction' });
    expect(forgetCredits).not.toHaveBeenCalled();
    query.mockResolvedValueOnce({ rows: [writeRow('-15', '0', { reason: 'extraction' })], rowCount: 1 });
    jest.mocked(forgetCredits).mockRejectedValueOnce(new Error('down'));
    await expect(charge(USER, 100, { reason: 'extraction' })).resolves.toMatchObject({ balance: 0 });
    expect(forgetCredits).toHaveBeenCalledWith(USER);
  });
});

describe('charge', () => {
  it('when charging, then one statement, and the entry written comes back as what was charged and the balance after', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('-40', '60', { reason: 'reply', messageId: MESSAGE, tokens: 40 })], rowCount: 1 });

    const result = await charge(USER, 40, { reason: 'reply', messageId: MESSAGE, tokens: 40 });

    expect(query).toHaveBeenCalledTimes(1);
    expect(result).toEqual({ charged: 40, balance: 60, entryId: ENTRY, alreadyCharged: false });
  });

  it('when the balance was short, then charged is what the clamped entry took', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('-15', '0', { reason: 'extraction' })], rowCount: 1 });
    expect(await charge(USER, 100, { reason: 'extraction' })).toEqual({ charged: 15, balance: 0, entryId: ENTRY, alreadyCharged: false });
  });

  it('when the balance was empty, then charged is 0 (not -0)', async () => {
    query.mockResolvedValueOnce({ rows: [writeRow('0', '0', { reason: 'extraction' })], rowCount: 1 });
    const result = await charge(USER, 100, { reason: 'extraction' });
    expect(Object.is(result.charged, 0)).toBe(true);
  });

  it('when the reply was charged before, then nothing is taken and alreadyCharged is true', async () => {
    query.mockResolvedValueOnce({ rows: [nothingInserted('90')], rowCount: 1 });
    expect(await charge(USER, 10, { reason: 'reply', messageId: MESSAGE })).toEqual({
      charged: 0,
      balance: 90,
      entryId: null,
      alreadyCharged: true,
    });
  });

  it('when the user does not exist, then not_found', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(charge(USER, 1, { reason: 'extraction' })).rejects.toBeInstanceOf(AppError);
  });

  it('when a reply charge names no message, then it is refused before any SQL', async () => {
    await expect(charge(USER, 1, { reason: 'reply' })).rejects.toBeInstanceOf(TypeError);
    expect(query).not.toHaveBeenCalled();
  });

  it('when the cost is negative or fractional, then it is refused before any SQL', async () => {
    await expect(charge(USER, -1, { reason: 'extraction' })).rejects.toBeInstanceOf(RangeError);
    await expect(charge(USER, 0.5, { reason: 'extraction' })).rejects.toBeInstanceOf(RangeError);
    expect(query).not.toHaveBeenCalled();
  });

  it("when a transaction client is passed, then the charge runs on it so it commits with the caller's work", async () => {
    const tx = { query: jest.fn().mockResolvedValue({ rows: [writeRow('-2', '8')], rowCount: 1 }) };
    await charge(USER, 2, { reason: 'extraction' }, tx as unknown as Queryable);
    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(query).not.toHaveBeenCalled();
  });
});

describe('hasCredits and getBalance', () => {
  it('when the balance is positive, then hasCredits is true', async () => {
    query.mockResolvedValueOnce({ rows: [{ balance: '1' }], rowCount: 1 });
    expect(await hasCredits(USER)).toBe(true);
  });

  it('when the balance is zero or the user is unknown, then hasCredits is false', async () => {
    query.mockResolvedValueOnce({ rows: [{ balance: '0' }], rowCount: 1 });
    expect(await hasCredits(USER)).toBe(false);
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    expect(await hasCredits(USER)).toBe(false);
  });

  it('when asked for the balance, then it is a number; unknown user is not_found', async () => {
    query.mockResolvedValueOnce({ rows: [{ balance: '1234' }], rowCount: 1 });
    expect(await getBalance(USER)).toBe(1234);
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(getBalance(USER)).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('costForTokens', () => {
  it('when priced at the default rate, then one credit per token', () => {
    expect(costForTokens(1)).toBe(1);
    expect(costForTokens(987)).toBe(987);
  });

  it('when the rate gives a fraction, then the cost rounds up', () => {
    expect(costForTokens(1, 1)).toBe(1);
    expect(costForTokens(1000, 1)).toBe(1);
    expect(costForTokens(1001, 1)).toBe(2);
    expect(costForTokens(1500, 3)).toBe(5);
  });

  it('when there are no tokens or the rate is zero, then the cost is zero', () => {
    expect(costForTokens(0)).toBe(0);
    expect(costForTokens(5000, 0)).toBe(0);
  });

  it('when tokens are negative or fractional, then it throws', () => {
    expect(() => costForTokens(-1)).toThrow(RangeError);
    expect(() => costForTokens(1.5)).toThrow(RangeError);
  });
});

describe('listLedger', () => {
  it('when there are more rows than the limit, then one page and a cursor naming its last entry', async () => {
    query.mockResolvedValueOnce({ rows: ['a', 'b', 'c'].map((id) => entryRow('1', { id })), rowCount: 3 });

    const page = await listLedger(USER, { limit: 2 });

    expect(page.data.map((entry) => entry.id)).toEqual(['a', 'b']);
    expect(page.next_cursor).toBe(encodeCursor('b'));
  });

  it('when the cursor is not one the API handed out, then validation_error before any SQL', async () => {
    await expect(listLedger(USER, { limit: 20, cursor: 'nope' })).rejects.toMatchObject({ code: 'validation_error' });
    expect(query).not.toHaveBeenCalled();
  });
});

describe('model prices (MODEL_PRICES)', () => {
  const PRICES = { cheap: { input: 150, output: 600 }, dear: { input: 10_000, output: 30_000 } };

  it('when the model is priced, then input and output tokens are charged at their own prices, rounded up', () => {
    expect(priceOf('dear', PRICES, 1000)).toEqual({ input: 10_000, output: 30_000 });
    // 1000 × 150/1K + 100 × 600/1K = 150 + 60.
    expect(costForUsage('cheap', 1000, 100, PRICES, 1000)).toBe(210);
    expect(costForUsage('cheap', 1, 0, PRICES, 1000)).toBe(1);
    expect(costForUsage('dear', 10, 10, PRICES, 1000)).toBe(400);
  });

  it('when the model has no price, then CREDITS_PER_1K_TOKENS applies to both kinds of token', () => {
    expect(priceOf('toString', PRICES, 7)).toEqual({ input: 7, output: 7 });
    expect(costForUsage('other', 1000, 1000, PRICES, 1000)).toBe(2000);
    expect(costForUsage('other', 120, 0, {}, 1000)).toBe(costForTokens(120, 1000));
  });

  it('when MODEL_PRICES is set, then only its models are allowed; unset, any model', () => {
    expect(allowedModels(PRICES)).toEqual(['cheap', 'dear']);
    expect(allowedModels({})).toBeNull();
  });

  it('when token counts are not whole, then it refuses', () => {
    expect(() => costForUsage('cheap', -1, 0, PRICES)).toThrow(RangeError);
    expect(() => costForUsage('cheap', 1.5, 0, PRICES)).toThrow(RangeError);
  });

  it("then a hold outlives a lease and every retry of a live turn's model call", () => {
    expect(holdTtlMs()).toBeGreaterThan(config.WORKER_LEASE_MS + 3 * config.OPENAI_TIMEOUT_MS);
  });
});

describe('topUpAndWake', () => {
  const tx = { query: jest.fn() };
  beforeEach(() => {
    jest.mocked(withTransaction).mockReset().mockImplementation(async (fn) => fn(tx as unknown as Queryable));
    tx.query.mockReset().mockResolvedValue({ rows: [writeRow('500', '500')], rowCount: 1 });
    jest.mocked(replyTurn.requeueInsufficientCredits).mockReset();
    jest.mocked(extraction.clearNoCreditsPostponement).mockReset().mockResolvedValue(1);
    jest.mocked(queue.enqueueConversations).mockReset().mockResolvedValue(undefined);
  });

  it('when messages waited for credits, then the top-up, their requeue and the end of extraction postponements share one transaction, and their conversations are nudged', async () => {
    jest.mocked(replyTurn.requeueInsufficientCredits).mockResolvedValue(['c-1', 'c-2']);

    const result = await topUpAndWake(USER, 500, 'refill');

    expect(result.balance).toBe(500);
    expect(replyTurn.requeueInsufficientCredits).toHaveBeenCalledWith(USER, config.STALE_MESSAGE_SECONDS, tx);
    expect(extraction.clearNoCreditsPostponement).toHaveBeenCalledWith(USER, tx);
    expect(queue.enqueueConversations).toHaveBeenCalledWith([
      { conversationId: 'c-1', userId: USER, requestId: 'top_up' },
      { conversationId: 'c-2', userId: USER, requestId: 'top_up' },
    ]);
  });

  it('when the top-up commits, then the cached "has credits" pre-check is forgotten before any conversation is nudged', async () => {
    jest.mocked(replyTurn.requeueInsufficientCredits).mockResolvedValue(['c-1']);
    const order: string[] = [];
    jest.mocked(forgetCredits).mockReset().mockImplementation(async () => void order.push('forget'));
    jest.mocked(queue.enqueueConversations).mockImplementation(async () => void order.push('nudge'));

    await topUpAndWake(USER, 500);

    expect(forgetCredits).toHaveBeenCalledWith(USER);
    expect(order).toEqual(['forget', 'nudge']);
  });

  it('when nothing waited, then no nudge; when Redis refuses the nudge, the top-up still stands', async () => {
    jest.mocked(replyTurn.requeueInsufficientCredits).mockResolvedValue([]);
    await topUpAndWake(USER, 500);
    expect(queue.enqueueConversations).not.toHaveBeenCalled();

    jest.mocked(replyTurn.requeueInsufficientCredits).mockResolvedValue(['c-1']);
    jest.mocked(queue.enqueueConversations).mockRejectedValue(new Error('redis down'));
    await expect(topUpAndWake(USER, 500)).resolves.toMatchObject({ balance: 500 });
  });
});
