/**
 * The send-rate bucket against ioredis-mock, which runs its Lua (TIME included): turns spaced by
 * 1/rate, one key per account with the account in its hash tag, a wait rather than a refusal,
 * and a Redis that cannot be asked letting the send go. Two processes sharing the bucket:
 * tests/integration/sendRate.test.ts.
 */
import type Redis from 'ioredis';
import { performance } from 'node:perf_hooks';
import { closeRedisMock, createRedisMock } from '../../fixtures/redisMock';
import { slotOf } from '../../fixtures/redisCluster';
import { createSendRateLimiter, sendRateKey } from '../../../src/utils/sendRate';

let redis: Redis;

/**
 * ioredis-mock's TIME pairs rounded wall-clock seconds with hrtime's nanoseconds, so it jumps
 * back and forth; scripts here read a monotonic clock instead, as Redis's TIME is.
 */
function withMonotonicTime(mock: Redis): Redis {
  const evaluate = mock.eval.bind(mock) as (script: string, ...args: unknown[]) => Promise<unknown>;
  const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
  Object.assign(mock, {
    eval: (script: string, ...args: unknown[]) => {
      const micros = now();
      return evaluate(script.replace("redis.call('TIME')", `{'${Math.floor(micros / 1e6)}', '${micros % 1e6}'}`), ...args);
    },
  });
  return mock;
}

beforeEach(() => {
  redis = withMonotonicTime(createRedisMock('sendrate'));
});
afterEach(() => closeRedisMock(redis));

describe('sendRateKey', () => {
  it('when keyed, then each account has its own key, with the account as the hash tag (one slot on a cluster)', () => {
    expect(sendRateKey('whatsapp', '1098')).toBe('sendrate:{whatsapp:1098}');
    expect(sendRateKey('instagram', '1098')).not.toBe(sendRateKey('whatsapp', '1098'));
    expect(slotOf(sendRateKey('whatsapp', '1098'))).toBe(slotOf('{whatsapp:1098}'));
  });
});

describe('createSendRateLimiter', () => {
  it('when turns are taken faster than the rate, then each waits for its own, 1/rate apart in Redis time', async () => {
    const limiter = createSendRateLimiter({ redis, ratePerSecond: 20 });
    const grants: number[] = [];
    for (let i = 0; i < 4; i++) grants.push((await limiter.take('whatsapp', 'A'))!);
    for (let i = 1; i < grants.length; i++) expect(grants[i]! - grants[i - 1]!).toBeGreaterThanOrEqual(50_000);
  });

  it('when another account sends, then it does not wait for the first one’s turn', async () => {
    const limiter = createSendRateLimiter({ redis, ratePerSecond: 1 });
    await limiter.take('whatsapp', 'A');
    // A's next turn is a second away; B's first is now. Resolving at all shows B did not wait a second here.
    const b = await limiter.take('whatsapp', 'B');
    expect(b).toEqual(expect.any(Number));
    expect(Number(await redis.get(sendRateKey('whatsapp', 'A')))).toBeGreaterThan(b!);
  });

  it('when the wait is aborted, then take rejects instead of sending', async () => {
    const limiter = createSendRateLimiter({ redis, ratePerSecond: 1 });
    await limiter.take('whatsapp', 'A');
    const controller = new AbortController();
    const waiting = limiter.take('whatsapp', 'A', controller.signal);
    controller.abort(new Error('lease lost'));
    await expect(waiting).rejects.toThrow('lease lost');
  });

  it('when Redis cannot be asked, then the send goes (null) rather than stalls: Meta’s 130429 is the backstop', async () => {
    const broken = { eval: jest.fn(async () => Promise.reject(new Error('ECONNREFUSED'))) } as unknown as Redis;
    await expect(createSendRateLimiter({ redis: broken, ratePerSecond: 5 }).take('instagram', 'X')).resolves.toBeNull();
  });

  it('when no rate is given, then META_SEND_RATE_PER_SECOND (80) applies', () => {
    expect(createSendRateLimiter({ redis }).ratePerSecond).toBe(80);
  });
});
