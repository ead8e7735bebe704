/**
 * The API key model with a fake database: keys are random and stored as hashes only, lookups go
 * by hash, and tenant-owned statements carry the tenant first. What the statements do runs
 * against Postgres in tests/integration/users.test.ts and tenancy.test.ts.
 */
import { createHash } from 'node:crypto';
import { findActiveKeyByHash, findApiKey, generateApiKey, hashApiKey, insertApiKey, revokeApiKey } from '../../../src/models/ApiKey';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, fakeQueryable, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { API_KEY, AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const stored = { id: API_KEY, userId: USER, keyPrefix: 'mca_abcdefgh', createdAt: AT, revokedAt: null };

beforeEach(() => resetFakeDatabase(fake));

describe('generateApiKey', () => {
  it('when a key is generated, then it is mca_ and 32 random bytes, with its SHA-256 hash and its first 12 characters', () => {
    const { key, hash, prefix } = generateApiKey();

    expect(key).toMatch(/^mca_[A-Za-z0-9_-]{43}$/);
    expect(hash).toBe(createHash('sha256').update(key).digest('hex'));
    expect(prefix).toBe(key.slice(0, 12));
  });

  it('when two keys are generated, then they differ', () => {
    expect(generateApiKey().key).not.toBe(generateApiKey().key);
  });
});

describe('hashApiKey', () => {
  it('when the same key is hashed twice, then the hash is the same hex digest, so it can be looked up', () => {
    expect(hashApiKey('mca_x')).toBe(hashApiKey('mca_x'));
    expect(hashApiKey('mca_x')).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey('mca_x')).not.toBe(hashApiKey('mca_y'));
  });
});

describe('every tenant-owned statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertApiKey', call: (client) => insertApiKey(USER, 'hash', 'mca_abcdefgh', client), rows: [stored] },
    { name: 'revokeApiKey', call: (client) => revokeApiKey(USER, API_KEY, client) },
    { name: 'findApiKey', call: (client) => findApiKey(USER, API_KEY, client) },
  ]);
});

describe('insertApiKey', () => {
  it('when a key is stored, then only its hash and prefix are sent, never the key, and the stored row comes back', async () => {
    const { key, hash, prefix } = generateApiKey();
    answer(fake.db, [stored]);

    await expect(insertApiKey(USER, hash, prefix)).resolves.toEqual(stored);
    expect(paramsOf(fake.db)).toEqual([USER, hash, prefix]);
    expect(JSON.stringify(fake.db.query.mock.calls)).not.toContain(key);
  });
});

describe('findActiveKeyByHash', () => {
  it('when a live key has the hash, then its id and tenant come back', async () => {
    answer(fake.db, [{ id: API_KEY, userId: USER }]);

    await expect(findActiveKeyByHash('hash')).resolves.toEqual({ id: API_KEY, userId: USER });
    expect(paramsOf(fake.db)).toEqual(['hash']);
  });

  it('when no live key has the hash, then it is null', async () => {
    await expect(findActiveKeyByHash('hash')).resolves.toBeNull();
  });

  it('when a client is given, then the lookup runs on it', async () => {
    const client = fakeQueryable();

    await findActiveKeyByHash('hash', client);

    expect(client.query).toHaveBeenCalledTimes(1);
    expect(fake.db.query).not.toHaveBeenCalled();
  });
});

describe('revokeApiKey', () => {
  it("when the tenant has the key, live or already revoked, then its hash comes back (for invalidation), scoped by the tenant", async () => {
    answer(fake.db, { rows: [{ keyHash: 'hash-of-the-key' }], rowCount: 1 });

    await expect(revokeApiKey(USER, API_KEY)).resolves.toEqual({ keyHash: 'hash-of-the-key' });
    expect(paramsOf(fake.db)).toEqual([USER, API_KEY]);
  });

  it('when the tenant has no such key, then null', async () => {
    await expect(revokeApiKey(USER, API_KEY)).resolves.toBeNull();
  });
});

describe('findApiKey', () => {
  it('when the tenant has the key, live or revoked, then it comes back without its hash', async () => {
    const revoked = { ...stored, revokedAt: AT };
    answer(fake.db, [revoked]);

    await expect(findApiKey(USER, API_KEY)).resolves.toEqual(revoked);
    expect(paramsOf(fake.db)).toEqual([USER, API_KEY]);
  });

  it('when the tenant has no such key, then it is null', async () => {
    await expect(findApiKey(USER, API_KEY)).resolves.toBeNull();
  });
});
