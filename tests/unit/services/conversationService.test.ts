/** The service's own logic, with the model (the database edge) mocked. */
import { randomUUID } from 'node:crypto';
import * as conversations from '../../../src/models/Conversation';
import type { Conversation } from '../../../src/models/Conversation';
import {
  getConversation,
  listConversations,
  pauseConversation,
  requestExtraction,
  resumeConversation,
  resumeDueConversations,
} from '../../../src/services/conversationService';
import { encodeCursor } from '../../../src/utils/pagination';

jest.mock('../../../src/models/Conversation');
const model = jest.mocked(conversations);

const USER = randomUUID();

function conversation(overrides: Partial<Conversation> = {}): Conversation {
  return {
    id: randomUUID(),
    userId: USER,
    phoneNumberId: randomUUID(),
    agentId: randomUUID(),
    channel: 'whatsapp',
    customerExternalId: '15550001111',
    customerName: 'Ada',
    isActive: true,
    botPaused: false,
    pausedBy: null,
    resumesAt: null,
    optedOut: false,
    windowExpiresAt: null,
    lastSequenceNo: 0,
    lastMessageAt: null,
    createdAt: new Date(),
    archivedAt: null,
    archiveReason: null,
    extractionRequestedAt: null,
    ...overrides,
  };
}

beforeEach(() => jest.resetAllMocks());

describe('listConversations', () => {
  it('when the model returns one row more than the limit, then the page ends with a cursor naming its last row', async () => {
    const rows = [conversation(), conversation(), conversation()];
    model.listConversations.mockResolvedValue(rows);
    const page = await listConversations(USER, {}, { limit: 2 });
    expect(page.data).toEqual(rows.slice(0, 2));
    expect(page.next_cursor).toBe(encodeCursor(rows[1]!.id));
    expect(model.listConversations).toHaveBeenCalledWith(USER, {}, { limit: 2, afterId: undefined });
  });

  it('when the model returns no more than the limit, then there is no next cursor', async () => {
    model.listConversations.mockResolvedValue([conversation()]);
    expect((await listConversations(USER, {}, { limit: 2 })).next_cursor).toBeNull();
  });

  it('when a cursor is given, then the model starts after the conversation it names, with the filters passed through', async () => {
    const after = randomUUID();
    model.listConversations.mockResolvedValue([]);
    const filters = { phoneNumberId: randomUUID(), isActive: false };
    await listConversations(USER, filters, { limit: 5, cursor: encodeCursor(after) });
    expect(model.listConversations).toHaveBeenCalledWith(USER, filters, { limit: 5, afterId: after });
  });

  it('when the cursor is not one the list handed out, then a validation error names cursor and the model is not asked', async () => {
    await expect(listConversations(USER, {}, { limit: 5, cursor: encodeCursor(42) })).rejects.toMatchObject({
      code: 'validation_error',
      details: [{ path: 'cursor', message: expect.any(String) }],
    });
    expect(model.listConversations).not.toHaveBeenCalled();
  });
});

describe('getConversation', () => {
  it('when the tenant owns it, then it is returned', async () => {
    const row = conversation();
    model.findConversation.mockResolvedValue(row);
    await expect(getConversation(USER, row.id)).resolves.toBe(row);
    expect(model.findConversation).toHaveBeenCalledWith(USER, row.id);
  });

  it('when the model finds nothing (unknown or another tenant’s), then not_found', async () => {
    model.findConversation.mockResolvedValue(null);
    await expect(getConversation(USER, randomUUID())).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });
});

describe('pause and resume', () => {
  it('when paused, then the model pauses the bot for this tenant, by the API', async () => {
    const row = conversation({ botPaused: true, pausedBy: 'api' });
    model.pauseBot.mockResolvedValue(row);
    await expect(pauseConversation(USER, row.id)).resolves.toBe(row);
    expect(model.pauseBot).toHaveBeenCalledWith(USER, row.id, 'api');
  });

  it('when resumed, then the model resumes the bot', async () => {
    const row = conversation();
    model.resumeBot.mockResolvedValue(row);
    await expect(resumeConversation(USER, row.id)).resolves.toBe(row);
    expect(model.resumeBot).toHaveBeenCalledWith(USER, row.id);
  });

  it('when the resume timer runs, then the model resumes a bounded batch of due conversations and the count comes back', async () => {
    model.resumeDueConversations.mockResolvedValue([{ userId: USER, conversationId: randomUUID() }]);
    await expect(resumeDueConversations()).resolves.toBe(1);
    expect(model.resumeDueConversations).toHaveBeenCalledWith(expect.any(Number));
  });

  it.each([
    ['pause', pauseConversation],
    ['resume', resumeConversation],
  ])('when the conversation is not the tenant’s, then %s throws not_found', async (_name, fn) => {
    model.pauseBot.mockResolvedValue(null);
    model.resumeBot.mockResolvedValue(null);
    await expect(fn(USER, randomUUID())).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('requestExtraction', () => {
  it('when the conversation is the tenant’s, then it is marked', async () => {
    model.markExtractionRequested.mockResolvedValue(true);
    const id = randomUUID();
    await expect(requestExtraction(USER, id)).resolves.toBeUndefined();
    expect(model.markExtractionRequested).toHaveBeenCalledWith(USER, id);
  });

  it('when nothing was marked, then not_found', async () => {
    model.markExtractionRequested.mockResolvedValue(false);
    await expect(requestExtraction(USER, randomUUID())).rejects.toMatchObject({ code: 'not_found' });
  });
});
