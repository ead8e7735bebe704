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
  setBotPaused,
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
    { name: 'setBotPaused', call: (client) => setBotPaused(USER, CONVERSATION, true, client) },
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

describe('setBotPaused', () => {
  it('when the bot is paused, then the flag is sent and the updated row comes back', async () => {
    answer(fake.db, [{ ...conversation, botPaused: true }]);

    await expect(setBotPaused(USER, CONVERSATION, true)).resolves.toMatchObject({ botPaused: true });
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, true]);
  });

  it('when the tenant has no such conversation, then it is null', async () => {
    await expect(setBotPaused(USER, CONVERSATION, false)).resolves.toBeNull();
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
