/**
 * The assembled Express app with its edges mocked (the fake database, Redis, the webhook's
 * ingest; the rate limiter, which has its own unit test, lets everything through): the order of its layers, as seen from outside. Every response has a request
 * id; Meta's webhook reads raw bytes and gets no browser headers; the rest gets helmet and the
 * JSON parser; unknown routes and bad bodies answer the contract's error shape.
 */
import { createHmac } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { config } from '../../src/config';
import { ingestWebhookEvents } from '../../src/services/webhookService';
import * as database from '../../src/utils/database';
import { fakeDatabaseOf } from '../fixtures/fakeDatabase';
import { loadWithEnv } from '../fixtures/isolatedModules';

jest.mock('../../src/utils/database', () => jest.requireActual('../fixtures/fakeDatabase').fakeDatabaseModule());
jest.mock('../../src/utils/redis', () => ({ getRedis: jest.fn() }));
jest.mock('../../src/middleware/rateLimit', () => jest.requireActual('../fixtures/controllerApp').passThroughRateLimitModule());
jest.mock('../../src/services/webhookService', () => ({ ingestWebhookEvents: jest.fn() }));

const app = createApp();
const api = request(app);
const ingest = jest.mocked(ingestWebhookEvents);
const UUID = /^[0-9a-f-]{36}$/;

const sign = (body: Buffer) => `sha256=${createHmac('sha256', config.META_APP_SECRET).update(body).digest('hex')}`;

beforeEach(() => {
  ingest.mockReset().mockResolvedValue({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 0 });
});

describe('createApp', () => {
  it('when any request is answered, then it carries an X-Request-Id and no X-Powered-By', async () => {
    const res = await api.get('/healthz');

    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.headers).not.toHaveProperty('x-powered-by');
  });

  it('when an API route answers, then helmet’s headers are on it', async () => {
    const res = await api.get('/healthz');

    expect(res.status).toBe(200);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toBeDefined();
  });

  it('when Meta verifies the webhook, then the challenge comes back without helmet’s browser headers, but with a request id', async () => {
    const res = await api.get('/webhooks/meta').query({ 'hub.mode': 'subscribe', 'hub.verify_token': config.META_VERIFY_TOKEN, 'hub.challenge': '4242' });

    expect(res.status).toBe(200);
    expect(res.text).toBe('4242');
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.headers).not.toHaveProperty('content-security-policy');
  });

  it('when Meta posts a body signed over its raw bytes (escaped unicode), then it is accepted: the JSON parser never saw it', async () => {
    const body = Buffer.from('{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[],"note":"Jos\\u00e9"}]}');

    const res = await api.post('/webhooks/meta').set('Content-Type', 'application/json').set('X-Hub-Signature-256', sign(body)).send(body.toString('utf8'));

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(ingest).toHaveBeenCalledWith(expect.any(Array), res.headers['x-request-id']);
  });

  it('when the webhook signature is wrong, then 401 invalid_signature and nothing is ingested', async () => {
    const res = await api.post('/webhooks/meta').set('Content-Type', 'application/json').set('X-Hub-Signature-256', 'sha256=00').send('{}');

    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_signature');
    expect(ingest).not.toHaveBeenCalled();
  });

  it('when no route matches, then 404 not_found whose request_id is the response’s X-Request-Id', async () => {
    const res = await api.get('/nowhere').set('X-Request-Id', 'trace-1');

    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /nowhere', request_id: 'trace-1' } });
    expect(res.headers['x-request-id']).toBe('trace-1');
  });

  it('when an API body is not valid JSON, then 400 invalid_json, before any route or key check', async () => {
    const res = await api.post('/v1/agents').set('Content-Type', 'application/json').send('{"name": ');

    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_json', request_id: res.headers['x-request-id'] });
    expect(fakeDatabaseOf(database).db.query).not.toHaveBeenCalled();
  });

  it('when an API body is over BODY_LIMIT, then 413 payload_too_large', async () => {
    const res = await api
      .post('/v1/agents')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ name: 'x'.repeat(4 * 1024 * 1024) }));

    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('when a /v1 route is called without a key, then the mounted API answers 401 in the contract’s shape', async () => {
    const res = await api.get('/v1/me');

    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 'unauthorized', request_id: res.headers['x-request-id'] });
  });

  it('when TRUST_PROXY is unset, then the app believes no X-Forwarded-For', () => {
    expect(app.get('trust proxy')).toBe(false);
  });

  it('when TRUST_PROXY names one hop, then the app trusts exactly one hop', () => {
    const proxied = loadWithEnv({ TRUST_PROXY: '1' }, () => (require('../../src/app') as typeof import('../../src/app')).createApp());

    expect(proxied.get('trust proxy')).toBe(1);
  });

  it('when TRUST_PROXY lists proxy subnets, then the app trusts exactly those', () => {
    const proxied = loadWithEnv({ TRUST_PROXY: '10.0.0.0/8,loopback' }, () => (require('../../src/app') as typeof import('../../src/app')).createApp());

    expect(proxied.get('trust proxy')).toEqual(['10.0.0.0/8', 'loopback']);
  });
});
