/**
 * The users controller with userService and creditService mocked and a stand-in for auth: the
 * operator's tenant, key and credit routes, the tenant's own /me and ledger, who may call which
 * (401/403), and the 400s, 404s and 409s.
 */
import request from 'supertest';
import { usersRouter } from '../../../src/controllers/users';
import * as userService from '../../../src/services/userService';
import * as creditService from '../../../src/services/creditService';
import { conflict, notFound } from '../../../src/utils/errors';
import { AS_OPERATOR, AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT, CONVERSATION, LEDGER_ENTRY, MESSAGE, creditEntryRow, userRow } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/userService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/userService'));
jest.mock('../../../src/services/creditService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/creditService'));

const users = jest.mocked(userService);
const credits = jest.mocked(creditService);
const api = request(controllerApp(usersRouter));
/** Every timestamp of the rows, as the API writes it. */
const at = AT.toISOString();

const userJson = { id: TENANT, name: 'Acme', email: 'ops@acme.example', credit_balance: 1000, created_at: at };
const entryJson = {
  id: LEDGER_ENTRY,
  amount: 500,
  reason: 'top_up',
  description: 'welcome',
  message_id: null,
  conversation_id: null,
  created_at: at,
};

beforeEach(() => jest.clearAllMocks());

describe('POST /v1/users', () => {
  it('when the operator creates a tenant, then 201 with the user, its key (once) and the key id', async () => {
    users.createUser.mockResolvedValue({ user: userRow(), apiKey: { id: LEDGER_ENTRY, apiKey: 'mca_plain' } });

    const res = await api.post('/v1/users').set(AS_OPERATOR).send({ name: 'Acme', email: 'ops@acme.example', credits: 1000 });

    expect(res.status).toBe(201);
    expect(res.body).toEqual({ user: userJson, api_key: 'mca_plain', api_key_id: LEDGER_ENTRY });
    expect(users.createUser).toHaveBeenCalledWith({ name: 'Acme', email: 'ops@acme.example', credits: 1000 });
  });

  it.each([
    ['a bad email', { name: 'Acme', email: 'not-an-email' }],
    ['negative credits', { name: 'Acme', email: 'a@b.example', credits: -1 }],
    ['fractional credits', { name: 'Acme', email: 'a@b.example', credits: 1.5 }],
    ['a blank name', { name: '  ', email: 'a@b.example' }],
  ])('when the body has %s, then 400 validation_error', async (_what, body) => {
    const res = await api.post('/v1/users').set(AS_OPERATOR).send(body);

    expectError(res, 'validation_error');
    expect(users.createUser).not.toHaveBeenCalled();
  });

  it('when the email is taken, then the service’s 409 conflict', async () => {
    users.createUser.mockRejectedValue(conflict('A user with this email already exists'));

    const res = await api.post('/v1/users').set(AS_OPERATOR).send({ name: 'Acme', email: 'ops@acme.example' });

    expectError(res, 'conflict');
  });

  it('when a tenant key is sent, then 403; when none, then 401; the service is not called', async () => {
    const body = { name: 'Acme', email: 'ops@acme.example' };

    expectError(await api.post('/v1/users').set(AS_TENANT).send(body), 'forbidden');
    expectError(await api.post('/v1/users').send(body), 'unauthorized');
    expect(users.createUser).not.toHaveBeenCalled();
  });
});

describe('GET /v1/users and /v1/users/:id', () => {
  it('when listed, then 200 with the page and the paging reaches the service', async () => {
    users.listUsers.mockResolvedValue({ data: [userRow()], next_cursor: 'u2' });

    const res = await api.get('/v1/users?limit=1').set(AS_OPERATOR);

    expect(res.body).toEqual({ data: [userJson], next_cursor: 'u2' });
    expect(users.listUsers).toHaveBeenCalledWith({ limit: 1 });
  });

  it('when one is read, then 200 with it; when unknown, then 404; when not a UUID, then 400', async () => {
    users.getUser.mockResolvedValueOnce(userRow()).mockRejectedValueOnce(notFound('User'));

    expect((await api.get(`/v1/users/${TENANT}`).set(AS_OPERATOR)).body).toEqual(userJson);
    expectError(await api.get(`/v1/users/${SOME_ID}`).set(AS_OPERATOR), 'not_found');
    expectError(await api.get('/v1/users/me').set(AS_OPERATOR), 'validation_error');
    expect(users.getUser).toHaveBeenCalledTimes(2);
  });
});

describe('POST /v1/users/:id/api-keys and DELETE /v1/users/:id/api-keys/:keyId', () => {
  it('when a key is issued, then 201 with its id and the plain key', async () => {
    users.createApiKey.mockResolvedValue({ id: LEDGER_ENTRY, apiKey: 'mca_second' });

    const res = await api.post(`/v1/users/${TENANT}/api-keys`).set(AS_OPERATOR);

    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: LEDGER_ENTRY, api_key: 'mca_second' });
    expect(users.createApiKey).toHaveBeenCalledWith(TENANT);
  });

  it('when a key is revoked, then 204 and the service gets the tenant and the key', async () => {
    users.revokeApiKey.mockResolvedValue(undefined);

    const res = await api.delete(`/v1/users/${TENANT}/api-keys/${LEDGER_ENTRY}`).set(AS_OPERATOR);

    expect(res.status).toBe(204);
    expect(users.revokeApiKey).toHaveBeenCalledWith(TENANT, LEDGER_ENTRY);
  });

  it('when the key is not the tenant’s, then 404; when keyId is not a UUID, then 400', async () => {
    users.revokeApiKey.mockRejectedValue(notFound('API key'));

    expectError(await api.delete(`/v1/users/${TENANT}/api-keys/${SOME_ID}`).set(AS_OPERATOR), 'not_found');
    const bad = await api.delete(`/v1/users/${TENANT}/api-keys/nope`).set(AS_OPERATOR);
    expectError(bad, 'validation_error');
    expect(bad.body.error.details).toEqual([expect.objectContaining({ path: 'keyId' })]);
  });
});

describe('POST /v1/users/:id/credits', () => {
  it('when topped up, then 201 with the new balance and the ledger entry', async () => {
    credits.topUpAndWake.mockResolvedValue({ balance: 1500, entry: creditEntryRow() });

    const res = await api.post(`/v1/users/${TENANT}/credits`).set(AS_OPERATOR).send({ amount: 500, reason: 'welcome' });

    expect(res.status).toBe(201);
    expect(res.body).toEqual({ credit_balance: 1500, entry: entryJson });
    expect(credits.topUpAndWake).toHaveBeenCalledWith(TENANT, 500, 'welcome');
  });

  it.each([
    ['zero', { amount: 0 }],
    ['a fraction', { amount: 2.5 }],
    ['more than the maximum', { amount: creditService.MAX_CREDIT_AMOUNT + 1 }],
  ])('when the amount is %s, then 400 validation_error', async (_what, body) => {
    const res = await api.post(`/v1/users/${TENANT}/credits`).set(AS_OPERATOR).send(body);

    expectError(res, 'validation_error');
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'amount' })]);
    expect(credits.topUpAndWake).not.toHaveBeenCalled();
  });

  it('when the tenant is unknown, then 404', async () => {
    credits.topUpAndWake.mockRejectedValue(notFound('User'));

    expectError(await api.post(`/v1/users/${SOME_ID}/credits`).set(AS_OPERATOR).send({ amount: 1 }), 'not_found');
  });
});

describe('GET /v1/me', () => {
  it('when a tenant asks, then 200 with its own id, name, email, balance and credits held (no created_at)', async () => {
    users.getMe.mockResolvedValue({ ...userRow(), creditsHeld: 812 });

    const res = await api.get('/v1/me').set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: TENANT, name: 'Acme', email: 'ops@acme.example', credit_balance: 1000, credits_held: 812 });
    expect(users.getMe).toHaveBeenCalledWith(TENANT);
  });

  it('when the operator asks, then 403', async () => {
    expectError(await api.get('/v1/me').set(AS_OPERATOR), 'forbidden');
  });
});

describe('GET /v1/credits/ledger', () => {
  it('when a tenant asks, then 200 with its entries, a reply charge naming its message and conversation', async () => {
    const charge = creditEntryRow({ amount: -3, reason: 'reply', description: null, messageId: MESSAGE, conversationId: CONVERSATION });
    credits.listLedger.mockResolvedValue({ data: [charge], next_cursor: null });

    const res = await api.get('/v1/credits/ledger').set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: [{ ...entryJson, amount: -3, reason: 'reply', description: null, message_id: MESSAGE, conversation_id: CONVERSATION }],
      next_cursor: null,
    });
    expect(credits.listLedger).toHaveBeenCalledWith(TENANT, { limit: 20 });
  });
});
