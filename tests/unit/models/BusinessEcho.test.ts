/**
 * Business echoes with a fake database: how a lost unique race becomes "duplicate" (a race
 * Postgres cannot be made to lose on demand). What ingest_business_echo records runs against
 * Postgres in tests/integration/inbox.test.ts and tests/integration/webhook.test.ts.
 */
import { ingestBusinessEcho } from '../../../src/models/BusinessEcho';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const echo = { channel: 'instagram', account_id: 'IG-1', customer_id: 'IGSID-1', external_id: 'mid.E', type: 'text', text: 'hi', payload: {}, timestamp: '2025-03-04T05:06:07.000Z' };

beforeEach(() => resetFakeDatabase(fake));

describe('ingestBusinessEcho', () => {
  it('when the echo loses a unique race (23505), then the outcome is duplicate', async () => {
    answer(fake.db, Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' }));

    expect(await ingestBusinessEcho(echo, 15_000)).toEqual({ outcome: 'duplicate', userId: null, conversationId: null, messageId: null, status: null });
  });

  it('when any other error occurs, then it is rethrown', async () => {
    answer(fake.db, Object.assign(new Error('check violation'), { code: '23514' }));

    await expect(ingestBusinessEcho(echo, 15_000)).rejects.toThrow('check violation');
  });
});
