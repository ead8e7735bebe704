/**
 * The event worker with its edges mocked (the claim, the attempt, heartbeats): it attempts what
 * it claims, never holds more than `concurrency` posts at once, passes its lease and per-endpoint
 * cap to the claim, and drains on close.
 */
import * as deliveries from '../../../src/models/WebhookDelivery';
import * as deliveryService from '../../../src/services/eventDeliveryService';
import type { DeliveryClaim } from '../../../src/models/WebhookDelivery';
import { publishHeartbeat } from '../../../src/workers/heartbeat';
import { EventWorker } from '../../../src/workers/eventWorker';
import { AT } from '../../fixtures/rows';

jest.mock('../../../src/models/WebhookDelivery');
jest.mock('../../../src/services/eventDeliveryService', () => ({
  ...jest.requireActual('../../../src/services/eventDeliveryService'),
  attemptDelivery: jest.fn(),
}));
jest.mock('../../../src/workers/heartbeat');

const models = jest.mocked(deliveries);
const attempt = jest.mocked(deliveryService.attemptDelivery);

const claimOf = (n: number): DeliveryClaim => ({ id: `d${n}`, userId: 'u', endpointId: 'e', eventId: `ev${n}`, attempts: 0, giveUpAt: AT, leaseToken: 't' });

const workers: EventWorker[] = [];
beforeEach(() => {
  jest.resetAllMocks();
  jest.mocked(publishHeartbeat).mockResolvedValue(undefined);
  models.claimDueDeliveries.mockResolvedValue([]);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
});

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

describe('EventWorker', () => {
  it('when deliveries are due, then each is attempted once, with the lease and per-endpoint cap passed to the claim', async () => {
    models.claimDueDeliveries.mockResolvedValueOnce([claimOf(1), claimOf(2)]).mockResolvedValue([]);
    attempt.mockResolvedValue('delivered');
    const worker = new EventWorker({ pollIntervalMs: 10, concurrency: 5, perEndpoint: 3, leaseMs: 20_000 });
    workers.push(worker);
    await worker.start();
    await until(() => attempt.mock.calls.length === 2);
    expect(attempt.mock.calls.map(([claim]) => claim.id)).toEqual(['d1', 'd2']);
    expect(models.claimDueDeliveries.mock.calls[0]![0]).toMatchObject({ limit: 5, perEndpoint: 3, leaseMs: 20_000 });
  });

  it('when posts hang, then no more than `concurrency` are claimed, and close waits for them', async () => {
    let release!: () => void;
    const hanging = new Promise<'delivered'>((resolve) => (release = () => resolve('delivered')));
    let n = 0;
    models.claimDueDeliveries.mockImplementation(async ({ limit }) => Array.from({ length: limit }, () => claimOf(++n)));
    attempt.mockReturnValue(hanging);
    const worker = new EventWorker({ pollIntervalMs: 10, concurrency: 3 });
    workers.push(worker);
    await worker.start();
    await until(() => worker.inFlightCount === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(attempt).toHaveBeenCalledTimes(3);

    let closed = false;
    const closing = worker.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(worker.inFlightCount).toBe(0);
  });

  it('when recording an attempt throws, then the worker goes on with the next deliveries', async () => {
    models.claimDueDeliveries.mockResolvedValueOnce([claimOf(1)]).mockResolvedValueOnce([claimOf(2)]).mockResolvedValue([]);
    attempt.mockRejectedValueOnce(new Error('database gone')).mockResolvedValue('delivered');
    const worker = new EventWorker({ pollIntervalMs: 10 });
    workers.push(worker);
    await worker.start();
    await until(() => attempt.mock.calls.length === 2);
    expect(attempt.mock.calls[1]![0].id).toBe('d2');
  });
});
