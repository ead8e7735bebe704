/**
 * The Redis Streams the workers consume. An entry is a nudge, not the message: it names a
 * conversation that owes a reply (or a customer whose accepted messages wait in the inbox to
 * be filed into one), and the worker reads what is pending from Postgres under the
 * conversation's lock. So a lost entry costs latency (the sweeper re-sends it), never a
 * message, and a duplicate entry costs one lock attempt, never a second reply.
 */
import type { RedisClient as Redis } from './redis';
import { getRedis } from './redis';
import { config } from '../config';

/*
 * The message queue is STREAM_SHARDS streams; a nudge goes to the one its conversation hashes
 * to, and every worker reads them all. On a Redis Cluster each shard is a key of its own hash
 * slot, so the queue's load spreads over the masters; what belongs to a shard (its dead-letter
 * stream; its consumer group lives inside the stream) carries the shard's hash tag.
 */

/** Shard `shard`'s stream: conversations with customer messages to answer or human messages to send. */
export const messageStream = (shard: number) => `stream:{messages:${shard}}`;
/** Shard `shard`'s entries that failed too often to keep retrying (poison), for inspection. */
export const deadLetterStream = (shard: number) => `stream:{messages:${shard}}:dead`;
/** Every shard's stream, in shard order. */
export const messageStreams = (shards: number = config.STREAM_SHARDS): string[] => Array.from({ length: shards }, (_, shard) => messageStream(shard));

export const CONSUMER_GROUPS = { messages: 'message-workers' } as const;

/** Bounds memory: the stream keeps about this many entries; the sweeper covers any trimmed unread. */
export const STREAM_MAX_LENGTH = 100_000;

/** A conversation owes a reply (or a human message to send). */
export interface ConversationNudge {
  conversationId: string;
  userId: string;
  /** The message that caused the nudge, for logs only. */
  messageId?: string;
  requestId?: string;
}

/**
 * A customer's messages wait in the inbox to be filed into their conversation (not known
 * yet when the webhook accepts them): number and customer are the conversation's key.
 */
export interface InboxNudge {
  userId: string;
  phoneNumberId: string;
  customerId: string;
  requestId?: string;
}

export type Nudge = ConversationNudge | InboxNudge;

export const isInboxNudge = (nudge: Nudge): nudge is InboxNudge => !('conversationId' in nudge);

/**
 * The shard a nudge goes to: a hash of its conversation's key, so a conversation's nudges stay
 * in one stream, in order. An inbox nudge names the conversation by tenant, number and customer
 * (it may not exist yet); a conversation nudge by its id. Both name one conversation, and may
 * land in two shards: order between them is not needed, as the lease serialises the turns and
 * the messages' order is Postgres'.
 */
export function shardOf(nudge: Nudge, shards: number = config.STREAM_SHARDS): number {
  if (shards <= 1) return 0;
  const key = isInboxNudge(nudge) ? `${nudge.userId}:${nudge.phoneNumberId}:${nudge.customerId}` : `${nudge.userId}:${nudge.conversationId}`;
  // FNV-1a (32 bits): cheap, and even enough over uuids and phone numbers.
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % shards;
}

export function nudgeFields(nudge: Nudge): string[] {
  if (isInboxNudge(nudge)) {
    return ['user_id', nudge.userId, 'phone_number_id', nudge.phoneNumberId, 'customer_id', nudge.customerId, 'request_id', nudge.requestId ?? ''];
  }
  return [
    'conversation_id',
    nudge.conversationId,
    'user_id',
    nudge.userId,
    'message_id',
    nudge.messageId ?? '',
    'request_id',
    nudge.requestId ?? '',
  ];
}

export function parseNudge(fields: string[]): Nudge | null {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  const userId = map.get('user_id');
  if (!userId) return null;
  const requestId = map.get('request_id') || undefined;
  const conversationId = map.get('conversation_id');
  if (conversationId) return { conversationId, userId, messageId: map.get('message_id') || undefined, requestId };
  const phoneNumberId = map.get('phone_number_id');
  const customerId = map.get('customer_id');
  if (phoneNumberId && customerId) return { userId, phoneNumberId, customerId, requestId };
  return null;
}

/**
 * Appends nudges, one round trip per shard they go to (a cluster pipeline must stay in one
 * slot). Throws if Redis cannot take them; callers decide.
 */
export async function enqueueConversations(nudges: Nudge[], redis?: Redis, shards: number = config.STREAM_SHARDS): Promise<void> {
  if (nudges.length === 0) return;
  const client = redis ?? getRedis();
  const byShard = new Map<number, Nudge[]>();
  for (const nudge of nudges) {
    const shard = shardOf(nudge, shards);
    byShard.set(shard, [...(byShard.get(shard) ?? []), nudge]);
  }
  await Promise.all(
    [...byShard].map(async ([shard, batch]) => {
      const pipeline = client.pipeline();
      for (const nudge of batch) {
        pipeline.xadd(messageStream(shard), 'MAXLEN', '~', String(STREAM_MAX_LENGTH), '*', ...nudgeFields(nudge));
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
    }),
  );
}

/**
 * ioredis adds its key prefix to most commands but not to container commands such as XGROUP
 * and XINFO, whose key sits behind a subcommand; those need the full key spelled out.
 */
export function prefixedKey(redis: Redis, key: string): string {
  return `${redis.options.keyPrefix ?? ''}${key}`;
}

/** The message group's backlog: entries no worker has read yet, and read but not acknowledged. */
export interface GroupBacklog {
  lag: number;
  pending: number;
}

/** The whole queue's backlog (summed over the shards) and each shard's that has a group. */
export interface QueueBacklog extends GroupBacklog {
  shards: (GroupBacklog & { stream: string })[];
}

/** Beyond this many unread entries the exact count no longer changes a decision. */
const LAG_COUNT_LIMIT = 10_000;

/**
 * Reads the backlog of the message workers' group over every shard, summed: null when no shard
 * has a stream and group yet (nothing was ever queued, or Redis restarted empty); Redis
 * unreachable rejects.
 */
export async function readGroupBacklog(redis: Redis = getRedis(), shards: number = config.STREAM_SHARDS): Promise<QueueBacklog | null> {
  const each = await Promise.all(
    messageStreams(shards).map(async (stream) => {
      const backlog = await readShardBacklog(redis, stream);
      return backlog && { stream, ...backlog };
    }),
  );
  const found = each.filter((backlog) => backlog !== null);
  if (found.length === 0) return null;
  return {
    lag: found.reduce((sum, shard) => sum + shard.lag, 0),
    pending: found.reduce((sum, shard) => sum + shard.pending, 0),
    shards: found,
  };
}

/**
 * One shard's backlog (XINFO GROUPS), null without stream or group. Redis before 7.0 reports no
 * `lag`, and 7.x reports null when it cannot tell (entries deleted mid-stream): the unread
 * entries after the group's last delivered id are then counted, up to LAG_COUNT_LIMIT.
 */
async function readShardBacklog(redis: Redis, stream: string): Promise<GroupBacklog | null> {
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo('GROUPS', prefixedKey(redis, stream))) as unknown[][];
  } catch (error) {
    if (/no such key/i.test(String((error as Error)?.message))) return null;
    throw error;
  }
  for (const group of groups) {
    const fields = new Map<string, unknown>();
    for (let i = 0; i + 1 < group.length; i += 2) fields.set(String(group[i]), group[i + 1]);
    if (fields.get('name') !== CONSUMER_GROUPS.messages) continue;
    const pending = Number(fields.get('pending') ?? 0);
    const lag = fields.get('lag');
    if (typeof lag === 'number') return { lag, pending };
    const unread = await redis.xrange(stream, `(${String(fields.get('last-delivered-id'))}`, '+', 'COUNT', LAG_COUNT_LIMIT);
    return { lag: unread.length, pending };
  }
  return null;
}
