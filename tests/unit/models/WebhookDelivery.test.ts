/**
 * The dispatcher's delivery model with a fake database: tenant first where a claim names its
 * tenant, the lease token on every write, and the answers mapped. The queue's behaviour
 * (heads only, per-endpoint cap, leases) runs against Postgres in tests/integration/tenantEvents.test.ts.
 */
import {
  claimDueDeliveries,
  failPendingDeliveries,
  loadDeliveryWork,
  recordDelivered,
  recordFailedAttempt,
  type DeliveryClaim,
} from '../../../src/models/WebhookDelivery';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const claim: DeliveryClaim = {
  id: '99999999-9999-4999-8999-999999999992',
  userId: USER,
  endpointId: '99999999-9999-4999-8999-999999999991',
  eventId: '99999999-9999-4999-8999-999999999993',
  attempts: 2,
  giveUpAt: AT,
  leaseToken: 'lease-1',
};

beforeEach(() => resetFakeDatabase(fake));

describe('every tenant-owned statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'loadDeliveryWork', call: (c) => loadDeliveryWork(claim, c) },
    { name: 'recordDelivered', call: (c) => recordDelivered(claim, 200, c) },
    { name: 'recordFailedAttempt', call: (c) => recordFailedAttempt(claim, { statusCode: 500, error: 'x', nextAttemptAt: AT, disableAfterMs: 1 }, c) },
    { name: 'failPendingDeliveries', call: (c) => failPendingDeliveries(USER, claim.endpointId, 'disabled', c) },
  ]);
});

describe('claimDueDeliveries', () => {
  it('when claiming, then the limit, the per-endpoint cap, the lease and its token are sent, and the claims come back', async () => {
    answer(fake.db, [claim]);
    await expect(claimDueDeliveries({ limit: 8, perEndpoint: 2, leaseMs: 15_000, leaseToken: 'lease-1' })).resolves.toEqual([claim]);
    expect(paramsOf(fake.db)).toEqual([8, 2, 15_000, 'lease-1']);
  });
});

describe('recording attempts', () => {
  it('when the lease was lost, then a success is false and a failure null', async () => {
    answer(fake.db, { rows: [], rowCount: 0 }, []);
    await expect(recordDelivered(claim, 200)).resolves.toBe(false);
    await expect(recordFailedAttempt(claim, { statusCode: null, error: 'refused', nextAttemptAt: AT, disableAfterMs: 1 })).resolves.toBeNull();
  });

  it('when a failure is recorded, then a long error is cut to 500 characters and the lease token guards the write', async () => {
    answer(fake.db, [{ status: 'pending', endpointDisabled: false }]);
    await expect(recordFailedAttempt(claim, { statusCode: 502, error: 'e'.repeat(900), nextAttemptAt: AT, disableAfterMs: 5 })).resolves.toEqual({
      status: 'pending',
      endpointDisabled: false,
    });
    expect(paramsOf(fake.db)).toEqual([USER, claim.id, 'lease-1', 502, 'e'.repeat(500), AT, 5]);
  });

  it('when the endpoint was deleted, then there is no work', async () => {
    answer(fake.db, []);
    await expect(loadDeliveryWork(claim)).resolves.toBeNull();
  });
});
