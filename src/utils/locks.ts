/**
 * Per-conversation leases in Redis: `SET NX PX` with an owner token, extended while work is in
 * flight, released only by the owner (Lua, so check-and-delete is atomic). A caller that finds
 * the lease taken marks the conversation dirty instead of waiting; the owner sees the mark
 * when it releases and goes round once more, so a nudge that arrives mid-reply is never lost.
 */
import { randomUUID } from 'node:crypto';
import type { RedisClient as Redis } from './redis';
import { getRedis } from './redis';

const DELETE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

// 1: released. 0: not ours any more. 2: still ours, but someone asked for another round.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 2
end
redis.call('DEL', KEYS[1])
return 1`;

export type ReleaseOutcome = 'released' | 'lost' | 'again';

export class Lease {
  private timer?: NodeJS.Timeout;
  private lostFlag = false;
  readonly token = randomUUID();

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    private readonly dirtyKey: string,
    private readonly ttlMs: number,
  ) {}

  /** True once an extension found the lease gone (expired and maybe taken by another). */
  get lost(): boolean {
    return this.lostFlag;
  }

  async acquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Keeps the lease alive every third of its TTL until released; `onLost` fires if it slipped away. */
  keepAlive(onLost: () => void): void {
    this.timer = setInterval(() => {
      this.redis.eval(EXTEND, 1, this.key, this.token, this.ttlMs).then(
        (extended) => {
          if (extended === 0 && !this.lostFlag) {
            this.lostFlag = true;
            onLost();
          }
        },
        // A Redis blip is not a lost lease; the next tick tries again before the TTL runs out.
        () => undefined,
      );
    }, Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  stopKeepAlive(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Lets go without another round, e.g. after a failure that must wait before retrying. */
  async abandon(): Promise<void> {
    this.stopKeepAlive();
    await this.redis.eval(DELETE_IF_OWNER, 1, this.key, this.token);
  }

  async release(): Promise<ReleaseOutcome> {
    const result = await this.redis.eval(RELEASE, 2, this.key, this.dirtyKey, this.token, this.ttlMs);
    if (result === 2) return 'again';
    this.stopKeepAlive();
    return result === 1 ? 'released' : 'lost';
  }
}

// RELEASE reads both keys in one script: on a Redis Cluster they must share a slot, hence the
// conversation id as their hash tag (which also spreads conversations over every slot).
export const conversationLockKey = (conversationId: string) => `lock:conversation:{${conversationId}}`;
export const conversationDirtyKey = (conversationId: string) => `dirty:conversation:{${conversationId}}`;

export function conversationLease(conversationId: string, ttlMs: number, redis: Redis = getRedis()): Lease {
  return new Lease(redis, conversationLockKey(conversationId), conversationDirtyKey(conversationId), ttlMs);
}

/** Asks the current owner of a conversation's lease for one more round. */
export async function markConversationDirty(conversationId: string, ttlMs: number, redis: Redis = getRedis()): Promise<void> {
  await redis.set(conversationDirtyKey(conversationId), '1', 'PX', ttlMs);
}
