/**
 * The inbox model's own mapping, with a fake database: how a batch's rows map back to its
 * items, that it sends the stored event shape as is, and how a failed batch is retried item by item. What the
 * statements do runs against Postgres in tests/integration/inbox.test.ts.
 */
import { acceptCustomerMessages, type InboxEvent } from '../../../src/models/Inbox';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, fakeQueryable, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const USER = '11111111-1111-4111-8111-111111111111';
const NUMBER = '44444444-4444-4444-8444-444444444444';
const at = new Date('2025-03-04T05:06:07Z');

const fields: InboxEvent = {
  channel: 'whatsapp',
  account_id: 'PNID-1',
  customer_id: '15550001111',
  customer_name: 'Ana',
  external_id: 'wamid.A',
  type: 'text',
  text: 'hello',
  payload: { media: { id: 'M' } },
  timestamp: at.toISOString(),
  answerable: true,
};

const accepted = (ordinal: number, customerId = '15550001111') => ({ ordinal: String(ordinal), outcome: 'accepted', userId: USER, phoneNumberId: NUMBER, customerId, hasAgent: true });

beforeEach(() => resetFakeDatabase(fake));

describe('acceptCustomerMessages', () => {
  it('when a batch is accepted, then its items go as one JSON array in snake_case and rows come back in item order, whatever order they arrive in', async () => {
    answer(fake.db, [
      { ordinal: '3', outcome: 'unknown_account', userId: null, phoneNumberId: null, customerId: 'C3', hasAgent: null },
      accepted(1),
      { ordinal: '2', outcome: 'duplicate', userId: USER, phoneNumberId: NUMBER, customerId: '15550001111', hasAgent: false },
    ]);

    const results = await acceptCustomerMessages([fields, { ...fields, external_id: 'wamid.B' }, { ...fields, account_id: 'nobody', customer_id: 'C3' }]);

    expect(fake.db.query).toHaveBeenCalledTimes(1);
    const items = JSON.parse(paramsOf(fake.db)[0] as string);
    expect(items[0]).toEqual({
      channel: 'whatsapp',
      account_id: 'PNID-1',
      customer_id: '15550001111',
      customer_name: 'Ana',
      external_id: 'wamid.A',
      type: 'text',
      text: 'hello',
      payload: { media: { id: 'M' } },
      timestamp: '2025-03-04T05:06:07.000Z',
      answerable: true,
    });
    expect(results).toEqual([
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: true },
      { outcome: 'duplicate', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: false },
      { outcome: 'unknown_account', key: null, hasAgent: false },
    ]);
  });

  it('when a batch fails as a whole, then each item is tried alone and only the failing one carries the error', async () => {
    const refused = new Error('value too long');
    answer(fake.db, refused, [accepted(1)], refused, [accepted(1, 'C3')]);

    const results = await acceptCustomerMessages([fields, { ...fields, external_id: 'wamid.B' }, { ...fields, customer_id: 'C3' }]);

    expect(fake.db.query).toHaveBeenCalledTimes(4);
    expect(JSON.parse(paramsOf(fake.db, 2)[0] as string)).toEqual([expect.objectContaining({ external_id: 'wamid.B' })]);
    expect(results).toEqual([
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: true },
      refused,
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: 'C3' }, hasAgent: true },
    ]);
  });

  it('when a single item fails, then its error comes back without a second try', async () => {
    const down = new Error('Connection terminated');
    answer(fake.db, down);

    await expect(acceptCustomerMessages([fields])).resolves.toEqual([down]);
    expect(fake.db.query).toHaveBeenCalledTimes(1);
  });

  it('when a client is given, then the statement runs on it and not on the pool', async () => {
    const tx = fakeQueryable();
    answer(tx, [accepted(1)]);

    await acceptCustomerMessages([fields], tx);

    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(fake.db.query).not.toHaveBeenCalled();
  });
});
