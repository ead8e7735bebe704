/**
 * applyOutboundStatus and settlePartByStatus with a fake database: what goes to the driver and
 * how its answer is read. What the statements move runs against Postgres in
 * tests/integration/inbox.test.ts and tests/integration/sendInDoubt.test.ts.
 */
import { applyOutboundStatus, settlePartByStatus } from '../../../src/models/OutboundStatus';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

beforeEach(() => resetFakeDatabase(fake));

describe('applyOutboundStatus', () => {
  it('when the driver reports a null rowCount, then false', async () => {
    answer(fake.db, { rows: [], rowCount: null });

    expect(await applyOutboundStatus('whatsapp', 'wamid.X', 'delivered', null)).toBe(false);
  });
});

describe('settlePartByStatus', () => {
  it('when a failed status names a part, then the number it came for, the part, Meta\'s id, the status and its error go to settle_part_by_status', async () => {
    answer(fake.db, [{ settled: true }]);

    const settled = await settlePartByStatus('whatsapp', 'PNID-1', { messageId: 'm', partNo: 1 }, 'wamid.X', 'failed', { code: '131026', message: 'Undeliverable' });

    expect(settled).toBe(true);
    expect(paramsOf(fake.db)).toEqual(['whatsapp', 'PNID-1', 'm', 1, 'wamid.X', 'failed', '131026', 'Undeliverable']);
  });

  it('when no part waits for it, then false, and a status without error sends nulls', async () => {
    answer(fake.db, [{ settled: false }]);

    expect(await settlePartByStatus('whatsapp', 'PNID-1', { messageId: 'm', partNo: 0 }, 'wamid.X', 'read', null)).toBe(false);
    expect(paramsOf(fake.db).slice(6)).toEqual([null, null]);
  });
});
