/**
 * The endpoint model with a fake database: tenant first on every statement, and rows mapped as
 * the service expects. What the statements do runs against Postgres in
 * tests/integration/tenantEvents.test.ts.
 */
import {
  deleteEndpoint,
  findEndpoint,
  insertEndpoint,
  listDeliveries,
  listEndpoints,
  redeliver,
  replaceSecret,
} from '../../../src/models/WebhookEndpoint';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const ENDPOINT = '99999999-9999-4999-8999-999999999991';
const DELIVERY = '99999999-9999-4999-8999-999999999992';

beforeEach(() => resetFakeDatabase(fake));

describe('every tenant-owned statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertEndpoint', call: (c) => insertEndpoint(USER, { id: ENDPOINT, url: 'https://x.example/', events: ['credits.low'], secretEncrypted: 'v2:x' }, c), rows: [{}] },
    { name: 'findEndpoint', call: (c) => findEndpoint(USER, ENDPOINT, c) },
    { name: 'listEndpoints', call: (c) => listEndpoints(USER, { limit: 5, afterId: ENDPOINT }, c) },
    { name: 'deleteEndpoint', call: (c) => deleteEndpoint(USER, ENDPOINT, c) },
    { name: 'replaceSecret', call: (c) => replaceSecret(USER, ENDPOINT, 'v2:y', 1000, c) },
    { name: 'listDeliveries', call: (c) => listDeliveries(USER, ENDPOINT, { limit: 5, afterSeq: 9 }, c) },
    { name: 'redeliver', call: (c) => redeliver(USER, ENDPOINT, DELIVERY, c) },
  ]);
});

describe('listDeliveries', () => {
  it('when Postgres hands seq back as text (bigint), then it comes back a number, with one extra row asked for', async () => {
    answer(fake.db, [{ id: DELIVERY, seq: '42', createdAt: AT }]);
    await expect(listDeliveries(USER, ENDPOINT, { limit: 5 })).resolves.toEqual([{ id: DELIVERY, seq: 42, createdAt: AT }]);
    expect(paramsOf(fake.db)).toEqual([USER, ENDPOINT, 6]);
  });
});

describe('deleteEndpoint and redeliver', () => {
  it('when nothing matches, then false and null come back', async () => {
    answer(fake.db, { rows: [], rowCount: 0 }, []);
    await expect(deleteEndpoint(USER, ENDPOINT)).resolves.toBe(false);
    await expect(redeliver(USER, ENDPOINT, DELIVERY)).resolves.toBeNull();
  });
});
