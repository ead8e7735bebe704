/**
 * Meta's throughput, shared by every worker (issue 16 item 7): at most `META_SEND_RATE_PER_SECOND`
 * sends per channel account per second (Meta: WhatsApp Business Platform › Throughput, 80 a
 * second by default; past it, error 130429). One bucket per account lives in Redis, so all
 * workers on all machines draw from it; a send that finds it empty waits for its turn instead
 * of failing.
 *
 * The bucket is a GCRA (generic cell rate algorithm): the key holds the account's next free
 * instant, read from Redis's own clock (TIME) so workers whose clocks disagree still share one
 * pace. A send is let through when that instant has come, and moves it on by 1/rate seconds:
 * sends are spaced evenly, never more than `rate` in any second. One key per account, its id in
 * the hash tag, so the script is a single-slot call on a Redis Cluster.
 */
import { config } from '../config';
import { logger } from './logger';
import { abortableSleep } from './retry';
import { getRedis, type RedisClient } from './redis';

// KEYS[1]: the account's bucket. ARGV[1]: microseconds between sends. Returns {1, granted at (µs)}
// or {0, wait (µs)}. Numbers travel as strings: Redis truncates Lua numbers, and µs since the
// epoch need all their digits. The arithmetic is floating point (1e6, not 1000000): a Lua with
// integers (5.3, or the 32-bit ones of ioredis-mock's fengari) would overflow µs since the epoch.
const TAKE = `
local interval = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1e6 + tonumber(t[2])
local due = tonumber(redis.call('GET', KEYS[1]) or '0')
if due > now then
  return {0, string.format('%.0f', due - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + interval), 'PX', math.ceil(interval / 1000) + 1000)
return {1, string.format('%.0f', now)}`;

export type SendChannel = 'whatsapp' | 'instagram';

/** One account's bucket; the account id is the hash tag. */
export const sendRateKey = (channel: SendChannel, accountId: string) => `sendrate:{${channel}:${accountId}}`;

export interface SendRateLimiter {
  /**
   * Waits until the account may send, and takes its turn. Resolves with the Redis time (µs) the
   * turn was granted at, or null when Redis could not be asked (then it lets the send go: Meta's
   * own limit, 130429, is the backstop). Rejects only when `signal` aborts the wait.
   */
  take(channel: SendChannel, accountId: string, signal?: AbortSignal): Promise<number | null>;
  readonly ratePerSecond: number;
}

export interface SendRateOptions {
  redis?: RedisClient;
  /** META_SEND_RATE_PER_SECOND by default. */
  ratePerSecond?: number;
}

const log = logger.child({ component: 'sendRate' });

export function createSendRateLimiter(options: SendRateOptions = {}): SendRateLimiter {
  const ratePerSecond = options.ratePerSecond ?? config.META_SEND_RATE_PER_SECOND;
  const intervalMicros = Math.max(1, Math.round(1_000_000 / ratePerSecond));
  const redis = () => options.redis ?? getRedis();
  return {
    ratePerSecond,
    async take(channel, accountId, signal) {
      const key = sendRateKey(channel, accountId);
      for (;;) {
        let answer: [number, string];
        try {
          answer = (await redis().eval(TAKE, 1, key, String(intervalMicros))) as [number, string];
        } catch (error) {
          log.warn({ err: { message: (error as Error).message }, channel, account_id: accountId }, 'send rate bucket unavailable; sending without it');
          return null;
        }
        const [granted, micros] = answer;
        if (Number(granted) === 1) return Number(micros);
        // Wait out the gap (at least 1 ms), then ask again: another worker may have taken the turn.
        await abortableSleep(Math.max(1, Math.ceil(Number(micros) / 1000)), signal);
      }
    },
  };
}
