/**
 * Key rotation with the database faked: the fake database answers the phone-number model's two
 * statements from a small in-memory table of stored tokens (list what is not under the current
 * key, in id order, after a cursor, up to a limit; replace a token only if it still holds what
 * was read), so these tests see what rotation leaves stored, not how it asks. The real
 * encryption runs, in a registry whose config has rotated: a new ENCRYPTION_KEY, the old one in
 * ENCRYPTION_KEYS_PREVIOUS. The same against Postgres, with the product running, is
 * tests/integration/keyRotation.test.ts.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { loadWithEnv } from '../../fixtures/isolatedModules';
import type { FakeDatabase } from '../../fixtures/fakeDatabase';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());
// Each rotated number's cached turn entry is forgotten (the cache's edge; tests/unit/services/cachedLookups.test.ts).
jest.mock('../../../src/services/cachedLookups', () => ({ forgetTurnNumbers: jest.fn(async () => undefined) }));

const OLD_KEY = randomBytes(32);
const NEW_KEY = randomBytes(32);
const UNKNOWN_KEY = randomBytes(32);

/* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
const rotated = loadWithEnv({ ENCRYPTION_KEY: NEW_KEY.toString('hex'), ENCRYPTION_KEYS_PREVIOUS: OLD_KEY.toString('hex') }, () => ({
  rotation: require('../../../src/services/keyRotation') as typeof import('../../../src/services/keyRotation'),
  encryption: require('../../../src/utils/encryption') as typeof import('../../../src/utils/encryption'),
  phoneNumbers: require('../../../src/models/PhoneNumber') as typeof import('../../../src/models/PhoneNumber'),
  database: require('../../../src/utils/database') as FakeDatabase,
  lookups: require('../../../src/services/cachedLookups') as { forgetTurnNumbers: jest.Mock },
}));
/* eslint-enable @typescript-eslint/no-require-imports */

const { rotateAccessTokens } = rotated.rotation;
const { currentPrefix, decryptSecret, encryptSecret } = rotated.encryption;
const { accessTokenContext } = rotated.phoneNumbers;

/** Ids in the order Postgres's ORDER BY id gives them. */
const ids = Array.from({ length: 7 }, (_, i) => `00000000-0000-4000-8000-00000000000${i + 1}`);

/** The phone_numbers table as rotation sees it: id → stored access token. */
let table: Map<string, string>;
/** Runs once, right after the next listing is answered (between rotation's read and its write). */
let afterNextListing: (() => void) | undefined;
/** The limits rotation asked its listings for. */
let listingLimits: number[];

/** The v1 form earlier releases stored: no key id, no row binding. */
function legacyV1(plain: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':');
}

const underOld = (id: string, plain: string) => encryptSecret(plain, accessTokenContext(id), OLD_KEY);
const underNew = (id: string, plain: string) => encryptSecret(plain, accessTokenContext(id), NEW_KEY);
const plainOf = (id: string) => decryptSecret(table.get(id)!, accessTokenContext(id), [NEW_KEY]);
const isUnderNewKey = (id: string) => table.get(id)!.startsWith(currentPrefix(NEW_KEY));

/**
 * Answers the model's statements from `table`, told apart by their parameters: the listing
 * takes (after id, prefix, limit), the compare-and-set takes three arrays.
 */
function serveTable(_text: string, params: unknown[] = []): Promise<{ rows: unknown[]; rowCount: number }> {
  if (Array.isArray(params[0])) {
    const [rowIds, expected, replacements] = params as [string[], string[], string[]];
    const replaced = rowIds.filter((id, i) => {
      if (table.get(id) !== expected[i]) return false;
      table.set(id, replacements[i]!);
      return true;
    });
    return Promise.resolve({ rows: replaced.map((id) => ({ id, userId: `tenant-of-${id}` })), rowCount: replaced.length });
  }
  const [afterId, prefix, limit] = params as [string | null, string, number];
  listingLimits.push(limit);
  const rows = [...table.entries()]
    .filter(([id, encrypted]) => (afterId === null || id > afterId) && !encrypted.startsWith(prefix))
    .sort(([a], [b]) => a.localeCompare(b))
    .slice(0, limit)
    .map(([id, encrypted]) => ({ id, encrypted }));
  const hook = afterNextListing;
  afterNextListing = undefined;
  hook?.();
  return Promise.resolve({ rows, rowCount: rows.length });
}

beforeEach(() => {
  table = new Map();
  listingLimits = [];
  afterNextListing = undefined;
  rotated.database.db.query.mockReset().mockImplementation(serveTable);
});

describe('rotateAccessTokens', () => {
  it('when tokens are under the previous key, as v2 and in the v1 form, then each ends under the current key with the same plain token, bound to its row', async () => {
    table.set(ids[0]!, underOld(ids[0]!, 'token-zero'));
    table.set(ids[1]!, legacyV1('token-one', OLD_KEY));
    table.set(ids[2]!, legacyV1('token-two', NEW_KEY));

    const progress = await rotateAccessTokens();

    expect(progress).toEqual({ scanned: 3, rotated: 3, changedMeanwhile: 0, undecryptable: [] });
    expect(ids.slice(0, 3).every(isUnderNewKey)).toBe(true);
    expect(ids.slice(0, 3).map(plainOf)).toEqual(['token-zero', 'token-one', 'token-two']);
    // Bound to its row: the value fails in another row's place.
    expect(() => decryptSecret(table.get(ids[0]!)!, accessTokenContext(ids[1]!), [NEW_KEY])).toThrow(rotated.encryption.SecretDecryptionError);
  });

  it('when tokens are rotated, then each rotated number\'s cached turn entry is forgotten, batch by batch', async () => {
    rotated.lookups.forgetTurnNumbers.mockClear();
    table.set(ids[0]!, underOld(ids[0]!, 'a'));
    table.set(ids[1]!, underNew(ids[1]!, 'b'));

    await rotateAccessTokens();

    expect(rotated.lookups.forgetTurnNumbers).toHaveBeenCalledWith([{ id: ids[0], userId: `tenant-of-${ids[0]}` }]);
  });

  it('when a token is already under the current key, then it is left exactly as stored and not counted', async () => {
    const current = underNew(ids[0]!, 'fresh');
    table.set(ids[0]!, current);
    table.set(ids[1]!, underOld(ids[1]!, 'stale'));

    const progress = await rotateAccessTokens();

    expect(table.get(ids[0]!)).toBe(current);
    expect(progress).toMatchObject({ scanned: 1, rotated: 1 });
  });

  it('when there are more tokens than a batch, then it goes batch by batch, reporting the running totals after each, until none is left', async () => {
    for (const id of ids) table.set(id, underOld(id, `token-${id}`));
    const reports: unknown[] = [];

    const progress = await rotateAccessTokens({ batchSize: 3, onBatch: (p) => reports.push({ ...p }) });

    expect(reports).toEqual([
      { scanned: 3, rotated: 3, changedMeanwhile: 0, undecryptable: [] },
      { scanned: 6, rotated: 6, changedMeanwhile: 0, undecryptable: [] },
      { scanned: 7, rotated: 7, changedMeanwhile: 0, undecryptable: [] },
    ]);
    expect(progress).toEqual(reports.at(-1));
    expect(listingLimits.every((limit) => limit === 3)).toBe(true);
    expect(ids.every(isUnderNewKey)).toBe(true);
    expect(ids.map(plainOf)).toEqual(ids.map((id) => `token-${id}`));
  });

  it('when no batch size is given, then batches of 500', async () => {
    table.set(ids[0]!, underOld(ids[0]!, 'token'));

    await rotateAccessTokens();

    expect(listingLimits[0]).toBe(500);
  });

  it('when nothing is left to rotate, then a run changes nothing and reports no batch', async () => {
    table.set(ids[0]!, underOld(ids[0]!, 'token'));
    await rotateAccessTokens();
    const after = new Map(table);
    const onBatch = jest.fn();

    const progress = await rotateAccessTokens({ onBatch });

    expect(progress).toEqual({ scanned: 0, rotated: 0, changedMeanwhile: 0, undecryptable: [] });
    expect(onBatch).not.toHaveBeenCalled();
    expect(table).toEqual(after);
  });

  it('when a run stopped part way, then the next run takes up what is left and the first batch is not rewritten', async () => {
    for (const id of ids) table.set(id, underOld(id, `token-${id}`));
    const failure = new Error('connection terminated');
    let listings = 0;
    rotated.database.db.query.mockImplementation((text, params = []) => {
      if (!Array.isArray(params[0]) && ++listings === 2) return Promise.reject(failure);
      return serveTable(text, params);
    });

    await expect(rotateAccessTokens({ batchSize: 3 })).rejects.toBe(failure);
    const firstBatch = ids.slice(0, 3).map((id) => table.get(id));
    expect(ids.filter(isUnderNewKey)).toEqual(ids.slice(0, 3));

    rotated.database.db.query.mockImplementation(serveTable);
    const progress = await rotateAccessTokens({ batchSize: 3 });

    expect(progress).toMatchObject({ scanned: 4, rotated: 4 });
    expect(ids.slice(0, 3).map((id) => table.get(id))).toEqual(firstBatch);
    expect(ids.every(isUnderNewKey)).toBe(true);
  });

  it('when a tenant replaces a token between rotation reading and writing it, then the new token is kept, counted as changed meanwhile, and the rest rotate', async () => {
    table.set(ids[0]!, underOld(ids[0]!, 'old-token'));
    table.set(ids[1]!, underOld(ids[1]!, 'other-token'));
    const patched = underNew(ids[0]!, 'patched-token');
    afterNextListing = () => table.set(ids[0]!, patched);

    const progress = await rotateAccessTokens();

    expect(table.get(ids[0]!)).toBe(patched);
    expect(plainOf(ids[0]!)).toBe('patched-token');
    expect(plainOf(ids[1]!)).toBe('other-token');
    expect(progress).toEqual({ scanned: 2, rotated: 1, changedMeanwhile: 1, undecryptable: [] });
  });

  it('when a token decrypts with no configured key, or is not a stored secret at all, then it is left untouched and its id listed, and the others rotate', async () => {
    const foreign = encryptSecret('unknown', accessTokenContext(ids[0]!), UNKNOWN_KEY);
    table.set(ids[0]!, foreign);
    table.set(ids[1]!, underOld(ids[1]!, 'fine'));
    table.set(ids[2]!, 'not-a-secret');
    // Copied from another row: authenticates nowhere but where it was written.
    table.set(ids[3]!, underOld(ids[1]!, 'copied'));

    const progress = await rotateAccessTokens();

    expect(progress).toEqual({ scanned: 4, rotated: 1, changedMeanwhile: 0, undecryptable: [ids[0], ids[2], ids[3]] });
    expect(table.get(ids[0]!)).toBe(foreign);
    expect(table.get(ids[2]!)).toBe('not-a-secret');
    expect(plainOf(ids[1]!)).toBe('fine');
  });

  it('when the database fails, then the error reaches the caller (the script exits non-zero) rather than a partial report', async () => {
    table.set(ids[0]!, underOld(ids[0]!, 'token'));
    const failure = new Error('canceling statement due to statement timeout');
    rotated.database.db.query.mockImplementation((text, params = []) => (Array.isArray(params[0]) ? Promise.reject(failure) : serveTable(text, params)));

    await expect(rotateAccessTokens()).rejects.toBe(failure);
    expect(isUnderNewKey(ids[0]!)).toBe(false);
  });
});
