/**
 * userService with only the database edge mocked: which statements run in which transaction,
 * what reaches the database (a hash, never the key), and the errors callers see.
 */
import { createApiKey, createUser, getUser, listUsers, revokeApiKey } from '../../../src/services/userService';
import * as database from '../../../src/utils/database';
import { fakeDatabaseOf, resetFakeDatabase, sqlOf as sqlOfClient } from '../../fixtures/fakeDatabase';
import { hashApiKey } from '../../../src/models/ApiKey';
import { encodeCursor } from '../../../src/utils/pagination';
import { forgetApiKey, markApiKeyLive } from '../../../src/services/liveApiKeys';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());
// The rate limiter's Redis hints are the other edge.
jest.mock('../../../src/services/liveApiKeys');

const fake = fakeDatabaseOf(database);
const query = fake.db.query;
const txQuery = fake.transaction.query;
const transaction = fake.withTransaction;

const USER = '11111111-1111-4111-8111-111111111111';
const KEY = '22222222-2222-4222-8222-222222222222';
const createdAt = new Date('2025-01-02T03:04:05Z');
const userRow = (overrides: Record<string, unknown> = {}) => ({ id: USER, name: 'Acme', email: 'a@example.com', creditBalance: '0', createdAt, ...overrides });
const keyRow = { id: KEY, userId: USER, keyPrefix: 'mca_abcdefgh', createdAt, revokedAt: null };
const sqlOf = (mock: jest.Mock, call: number) => sqlOfClient({ query: mock } as Parameters<typeof sqlOfClient>[0], call);

beforeEach(() => {
  // Transactions run their body on `txQuery` and pass its errors through, as the real one does.
  resetFakeDatabase(fake);
  jest.mocked(forgetApiKey).mockClear();
});

describe('createUser', () => {
  it('when the email is free and credits are given, then user, top-up and key are written in one transaction', async () => {
    txQuery
      .mockResolvedValueOnce({ rows: [userRow()], rowCount: 1 })
      .mockResolvedValueOnce({
        rows: [{ id: 'e1', userId: USER, amount: '500', reason: 'top_up', description: 'opening credits', messageId: null, conversationId: null, extractionId: null, tokens: null, createdAt, balance: '500' }],
        rowCount: 1,
      })
      .mockResolvedValueOnce({ rows: [keyRow], rowCount: 1 });

    const result = await createUser({ name: 'Acme', email: 'a@example.com', credits: 500 });

    expect(transaction).toHaveBeenCalledTimes(1);
    expect(query).not.toHaveBeenCalled();
    expect(txQuery).toHaveBeenCalledTimes(3);
    expect(sqlOf(txQuery, 0)).toContain('INSERT INTO users');
    expect(sqlOf(txQuery, 0)).toContain('ON CONFLICT ((lower(email))) DO NOTHING');
    expect(sqlOf(txQuery, 1)).toContain('INSERT INTO credit_ledger');
    expect(txQuery.mock.calls[1]?.[1]).toEqual([USER, 500, 'opening credits']);
    expect(sqlOf(txQuery, 2)).toContain('INSERT INTO api_keys');

    expect(result.user).toEqual({ id: USER, name: 'Acme', email: 'a@example.com', creditBalance: 500, createdAt });
    expect(result.apiKey.id).toBe(KEY);
    expect(result.apiKey.apiKey).toMatch(/^mca_/);
    // Only the hash and a short prefix reach the database.
    const [userId, hash, prefix] = txQuery.mock.calls[2]?.[1] as string[];
    expect(userId).toBe(USER);
    expect(hash).toBe(hashApiKey(result.apiKey.apiKey));
    expect(result.apiKey.apiKey.startsWith(prefix!)).toBe(true);
    expect(prefix!.length).toBeLessThan(result.apiKey.apiKey.length / 2);
    expect(JSON.stringify(txQuery.mock.calls)).not.toContain(result.apiKey.apiKey);
  });

  it('when no credits are given, then no ledger entry is written', async () => {
    txQuery.mockResolvedValueOnce({ rows: [userRow()], rowCount: 1 }).mockResolvedValueOnce({ rows: [keyRow], rowCount: 1 });

    const result = await createUser({ name: 'Acme', email: 'a@example.com', credits: 0 });

    expect(txQuery).toHaveBeenCalledTimes(2);
    expect(sqlOf(txQuery, 1)).toContain('INSERT INTO api_keys');
    expect(result.user.creditBalance).toBe(0);
  });

  it('when the email is taken, then a 409 conflict and no key is made', async () => {
    txQuery.mockResolvedValueOnce({ rows: [], rowCount: 0 });

    await expect(createUser({ name: 'Acme', email: 'A@example.com', credits: 5 })).rejects.toMatchObject({ code: 'conflict', status: 409 });
    expect(txQuery).toHaveBeenCalledTimes(1);
  });
});

describe('getUser', () => {
  it('when the user exists, then its row with a numeric balance', async () => {
    query.mockResolvedValueOnce({ rows: [userRow({ creditBalance: '9007199254' })], rowCount: 1 });
    expect(await getUser(USER)).toEqual({ id: USER, name: 'Acme', email: 'a@example.com', creditBalance: 9_007_199_254, createdAt });
    expect(query.mock.calls[0]?.[1]).toEqual([USER]);
  });

  it('when there is no such user, then not_found', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(getUser(USER)).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });
});

describe('listUsers', () => {
  it('when more rows exist than the limit, then one page and a cursor naming the last user', async () => {
    const ids = ['a', 'b', 'c'];
    query.mockResolvedValueOnce({ rows: ids.map((id) => userRow({ id })), rowCount: 3 });

    const page = await listUsers({ limit: 2 });

    expect(query.mock.calls[0]?.[1]).toEqual([3]);
    expect(sqlOf(query, 0)).toContain('ORDER BY created_at DESC, id DESC');
    expect(page.data.map((user) => user.id)).toEqual(['a', 'b']);
    expect(page.next_cursor).toBe(encodeCursor('b'));
  });

  it('when a cursor is given, then rows start strictly after that user', async () => {
    query.mockResolvedValueOnce({ rows: [userRow()], rowCount: 1 });

    const page = await listUsers({ limit: 5, cursor: encodeCursor(USER) });

    expect(query.mock.calls[0]?.[1]).toEqual([6, USER]);
    expect(sqlOf(query, 0)).toContain('(created_at, id) < (SELECT created_at, id FROM users WHERE id = $2)');
    expect(page.next_cursor).toBeNull();
  });

  it('when the cursor is garbage, then validation_error naming cursor', async () => {
    await expect(listUsers({ limit: 5, cursor: 'xyz' })).rejects.toMatchObject({
      code: 'validation_error',
      details: [{ path: 'cursor', message: expect.any(String) }],
    });
    expect(query).not.toHaveBeenCalled();
  });
});

describe('createApiKey', () => {
  it('when the user exists, then a new key whose hash is stored and whose plain form is returned once', async () => {
    txQuery.mockResolvedValueOnce({ rows: [userRow()], rowCount: 1 }).mockResolvedValueOnce({ rows: [keyRow], rowCount: 1 });

    const issued = await createApiKey(USER);

    expect(issued).toEqual({ id: KEY, apiKey: expect.stringMatching(/^mca_[A-Za-z0-9_-]{43}$/) });
    expect((txQuery.mock.calls[1]?.[1] as string[])[1]).toBe(hashApiKey(issued.apiKey));
    // Hinted live for the rate limiter only after the commit.
    expect(markApiKeyLive).toHaveBeenCalledWith(hashApiKey(issued.apiKey));
  });

  it('when the user does not exist, then not_found and no key', async () => {
    txQuery.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(createApiKey(USER)).rejects.toMatchObject({ code: 'not_found' });
    expect(txQuery).toHaveBeenCalledTimes(1);
  });
});

describe('revokeApiKey', () => {
  it("when the tenant has that key, then it is revoked, scoped by the tenant's id, and forgotten everywhere", async () => {
    query.mockResolvedValueOnce({ rows: [{ keyHash: 'hash-of-the-key' }], rowCount: 1 });
    await expect(revokeApiKey(USER, KEY)).resolves.toBeUndefined();
    expect(query.mock.calls[0]?.[1]).toEqual([USER, KEY]);
    // The cached lookup is invalidated in every process; its guesses count against the address.
    expect(forgetApiKey).toHaveBeenCalledWith('hash-of-the-key');
  });

  it('when the key was already revoked, then it succeeds again and is forgotten again (a retry after a failed invalidation)', async () => {
    query.mockResolvedValueOnce({ rows: [{ keyHash: 'hash-of-the-key' }], rowCount: 1 });
    await expect(revokeApiKey(USER, KEY)).resolves.toBeUndefined();
    expect(forgetApiKey).toHaveBeenCalledWith('hash-of-the-key');
  });

  it('when the cache cannot be told, then the revoke answers unavailable so it is retried', async () => {
    query.mockResolvedValueOnce({ rows: [{ keyHash: 'hash-of-the-key' }], rowCount: 1 });
    jest.mocked(forgetApiKey).mockRejectedValueOnce(Object.assign(new Error('down'), { code: 'unavailable' }));
    await expect(revokeApiKey(USER, KEY)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('when the tenant has no such key, then not_found and nothing is forgotten', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });
    await expect(revokeApiKey(USER, KEY)).rejects.toMatchObject({ code: 'not_found' });
    expect(forgetApiKey).not.toHaveBeenCalled();
  });
});
