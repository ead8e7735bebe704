/**
 * The queue's wire format and its one write, against ioredis-mock (and a recording fake where
 * the exact command arguments or a failing command matter).
 */
import RedisMock from 'ioredis-mock';
import type Redis from 'ioredis';
import {
  enqueueConversations,
  isInboxNudge,
  nudgeFields,
  parseNudge,
  prefixedKey,
  readGroupBacklog,
  STREAM_MAX_LENGTH,
  deadLetterStream,
  messageStreams,
  shardOf,
  messageStream,
  CONSUMER_GROUPS,
  type ConversationNudge,
} from '../../../src/utils/queue';
import { getRedis } from '../../../src/utils/redis';
import { slotOf } from '../../fixtures/redisCluster';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn() }));

const USER = '11111111-1111-4111-8111-111111111111';
const CONVERSATION = '22222222-2222-4222-8222-222222222222';

/** A Redis whose pipeline records every XADD and answers `exec` with the given results. */
function recordingRedis(results: [Error | null, unknown][] | null) {
  const calls: unknown[][] = [];
  const pipeline: { xadd: jest.Mock; exec: jest.Mock } = {
    xadd: jest.fn((...args: unknown[]): unknown => {
      calls.push(args);
      return pipeline;
    }),
    exec: jest.fn(async () => results),
  };
  const redis = { pipeline: jest.fn(() => pipeline) } as unknown as Redis;
  return { redis, pipeline, calls };
}

describe('nudgeFields and parseNudge', () => {
  it('when a full nudge is written and read back, then it comes back equal', () => {
    const nudge: ConversationNudge = { conversationId: CONVERSATION, userId: USER, messageId: 'm-1', requestId: 'r-1' };

    expect(nudgeFields(nudge)).toEqual(['conversation_id', CONVERSATION, 'user_id', USER, 'message_id', 'm-1', 'request_id', 'r-1']);
    expect(parseNudge(nudgeFields(nudge))).toEqual(nudge);
  });

  it('when the optional ids are absent, then they are written empty and read back as undefined', () => {
    const fields = nudgeFields({ conversationId: CONVERSATION, userId: USER });

    expect(fields).toEqual(['conversation_id', CONVERSATION, 'user_id', USER, 'message_id', '', 'request_id', '']);
    expect(parseNudge(fields)).toEqual({ conversationId: CONVERSATION, userId: USER, messageId: undefined, requestId: undefined });
  });

  it('when fields come in another order or with extra keys, then they are still read by name', () => {
    expect(parseNudge(['extra', 'x', 'user_id', USER, 'conversation_id', CONVERSATION])).toEqual({
      conversationId: CONVERSATION,
      userId: USER,
      messageId: undefined,
      requestId: undefined,
    });
  });

  it.each<[string, string[]]>([
    ['nothing', []],
    ['no conversation id nor inbox key', ['user_id', USER]],
    ['an inbox key without its customer', ['user_id', USER, 'phone_number_id', 'N']],
    ['an inbox key without its number', ['user_id', USER, 'customer_id', 'C']],
    ['an inbox key without its user', ['phone_number_id', 'N', 'customer_id', 'C']],
    ['no user id', ['conversation_id', CONVERSATION]],
    ['an empty conversation id', ['conversation_id', '', 'user_id', USER]],
    ['an empty user id', ['conversation_id', CONVERSATION, 'user_id', '']],
    ['a dangling key without value', ['conversation_id', CONVERSATION, 'user_id']],
  ])('when the entry has %s, then it is not a nudge (null)', (_what, fields) => {
    expect(parseNudge(fields)).toBeNull();
  });

  it('when a key is repeated, then the last value wins', () => {
    expect(parseNudge(['conversation_id', 'old', 'user_id', USER, 'conversation_id', CONVERSATION])).toMatchObject({ conversationId: CONVERSATION });
  });

  it('when an inbox nudge is written and read back, then number, customer, tenant and request id survive, and it is told apart', () => {
    const inbox = { userId: USER, phoneNumberId: 'N-1', customerId: '15550001111', requestId: 'req-9' };
    const fields = nudgeFields(inbox);
    expect(fields).toEqual(['user_id', USER, 'phone_number_id', 'N-1', 'customer_id', '15550001111', 'request_id', 'req-9']);
    const parsed = parseNudge(fields)!;
    expect(parsed).toEqual(inbox);
    expect(isInboxNudge(parsed)).toBe(true);
    expect(isInboxNudge({ conversationId: CONVERSATION, userId: USER })).toBe(false);
    expect(parseNudge(nudgeFields({ ...inbox, requestId: undefined }))).toEqual({ ...inbox, requestId: undefined });
  });
});

describe('shardOf and the shard streams', () => {
  const inbox = (customerId: string) => ({ userId: USER, phoneNumberId: 'N-1', customerId });

  it('when there is one shard, then every nudge goes to shard 0', () => {
    expect(shardOf(inbox('1'), 1)).toBe(0);
    expect(shardOf({ conversationId: CONVERSATION, userId: USER }, 1)).toBe(0);
  });

  it("when there are shards, then a conversation's nudges always go to one shard, whatever else they carry", () => {
    expect(shardOf({ ...inbox('15550001111'), requestId: 'a' }, 8)).toBe(shardOf({ ...inbox('15550001111'), requestId: 'b' }, 8));
    expect(shardOf({ conversationId: CONVERSATION, userId: USER, messageId: 'm1' }, 8)).toBe(shardOf({ conversationId: CONVERSATION, userId: USER }, 8));
  });

  it('when many customers write, then they spread over every shard, none far above its share', () => {
    const counts = new Array<number>(4).fill(0);
    for (let i = 0; i < 4000; i++) counts[shardOf(inbox(String(15550000000 + i)), 4)]!++;

    for (const count of counts) expect(count).toBeGreaterThan(800);
  });

  it('when shards are keys of a Redis Cluster, then each has a slot of its own, and its dead-letter stream shares it', () => {
    const slots = messageStreams(8).map((stream) => slotOf(`mca:${stream}`));

    expect(new Set(slots).size).toBe(8);
    for (let shard = 0; shard < 8; shard++) expect(slotOf(deadLetterStream(shard))).toBe(slotOf(messageStream(shard)));
  });
});

describe('enqueueConversations', () => {
  it('when nudges go to several shards, then each shard gets one pipeline of its own nudges', async () => {
    const { redis, calls } = recordingRedis([[null, '1-0']]);
    const nudges = Array.from({ length: 20 }, (_, i) => ({ conversationId: `c${i}`, userId: USER }));

    await enqueueConversations(nudges, redis, 4);

    const shards = new Set(nudges.map((nudge) => shardOf(nudge, 4)));
    expect(jest.mocked(redis.pipeline)).toHaveBeenCalledTimes(shards.size);
    expect(calls.map(([stream, , , , , ...fields]) => [stream, fields])).toEqual(
      expect.arrayContaining(nudges.map((nudge) => [messageStream(shardOf(nudge, 4)), nudgeFields(nudge)])),
    );
  });

  it('when nudges are given, then one pipeline XADDs each to the messages stream with MAXLEN ~ and an auto id', async () => {
    const { redis, pipeline, calls } = recordingRedis([
      [null, '1-0'],
      [null, '2-0'],
    ]);
    const nudges = [
      { conversationId: 'c1', userId: USER, messageId: 'm1', requestId: 'r' },
      { conversationId: 'c2', userId: USER },
    ];

    await enqueueConversations(nudges, redis);

    expect(redis.pipeline).toHaveBeenCalledTimes(1);
    expect(pipeline.exec).toHaveBeenCalledTimes(1);
    expect(calls).toEqual(nudges.map((n) => [messageStream(0), 'MAXLEN', '~', String(STREAM_MAX_LENGTH), '*', ...nudgeFields(n)]));
  });

  it('when the list is empty, then no command is sent at all', async () => {
    const { redis } = recordingRedis([]);

    await enqueueConversations([], redis);

    expect(redis.pipeline).not.toHaveBeenCalled();
  });

  it('when one command of the pipeline fails, then its error is thrown', async () => {
    const failure = new Error('OOM command not allowed when used memory > maxmemory');
    const { redis } = recordingRedis([
      [null, '1-0'],
      [failure, null],
    ]);

    await expect(enqueueConversations([{ conversationId: 'c1', userId: USER }, { conversationId: 'c2', userId: USER }], redis)).rejects.toBe(
      failure,
    );
  });

  it('when exec itself rejects (connection gone), then that rejection propagates', async () => {
    const { redis, pipeline } = recordingRedis([]);
    pipeline.exec.mockRejectedValueOnce(new Error('Connection is closed.'));

    await expect(enqueueConversations([{ conversationId: 'c1', userId: USER }], redis)).rejects.toThrow('Connection is closed.');
  });

  it('when exec answers null (aborted transaction), then nothing is thrown', async () => {
    const { redis } = recordingRedis(null);

    await expect(enqueueConversations([{ conversationId: 'c1', userId: USER }], redis)).resolves.toBeUndefined();
  });

  it('when run against Redis, then the entries land in the stream in order and parse back', async () => {
    const redis = new RedisMock({ keyPrefix: `queue-test:${Date.now()}:` }) as unknown as Redis;
    const nudges = [
      { conversationId: 'c1', userId: USER, messageId: 'm1', requestId: 'r1' },
      { conversationId: 'c2', userId: USER, messageId: 'm2', requestId: 'r1' },
    ];
    try {
      await enqueueConversations(nudges, redis);

      const entries = await redis.xrange(messageStream(0), '-', '+');
      expect(entries.map(([, fields]) => parseNudge(fields))).toEqual(nudges);
    } finally {
      await redis.flushall();
      redis.disconnect();
    }
  });

  it('when no client is passed, then the shared connection from getRedis is used', async () => {
    const { redis, calls } = recordingRedis([[null, '1-0']]);
    (getRedis as jest.Mock).mockReturnValue(redis);

    await enqueueConversations([{ conversationId: 'c1', userId: USER }]);

    expect(getRedis).toHaveBeenCalled();
    expect(calls).toHaveLength(1);
  });
});

describe('prefixedKey', () => {
  it('when the client has a key prefix, then it is put in front of the key', () => {
    expect(prefixedKey({ options: { keyPrefix: 'tenant:' } } as unknown as Redis, messageStream(0))).toBe('tenant:stream:{messages:0}');
  });

  it('when the client has no key prefix, then the key is unchanged', () => {
    expect(prefixedKey({ options: {} } as unknown as Redis, messageStream(0))).toBe('stream:{messages:0}');
  });
});

describe('readGroupBacklog', () => {
  /** XINFO GROUPS as Redis answers it: one flat name/value list per group. */
  const group = (fields: Record<string, unknown>) => Object.entries(fields).flat();
  const fakeRedis = (xinfo: jest.Mock, xrange = jest.fn()) => ({ options: { keyPrefix: 'p:' }, xinfo, xrange }) as unknown as Redis;

  it('when the message group reports lag and pending, then those are the backlog, read from the prefixed stream key', async () => {
    const xinfo = jest.fn().mockResolvedValue([
      group({ name: 'someone-else', consumers: 1, pending: 99, 'last-delivered-id': '0-0', lag: 99 }),
      group({ name: CONSUMER_GROUPS.messages, consumers: 3, pending: 7, 'last-delivered-id': '5-0', 'entries-read': 5, lag: 12 }),
    ]);

    expect(await readGroupBacklog(fakeRedis(xinfo))).toEqual({ lag: 12, pending: 7, shards: [{ stream: messageStream(0), lag: 12, pending: 7 }] });
    expect(xinfo).toHaveBeenCalledWith('GROUPS', 'p:stream:{messages:0}');
  });

  it('when Redis cannot tell the lag (null, or older than 7.0), then the unread entries after the last delivered id are counted', async () => {
    const xinfo = jest.fn().mockResolvedValue([group({ name: CONSUMER_GROUPS.messages, pending: 2, 'last-delivered-id': '5-0', lag: null })]);
    const xrange = jest.fn().mockResolvedValue([['6-0', []], ['7-0', []], ['8-0', []]]);

    expect(await readGroupBacklog(fakeRedis(xinfo, xrange))).toMatchObject({ lag: 3, pending: 2 });
    expect(xrange).toHaveBeenCalledWith(messageStream(0), '(5-0', '+', 'COUNT', 10_000);
  });

  it('when the stream has shards, then the backlog is their sum, each shard read from its own stream; shards without a group add nothing', async () => {
    const xinfo = jest.fn(async (_groups: string, key: string) => {
      if (key === 'p:stream:{messages:2}') throw new Error('ERR no such key');
      const shard = Number(/messages:(\d+)/.exec(key)![1]);
      return [group({ name: CONSUMER_GROUPS.messages, pending: shard, 'last-delivered-id': '0-0', lag: 10 * shard })];
    });

    const backlog = await readGroupBacklog(fakeRedis(xinfo), 4);

    expect(xinfo.mock.calls.map(([, key]) => key)).toEqual(messageStreams(4).map((stream) => `p:${stream}`));
    expect(backlog).toEqual({
      lag: 40,
      pending: 4,
      shards: [0, 1, 3].map((shard) => ({ stream: messageStream(shard), lag: 10 * shard, pending: shard })),
    });
  });

  it('when the stream does not exist yet, or has no message group, then there is no backlog to tell (null)', async () => {
    const missing = jest.fn().mockRejectedValue(new Error('ERR no such key'));
    expect(await readGroupBacklog(fakeRedis(missing))).toBeNull();
    expect(await readGroupBacklog(fakeRedis(jest.fn().mockResolvedValue([])))).toBeNull();
  });

  it('when Redis is unreachable, then it rejects: an unknown backlog is not an empty one', async () => {
    const down = jest.fn().mockRejectedValue(new Error('Connection is closed.'));

    await expect(readGroupBacklog(fakeRedis(down))).rejects.toThrow('Connection is closed.');
  });
});
