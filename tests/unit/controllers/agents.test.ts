/**
 * The agents controller with agentService mocked and a stand-in for auth: the status and JSON
 * each route answers, what it hands the service (the tenant, camelCase changes), and the 400s,
 * 401/403s and 404s it gives before or after the service.
 */
import request from 'supertest';
import { agentsRouter } from '../../../src/controllers/agents';
import * as agentService from '../../../src/services/agentService';
import { notFound, conflict } from '../../../src/utils/errors';
import { AS_OPERATOR, AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT, AGENT, NUMBER, agentRow } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/agentService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/agentService'));

const service = jest.mocked(agentService);
const api = request(controllerApp(agentsRouter));
/** Every timestamp of the rows, as the API writes it. */
const at = AT.toISOString();

const agentJson = {
  id: AGENT,
  name: 'Sales bot',
  system_prompt: 'You sell shoes.',
  model: 'gpt-test',
  temperature: 0.7,
  max_tokens: 500,
  history_limit: 20,
  max_prompt_tokens: 8000,
  debounce_ms: 0,
  lead_fields: null,
  fallback_message: null,
  resume_after_minutes: null,
  handoff_keywords: [],
  opt_out_keywords: ['STOP', 'UNSUBSCRIBE'],
  opt_in_keywords: ['START'],
  opt_out_message: null,
  archived_at: null,
  created_at: at,
  updated_at: at,
};

beforeEach(() => jest.clearAllMocks());

describe('POST /v1/agents', () => {
  it('when the body is valid, then 201 with the agent in snake_case and the service gets the tenant and camelCase input', async () => {
    service.createAgent.mockResolvedValue(agentRow());

    const res = await api
      .post('/v1/agents')
      .set(AS_TENANT)
      .send({ name: 'Sales bot', system_prompt: 'You sell shoes.', max_tokens: 500, max_prompt_tokens: 8000, fallback_message: null });

    expect(res.status).toBe(201);
    expect(res.body).toEqual(agentJson);
    expect(service.createAgent).toHaveBeenCalledWith(TENANT, {
      name: 'Sales bot',
      systemPrompt: 'You sell shoes.',
      maxTokens: 500,
      maxPromptTokens: 8000,
      fallbackMessage: null,
    });
  });

  it('when system_prompt is missing, then 400 validation_error naming it, and the service is not called', async () => {
    const res = await api.post('/v1/agents').set(AS_TENANT).send({ name: 'Bot' });

    expectError(res, 'validation_error');
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'system_prompt' })]);
    expect(service.createAgent).not.toHaveBeenCalled();
  });

  it.each([
    ['an unknown field', { name: 'Bot', system_prompt: 'Hi', colour: 'red' }],
    ['a blank system prompt', { name: 'Bot', system_prompt: '   ' }],
    ['a temperature above 2', { name: 'Bot', system_prompt: 'Hi', temperature: 2.5 }],
    ['a fractional max_tokens', { name: 'Bot', system_prompt: 'Hi', max_tokens: 1.5 }],
    ['a max_prompt_tokens below 500', { name: 'Bot', system_prompt: 'Hi', max_prompt_tokens: 499 }],
  ])('when the body has %s, then 400 validation_error', async (_what, body) => {
    const res = await api.post('/v1/agents').set(AS_TENANT).send(body);

    expectError(res, 'validation_error');
    expect(service.createAgent).not.toHaveBeenCalled();
  });

  it('when no key is sent, then 401; when the operator key is sent, then 403', async () => {
    const body = { name: 'Bot', system_prompt: 'Hi' };

    expectError(await api.post('/v1/agents').send(body), 'unauthorized');
    const forbidden = await api.post('/v1/agents').set(AS_OPERATOR).send(body);
    expectError(forbidden, 'forbidden');
    expect(service.createAgent).not.toHaveBeenCalled();
  });
});

describe('GET /v1/agents', () => {
  it('when listed without options, then 200 with the page, the default limit and archived agents left out', async () => {
    service.listAgents.mockResolvedValue({ data: [agentRow()], next_cursor: 'next' });

    const res = await api.get('/v1/agents').set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [agentJson], next_cursor: 'next' });
    expect(service.listAgents).toHaveBeenCalledWith(TENANT, { limit: 20, cursor: undefined, includeArchived: false });
  });

  it('when include_archived=true with a limit and cursor, then they reach the service', async () => {
    service.listAgents.mockResolvedValue({ data: [], next_cursor: null });

    await api.get('/v1/agents?include_archived=true&limit=5&cursor=abc').set(AS_TENANT).expect(200);

    expect(service.listAgents).toHaveBeenCalledWith(TENANT, { limit: 5, cursor: 'abc', includeArchived: true });
  });

  it.each(['include_archived=yes', 'limit=0', 'limit=101'])('when the query has %s, then 400 validation_error', async (query) => {
    const res = await api.get(`/v1/agents?${query}`).set(AS_TENANT);

    expectError(res, 'validation_error');
  });
});

describe('GET /v1/agents/:id', () => {
  it('when the agent exists, then 200 with it, archived_at as ISO text', async () => {
    service.getAgent.mockResolvedValue(agentRow({ archivedAt: new Date('2025-02-01T00:00:00Z') }));

    const res = await api.get(`/v1/agents/${AGENT}`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...agentJson, archived_at: '2025-02-01T00:00:00.000Z' });
    expect(service.getAgent).toHaveBeenCalledWith(TENANT, AGENT);
  });

  it('when the service finds no such agent, then 404 not_found', async () => {
    service.getAgent.mockRejectedValue(notFound('Agent'));

    const res = await api.get(`/v1/agents/${SOME_ID}`).set(AS_TENANT);

    expectError(res, 'not_found');
  });

  it('when the id is not a UUID, then 400 naming id, before the service', async () => {
    const res = await api.get('/v1/agents/not-a-uuid').set(AS_TENANT);

    expectError(res, 'validation_error');
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
    expect(service.getAgent).not.toHaveBeenCalled();
  });
});

describe('PATCH /v1/agents/:id', () => {
  it('when fields are changed, then 200 and only the given ones reach the service, null kept as null', async () => {
    service.updateAgent.mockResolvedValue(agentRow({ name: 'Renamed' }));

    const res = await api.patch(`/v1/agents/${AGENT}`).set(AS_TENANT).send({ name: 'Renamed', lead_fields: null });

    expect(res.status).toBe(200);
    expect(res.body.name).toBe('Renamed');
    expect(service.updateAgent).toHaveBeenCalledWith(TENANT, AGENT, { name: 'Renamed', leadFields: null });
  });

  it('when the body changes nothing, then 400 validation_error', async () => {
    const res = await api.patch(`/v1/agents/${AGENT}`).set(AS_TENANT).send({});

    expectError(res, 'validation_error');
    expect(service.updateAgent).not.toHaveBeenCalled();
  });

  it('when the service refuses (an archived agent), then 409 conflict', async () => {
    service.updateAgent.mockRejectedValue(conflict('Archived agents cannot be changed'));

    const res = await api.patch(`/v1/agents/${AGENT}`).set(AS_TENANT).send({ name: 'x' });

    expectError(res, 'conflict');
  });

  it('when the service finds no such agent, then 404 not_found', async () => {
    service.updateAgent.mockRejectedValue(notFound('Agent'));

    expectError(await api.patch(`/v1/agents/${SOME_ID}`).set(AS_TENANT).send({ name: 'x' }), 'not_found');
  });
});

describe('POST /v1/agents/:id/archive', () => {
  it('when archived, then 200 with the archived agent alone (not what else the archive did)', async () => {
    const archivedAt = new Date('2025-03-01T00:00:00Z');
    service.archiveAgent.mockResolvedValue({ agent: agentRow({ archivedAt }), unlinkedPhoneNumberIds: [NUMBER], archivedConversations: 3 });

    const res = await api.post(`/v1/agents/${AGENT}/archive`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...agentJson, archived_at: archivedAt.toISOString() });
    expect(service.archiveAgent).toHaveBeenCalledWith(TENANT, AGENT);
  });

  it('when the service finds no such agent, then 404 not_found', async () => {
    service.archiveAgent.mockRejectedValue(notFound('Agent'));

    expectError(await api.post(`/v1/agents/${SOME_ID}/archive`).set(AS_TENANT), 'not_found');
  });
});
