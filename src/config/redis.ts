/** Redis: where it is (one server or a cluster), key prefix, stream shards, cache lifetime. */
import { z } from 'zod';
import { defineSection, integer, url } from './parsers';

/** `host:port,...` → the node list ioredis's Cluster takes. */
export const clusterNodes = z
  .string()
  .regex(/^[^\s,:]+:\d+(,[^\s,:]+:\d+)*$/, 'must be host:port,...')
  .transform((list) => list.split(',').map((node) => ({ host: node.slice(0, node.lastIndexOf(':')), port: Number(node.slice(node.lastIndexOf(':') + 1)) })));

export const redisSection = defineSection({
  shape: {
    REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379/0'),
    /** Prepended to every Redis key; tests give each file its own. */
    REDIS_KEY_PREFIX: z.string().refine((p) => !/[{}]/.test(p), 'must not contain { or }: they would take the keys\' hash tags').default('mca:'),
    /** `host:port,...` of a Redis Cluster's nodes; when set, used instead of REDIS_URL. */
    REDIS_CLUSTER_NODES: clusterNodes.optional(),
    /** The message stream is split into this many streams by conversation (more on a cluster). */
    STREAM_SHARDS: integer(1, 256).default(1),
    /** Lifetime of cached tenant data (cacheService); every write that changes it invalidates at once. */
    CACHE_TTL_SECONDS: integer(1, 24 * 3600).default(300),
  },
});
