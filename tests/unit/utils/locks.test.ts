/**
 * Conversation leases against ioredis-mock, which runs the Lua scripts (EVAL through fengari),
 * so ownership checks, the dirty flag and extension are exercised as Redis would run them.
 * Time-based cases use short real TTLs: ioredis-mock expires keys by the wall clock.
 */
import { slotOf as calculateSlot } from '../../fixtures/redisCluster';
import RedisMock from 'ioredis-mock';
import type Redis from 'ioredis';
import {
  conversationDirtyKey,
  conversationLease,
  conversationLockKey,
  Lease,
  markConversationDirty,
} from '../../../src/utils/locks';
import { getRedis } from '../../../src/utils/redis';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn() }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TTL = 10_000;
const CONVERSATION = '22222222-2222-4222-8222-222222222222';

let redis: Redis;
const leases: Lease[] = [];

/** A lease on the shared mock whose keep-alive timer is stopped after the test. */
function lease(ttlMs = TTL, conversationId = CONVERSATION): Lease {
  const created = conversationLease(conversationId, ttlMs, redis);
  leases.push(created);
  return created;
}

beforeEach(() => {
  redis = new RedisMock({ keyPrefix: `locks-test:${Math.random().toString(36).slice(2)}:` }) as unknown as Redis;
  (getRedis as jest.Mock).mockReturnValue(redis);
});

afterEach(async () => {
  for (const created of leases.splice(0)) created.stopKeepAlive();
  await redis.flushall();
  redis.disconnect();
});

describe('keys', () => {
  it('when a lease is made for a conversation, then it uses the lock key and its owner token is unique', () => {
    const a = lease();
    const b = lease();

    expect(a.key).toBe(`lock:conversation:{${CONVERSATION}}`);
    // One hash tag for both: the release script reads both, in one slot on a Redis Cluster.
    expect(conversationLockKey('c')).toBe('lock:conversation:{c}');
    expect(conversationDirtyKey('c')).toBe('dirty:conversation:{c}');
    expect(calculateSlot(`mca:${conversationDirtyKey(CONVERSATION)}`)).toBe(calculateSlot(`mca:${conversationLockKey(CONVERSATION)}`));
    expect(a.token).not.toBe(b.token);
  });

  it('when no client is passed, then the shared connection is used', async () => {
    const created = conversationLease(CONVERSATION, TTL);
    leases.push(created);

    expect(await created.acquire()).toBe(true);
    expect(getRedis).toHaveBeenCalled();
    expect(await redis.get(conversationLockKey(CONVERSATION))).toBe(created.token);
  });
});

describe('acquire', () => {
  it('when the conversation is free, then the lease is taken with the owner token and the TTL', async () => {
    const owner = lease();

    expect(await owner.acquire()).toBe(true);
    expect(await redis.get(owner.key)).toBe(owner.token);
    const ttl = await redis.pttl(owner.key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL);
  });

  it('when another owner holds it, then acquire is refused and the holder keeps it', async () => {
    const first = lease();
    const second = lease();
    await first.acquire();

    expect(await second.acquire()).toBe(false);
    expect(await redis.get(first.key)).toBe(first.token);
  });

  it('when the same lease asks twice, then the second is refused too (not re-entrant)', async () => {
    const owner = lease();
    await owner.acquire();

    expect(await owner.acquire()).toBe(false);
  });

  it('when the holder let its lease expire, then another can take it', async () => {
    const first = lease(60);
    const second = lease();
    await first.acquire();
    await sleep(90);

    expect(await second.acquire()).toBe(true);
  });

  it('when two conversations are leased, then they do not exclude each other', async () => {
    expect(await lease(TTL, 'conv-a').acquire()).toBe(true);
    expect(await lease(TTL, 'conv-b').acquire()).toBe(true);
  });
});

describe('release', () => {
  it('when the owner releases, then the key is deleted and the outcome is released', async () => {
    const owner = lease();
    await owner.acquire();

    expect(await owner.release()).toBe('released');
    expect(await redis.exists(owner.key)).toBe(0);
  });

  it('when a non-owner releases, then the outcome is lost and the owner keeps the lease', async () => {
    const owner = lease();
    const stranger = lease();
    await owner.acquire();

    expect(await stranger.release()).toBe('lost');
    expect(await redis.get(owner.key)).toBe(owner.token);
  });

  it('when the lease expired and was taken by another, then the old owner gets lost and deletes nothing', async () => {
    const old = lease(60);
    const next = lease();
    await old.acquire();
    await sleep(90);
    await next.acquire();

    expect(await old.release()).toBe('lost');
    expect(await redis.get(next.key)).toBe(next.token);
  });

  it('when the conversation was marked dirty, then release says again, keeps the lease with a fresh TTL and clears the mark', async () => {
    const owner = lease(5_000);
    await owner.acquire();
    await redis.pexpire(owner.key, 100);
    await markConversationDirty(CONVERSATION, TTL);

    expect(await owner.release()).toBe('again');
    expect(await redis.get(owner.key)).toBe(owner.token);
    expect(await redis.pttl(owner.key)).toBeGreaterThan(1_000);
    expect(await redis.exists(conversationDirtyKey(CONVERSATION))).toBe(0);

    expect(await owner.release()).toBe('released');
    expect(await redis.exists(owner.key)).toBe(0);
  });

  it('when a non-owner releases a dirty conversation, then the mark stays for the real owner', async () => {
    const owner = lease();
    const stranger = lease();
    await owner.acquire();
    await markConversationDirty(CONVERSATION, TTL, redis);

    expect(await stranger.release()).toBe('lost');
    expect(await owner.release()).toBe('again');
  });

  it('when the dirty mark expired before release, then release simply releases', async () => {
    const owner = lease();
    await owner.acquire();
    await markConversationDirty(CONVERSATION, 30, redis);
    await sleep(60);

    expect(await owner.release()).toBe('released');
  });
});

describe('markConversationDirty', () => {
  it('when marked, then the dirty key exists with the given TTL', async () => {
    await markConversationDirty(CONVERSATION, 2_000, redis);

    expect(await redis.get(conversationDirtyKey(CONVERSATION))).toBe('1');
    const ttl = await redis.pttl(conversationDirtyKey(CONVERSATION));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2_000);
  });
});

describe('abandon', () => {
  it('when the owner abandons, then the lease is gone even if the conversation is dirty, and the mark is left', async () => {
    const owner = lease();
    await owner.acquire();
    await markConversationDirty(CONVERSATION, TTL, redis);

    await owner.abandon();

    expect(await redis.exists(owner.key)).toBe(0);
    expect(await redis.exists(conversationDirtyKey(CONVERSATION))).toBe(1);
  });

  it('when a non-owner abandons, then the owner keeps the lease', async () => {
    const owner = lease();
    const stranger = lease();
    await owner.acquire();

    await stranger.abandon();

    expect(await redis.get(owner.key)).toBe(owner.token);
  });

  it('when abandoned, then the keep-alive stops and no longer extends or reports loss', async () => {
    const owner = lease(150);
    const onLost = jest.fn();
    await owner.acquire();
    owner.keepAlive(onLost);

    await owner.abandon();
    await redis.set(owner.key, 'someone-else');
    await sleep(160);

    expect(onLost).not.toHaveBeenCalled();
    expect(owner.lost).toBe(false);
  });
});

describe('keepAlive', () => {
  it('when kept alive past its TTL, then the lease is still ours', async () => {
    // Extended every 100 ms with a 300 ms TTL: two missed ticks of slack for a busy machine.
    const owner = lease(300);
    const onLost = jest.fn();
    await owner.acquire();

    owner.keepAlive(onLost);
    await sleep(750);

    expect(await redis.get(owner.key)).toBe(owner.token);
    expect(onLost).not.toHaveBeenCalled();
    expect(owner.lost).toBe(false);
  });

  it('when not kept alive, then the same lease expires (control for the case above)', async () => {
    const owner = lease(150);
    await owner.acquire();

    await sleep(200);

    expect(await redis.exists(owner.key)).toBe(0);
  });

  it('when another owner takes the key, then onLost fires exactly once and lost turns true', async () => {
    const owner = lease(150);
    const onLost = jest.fn();
    await owner.acquire();
    owner.keepAlive(onLost);

    await redis.set(owner.key, 'another-token');
    await sleep(200);

    expect(onLost).toHaveBeenCalledTimes(1);
    expect(owner.lost).toBe(true);
    expect(await redis.get(owner.key)).toBe('another-token');
  });

  it('when the key vanished, then onLost fires', async () => {
    const owner = lease(150);
    const onLost = jest.fn();
    await owner.acquire();
    owner.keepAlive(onLost);

    await redis.del(owner.key);
    await sleep(120);

    expect(onLost).toHaveBeenCalledTimes(1);
  });

  it('when release says again, then the keep-alive keeps running; when released, then it stops', async () => {
    const owner = lease(300);
    const onLost = jest.fn();
    await owner.acquire();
    owner.keepAlive(onLost);
    await markConversationDirty(CONVERSATION, TTL, redis);

    expect(await owner.release()).toBe('again');
    await sleep(500);
    expect(await redis.get(owner.key)).toBe(owner.token);

    expect(await owner.release()).toBe('released');
    await redis.set(owner.key, 'next-owner');
    await sleep(220);
    expect(onLost).not.toHaveBeenCalled();
  });

  it('when Redis errors on an extension, then that is not taken for a lost lease', async () => {
    const failing = { eval: jest.fn().mockRejectedValue(new Error('Connection is closed.')) } as unknown as Redis;
    const owner = new Lease(failing, 'lock:x', 'dirty:x', 150);
    leases.push(owner);
    const onLost = jest.fn();

    owner.keepAlive(onLost);
    await sleep(130);

    expect((failing.eval as jest.Mock).mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(onLost).not.toHaveBeenCalled();
    expect(owner.lost).toBe(false);
  });

  it('when the TTL is tiny, then extensions still run no more often than every 50 ms', async () => {
    const counting = { eval: jest.fn().mockResolvedValue(1) } as unknown as Redis;
    const owner = new Lease(counting, 'lock:y', 'dirty:y', 3);
    leases.push(owner);

    owner.keepAlive(jest.fn());
    await sleep(130);

    const calls = (counting.eval as jest.Mock).mock.calls.length;
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(3);
  });
});
