/**
 * applyOutboundStatus with a fake database: a driver that reports no row count. What the
 * statement moves runs against Postgres in tests/integration/inbox.test.ts.
 */
import { applyOutboundStatus } from '../../../src/models/OutboundStatus';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

beforeEach(() => resetFakeDatabase(fake));

describe('applyOutboundStatus', () => {
  it('when the driver reports a null rowCount, then false', async () => {
    answer(fake.db, { rows: [], rowCount: null });

    expect(await applyOutboundStatus('whatsapp', 'wamid.X', 'delivered', null)).toBe(false);
  });
});
