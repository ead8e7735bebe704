/**
 * The credit ledger model with a fake database: what each write sends (tenant first, charge
 * references defaulted to null), how bigint strings map to numbers, and how a write that
 * inserted nothing, or found no tenant, comes back. What the statements do (locks, clamping,
 * the balance trigger) runs against Postgres in tests/integration/creditLedger.test.ts.
 */
import { findBalance, insertClampedCharge, insertTopUp, listEntries, type CreditEntry } from '../../../src/models/CreditLedger';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { allNull, AT, LEDGER_ENTRY, MESSAGE, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const entry: CreditEntry = {
  id: LEDGER_ENTRY,
  userId: USER,
  amount: -3,
  reason: 'reply',
  description: null,
  messageId: MESSAGE,
  conversationId: null,
  extractionId: null,
  tokens: 120,
  createdAt: AT,
};
/** An entry as pg hands it over: bigint amounts as strings. */
const entryRow = (overrides: Partial<Record<keyof CreditEntry, unknown>> = {}) => ({ ...entry, amount: String(entry.amount), ...overrides });
/** A write's row when it inserted nothing: every entry column null, the balance still there. */
const nothingInserted = (balance: string) => ({ ...allNull(entry), balance });

beforeEach(() => resetFakeDatabase(fake));

describe('every statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertTopUp', call: (client) => insertTopUp(USER, 100, 'gift', client) },
    { name: 'insertClampedCharge', call: (client) => insertClampedCharge(USER, 3, { reason: 'reply', messageId: MESSAGE }, client) },
    { name: 'findBalance', call: (client) => findBalance(USER, client) },
    { name: 'listEntries', call: (client) => listEntries(USER, 10, LEDGER_ENTRY, client) },
  ]);
});

describe('insertTopUp', () => {
  it('when credits are added, then the entry and the balance after it come back as numbers', async () => {
    answer(fake.db, [{ ...entryRow({ amount: '100', reason: 'top_up', description: 'gift', messageId: null, tokens: null }), balance: '150' }]);

    const write = await insertTopUp(USER, 100, 'gift');

    expect(paramsOf(fake.db)).toEqual([USER, 100, 'gift']);
    expect(write).toEqual({ entry: { ...entry, amount: 100, reason: 'top_up', description: 'gift', messageId: null, tokens: null }, balance: 150 });
  });

  it('when the tenant does not exist, then it is null', async () => {
    await expect(insertTopUp(USER, 100, null)).resolves.toBeNull();
  });

  it('when the statement answers a row without an entry, then it is null', async () => {
    answer(fake.db, [nothingInserted('50')]);

    await expect(insertTopUp(USER, 100, null)).resolves.toBeNull();
  });
});

describe('insertClampedCharge', () => {
  it('when a reply is charged, then every reference is sent, the missing ones as null, and the entry and balance come back as numbers', async () => {
    answer(fake.db, [{ ...entryRow(), balance: '7' }]);

    const write = await insertClampedCharge(USER, 3, { reason: 'reply', messageId: MESSAGE, tokens: 120 });

    expect(paramsOf(fake.db)).toEqual([USER, 3, 'reply', MESSAGE, null, null, 120]);
    expect(write).toEqual({ entry, balance: 7 });
  });

  it('when the charge was made before, then no entry comes back, only the balance', async () => {
    answer(fake.db, [nothingInserted('7')]);

    await expect(insertClampedCharge(USER, 3, { reason: 'extraction', extractionId: LEDGER_ENTRY })).resolves.toEqual({ entry: null, balance: 7 });
  });

  it('when the tenant does not exist, then it is null', async () => {
    await expect(insertClampedCharge(USER, 3, { reason: 'reply', messageId: MESSAGE })).resolves.toBeNull();
  });
});

describe('findBalance', () => {
  it('when the tenant exists, then its bigint balance comes back as a number', async () => {
    answer(fake.db, [{ balance: '9007199254740' }]);

    await expect(findBalance(USER)).resolves.toBe(9007199254740);
    expect(paramsOf(fake.db)).toEqual([USER]);
  });

  it('when the tenant does not exist, then it is null', async () => {
    await expect(findBalance(USER)).resolves.toBeNull();
  });
});

describe('listEntries', () => {
  it('when there is no cursor, then the tenant and the limit are sent and amounts come back as numbers', async () => {
    answer(fake.db, [entryRow({ amount: '-2' }), entryRow({ amount: '10' })]);

    const entries = await listEntries(USER, 2, undefined);

    expect(paramsOf(fake.db)).toEqual([USER, 2]);
    expect(entries.map((e) => e.amount)).toEqual([-2, 10]);
  });

  it('when a cursor is given, then it is sent after the limit', async () => {
    await expect(listEntries(USER, 2, LEDGER_ENTRY)).resolves.toEqual([]);

    expect(paramsOf(fake.db)).toEqual([USER, 2, LEDGER_ENTRY]);
  });
});
