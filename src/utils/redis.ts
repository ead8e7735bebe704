/**
 * Every Redis connection comes from here, with the configured key prefix, so a test file (or a
 * second deployment on one server) lives in its own key space. Blocking reads get a connection
 * of their own: a blocked connection would stall every other command queued behind it.
 *
 * With REDIS_CLUSTER_NODES set, each "connection" is an ioredis Cluster client (one socket per
 * node, commands routed by hash slot, MOVED/ASK followed). The key prefix works the same way
 * there; what a cluster adds is that every key one Lua script, MULTI or multi-key command
 * touches must hash to one slot, so such keys share a `{hash tag}` (locks.ts, heartbeat.ts,
 * queue.ts), and the prefix itself may hold no braces (config).
 */
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { config } from '../config';
import { logger } from './logger';

/** A standalone connection or a Cluster client: the commands this code uses work on both. */
export type RedisClient = Redis | Cluster;

/** What a caller may tune on a connection, standalone or cluster alike. */
export type ConnectionOptions = Pick<RedisOptions, 'keyPrefix' | 'maxRetriesPerRequest' | 'enableAutoPipelining' | 'connectTimeout'>;

const clients = new Set<RedisClient>();
let shared: RedisClient | undefined;

/** Whether this process talks to a Redis Cluster (REDIS_CLUSTER_NODES). */
export const isCluster = (client: RedisClient): client is Cluster => client.isCluster === true;

function createCluster(purpose: string, overrides: ConnectionOptions): Cluster {
  const { keyPrefix = config.REDIS_KEY_PREFIX, enableAutoPipelining = true, ...perNode } = overrides;
  return new Cluster(config.REDIS_CLUSTER_NODES!, {
    keyPrefix,
    enableAutoPipelining,
    // Auto-pipelining routes by the first argument; these name their key after a subcommand
    // (XGROUP CREATE key), so they go alone, to any node, and follow its MOVED to the key's.
    autoPipeliningIgnoredCommands: ['xgroup', 'xinfo'],
    enableOfflineQueue: true,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    redisOptions: {
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      connectionName: `mca:${purpose}`,
      ...perNode,
    },
  });
}

export function createRedis(purpose: string, overrides: ConnectionOptions = {}): RedisClient {
  const client: RedisClient = config.REDIS_CLUSTER_NODES ? createCluster(purpose, overrides) : createStandalone(purpose, overrides);
  client.on('error', (error: Error) => logger.warn({ err: { message: error.message }, purpose }, 'Redis connection error'));
  clients.add(client);
  return client;
}

function createStandalone(purpose: string, overrides: ConnectionOptions): Redis {
  return new Redis(config.REDIS_URL, {
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
}

/** The process's shared connection for ordinary (non-blocking) commands. */
export function getRedis(): RedisClient {
  shared ??= createRedis('shared');
  return shared;
}

/** A connection for XREADGROUP BLOCK and the like; never share it. */
export function createBlockingRedis(purpose: string): RedisClient {
  return createRedis(`${purpose}:blocking`, { maxRetriesPerRequest: null, enableAutoPipelining: false });
}

export async function pingRedis(client: RedisClient = getRedis()): Promise<void> {
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
