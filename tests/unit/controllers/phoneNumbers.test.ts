/**
 * The phone numbers controller with phoneNumberService mocked and a stand-in for auth: the
 * JSON a number leaves in (never its token), what reaches the service, and the 400s, 404s and
 * 409s.
 */
import request from 'supertest';
import { phoneNumbersRouter } from '../../../src/controllers/phoneNumbers';
import * as phoneNumberService from '../../../src/services/phoneNumberService';
import { conflict, notFound } from '../../../src/utils/errors';
import { AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT, AGENT, NUMBER, phoneNumberRow } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/phoneNumberService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/phoneNumberService'));

const service = jest.mocked(phoneNumberService);
const api = request(controllerApp(phoneNumbersRouter));
/** Every timestamp of the rows, as the API writes it. */
const at = AT.toISOString();

const numberJson = {
  id: NUMBER,
  channel: 'whatsapp',
  external_id: '109876543210123',
  display_name: 'Shop',
  agent_id: null,
  created_at: at,
};

const link = (agentId: string | null) => ({ phoneNumber: phoneNumberRow({ agentId }), changed: true, archivedConversations: 1 });

beforeEach(() => jest.clearAllMocks());

describe('POST /v1/phone-numbers', () => {
  const body = { channel: 'whatsapp', external_id: '109876543210123', display_name: 'Shop', access_token: 'EAAG-secret' };

  it('when the body is valid, then 201 with the number, no token in it, and the service gets camelCase input', async () => {
    service.createPhoneNumber.mockResolvedValue(phoneNumberRow());

    const res = await api.post('/v1/phone-numbers').set(AS_TENANT).send(body);

    expect(res.status).toBe(201);
    expect(res.body).toEqual(numberJson);
    expect(JSON.stringify(res.body)).not.toContain('EAAG');
    expect(service.createPhoneNumber).toHaveBeenCalledWith(TENANT, {
      channel: 'whatsapp',
      externalId: '109876543210123',
      displayName: 'Shop',
      accessToken: 'EAAG-secret',
    });
  });

  it.each([
    ['an unknown channel', { ...body, channel: 'telegram' }],
    ['an external_id with a space', { ...body, external_id: '123 456' }],
    ['no access token', { channel: 'whatsapp', external_id: '1' }],
    ['an unknown field', { ...body, user_id: TENANT }],
  ])('when the body has %s, then 400 validation_error', async (_what, bad) => {
    const res = await api.post('/v1/phone-numbers').set(AS_TENANT).send(bad);

    expectError(res, 'validation_error');
    expect(service.createPhoneNumber).not.toHaveBeenCalled();
  });

  it('when the number is registered already, then the service’s 409 conflict', async () => {
    service.createPhoneNumber.mockRejectedValue(conflict('This number is registered already'));

    expectError(await api.post('/v1/phone-numbers').set(AS_TENANT).send(body), 'conflict');
  });
});

describe('GET /v1/phone-numbers', () => {
  it('when listed, then 200 with the page and the paging reaches the service', async () => {
    service.listPhoneNumbers.mockResolvedValue({ data: [phoneNumberRow({ agentId: AGENT })], next_cursor: null });

    const res = await api.get('/v1/phone-numbers?limit=3&cursor=xyz').set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [{ ...numberJson, agent_id: AGENT }], next_cursor: null });
    expect(service.listPhoneNumbers).toHaveBeenCalledWith(TENANT, { limit: 3, cursor: 'xyz' });
  });
});

describe('GET /v1/phone-numbers/:id', () => {
  it('when the number exists, then 200 with it', async () => {
    service.getPhoneNumber.mockResolvedValue(phoneNumberRow({ channel: 'instagram', displayName: null }));

    const res = await api.get(`/v1/phone-numbers/${NUMBER}`).set(AS_TENANT);

    expect(res.body).toEqual({ ...numberJson, channel: 'instagram', display_name: null });
    expect(service.getPhoneNumber).toHaveBeenCalledWith(TENANT, NUMBER);
  });

  it('when the service finds none, then 404; when the id is not a UUID, then 400', async () => {
    service.getPhoneNumber.mockRejectedValue(notFound('Phone number'));

    expectError(await api.get(`/v1/phone-numbers/${SOME_ID}`).set(AS_TENANT), 'not_found');
    expectError(await api.get('/v1/phone-numbers/42').set(AS_TENANT), 'validation_error');
  });
});

describe('PATCH /v1/phone-numbers/:id', () => {
  it('when the token alone changes, then 200 and the service gets it with the name left undefined', async () => {
    service.updatePhoneNumber.mockResolvedValue(phoneNumberRow());

    const res = await api.patch(`/v1/phone-numbers/${NUMBER}`).set(AS_TENANT).send({ access_token: 'new-token' });

    expect(res.status).toBe(200);
    expect(res.body).toEqual(numberJson);
    expect(service.updatePhoneNumber).toHaveBeenCalledWith(TENANT, NUMBER, { displayName: undefined, accessToken: 'new-token' });
  });

  it('when the display name is cleared with null, then null reaches the service', async () => {
    service.updatePhoneNumber.mockResolvedValue(phoneNumberRow({ displayName: null }));

    await api.patch(`/v1/phone-numbers/${NUMBER}`).set(AS_TENANT).send({ display_name: null }).expect(200);

    expect(service.updatePhoneNumber).toHaveBeenCalledWith(TENANT, NUMBER, { displayName: null, accessToken: undefined });
  });

  it('when the body names neither field, then 400 validation_error', async () => {
    const res = await api.patch(`/v1/phone-numbers/${NUMBER}`).set(AS_TENANT).send({});

    expectError(res, 'validation_error');
    expect(service.updatePhoneNumber).not.toHaveBeenCalled();
  });

  it('when the service finds none, then 404', async () => {
    service.updatePhoneNumber.mockRejectedValue(notFound('Phone number'));

    expectError(await api.patch(`/v1/phone-numbers/${SOME_ID}`).set(AS_TENANT).send({ display_name: 'x' }), 'not_found');
  });
});

describe('DELETE /v1/phone-numbers/:id', () => {
  it('when deleted, then 204 with no body', async () => {
    service.deletePhoneNumber.mockResolvedValue(undefined);

    const res = await api.delete(`/v1/phone-numbers/${NUMBER}`).set(AS_TENANT);

    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(service.deletePhoneNumber).toHaveBeenCalledWith(TENANT, NUMBER);
  });

  it('when the service finds none, then 404 not_found', async () => {
    service.deletePhoneNumber.mockRejectedValue(notFound('Phone number'));

    const res = await api.delete(`/v1/phone-numbers/${SOME_ID}`).set(AS_TENANT);

    expectError(res, 'not_found');
  });
});

describe('PUT /v1/phone-numbers/:id/agent', () => {
  it('when an agent is linked, then 200 with the number naming it', async () => {
    service.linkAgent.mockResolvedValue(link(AGENT));

    const res = await api.put(`/v1/phone-numbers/${NUMBER}/agent`).set(AS_TENANT).send({ agent_id: AGENT });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...numberJson, agent_id: AGENT });
    expect(service.linkAgent).toHaveBeenCalledWith(TENANT, NUMBER, AGENT);
  });

  it('when agent_id is missing or not a UUID, then 400', async () => {
    expectError(await api.put(`/v1/phone-numbers/${NUMBER}/agent`).set(AS_TENANT).send({}), 'validation_error');
    expectError(await api.put(`/v1/phone-numbers/${NUMBER}/agent`).set(AS_TENANT).send({ agent_id: 'a' }), 'validation_error');
    expect(service.linkAgent).not.toHaveBeenCalled();
  });

  it('when the agent is archived, then 409; when the number or agent is unknown, then 404', async () => {
    service.linkAgent.mockRejectedValueOnce(conflict('The agent is archived')).mockRejectedValueOnce(notFound('Agent'));
    const put = () => api.put(`/v1/phone-numbers/${NUMBER}/agent`).set(AS_TENANT).send({ agent_id: AGENT });

    expectError(await put(), 'conflict');
    expectError(await put(), 'not_found');
  });
});

describe('DELETE /v1/phone-numbers/:id/agent', () => {
  it('when unlinked, then 200 with the number and agent_id null', async () => {
    service.unlinkAgent.mockResolvedValue(link(null));

    const res = await api.delete(`/v1/phone-numbers/${NUMBER}/agent`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual(numberJson);
    expect(service.unlinkAgent).toHaveBeenCalledWith(TENANT, NUMBER);
  });

  it('when the service finds none, then 404', async () => {
    service.unlinkAgent.mockRejectedValue(notFound('Phone number'));

    expectError(await api.delete(`/v1/phone-numbers/${SOME_ID}/agent`).set(AS_TENANT), 'not_found');
  });
});
