/**
 * One delivery attempt, with the models and the network edge mocked: what is posted and
 * signed, and how each outcome is recorded.
 */
import * as deliveries from '../../../src/models/WebhookDelivery';
import type { DeliveryClaim } from '../../../src/models/WebhookDelivery';
import * as urlSafety from '../../../src/utils/urlSafety';
import { attemptDelivery, eventBody, retryDelayMs, type DeliveryPolicy } from '../../../src/services/eventDeliveryService';
import { secretContext } from '../../../src/services/webhookEndpointService';
import { encryptSecret } from '../../../src/utils/encryption';
import { logger } from '../../../src/utils/logger';
import { AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/models/WebhookDelivery');
jest.mock('../../../src/utils/urlSafety', () => ({ ...jest.requireActual('../../../src/utils/urlSafety'), postToAddress: jest.fn() }));
const model = jest.mocked(deliveries);
const post = jest.mocked(urlSafety.postToAddress);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyWebhook } = require('../../../documentation/examples/verify-webhook.js') as { verifyWebhook: (b: string, h: string, s: string) => boolean };

const ENDPOINT = '99999999-9999-4999-8999-999999999991';
const claim: DeliveryClaim = { id: 'd1', userId: USER, endpointId: ENDPOINT, eventId: 'e1', attempts: 0, giveUpAt: AT, leaseToken: 't' };
const event = { id: 'e1', type: 'credits.low', createdAt: AT, data: { credit_balance: 5 } };
const policy: DeliveryPolicy = {
  timeoutMs: 10_000,
  firstRetryMs: 5_000,
  maxRetryMs: 3_600_000,
  disableAfterMs: 86_400_000,
  urlPolicy: { requireHttps: false, allowPrivate: true },
  random: () => 0.5,
};

beforeEach(() => {
  jest.resetAllMocks();
  model.loadDeliveryWork.mockResolvedValue({
    url: 'http://127.0.0.1:9/hook',
    secretEncrypted: encryptSecret('s3cret', secretContext(ENDPOINT)),
    previousSecretEncrypted: null,
    event,
  });
});

describe('retryDelayMs', () => {
  it('when attempts fail, then the wait starts near 5 s, doubles, has jitter, and never passes 1 h', () => {
    const at = (failures: number, random = 0.5) => retryDelayMs(failures, { ...policy, random: () => random });
    expect([1, 2, 3, 4].map((n) => at(n))).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(at(1, 0)).toBe(4_000);
    expect(at(1, 1)).toBe(6_000);
    expect(at(20)).toBe(3_600_000);
    expect(at(500)).toBe(3_600_000);
  });
});

describe('attemptDelivery', () => {
  it('when the endpoint answers 2xx, then the signed body is what was posted and the delivery is recorded delivered', async () => {
    post.mockResolvedValue({ status: 204 });
    model.recordDelivered.mockResolvedValue(true);
    await expect(attemptDelivery(claim, policy, logger)).resolves.toBe('delivered');
    const [, address, headers, body, timeout] = post.mock.calls[0]!;
    expect(address).toEqual({ address: '127.0.0.1', family: 4 });
    expect(body).toBe(eventBody(event));
    expect(JSON.parse(body)).toEqual({ id: 'e1', type: 'credits.low', created_at: AT.toISOString(), data: { credit_balance: 5 } });
    expect(headers).toMatchObject({ 'X-Event-Id': 'e1', 'X-Event-Type': 'credits.low', 'Content-Type': 'application/json' });
    expect(verifyWebhook(body, headers['X-Signature']!, 's3cret')).toBe(true);
    expect(timeout).toBeGreaterThan(9_000);
    expect(timeout).toBeLessThanOrEqual(10_000);
    expect(model.recordDelivered).toHaveBeenCalledWith(claim, 204);
  });

  it('when the endpoint answers 500, then the next attempt is about 5 s later', async () => {
    post.mockResolvedValue({ status: 500 });
    model.recordFailedAttempt.mockResolvedValue({ status: 'pending', endpointDisabled: false });
    const before = Date.now();
    await expect(attemptDelivery(claim, policy, logger)).resolves.toBe('retrying');
    const [, attempt] = model.recordFailedAttempt.mock.calls[0]!;
    expect(attempt).toMatchObject({ statusCode: 500, error: 'the endpoint answered 500' });
    expect(attempt.nextAttemptAt!.getTime() - before).toBeGreaterThanOrEqual(5_000);
    expect(attempt.nextAttemptAt!.getTime() - before).toBeLessThan(6_000);
  });

  it('when the URL now resolves to a private address, then nothing is posted and the reason is recorded', async () => {
    model.recordFailedAttempt.mockResolvedValue({ status: 'pending', endpointDisabled: false });
    await attemptDelivery(claim, { ...policy, urlPolicy: { requireHttps: false, allowPrivate: false } }, logger);
    expect(post).not.toHaveBeenCalled();
    expect(model.recordFailedAttempt.mock.calls[0]![1]).toMatchObject({ statusCode: null, error: 'resolves to a private, loopback or link-local address' });
  });

  it('when the failure disables the endpoint, then its pending deliveries fail with the reason', async () => {
    post.mockRejectedValue(new Error('connect ECONNREFUSED'));
    model.recordFailedAttempt.mockResolvedValue({ status: 'failed', endpointDisabled: true });
    await expect(attemptDelivery(claim, policy, logger)).resolves.toBe('failed');
    expect(model.failPendingDeliveries).toHaveBeenCalledWith(USER, ENDPOINT, expect.stringContaining('connect ECONNREFUSED'));
  });

  it('when DNS does not answer within the timeout, then nothing is posted and the attempt says so', async () => {
    model.loadDeliveryWork.mockResolvedValue({ url: 'http://slow-dns.example/hook', secretEncrypted: encryptSecret('s', secretContext(ENDPOINT)), previousSecretEncrypted: null, event });
    model.recordFailedAttempt.mockResolvedValue({ status: 'pending', endpointDisabled: false });
    const never = () => new Promise<never>(() => undefined);
    await expect(attemptDelivery(claim, { ...policy, timeoutMs: 30, resolve: never }, logger)).resolves.toBe('retrying');
    expect(post).not.toHaveBeenCalled();
    expect(model.recordFailedAttempt.mock.calls[0]![1]).toMatchObject({ statusCode: null, error: 'timed out after 30 ms resolving the host' });
  });

  it('when the endpoint was deleted meanwhile, then nothing is posted', async () => {
    model.loadDeliveryWork.mockResolvedValue(null);
    await expect(attemptDelivery(claim, policy, logger)).resolves.toBe('gone');
    expect(post).not.toHaveBeenCalled();
  });
});
