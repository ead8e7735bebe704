/**
 * The conversations controller with its three services mocked (conversations, messages, and
 * the extraction states it shows beside each conversation) and a stand-in for auth: status,
 * JSON shape, what reaches the services, and the 400s and 404s.
 */
import request from 'supertest';
import { conversationsRouter } from '../../../src/controllers/conversations';
import * as conversationService from '../../../src/services/conversationService';
import * as messageService from '../../../src/services/messageService';
import * as extractionQueryService from '../../../src/services/extractionQueryService';
import { conflict, notFound, validationError, windowClosed } from '../../../src/utils/errors';
import { AS_OPERATOR, AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT, AGENT, NUMBER, CONVERSATION, WINDOW_OPEN_UNTIL, conversationRow, messageRow } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/conversationService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/conversationService'));
jest.mock('../../../src/services/messageService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/messageService'));
jest.mock('../../../src/services/extractionQueryService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/extractionQueryService'));

const conversations = jest.mocked(conversationService);
const messages = jest.mocked(messageService);
const extractionStates = jest.mocked(extractionQueryService.extractionStates);
const api = request(controllerApp(conversationsRouter));
/** Every timestamp of the rows, as the API writes it. */
const at = AT.toISOString();

const conversationJson = {
  id: CONVERSATION,
  phone_number_id: NUMBER,
  agent_id: AGENT,
  channel: 'whatsapp',
  customer: { external_id: '15550001111', name: 'Ana' },
  is_active: true,
  bot_paused: false,
  paused_by: null,
  resumes_at: null,
  last_message_at: at,
  created_at: at,
  archived_at: null,
  archive_reason: null,
  opted_out: false,
  window_expires_at: WINDOW_OPEN_UNTIL.toISOString(),
  extraction_status: 'none',
  extraction_postponed: null,
};

/** The customer's first message, as messageRow(1) has it, in the API's shape. */
const messageJson = {
  id: messageRow(1).id,
  sequence_no: 1,
  direction: 'inbound',
  author: 'customer',
  type: 'text',
  text: 'hello 1',
  status: 'pending',
  external_id: 'wamid.1',
  created_at: at,
};

beforeEach(() => {
  jest.clearAllMocks();
  extractionStates.mockResolvedValue(new Map());
});

describe('GET /v1/conversations', () => {
  it('when listed, then 200 with each conversation and its extraction state, and the filters reach the service', async () => {
    const other = conversationRow({ id: SOME_ID, lastMessageAt: null });
    conversations.listConversations.mockResolvedValue({ data: [conversationRow(), other], next_cursor: 'c2' });
    extractionStates.mockResolvedValue(new Map([[CONVERSATION, { status: 'done', postponed: null }]]));

    const res = await api
      .get(`/v1/conversations?phone_number_id=${NUMBER}&agent_id=${AGENT}&is_active=false&limit=2`)
      .set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: [
        { ...conversationJson, extraction_status: 'done' },
        { ...conversationJson, id: SOME_ID, last_message_at: null },
      ],
      next_cursor: 'c2',
    });
    expect(conversations.listConversations).toHaveBeenCalledWith(
      TENANT,
      { phoneNumberId: NUMBER, agentId: AGENT, isActive: false },
      { limit: 2, cursor: undefined },
    );
    expect(extractionStates).toHaveBeenCalledWith(TENANT, [CONVERSATION, SOME_ID]);
  });

  it('when an extraction is postponed, then its reason, message and retry time are shown', async () => {
    const retryAt = new Date('2025-04-01T10:00:00Z');
    conversations.listConversations.mockResolvedValue({ data: [conversationRow()], next_cursor: null });
    extractionStates.mockResolvedValue(
      new Map([[CONVERSATION, { status: 'postponed', postponed: { reason: 'insufficient_credits', message: 'no credits', retryAt } }]]),
    );

    const res = await api.get('/v1/conversations').set(AS_TENANT);

    expect(res.body.data[0]).toMatchObject({
      extraction_status: 'postponed',
      extraction_postponed: { reason: 'insufficient_credits', message: 'no credits', retry_at: retryAt.toISOString() },
    });
  });

  it.each(['is_active=1', `phone_number_id=nope`, 'limit=abc'])('when the query has %s, then 400 validation_error', async (query) => {
    const res = await api.get(`/v1/conversations?${query}`).set(AS_TENANT);

    expectError(res, 'validation_error');
    expect(conversations.listConversations).not.toHaveBeenCalled();
  });

  it('when the operator key is sent, then 403', async () => {
    expectError(await api.get('/v1/conversations').set(AS_OPERATOR), 'forbidden');
  });
});

describe('GET /v1/conversations/:id', () => {
  it('when the conversation exists, then 200 with it', async () => {
    conversations.getConversation.mockResolvedValue(conversationRow({ isActive: false, archivedAt: new Date('2025-05-01T00:00:00Z'), archiveReason: 'agent_relinked' }));

    const res = await api.get(`/v1/conversations/${CONVERSATION}`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...conversationJson, is_active: false, archived_at: '2025-05-01T00:00:00.000Z', archive_reason: 'agent_relinked' });
    expect(conversations.getConversation).toHaveBeenCalledWith(TENANT, CONVERSATION);
  });

  it('when the service finds none, then 404 not_found', async () => {
    conversations.getConversation.mockRejectedValue(notFound('Conversation'));

    const res = await api.get(`/v1/conversations/${SOME_ID}`).set(AS_TENANT);

    expectError(res, 'not_found');
  });

  it('when the id is not a UUID, then 400', async () => {
    expectError(await api.get('/v1/conversations/123').set(AS_TENANT), 'validation_error');
    expect(conversations.getConversation).not.toHaveBeenCalled();
  });
});

describe('GET /v1/conversations/:id/messages', () => {
  it('when listed, then 200 with the messages; only a message with an error code carries `error`', async () => {
    const failed = messageRow(1, { id: SOME_ID, direction: 'outbound', author: 'agent', status: 'failed', errorCode: 'graph_131047', errorMessage: 'window closed' });
    messages.listMessages.mockResolvedValue({ data: [messageRow(1), failed], next_cursor: null });

    const res = await api.get(`/v1/conversations/${CONVERSATION}/messages?limit=50`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body.data[0]).toEqual(messageJson);
    expect(res.body.data[1]).toEqual({
      ...messageJson,
      id: SOME_ID,
      direction: 'outbound',
      author: 'agent',
      status: 'failed',
      error: { code: 'graph_131047', message: 'window closed' },
    });
    expect(messages.listMessages).toHaveBeenCalledWith(TENANT, CONVERSATION, { limit: 50 });
  });

  it('when the conversation is not the tenant’s, then 404', async () => {
    messages.listMessages.mockRejectedValue(notFound('Conversation'));

    expectError(await api.get(`/v1/conversations/${SOME_ID}/messages`).set(AS_TENANT), 'not_found');
  });
});

describe('POST /v1/conversations/:id/messages', () => {
  it('when a human writes, then 202 with the queued message and the service gets the text', async () => {
    messages.sendHumanMessage.mockResolvedValue(messageRow(1, { direction: 'outbound', author: 'human', status: 'queued', text: 'On it', externalId: null }));

    const res = await api.post(`/v1/conversations/${CONVERSATION}/messages`).set(AS_TENANT).send({ text: 'On it' });

    expect(res.status).toBe(202);
    expect(res.body).toEqual({ ...messageJson, direction: 'outbound', author: 'human', status: 'queued', text: 'On it', external_id: null });
    expect(messages.sendHumanMessage).toHaveBeenCalledWith(TENANT, CONVERSATION, 'On it');
  });

  it.each([
    ['an empty text', { text: '' }],
    ['no text', {}],
    ['text over 4096 characters', { text: 'x'.repeat(4097) }],
    ['an unknown field', { text: 'hi', urgent: true }],
  ])('when the body has %s, then 400 validation_error', async (_what, body) => {
    const res = await api.post(`/v1/conversations/${CONVERSATION}/messages`).set(AS_TENANT).send(body);

    expectError(res, 'validation_error');
    expect(messages.sendHumanMessage).not.toHaveBeenCalled();
  });

  it('when the conversation is archived, then the service’s 409 conflict', async () => {
    messages.sendHumanMessage.mockRejectedValue(conflict('The conversation is archived'));

    const res = await api.post(`/v1/conversations/${CONVERSATION}/messages`).set(AS_TENANT).send({ text: 'hi' });

    expectError(res, 'conflict');
  });

  it('when the customer’s window is closed, then the service’s 409 window_closed', async () => {
    messages.sendHumanMessage.mockRejectedValue(windowClosed());

    const res = await api.post(`/v1/conversations/${CONVERSATION}/messages`).set(AS_TENANT).send({ text: 'hi' });

    expect(res.status).toBe(409);
    expectError(res, 'window_closed');
  });
});

describe('POST /v1/conversations/:id/template', () => {
  it('when a template is asked for, then 202 with the queued message and the service gets name, language and components', async () => {
    messages.sendTemplate.mockResolvedValue(messageRow(1, { direction: 'outbound', author: 'human', type: 'template', status: 'queued', text: 'order_update', externalId: null }));
    const components = [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }];

    const res = await api.post(`/v1/conversations/${CONVERSATION}/template`).set(AS_TENANT).send({ name: 'order_update', language: 'en_US', components });

    expect(res.status).toBe(202);
    expect(res.body).toEqual({ ...messageJson, direction: 'outbound', author: 'human', type: 'template', status: 'queued', text: 'order_update', external_id: null });
    expect(messages.sendTemplate).toHaveBeenCalledWith(TENANT, CONVERSATION, { name: 'order_update', language: 'en_US', components });
  });

  it.each([
    ['no name', { language: 'en' }],
    ['a name with capitals and spaces', { name: 'Order Update', language: 'en' }],
    ['no language', { name: 'order_update' }],
    ['a language that is not a code', { name: 'order_update', language: 'English' }],
    ['components that are not objects with a type', { name: 'order_update', language: 'en', components: ['body'] }],
    ['an unknown field', { name: 'order_update', language: 'en', to: '1555' }],
  ])('when the body has %s, then 400 validation_error', async (_what, body) => {
    expectError(await api.post(`/v1/conversations/${CONVERSATION}/template`).set(AS_TENANT).send(body), 'validation_error');
    expect(messages.sendTemplate).not.toHaveBeenCalled();
  });

  it('when the conversation is on Instagram, then the service’s 400', async () => {
    messages.sendTemplate.mockRejectedValue(validationError([{ path: 'name', message: 'templates are a WhatsApp feature' }]));

    expectError(await api.post(`/v1/conversations/${CONVERSATION}/template`).set(AS_TENANT).send({ name: 'order_update', language: 'en' }), 'validation_error');
  });
});

describe.each([
  ['pause', 'pauseConversation', true],
  ['resume', 'resumeConversation', false],
] as const)('POST /v1/conversations/:id/%s', (action, method, botPaused) => {
  it(`when the conversation exists, then 200 with bot_paused ${botPaused}`, async () => {
    conversations[method].mockResolvedValue(conversationRow({ botPaused }));

    const res = await api.post(`/v1/conversations/${CONVERSATION}/${action}`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...conversationJson, bot_paused: botPaused });
    expect(conversations[method]).toHaveBeenCalledWith(TENANT, CONVERSATION);
  });

  it('when the service finds none, then 404', async () => {
    conversations[method].mockRejectedValue(notFound('Conversation'));

    expectError(await api.post(`/v1/conversations/${SOME_ID}/${action}`).set(AS_TENANT), 'not_found');
  });
});
