/**
 * Every Redis connection comes from here, with the configured key prefix, so a test file (or a
 * second deployment on one server) lives in its own key space. Blocking reads get a connection
 * of their own: a blocked connection would stall every other command queued behind it.
 */
import Redis, { type RedisOptions } from 'ioredis';
import { config } from '../config';
import { logger } from './logger';

export type RedisClient = Redis;

const clients = new Set<Redis>();
let shared: Redis | undefined;

export function createRedis(purpose: string, overrides: RedisOptions = {}): Redis {
  const client = new Redis(config.REDIS_URL, {
    keyPrefix: config.REDIS_KEY_PREFIX,
    // Fail commands fast while disconnected instead of queueing them forever; callers decide.
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
    connectionName: `mca:${purpose}`,
    // Commands issued in the same tick (a worker's many concurrent conversations) share one
    // write: every socket write is a syscall plus loopback delivery, the worker's largest cost.
    enableAutoPipelining: true,
    ...overrides,
  });
  client.on('error', (error) => logger.warn({ err: { message: error.message }, purpose }, 'Redis connection error'));
  clients.add(client);
  return client;
}

/** The process's shared connection for ordinary (non-blocking) commands. */
export function getRedis(): Redis {
  shared ??= createRedis('shared');
  return shared;
}

/** A connection for XREADGROUP BLOCK and the like; never share it. */
export function createBlockingRedis(purpose: string): Redis {
  return createRedis(`${purpose}:blocking`, { maxRetriesPerRequest: null, enableAutoPipelining: false });
}

export async function pingRedis(client: Redis = getRedis()): Promise<void> {
  await client.ping();
}

/** Closes every connection this process made; blocking ones first, so no read is left hanging. */
export async function closeRedis(): Promise<void> {
  shared = undefined;
  const all = [...clients];
  clients.clear();
  await Promise.all(
    all.map(async (client) => {
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    }),
  );
}
