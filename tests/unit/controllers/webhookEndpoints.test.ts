/**
 * The webhook-endpoints controller with its service mocked and a stand-in for auth: the JSON
 * shapes (the secret only when created or rotated), statuses, and the 400s and 404s.
 */
import request from 'supertest';
import { webhookEndpointsRouter } from '../../../src/controllers/webhookEndpoints';
import * as service from '../../../src/services/webhookEndpointService';
import type { WebhookDelivery, WebhookEndpoint } from '../../../src/models/WebhookEndpoint';
import { notFound } from '../../../src/utils/errors';
import { AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/webhookEndpointService', () =>
  jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/webhookEndpointService'),
);

const mocked = jest.mocked(service);
const api = request(controllerApp(webhookEndpointsRouter));
const at = AT.toISOString();

const endpoint: WebhookEndpoint = {
  id: SOME_ID,
  userId: TENANT,
  url: 'https://crm.example/hooks',
  events: ['message.received'],
  secretEncrypted: 'v2:secret-never-shown',
  previousSecretEncrypted: null,
  previousSecretExpiresAt: null,
  failingSince: null,
  disabledAt: AT,
  disabledReason: 'failed for a day',
  createdAt: AT,
};
const delivery: WebhookDelivery = {
  id: SOME_ID,
  seq: 4,
  eventId: SOME_ID,
  eventType: 'message.received',
  status: 'failed',
  attempts: 7,
  lastStatusCode: 500,
  lastError: 'the endpoint answered 500',
  nextAttemptAt: null,
  deliveredAt: null,
  createdAt: AT,
};
const endpointJson = {
  id: SOME_ID,
  url: 'https://crm.example/hooks',
  events: ['message.received'],
  status: 'disabled',
  disabled_at: at,
  disabled_reason: 'failed for a day',
  failing_since: null,
  created_at: at,
};

beforeEach(() => jest.clearAllMocks());

describe('POST /v1/webhook-endpoints', () => {
  it('when valid, then 201 with the endpoint and its secret, the encrypted form never', async () => {
    mocked.createEndpoint.mockResolvedValue({ endpoint, secret: 'whsec_abc' });
    const res = await api.post('/v1/webhook-endpoints').set(AS_TENANT).send({ url: 'https://crm.example/hooks', events: ['message.received'] });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ ...endpointJson, secret: 'whsec_abc' });
    expect(JSON.stringify(res.body)).not.toContain('secret-never-shown');
    expect(mocked.createEndpoint).toHaveBeenCalledWith(TENANT, { url: 'https://crm.example/hooks', events: ['message.received'] });
  });

  it('when an event type is unknown or a field is extra, then 400 and the service is not called', async () => {
    expectError(await api.post('/v1/webhook-endpoints').set(AS_TENANT).send({ url: 'https://crm.example/hooks', events: ['nope'] }), 'validation_error');
    expectError(await api.post('/v1/webhook-endpoints').set(AS_TENANT).send({ url: 'https://crm.example/hooks', events: ['credits.low'], x: 1 }), 'validation_error');
    expect(mocked.createEndpoint).not.toHaveBeenCalled();
  });
});

describe('reading and changing endpoints', () => {
  it('when listed, then the endpoints come without secrets, with the cursor', async () => {
    mocked.listEndpoints.mockResolvedValue({ data: [endpoint], next_cursor: null });
    const res = await api.get('/v1/webhook-endpoints').set(AS_TENANT);
    expect(res.body).toEqual({ data: [endpointJson], next_cursor: null });
  });

  it('when rotated, then 201 with the new secret; deleted, 204', async () => {
    mocked.rotateSecret.mockResolvedValue('whsec_new');
    expect((await api.post(`/v1/webhook-endpoints/${SOME_ID}/rotate-secret`).set(AS_TENANT)).body).toEqual({ secret: 'whsec_new' });
    mocked.deleteEndpoint.mockResolvedValue(undefined);
    expect((await api.delete(`/v1/webhook-endpoints/${SOME_ID}`).set(AS_TENANT)).status).toBe(204);
  });

  it('when deliveries are listed and one is redelivered, then the contract shapes and 202 come back', async () => {
    mocked.listDeliveries.mockResolvedValue({ data: [delivery], next_cursor: 'c' });
    const list = await api.get(`/v1/webhook-endpoints/${SOME_ID}/deliveries?limit=5`).set(AS_TENANT);
    expect(list.body).toEqual({
      data: [
        {
          id: SOME_ID,
          event_id: SOME_ID,
          event_type: 'message.received',
          status: 'failed',
          attempts: 7,
          last_status_code: 500,
          last_error: 'the endpoint answered 500',
          next_attempt_at: null,
          delivered_at: null,
          created_at: at,
        },
      ],
      next_cursor: 'c',
    });
    expect(mocked.listDeliveries).toHaveBeenCalledWith(TENANT, SOME_ID, { limit: 5, cursor: undefined });
    mocked.redeliver.mockResolvedValue({ ...delivery, status: 'pending' });
    const redelivered = await api.post(`/v1/webhook-endpoints/${SOME_ID}/deliveries/${SOME_ID}/redeliver`).set(AS_TENANT);
    expect(redelivered.status).toBe(202);
    expect(redelivered.body.status).toBe('pending');
  });

  it('when the endpoint is unknown, then 404; when the id is not a uuid, then 400', async () => {
    mocked.getEndpoint.mockRejectedValue(notFound('Webhook endpoint'));
    expectError(await api.get(`/v1/webhook-endpoints/${SOME_ID}`).set(AS_TENANT), 'not_found');
    expectError(await api.get('/v1/webhook-endpoints/nope').set(AS_TENANT), 'validation_error');
  });
});
