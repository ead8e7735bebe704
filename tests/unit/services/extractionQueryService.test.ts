/**
 * The read side of extractions with the models mocked: paging by cursor, what "no extraction
 * yet" says about where the conversation stands, and why a postponement happened. The same
 * reads against Postgres run in tests/integration/extractionsApi.test.ts.
 */
import * as conversations from '../../../src/models/Conversation';
import * as extractions from '../../../src/models/Extraction';
import type { Conversation } from '../../../src/models/Conversation';
import type { ExtractionState } from '../../../src/models/Extraction';
import { config } from '../../../src/config';
import {
  describeExtractionState,
  extractionStates,
  getLatestExtraction,
  listExtractions,
} from '../../../src/services/extractionQueryService';
import { encodeCursor } from '../../../src/utils/pagination';
import { CONVERSATION, EXTRACTION, extractionRow, USER } from '../../fixtures/rows';

jest.mock('../../../src/models/Conversation');
jest.mock('../../../src/models/Extraction');
// A copy that is not frozen, so a test can take OPENAI_API_KEY away (jest.replaceProperty).
jest.mock('../../../src/config', () => ({ config: { ...jest.requireActual('../../../src/config').config } }));

const model = { ...jest.mocked(conversations), ...jest.mocked(extractions) };
const retryAt = new Date('2025-03-04T05:06:07Z');

const extraction = (id = EXTRACTION) => extractionRow({ id, createdAt: retryAt });
const state = (overrides: Partial<ExtractionState> = {}): ExtractionState => ({
  conversationId: CONVERSATION,
  status: 'postponed',
  retryAt,
  failures: 0,
  creditBalance: 0,
  ...overrides,
});

beforeEach(() => {
  jest.resetAllMocks();
  jest.restoreAllMocks();
});

describe('listExtractions', () => {
  it('when the model returns one row more than the limit, then the page ends with a cursor naming its last extraction', async () => {
    const rows = [extraction('a'), extraction('b'), extraction('c')];
    model.listLatestExtractions.mockResolvedValue(rows);

    const page = await listExtractions(USER, { since: retryAt }, { limit: 2 });

    expect(model.listLatestExtractions).toHaveBeenCalledWith(USER, { since: retryAt }, { limit: 2, afterId: undefined });
    expect(page).toEqual({ data: rows.slice(0, 2), next_cursor: encodeCursor('b') });
  });

  it('when a cursor is given, then the model starts after the extraction it names', async () => {
    model.listLatestExtractions.mockResolvedValue([]);

    await expect(listExtractions(USER, {}, { limit: 2, cursor: encodeCursor(EXTRACTION) })).resolves.toEqual({ data: [], next_cursor: null });
    expect(model.listLatestExtractions).toHaveBeenCalledWith(USER, {}, { limit: 2, afterId: EXTRACTION });
  });

  it('when the cursor was not handed out by this list, then it is a validation error and nothing is read', async () => {
    await expect(listExtractions(USER, {}, { limit: 2, cursor: encodeCursor(7) })).rejects.toMatchObject({ code: 'validation_error' });
    expect(model.listLatestExtractions).not.toHaveBeenCalled();
  });
});

describe('getLatestExtraction', () => {
  it('when the conversation has an extraction, then the newest comes back and nothing else is read', async () => {
    model.findLatestExtraction.mockResolvedValue(extraction());

    await expect(getLatestExtraction(USER, CONVERSATION)).resolves.toEqual(extraction());
    expect(model.findLatestExtraction).toHaveBeenCalledWith(USER, CONVERSATION);
    expect(model.findConversation).not.toHaveBeenCalled();
  });

  it('when the conversation is not the tenant\'s, then it is not_found naming the conversation', async () => {
    model.findLatestExtraction.mockResolvedValue(null);
    model.findConversation.mockResolvedValue(null);

    await expect(getLatestExtraction(USER, CONVERSATION)).rejects.toMatchObject({ code: 'not_found', message: 'Conversation not found' });
    expect(model.findExtractionStates).not.toHaveBeenCalled();
  });

  it('when the conversation has no extraction yet, then not_found says where its extraction stands', async () => {
    model.findLatestExtraction.mockResolvedValue(null);
    model.findConversation.mockResolvedValue({ id: CONVERSATION } as Conversation);
    model.findExtractionStates.mockResolvedValue([state({ status: 'due', retryAt: null })]);

    await expect(getLatestExtraction(USER, CONVERSATION)).rejects.toMatchObject({
      code: 'not_found',
      message: 'No extraction yet: extraction_status is due: an extraction worker runs it shortly',
    });
  });

  it('when no state is found for it, then it reads as none, with the idle time that starts one', async () => {
    model.findLatestExtraction.mockResolvedValue(null);
    model.findConversation.mockResolvedValue({ id: CONVERSATION } as Conversation);
    model.findExtractionStates.mockResolvedValue([]);

    await expect(getLatestExtraction(USER, CONVERSATION)).rejects.toThrow(
      `extraction_status is none: a conversation is extracted once idle for EXTRACTION_IDLE_SECONDS (${config.EXTRACTION_IDLE_SECONDS} s here)`,
    );
  });
});

describe('extractionStates', () => {
  it('when no conversation is asked about, then the map is empty and nothing is read', async () => {
    await expect(extractionStates(USER, [])).resolves.toEqual(new Map());
    expect(model.findExtractionStates).not.toHaveBeenCalled();
  });

  it('when states are read, then the configured idle time is passed and each conversation maps to its status', async () => {
    model.findExtractionStates.mockResolvedValue([state({ conversationId: 'a', status: 'done', retryAt: null }), state({ conversationId: 'b', status: 'none' })]);

    const states = await extractionStates(USER, ['a', 'b']);

    expect(model.findExtractionStates).toHaveBeenCalledWith(USER, ['a', 'b'], config.EXTRACTION_IDLE_SECONDS);
    expect(states).toEqual(
      new Map([
        ['a', { status: 'done', postponed: null }],
        ['b', { status: 'none', postponed: null }],
      ]),
    );
  });

  it('when attempts failed, then the postponement says how many', async () => {
    model.findExtractionStates.mockResolvedValue([state({ failures: 3 })]);

    expect((await extractionStates(USER, [CONVERSATION])).get(CONVERSATION)?.postponed).toEqual({
      reason: 'extraction_failed',
      message: "the last 3 attempt(s) failed (see the extraction worker's log)",
      retryAt,
    });
  });

  it('when nothing failed and no OpenAI key is set, then the postponement blames the missing key', async () => {
    jest.replaceProperty(config, 'OPENAI_API_KEY', undefined);
    model.findExtractionStates.mockResolvedValue([state()]);

    expect((await extractionStates(USER, [CONVERSATION])).get(CONVERSATION)?.postponed).toMatchObject({ reason: 'openai_not_configured', retryAt });
  });

  it('when nothing failed and the key is set, then the postponement was for want of credits', async () => {
    model.findExtractionStates.mockResolvedValue([state()]);

    expect((await extractionStates(USER, [CONVERSATION])).get(CONVERSATION)?.postponed).toEqual({
      reason: 'insufficient_credits',
      message: 'the tenant had no credits left',
      retryAt,
    });
  });

  it('when a postponed state has no retry time, then no postponement is described', async () => {
    model.findExtractionStates.mockResolvedValue([state({ retryAt: null, failures: 1 })]);

    expect((await extractionStates(USER, [CONVERSATION])).get(CONVERSATION)).toEqual({ status: 'postponed', postponed: null });
  });
});

describe('describeExtractionState', () => {
  it('when it is postponed, then it says why, until when, and how to run it at once', () => {
    const text = describeExtractionState({ status: 'postponed', postponed: { reason: 'insufficient_credits', message: 'no credits', retryAt } });

    expect(text).toBe(
      'extraction_status is postponed: no credits; retried after 2025-03-04T05:06:07.000Z, or at once on POST /v1/conversations/:id/extract',
    );
  });

  it('when it is done, then it says so', () => {
    expect(describeExtractionState({ status: 'done', postponed: null })).toBe('extraction_status is done');
  });
});
