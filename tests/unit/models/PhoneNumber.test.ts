/**
 * The phone number model with a fake database: what each statement sends (tenant first, the
 * token only ever encrypted, "clear" told apart from "not given"), what comes back, how the one
 * cross-tenant lookup is keyed, and that the stored token is decrypted on the way out. What the
 * statements do runs against Postgres in tests/integration/phoneNumbers.test.ts and linking.test.ts.
 */
import {
  CHANNELS,
  EXTERNAL_ID_UNIQUE_INDEX,
  findLiveByExternalId,
  accessTokenContext,
  findPhoneNumber,
  getAccessToken,
  insertPhoneNumber,
  listPhoneNumbers,
  setPhoneNumberAgent,
  softDeletePhoneNumber,
  unlinkAgentEverywhere,
  updatePhoneNumber,
  type PhoneNumber,
} from '../../../src/models/PhoneNumber';
import * as database from '../../../src/utils/database';
import { encryptSecret, SecretDecryptionError } from '../../../src/utils/encryption';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AGENT, AT, NUMBER, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const number: PhoneNumber = {
  id: NUMBER,
  userId: USER,
  channel: 'whatsapp',
  externalId: 'PNID-1',
  displayName: 'Shop',
  agentId: AGENT,
  createdAt: AT,
  updatedAt: AT,
};
const input = { id: NUMBER, channel: 'whatsapp' as const, externalId: 'PNID-1', displayName: 'Shop', accessTokenEncrypted: 'v1:encrypted' };

beforeEach(() => resetFakeDatabase(fake));

describe('CHANNELS', () => {
  it('when a channel is checked, then WhatsApp and Instagram are the two there are', () => {
    expect(CHANNELS).toEqual(['whatsapp', 'instagram']);
  });
});

describe('every tenant-owned statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertPhoneNumber', call: (client) => insertPhoneNumber(USER, input, client), rows: [number] },
    { name: 'findPhoneNumber', call: (client) => findPhoneNumber(USER, NUMBER, client, { lock: 'update' }) },
    { name: 'listPhoneNumbers', call: (client) => listPhoneNumbers(USER, { limit: 5 }, client) },
    { name: 'updatePhoneNumber', call: (client) => updatePhoneNumber(USER, NUMBER, { displayName: null }, client) },
    { name: 'setPhoneNumberAgent', call: (client) => setPhoneNumberAgent(USER, NUMBER, AGENT, client) },
    { name: 'unlinkAgentEverywhere', call: (client) => unlinkAgentEverywhere(USER, AGENT, client) },
    { name: 'softDeletePhoneNumber', call: (client) => softDeletePhoneNumber(USER, NUMBER, client) },
    { name: 'getAccessToken', call: (client) => getAccessToken(USER, NUMBER, client) },
  ]);
});

describe('insertPhoneNumber', () => {
  it('when a number is registered, then the encrypted token is sent and the row comes back without it', async () => {
    answer(fake.db, [number]);

    await expect(insertPhoneNumber(USER, input)).resolves.toEqual(number);
    expect(paramsOf(fake.db)).toEqual([USER, 'whatsapp', 'PNID-1', 'Shop', 'v1:encrypted', NUMBER]);
  });

  it('when the account is live elsewhere, then the unique violation reaches the caller unchanged, naming the index it maps', async () => {
    const taken = Object.assign(new Error('duplicate key value'), { code: '23505', constraint: EXTERNAL_ID_UNIQUE_INDEX });
    answer(fake.db, taken);

    await expect(insertPhoneNumber(USER, input)).rejects.toBe(taken);
  });
});

describe('findPhoneNumber', () => {
  it('when the tenant has the live number, then it comes back', async () => {
    answer(fake.db, [number]);

    await expect(findPhoneNumber(USER, NUMBER, undefined, { lock: 'share' })).resolves.toEqual(number);
    expect(paramsOf(fake.db)).toEqual([USER, NUMBER]);
  });

  it('when the tenant has no such live number, then it is null', async () => {
    await expect(findPhoneNumber(USER, NUMBER)).resolves.toBeNull();
  });
});

describe('listPhoneNumbers', () => {
  it('when a page is asked for, then the cursor (or null) and one row more than the limit are sent', async () => {
    answer(fake.db, [number]);

    await expect(listPhoneNumbers(USER, { limit: 5, afterId: NUMBER })).resolves.toEqual([number]);
    await listPhoneNumbers(USER, { limit: 1 });

    expect(paramsOf(fake.db, 0)).toEqual([USER, NUMBER, 6]);
    expect(paramsOf(fake.db, 1)).toEqual([USER, null, 2]);
  });
});

describe('updatePhoneNumber', () => {
  it('when the display name is cleared, then "given" is true and the new value null', async () => {
    answer(fake.db, [{ ...number, displayName: null }]);

    await expect(updatePhoneNumber(USER, NUMBER, { displayName: null })).resolves.toMatchObject({ displayName: null });
    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, true, null, null]);
  });

  it('when only the token changes, then the display name is "not given" and the encrypted token is sent', async () => {
    await updatePhoneNumber(USER, NUMBER, { accessTokenEncrypted: 'v1:new' });

    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, false, null, 'v1:new']);
  });

  it('when the tenant has no such live number, then it is null', async () => {
    await expect(updatePhoneNumber(USER, NUMBER, { displayName: 'New' })).resolves.toBeNull();
  });
});

describe('setPhoneNumberAgent', () => {
  it('when a number is unlinked, then null goes as the agent and the row comes back', async () => {
    answer(fake.db, [{ ...number, agentId: null }]);

    await expect(setPhoneNumberAgent(USER, NUMBER, null)).resolves.toMatchObject({ agentId: null });
    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, null]);
  });

  it('when the tenant has no such live number, then it is null', async () => {
    await expect(setPhoneNumberAgent(USER, NUMBER, AGENT)).resolves.toBeNull();
  });
});

describe('unlinkAgentEverywhere', () => {
  it('when the agent was linked to numbers, then those numbers come back with their accounts', async () => {
    const rows = [
      { id: NUMBER, channel: 'whatsapp', externalId: '1555' },
      { id: 'other', channel: 'instagram', externalId: '1789' },
    ];
    answer(fake.db, rows);

    await expect(unlinkAgentEverywhere(USER, AGENT)).resolves.toEqual(rows);
    expect(paramsOf(fake.db)).toEqual([USER, AGENT]);
  });
});

describe('softDeletePhoneNumber', () => {
  it('when a live number is deleted, then it is true', async () => {
    answer(fake.db, { rows: [], rowCount: 1 });

    await expect(softDeletePhoneNumber(USER, NUMBER)).resolves.toBe(true);
  });

  it('when the tenant has no such live number, then it is false', async () => {
    await expect(softDeletePhoneNumber(USER, NUMBER)).resolves.toBe(false);
  });
});

describe('findLiveByExternalId', () => {
  it('when a live number has the account, then its route comes back, looked up by channel and account only', async () => {
    const route = { id: NUMBER, userId: USER, agentId: AGENT, channel: 'instagram', externalId: 'IG-1' };
    answer(fake.db, [route]);

    await expect(findLiveByExternalId('instagram', 'IG-1')).resolves.toEqual(route);
    expect(paramsOf(fake.db)).toEqual(['instagram', 'IG-1']);
  });

  it('when no live number has the account, then it is null', async () => {
    await expect(findLiveByExternalId('whatsapp', 'PNID-9')).resolves.toBeNull();
  });
});

describe('getAccessToken', () => {
  it('when the number is live, then its stored token comes back decrypted', async () => {
    answer(fake.db, [{ encrypted: encryptSecret('EAAG-token', accessTokenContext(NUMBER)) }]);

    await expect(getAccessToken(USER, NUMBER)).resolves.toBe('EAAG-token');
    expect(paramsOf(fake.db)).toEqual([USER, NUMBER]);
  });

  it('when the tenant has no such live number, then it is null', async () => {
    await expect(getAccessToken(USER, NUMBER)).resolves.toBeNull();
  });

  it('when the stored value does not decrypt, then it throws SecretDecryptionError', async () => {
    answer(fake.db, [{ encrypted: 'v1:tampered' }]);

    await expect(getAccessToken(USER, NUMBER)).rejects.toBeInstanceOf(SecretDecryptionError);
  });
});
