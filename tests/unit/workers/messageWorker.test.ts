/**
 * The message worker's process hygiene, with its edges faked (Redis connections, the lease,
 * the services): a heartbeat that fails at start-up is logged and the worker lives on, and
 * close() frees a read blocked in XREADGROUP first, then drains what is in flight.
 */
import type Redis from 'ioredis';
import { createBlockingRedis, getRedis } from '../../../src/utils/redis';
import { conversationLease } from '../../../src/utils/locks';
import { serveConversation } from '../../../src/services/replyService';
import { publishHeartbeat } from '../../../src/workers/heartbeat';
import { logger } from '../../../src/utils/logger';
import { MessageWorker } from '../../../src/workers/messageWorker';
import type { OpenAIService } from '../../../src/services/openaiService';
import type { GraphClient } from '../../../src/services/metaGraphService';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn(), createBlockingRedis: jest.fn() }));
jest.mock('../../../src/utils/locks', () => ({ conversationLease: jest.fn(), markConversationDirty: jest.fn() }));
jest.mock('../../../src/services/replyService', () => ({ ...jest.requireActual('../../../src/services/replyService'), serveConversation: jest.fn() }));
jest.mock('../../../src/workers/heartbeat', () => ({ ...jest.requireActual('../../../src/workers/heartbeat'), publishHeartbeat: jest.fn() }));

/** What happened, in order: the assertions are about ordering, never about elapsed time. */
let events: string[];
let shared: { options: object; xgroup: jest.Mock; xack: jest.Mock };

/**
 * A blocking connection whose XREADGROUP hands out `entries` once, then blocks until the
 * connection is disconnected, as ioredis fails a pending command when its connection closes.
 */
function blockingConnection(entries: [string, string[]][] = []) {
  let failPending: (error: Error) => void = () => undefined;
  let delivered = false;
  return {
    xreadgroup: jest.fn(() => {
      if (!delivered && entries.length > 0) {
        delivered = true;
        return Promise.resolve([['stream:messages', entries]]);
      }
      events.push('read blocked');
      return new Promise((_resolve, reject) => (failPending = reject));
    }),
    disconnect: jest.fn(() => {
      events.push('blocking disconnected');
      failPending(new Error('Connection is closed.'));
    }),
  };
}

function worker(): MessageWorker {
  // Timers far in the future: only what the test drives happens.
  return new MessageWorker({
    consumerName: 'test-consumer',
    leaseMs: 3_600_000,
    sweepIntervalMs: 3_600_000,
    blockMs: 3_600_000,
    openai: {} as OpenAIService,
    graph: {} as GraphClient,
  });
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

beforeEach(() => {
  jest.resetAllMocks();
  events = [];
  shared = { options: {}, xgroup: jest.fn().mockResolvedValue('OK'), xack: jest.fn(async () => events.push('acked')) };
  jest.mocked(getRedis).mockReturnValue(shared as unknown as Redis);
  jest.mocked(publishHeartbeat).mockResolvedValue(undefined);
  jest.mocked(conversationLease).mockReturnValue({
    acquire: jest.fn().mockResolvedValue(true),
    keepAlive: jest.fn(),
    release: jest.fn().mockResolvedValue('released'),
    abandon: jest.fn().mockResolvedValue(undefined),
  } as unknown as ReturnType<typeof conversationLease>);
});

describe('MessageWorker start', () => {
  it('when Redis refuses the first heartbeat, then the failure is logged and the worker keeps running', async () => {
    const blocking = blockingConnection();
    jest.mocked(createBlockingRedis).mockReturnValue(blocking as unknown as Redis);
    jest.mocked(publishHeartbeat).mockRejectedValue(new Error('READONLY You cannot write against a read only replica.'));
    const warn = jest.spyOn(logger, 'warn');
    const unhandled = jest.fn();
    process.on('unhandledRejection', unhandled);
    const subject = worker();
    try {
      await subject.start();
      await settle();

      expect(warn).toHaveBeenCalledWith({ err: { message: 'READONLY You cannot write against a read only replica.' } }, 'heartbeat failed');
      expect(unhandled).not.toHaveBeenCalled();
      expect(events).toContain('read blocked');
    } finally {
      process.off('unhandledRejection', unhandled);
      warn.mockRestore();
      await subject.close();
    }
  });
});

describe('MessageWorker close', () => {
  it('when a read is blocked, then close() disconnects the blocking connection first and returns without waiting out the block', async () => {
    const blocking = blockingConnection();
    jest.mocked(createBlockingRedis).mockReturnValue(blocking as unknown as Redis);
    const subject = worker();
    await subject.start();
    await settle();
    expect(events).toEqual(['read blocked']);

    // With a one-hour block, only a disconnect can end the read: close() resolving proves it came first.
    await subject.close();

    expect(events).toEqual(['read blocked', 'blocking disconnected']);
    expect(blocking.xreadgroup).toHaveBeenCalledTimes(1);
  });

  it('when a conversation is in flight, then close() frees the blocked read first and returns only once the turn is done and acknowledged', async () => {
    const blocking = blockingConnection([['1-0', ['conversation_id', 'c-1', 'user_id', 'u-1', 'message_id', '', 'request_id', 'r-1']]]);
    jest.mocked(createBlockingRedis).mockReturnValue(blocking as unknown as Redis);
    let finishTurn: () => void = () => undefined;
    jest.mocked(serveConversation).mockImplementation(() => {
      events.push('turn started');
      return new Promise<void>((resolve) => (finishTurn = () => (events.push('turn finished'), resolve())));
    });
    const subject = worker();
    await subject.start();
    await settle();
    expect([...events].sort()).toEqual(['read blocked', 'turn started']);
    events = [];

    let closed = false;
    const closing = subject.close().then(() => (closed = true));
    try {
      await settle();
      expect(events).toEqual(['blocking disconnected']);
      expect(closed).toBe(false);
    } finally {
      finishTurn();
      await closing;
    }
    expect(events).toEqual(['blocking disconnected', 'turn finished', 'acked']);
  });

  it('when close() is called twice, then both calls share one shutdown', async () => {
    jest.mocked(createBlockingRedis).mockReturnValue(blockingConnection() as unknown as Redis);
    const subject = worker();
    await subject.start();

    const [first, second] = [subject.close(), subject.close()];

    expect(first).toBe(second);
    await first;
    expect(events.filter((e) => e === 'blocking disconnected')).toHaveLength(1);
  });
});
