/**
 * The extractions controller with its services mocked and a stand-in for auth: the list and
 * latest-extraction JSON, the `since` filter, the 202 of a requested extraction, and the 400s
 * and 404s.
 */
import request from 'supertest';
import { extractionsRouter } from '../../../src/controllers/extractions';
import * as extractionQueryService from '../../../src/services/extractionQueryService';
import * as conversationService from '../../../src/services/conversationService';
import { notFound } from '../../../src/utils/errors';
import { AS_TENANT, SOME_ID, TENANT, controllerApp, expectError } from '../../fixtures/controllerApp';
import { AT, NUMBER, CONVERSATION, EXTRACTION, extractionRow } from '../../fixtures/rows';

jest.mock('../../../src/middleware/auth', () => jest.requireActual('../../fixtures/controllerApp').fakeAuthModule());
jest.mock('../../../src/services/extractionQueryService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/extractionQueryService'));
jest.mock('../../../src/services/conversationService', () => jest.requireActual('../../fixtures/controllerApp').functionsMocked('services/conversationService'));

const queries = jest.mocked(extractionQueryService);
const requestExtraction = jest.mocked(conversationService.requestExtraction);
const api = request(controllerApp(extractionsRouter));
/** Every timestamp of the rows, as the API writes it. */
const at = AT.toISOString();

const extractionJson = {
  id: EXTRACTION,
  conversation_id: CONVERSATION,
  phone_number_id: NUMBER,
  fields: { name: 'Ana', size: 38 },
  summary: 'Wants shoes',
  extracted_at: at,
  up_to_sequence_no: 9,
};

beforeEach(() => jest.clearAllMocks());

describe('GET /v1/extractions', () => {
  it('when listed, then 200 with the extractions (no tenant, agent or token counts) and the next cursor', async () => {
    queries.listExtractions.mockResolvedValue({ data: [extractionRow()], next_cursor: 'n' });

    const res = await api.get('/v1/extractions').set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: [extractionJson], next_cursor: 'n' });
    expect(queries.listExtractions).toHaveBeenCalledWith(TENANT, { phoneNumberId: undefined, since: undefined }, { limit: 20, cursor: undefined });
  });

  it('when filtered by number and `since` with an offset, then the service gets the number and that instant as a Date', async () => {
    queries.listExtractions.mockResolvedValue({ data: [], next_cursor: null });

    await api
      .get(`/v1/extractions?phone_number_id=${NUMBER}&since=${encodeURIComponent('2025-06-01T12:00:00+02:00')}`)
      .set(AS_TENANT)
      .expect(200);

    expect(queries.listExtractions).toHaveBeenCalledWith(
      TENANT,
      { phoneNumberId: NUMBER, since: new Date('2025-06-01T10:00:00Z') },
      { limit: 20, cursor: undefined },
    );
  });

  it.each([
    ['a `since` that is not a date', 'since=yesterday'],
    ['a `since` without an offset', 'since=2025-06-01T12:00:00'],
    ['a phone_number_id that is not a UUID', 'phone_number_id=123'],
  ])('when the query has %s, then 400 validation_error', async (_what, query) => {
    const res = await api.get(`/v1/extractions?${query}`).set(AS_TENANT);

    expectError(res, 'validation_error');
    expect(queries.listExtractions).not.toHaveBeenCalled();
  });

  it('when no key is sent, then 401', async () => {
    expectError(await api.get('/v1/extractions'), 'unauthorized');
  });
});

describe('GET /v1/conversations/:id/extraction', () => {
  it('when the conversation has one, then 200 with the newest', async () => {
    queries.getLatestExtraction.mockResolvedValue(extractionRow({ summary: null }));

    const res = await api.get(`/v1/conversations/${CONVERSATION}/extraction`).set(AS_TENANT);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...extractionJson, summary: null });
    expect(queries.getLatestExtraction).toHaveBeenCalledWith(TENANT, CONVERSATION);
  });

  it('when there is none yet (or no such conversation), then 404 not_found with the service’s message', async () => {
    queries.getLatestExtraction.mockRejectedValue(notFound('Extraction'));

    const res = await api.get(`/v1/conversations/${SOME_ID}/extraction`).set(AS_TENANT);

    expectError(res, 'not_found');
    expect(res.body).toMatchObject({ error: { code: 'not_found', message: 'Extraction not found' } });
  });

  it('when the id is not a UUID, then 400', async () => {
    expectError(await api.get('/v1/conversations/x/extraction').set(AS_TENANT), 'validation_error');
  });
});

describe('POST /v1/conversations/:id/extract', () => {
  it('when asked, then 202 {status: queued} once the service recorded the request', async () => {
    requestExtraction.mockResolvedValue(undefined);

    const res = await api.post(`/v1/conversations/${CONVERSATION}/extract`).set(AS_TENANT);

    expect(res.status).toBe(202);
    expect(res.body).toEqual({ status: 'queued' });
    expect(requestExtraction).toHaveBeenCalledWith(TENANT, CONVERSATION);
  });

  it('when the conversation is not the tenant’s, then 404', async () => {
    requestExtraction.mockRejectedValue(notFound('Conversation'));

    expectError(await api.post(`/v1/conversations/${SOME_ID}/extract`).set(AS_TENANT), 'not_found');
  });
});
