/**
 * The conversation model with a fake database: the parameters of each statement (tenant first,
 * only the filters given, one extra row for paging) and what "no row" means. What the statements
 * do runs against Postgres in tests/integration/conversations.test.ts and linking.test.ts.
 */
import {
  archiveActiveConversations,
  findConversation,
  listConversations,
  lockConversation,
  markExtractionRequested,
  pauseBot,
  resumeBot,
  resumeDueConversations,
} from '../../../src/models/Conversation';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, fakeQueryable, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AGENT, CONVERSATION, conversationRow, NUMBER, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const conversation = conversationRow();

beforeEach(() => resetFakeDatabase(fake));

describe('every statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'findConversation', call: (client) => findConversation(USER, CONVERSATION, client) },
    { name: 'lockConversation', call: (client) => lockConversation(USER, CONVERSATION, client) },
    { name: 'listConversations', call: (client) => listConversations(USER, { agentId: AGENT }, { limit: 5, afterId: CONVERSATION }, client) },
    { name: 'pauseBot', call: (client) => pauseBot(USER, CONVERSATION, 'api', client) },
    { name: 'resumeBot', call: (client) => resumeBot(USER, CONVERSATION, client) },
    { name: 'markExtractionRequested', call: (client) => markExtractionRequested(USER, CONVERSATION, client) },
    { name: 'archiveActiveConversations', call: (client) => archiveActiveConversations(USER, NUMBER, 'agent_relinked', client) },
  ]);
});

describe('findConversation and lockConversation', () => {
  it('when the tenant has the conversation, then its row comes back as is', async () => {
    answer(fake.db, [conversation]);
    const tx = fakeQueryable();
    answer(tx, [conversation]);

    await expect(findConversation(USER, CONVERSATION)).resolves.toEqual(conversation);
    await expect(lockConversation(USER, CONVERSATION, tx)).resolves.toEqual(conversation);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION]);
    expect(paramsOf(tx)).toEqual([USER, CONVERSATION]);
  });

  it('when the tenant has no such conversation, then both are null', async () => {
    await expect(findConversation(USER, CONVERSATION)).resolves.toBeNull();
    await expect(lockConversation(USER, CONVERSATION, fakeQueryable())).resolves.toBeNull();
  });
});

describe('listConversations', () => {
  it('when no filter is given, then only the tenant and one row more than the limit are sent', async () => {
    answer(fake.db, [conversation]);

    await expect(listConversations(USER, {}, { limit: 20 })).resolves.toEqual([conversation]);
    expect(paramsOf(fake.db)).toEqual([USER, 21]);
  });

  it('when every filter and a cursor are given, then each is sent once, in order, before the limit', async () => {
    await listConversations(USER, { phoneNumberId: NUMBER, agentId: AGENT, isActive: false }, { limit: 2, afterId: CONVERSATION });

    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, AGENT, false, CONVERSATION, 3]);
  });
});

describe('pauseBot and resumeBot', () => {
  it('when the bot is paused, then who paused it is sent and the row as it is now comes back', async () => {
    answer(fake.db, [{ ...conversation, botPaused: true, pausedBy: 'api' }]);

    await expect(pauseBot(USER, CONVERSATION, 'api')).resolves.toMatchObject({ botPaused: true, pausedBy: 'api' });
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 'api']);
  });

  it('when resumed, then the row as it is now comes back', async () => {
    answer(fake.db, [conversation]);

    await expect(resumeBot(USER, CONVERSATION)).resolves.toEqual(conversation);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION]);
  });

  it('when the tenant has no such conversation, then both are null', async () => {
    await expect(pauseBot(USER, CONVERSATION, 'api')).resolves.toBeNull();
    await expect(resumeBot(USER, CONVERSATION)).resolves.toBeNull();
  });
});

describe('resumeDueConversations', () => {
  it('when conversations are due, then each comes back with its tenant, and the batch limit is sent', async () => {
    answer(fake.db, [{ userId: USER, conversationId: CONVERSATION }]);

    await expect(resumeDueConversations(50)).resolves.toEqual([{ userId: USER, conversationId: CONVERSATION }]);
    expect(paramsOf(fake.db)).toEqual([50]);
  });
});

describe('markExtractionRequested', () => {
  it('when the conversation is the tenant\'s, then it is true', async () => {
    answer(fake.db, { rows: [], rowCount: 1 });

    await expect(markExtractionRequested(USER, CONVERSATION)).resolves.toBe(true);
  });

  it('when the tenant has no such conversation, then it is false', async () => {
    await expect(markExtractionRequested(USER, CONVERSATION)).resolves.toBe(false);
  });
});

describe('archiveActiveConversations', () => {
  it('when the number has active conversations, then the reason is sent and their count comes back', async () => {
    answer(fake.db, { rows: [], rowCount: 4 });

    await expect(archiveActiveConversations(USER, NUMBER, 'phone_number_deleted')).resolves.toBe(4);
    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, 'phone_number_deleted']);
  });

  it('when the driver reports no row count, then it is zero', async () => {
    answer(fake.db, { rows: [], rowCount: null });

    await expect(archiveActiveConversations(USER, NUMBER, 'agent_unlinked')).resolves.toBe(0);
  });
});
