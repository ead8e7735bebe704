/**
 * The delivery policy with Redis as ioredis-mock and the models mocked: when an entry is poison,
 * what dead-lettering copies and fails, what the sweeper nudges again, and what a log line may
 * say of a nudge. The policy in the worker's loop runs in tests/unit/workers/messageWorker.test.ts
 * and against real Redis and Postgres in tests/integration/messageWorker.test.ts.
 */
import type Redis from 'ioredis';
import * as inbox from '../../../src/models/Inbox';
import * as replyTurn from '../../../src/models/ReplyTurn';
import { deadLetter, isPoison, nudgeLog, renudgeLost, retryBackoffMs } from '../../../src/services/deliveryPolicy';
import { logger } from '../../../src/utils/logger';
import { replyMetrics } from '../../../src/utils/metrics';
import { nudgeFields, parseNudge, deadLetterStream, messageStream, type ConversationNudge, type InboxNudge } from '../../../src/utils/queue';
import { closeRedisMock, createRedisMock } from '../../fixtures/redisMock';
import { CONVERSATION, CUSTOMER, NUMBER, USER } from '../../fixtures/rows';

jest.mock('../../../src/models/Inbox');
jest.mock('../../../src/models/ReplyTurn');

const model = { ...jest.mocked(inbox), ...jest.mocked(replyTurn) };
const conversationNudge: ConversationNudge = { conversationId: CONVERSATION, userId: USER, messageId: 'm-1', requestId: 'r-1' };
const inboxNudge: InboxNudge = { userId: USER, phoneNumberId: NUMBER, customerId: CUSTOMER, requestId: 'r-2' };
const poisonError = { code: 'poison', message: 'Processing kept failing; moved to the dead-letter queue' };

let redis: Redis;

/** The fields of every entry of a stream, oldest first. */
async function entries(stream: string): Promise<string[][]> {
  return ((await redis.xrange(stream, '-', '+')) as [string, string[]][]).map(([, fields]) => fields);
}

const poisonCount = async () => (await replyMetrics.failures.get()).values.find((v) => v.labels.reason === 'poison')?.value ?? 0;

beforeEach(() => {
  jest.resetAllMocks();
  jest.restoreAllMocks();
  redis = createRedisMock('policy-test');
});

afterEach(() => closeRedisMock(redis));

describe('retryBackoffMs (guarantee 12: transient failures back off, capped, with jitter)', () => {
  const options = { baseMs: 1_000, maxMs: 60_000 };

  it('when failures repeat, then the wait doubles from the base up to the cap, jittered between half and all of it', () => {
    expect([1, 2, 3, 4].map((n) => retryBackoffMs(n, options, () => 1))).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(retryBackoffMs(1, options, () => 0)).toBe(500);
    expect(retryBackoffMs(40, options, () => 1)).toBe(60_000);
    expect(retryBackoffMs(40, options, () => 0)).toBe(30_000);
  });

  it('when the provider gave a hint, then the wait is never shorter, even past the cap, up to an hour', () => {
    expect(retryBackoffMs(1, { ...options, hintMs: 6_000 }, () => 1)).toBe(6_000);
    expect(retryBackoffMs(1, { ...options, hintMs: 120_000 }, () => 1)).toBe(120_000);
    expect(retryBackoffMs(1, { ...options, hintMs: 86_400_000 }, () => 1)).toBe(3_600_000);
    expect(retryBackoffMs(5, { ...options, hintMs: 10 }, () => 1)).toBe(16_000);
  });
});

describe('isPoison', () => {
  it('when an entry has been delivered as often as allowed or more, then it is poison, and before that it is not', () => {
    expect(isPoison(4, 5)).toBe(false);
    expect(isPoison(5, 5)).toBe(true);
    expect(isPoison(6, 5)).toBe(true);
  });
});

describe('deadLetter', () => {
  it('when a conversation\'s entry is poison, then it is copied to the dead-letter stream with its deliveries, what the conversation owes fails, and it is counted', async () => {
    const id = await redis.xadd(messageStream(0), '*', ...nudgeFields(conversationNudge));
    const before = await poisonCount();

    await deadLetter(0, id!, 5, redis);

    expect(await entries(deadLetterStream(0))).toEqual([['entry_id', id, 'deliveries', '5', ...nudgeFields(conversationNudge)]]);
    expect(model.failPendingInbound).toHaveBeenCalledWith(USER, CONVERSATION, poisonError);
    expect(model.setInboxAside).not.toHaveBeenCalled();
    expect(await poisonCount()).toBe(before + 1);
  });

  it('when a customer\'s inbox entry is poison, then their inbox rows are set aside and their active conversation\'s owed messages fail', async () => {
    const id = await redis.xadd(messageStream(0), '*', ...nudgeFields(inboxNudge));
    model.setInboxAside.mockResolvedValue({ setAside: 2, conversationId: CONVERSATION });

    await deadLetter(0, id!, 5, redis);

    expect(model.setInboxAside).toHaveBeenCalledWith(parseNudge(nudgeFields(inboxNudge)), 'poison: moved to the dead-letter queue');
    expect(model.failPendingInbound).toHaveBeenCalledWith(USER, CONVERSATION, poisonError);
  });

  it('when the customer has no active conversation, then only the inbox rows are set aside', async () => {
    const id = await redis.xadd(messageStream(0), '*', ...nudgeFields(inboxNudge));
    model.setInboxAside.mockResolvedValue({ setAside: 1, conversationId: null });

    await deadLetter(0, id!, 5, redis);

    expect(model.setInboxAside).toHaveBeenCalledTimes(1);
    expect(model.failPendingInbound).not.toHaveBeenCalled();
  });

  it('when the entry was trimmed from the stream, then its id and deliveries are still dead-lettered and nothing is failed', async () => {
    await deadLetter(0, '1-0', 7, redis);

    expect(await entries(deadLetterStream(0))).toEqual([['entry_id', '1-0', 'deliveries', '7']]);
    expect(model.setInboxAside).not.toHaveBeenCalled();
    expect(model.failPendingInbound).not.toHaveBeenCalled();
  });

  it('when an inbox entry is dead-lettered, then the log names the number but never the customer\'s phone', async () => {
    const error = jest.spyOn(logger, 'error');
    const id = await redis.xadd(messageStream(0), '*', ...nudgeFields(inboxNudge));
    model.setInboxAside.mockResolvedValue({ setAside: 1, conversationId: null });

    await deadLetter(0, id!, 5, redis);

    expect(error).toHaveBeenCalledWith({ entry: id, deliveries: 5, phone_number_id: NUMBER }, 'poison entry dead-lettered');
    expect(JSON.stringify(error.mock.calls)).not.toContain(CUSTOMER);
  });
});

describe('renudgeLost', () => {
  it('when customers wait in the inbox and conversations owe something, then each is nudged again as the sweeper', async () => {
    model.findWaitingInbox.mockResolvedValue([{ userId: USER, phoneNumberId: NUMBER, customerId: CUSTOMER }]);
    model.findStaleConversations.mockResolvedValue([{ conversationId: CONVERSATION, userId: USER }]);

    await renudgeLost(30_000, redis);

    expect(model.findWaitingInbox).toHaveBeenCalledWith(30_000, expect.any(Number));
    expect(model.findStaleConversations).toHaveBeenCalledWith(30_000, expect.any(Number));
    expect((await entries(messageStream(0))).map(parseNudge)).toEqual([
      { userId: USER, phoneNumberId: NUMBER, customerId: CUSTOMER, requestId: 'sweeper' },
      { conversationId: CONVERSATION, userId: USER, messageId: undefined, requestId: 'sweeper' },
    ]);
  });

  it('when nothing is owed, then nothing is written to Redis', async () => {
    model.findWaitingInbox.mockResolvedValue([]);
    model.findStaleConversations.mockResolvedValue([]);
    const xadd = jest.spyOn(redis, 'xadd');

    await renudgeLost(30_000, redis);

    expect(xadd).not.toHaveBeenCalled();
    expect(await redis.exists(messageStream(0))).toBe(0);
  });

  it('when Redis refuses the nudges, then the error reaches the caller', async () => {
    model.findWaitingInbox.mockResolvedValue([]);
    model.findStaleConversations.mockResolvedValue([{ conversationId: CONVERSATION, userId: USER }]);
    jest.spyOn(redis, 'pipeline').mockImplementation(() => {
      throw new Error('Connection is closed.');
    });

    await expect(renudgeLost(30_000, redis)).rejects.toThrow('Connection is closed.');
  });
});

describe('nudgeLog', () => {
  it('when a conversation\'s nudge is logged, then it names the conversation', () => {
    expect(nudgeLog(conversationNudge)).toEqual({ conversation_id: CONVERSATION });
  });

  it('when a customer\'s inbox nudge is logged, then it names the number only, never the customer', () => {
    expect(nudgeLog(inboxNudge)).toEqual({ phone_number_id: NUMBER });
  });
});
