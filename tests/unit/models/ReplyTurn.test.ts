/**
 * The reply turn's data access with a fake database: how the one-query reads split their rows
 * (context and owed messages; attempt count, balance and history), how record_reply's row maps
 * to its outcome, and what each write sends (tenant first). What the statements do runs against
 * Postgres in tests/integration/replyTurn.test.ts and recordReply.test.ts.
 */
import {
  ANSWERED_ELSEWHERE,
  beginReplyAttempt,
  cancelBotReply,
  fallbackAlreadyQueued,
  requeueInsufficientCredits,
  undoReplyAttempt,
  failPendingInbound,
  findStaleConversations,
  listHistory,
  markInboundStatus,
  markOutboundFailed,
  markOutboundSent,
  claimOutboundPart,
  holdCredits,
  releaseHold,
  recordPartSent,
  loadOwedConversation,
  findTurnAgent,
  findTurnNumber,
  recordReply,
  releasePart,
} from '../../../src/models/ReplyTurn';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AGENT, allNull, CONVERSATION, messageRow, NUMBER, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const error = { code: 'poison', message: 'Processing kept failing' };

/** A message's columns all null: what the LEFT JOIN gives when nothing is owed. */
const noMessage = () => allNull(messageRow(0));

beforeEach(() => resetFakeDatabase(fake));

describe('every tenant-owned statement', () => {
  const recorded = { outcome: 'paused_or_archived', charged: null };
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'listHistory', call: (client) => listHistory(USER, CONVERSATION, 20, 5, client) },
    { name: 'beginReplyAttempt', call: (client) => beginReplyAttempt(USER, CONVERSATION, ['m'], 800, 60_000, client), rows: [{ holdId: null, attempts: 0 }] },
    { name: 'recordReply', call: (client) => recordReply(USER, CONVERSATION, { answered: ['m'], text: 'hi', replyToMessageId: 'm', cost: 1, tokens: 9 }, client), rows: [recorded] },
    { name: 'holdCredits', call: (client) => holdCredits(USER, CONVERSATION, 800, 60_000, client), rows: [{ id: null }] },
    { name: 'releaseHold', call: (client) => releaseHold(USER, 'h', client) },
    { name: 'markInboundStatus', call: (client) => markInboundStatus(USER, ['m'], 'ignored', null, client) },
    { name: 'failPendingInbound', call: (client) => failPendingInbound(USER, CONVERSATION, error, client) },
    { name: 'markOutboundSent', call: (client) => markOutboundSent(USER, 'm', ['wamid.1'], client) },
    { name: 'claimOutboundPart', call: (client) => claimOutboundPart(USER, 'm', 0, 'hi', 'token', 15_000, 86_400, client), rows: [{ outcome: 'claimed', externalId: null, waitMs: 0 }] },
    { name: 'recordPartSent', call: (client) => recordPartSent(USER, 'm', 0, 'wamid.1', null, client) },
    { name: 'loadOwedConversation', call: (client) => loadOwedConversation(USER, CONVERSATION, client) },
    { name: 'findTurnAgent', call: (client) => findTurnAgent(USER, AGENT, client) },
    { name: 'findTurnNumber', call: (client) => findTurnNumber(USER, NUMBER, client) },
    { name: 'releasePart', call: (client) => releasePart(USER, 'm', 0, 'token', client) },
    { name: 'markOutboundFailed', call: (client) => markOutboundFailed(USER, 'm', error, client) },
    { name: 'cancelBotReply', call: (client) => cancelBotReply(USER, 'm', 'bot_paused', client), rows: [{ cancelled: true }] },
    { name: 'requeueInsufficientCredits', call: (client) => requeueInsufficientCredits(USER, 86_400, client) },
    { name: 'fallbackAlreadyQueued', call: (client) => fallbackAlreadyQueued(USER, ['m'], client) },
    { name: 'undoReplyAttempt', call: (client) => undoReplyAttempt(USER, ['m'], client) },
  ]);
});

describe('loadOwedConversation', () => {
  it('when the conversation owes messages, then the conversation, its number id and the reason come from the first row, and each row gives one owed message or one of the history', async () => {
    const owed = [messageRow(3), messageRow(4, { direction: 'outbound', author: 'agent', status: 'queued' })];
    const history = [messageRow(1), messageRow(2, { direction: 'outbound', author: 'agent', status: 'sent' }), messageRow(3)];
    const columns = { c_id: CONVERSATION, c_user_id: USER, c_channel: 'whatsapp', c_customer_external_id: '1555', c_is_active: true, c_bot_paused: false, c_agent_id: AGENT, c_phone_number_id: NUMBER, c_reason_not_to_answer: 'bot_paused', c_window_open: true, c_opted_out: false };
    answer(fake.db, [
      ...history.map((m, i) => ({ ...columns, row_kind: 'history', turn_no: i + 1, ...m })),
      ...owed.map((m) => ({ ...columns, row_kind: 'owed', turn_no: null, ...m })),
    ]);

    expect(await loadOwedConversation(USER, CONVERSATION)).toEqual({
      reasonNotToAnswer: 'bot_paused',
      conversation: { id: CONVERSATION, userId: USER, channel: 'whatsapp', customerExternalId: '1555', isActive: true, botPaused: false, agentId: AGENT, windowOpen: true, optedOut: false },
      phoneNumberId: NUMBER,
      owed,
      history,
    });
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION]);
  });

  it('when nothing is owed, then owed is empty; when the conversation is not the tenant\'s, then null', async () => {
    answer(fake.db, [{ c_id: CONVERSATION, c_user_id: USER, c_phone_number_id: NUMBER, ...noMessage() }]);
    await expect(loadOwedConversation(USER, CONVERSATION)).resolves.toMatchObject({ owed: [], history: [] });
    await expect(loadOwedConversation(USER, CONVERSATION)).resolves.toBeNull();
  });
});

describe('findTurnAgent / findTurnNumber', () => {
  it('when found, then the row is the answer, tenant first; when not, null', async () => {
    answer(fake.db, [{ id: AGENT }]);
    await expect(findTurnAgent(USER, AGENT)).resolves.toEqual({ id: AGENT });
    expect(paramsOf(fake.db)).toEqual([USER, AGENT]);
    await expect(findTurnNumber(USER, NUMBER)).resolves.toBeNull();
    expect(paramsOf(fake.db, 1)).toEqual([USER, NUMBER]);
  });
});

describe('findStaleConversations', () => {
  it('when conversations wait untouched, then they come back with their tenants, across tenants', async () => {
    const stale = [{ conversationId: CONVERSATION, userId: USER }];
    answer(fake.db, stale);

    await expect(findStaleConversations(30_000, 500)).resolves.toEqual(stale);
    expect(paramsOf(fake.db)).toEqual([30_000, 500]);
  });
});

describe('listHistory', () => {
  it('when the history is read, then the sequence bound and the limit are sent and the rows come back in the order given', async () => {
    const history = [messageRow(1), messageRow(2, { direction: 'outbound', author: 'agent', status: 'sent' })];
    answer(fake.db, history);

    await expect(listHistory(USER, CONVERSATION, 20, 2)).resolves.toEqual(history);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 2, 20]);
  });
});

describe('beginReplyAttempt', () => {
  it('when an attempt begins, then the tenant, the amount, the conversation, the hold\'s lifetime and the messages go in one statement, and the hold and the count come back', async () => {
    answer(fake.db, [{ holdId: 'h1', attempts: 2 }]);

    await expect(beginReplyAttempt(USER, CONVERSATION, ['a', 'b'], 800, 60_000)).resolves.toEqual({ holdId: 'h1', attempts: 2 });
    expect(paramsOf(fake.db)).toEqual([USER, 800, CONVERSATION, 60_000, ['a', 'b']]);
  });

  it('when the hold is refused, then no hold and no count come back', async () => {
    answer(fake.db, [{ holdId: null, attempts: 0 }]);
    await expect(beginReplyAttempt(USER, CONVERSATION, ['a'], 800, 60_000)).resolves.toEqual({ holdId: null, attempts: 0 });
    await expect(beginReplyAttempt(USER, CONVERSATION, ['a'], 800, 60_000)).resolves.toEqual({ holdId: null, attempts: 0 });
  });
});


describe('recordReply', () => {
  const reply = { answered: ['a', 'b'], text: 'Size 38 is in stock', replyToMessageId: 'b', cost: 2, tokens: 140 };

  it('when the reply is recorded, then every part is sent and the reply and the bigint charge come back', async () => {
    const stored = messageRow(5, { direction: 'outbound', author: 'agent', status: 'queued', text: reply.text });
    answer(fake.db, [{ outcome: 'recorded', charged: '2', ...stored }]);

    await expect(recordReply(USER, CONVERSATION, reply)).resolves.toEqual({ outcome: 'recorded', reply: stored, charged: 2 });
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, ['a', 'b'], 'Size 38 is in stock', 'b', 2, 140, null, null, null]);

    answer(fake.db, [{ outcome: 'recorded', charged: '2', ...stored }]);
    await recordReply(USER, CONVERSATION, { ...reply, firstPart: { text: 'Size 38', token: 'token-1' } });
    expect(paramsOf(fake.db, 1).slice(-2)).toEqual(['Size 38', 'token-1']);
  });

  it('when the bot may no longer answer there, then only the outcome comes back', async () => {
    answer(fake.db, [{ outcome: 'paused_or_archived', charged: null, ...noMessage() }]);

    await expect(recordReply(USER, CONVERSATION, reply)).resolves.toEqual({ outcome: 'paused_or_archived' });
  });

  it('when another worker answered first, then the error with ANSWERED_ELSEWHERE reaches the caller unchanged', async () => {
    const raced = Object.assign(new Error('message no longer pending'), { code: ANSWERED_ELSEWHERE });
    answer(fake.db, raced);

    await expect(recordReply(USER, CONVERSATION, reply)).rejects.toBe(raced);
  });
});

describe('markInboundStatus', () => {
  it('when messages move with an error, then its code and text are sent and the count of moved rows comes back', async () => {
    answer(fake.db, { rows: [], rowCount: 2 });

    await expect(markInboundStatus(USER, ['a', 'b'], 'failed', { code: 'max_attempts', message: 'Gave up' })).resolves.toBe(2);
    expect(paramsOf(fake.db)).toEqual([USER, ['a', 'b'], 'failed', 'max_attempts', 'Gave up']);
  });

  it('when they move without an error, then null stands for it and a missing count is zero', async () => {
    answer(fake.db, { rows: [], rowCount: null });

    await expect(markInboundStatus(USER, ['a'], 'answered')).resolves.toBe(0);
    expect(paramsOf(fake.db)).toEqual([USER, ['a'], 'answered', null, null]);
  });
});

describe('failPendingInbound', () => {
  it('when what is owed is failed, then the error is sent and the count comes back', async () => {
    answer(fake.db, { rows: [], rowCount: 3 });

    await expect(failPendingInbound(USER, CONVERSATION, error)).resolves.toBe(3);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 'poison', 'Processing kept failing']);
  });
});

describe('markOutboundSent', () => {
  it('when every part was sent, then the message and every part\'s id in order go to mark_outbound_sent', async () => {
    await markOutboundSent(USER, 'm', ['wamid.1', 'wamid.2']);

    expect(paramsOf(fake.db)).toEqual([USER, 'm', ['wamid.1', 'wamid.2']]);
  });
});

describe('claimOutboundPart', () => {
  it('when the claim is made, then the part, its text, the attempt token and the grace go to claim_outbound_part', async () => {
    answer(fake.db, [{ outcome: 'claimed', externalId: null, waitMs: 0 }]);

    expect(await claimOutboundPart(USER, 'm', 2, 'part two', 'token-1', 15_000, 86_400)).toEqual({ outcome: 'claimed' });
    expect(paramsOf(fake.db)).toEqual([USER, 'm', 2, 'part two', 'token-1', 15_000, 86_400]);
  });

  it.each([
    [{ outcome: 'resent_after_grace', externalId: null, waitMs: 0 }, { outcome: 'resent_after_grace' }],
    [{ outcome: 'in_doubt', externalId: null, waitMs: 740 }, { outcome: 'in_doubt', waitMs: 740 }],
    [{ outcome: 'settled', externalId: 'wamid.A', waitMs: 0 }, { outcome: 'settled', externalId: 'wamid.A' }],
    [{ outcome: 'settled_by_status', externalId: 'wamid.B', waitMs: 0 }, { outcome: 'settled_by_status', externalId: 'wamid.B' }],
    [{ outcome: 'settled_by_echo', externalId: 'mid.C', waitMs: 0 }, { outcome: 'settled_by_echo', externalId: 'mid.C' }],
  ])('when the database answers %o, then the claim reads %o', async (row, claim) => {
    answer(fake.db, [row]);

    expect(await claimOutboundPart(USER, 'm', 0, 'hi', 'token', 15_000, 86_400)).toEqual(claim);
  });
});

describe('recordPartSent and releasePart', () => {
  it('when Graph answered, then the part and Meta\'s id are sent; when Meta refused, then only this attempt\'s mark is removed', async () => {
    await recordPartSent(USER, 'm', 1, 'wamid.1');
    expect(paramsOf(fake.db)).toEqual([USER, 'm', 1, 'wamid.1', null]);

    await recordPartSent(USER, 'm', 1, 'wamid.1', ['wamid.0', 'wamid.1']);
    expect(paramsOf(fake.db, 1)).toEqual([USER, 'm', 1, 'wamid.1', ['wamid.0', 'wamid.1']]);

    await releasePart(USER, 'm', 1, 'token-9');
    expect(paramsOf(fake.db, 2)).toEqual([USER, 'm', 1, 'token-9']);
  });
});

describe('markOutboundFailed', () => {
  it('when Graph refused the message, then its code and text are sent', async () => {
    await markOutboundFailed(USER, 'm', { code: '131047', message: 'Re-engagement message' });

    expect(paramsOf(fake.db)).toEqual([USER, 'm', '131047', 'Re-engagement message']);
  });
});
