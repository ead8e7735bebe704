/**
 * The Redis Streams the workers consume. An entry is a nudge, not the message: it names a
 * conversation that owes a reply (or a customer whose accepted messages wait in the inbox to
 * be filed into one), and the worker reads what is pending from Postgres under the
 * conversation's lock. So a lost entry costs latency (the sweeper re-sends it), never a
 * message, and a duplicate entry costs one lock attempt, never a second reply.
 */
import type { RedisClient as Redis } from './redis';
import { getRedis } from './redis';

export const STREAMS = {
  /** Conversations with customer messages to answer or human messages to send. */
  messages: 'stream:messages',
  /** Entries that failed too often to keep retrying (poison), for inspection. */
  messagesDead: 'stream:messages:dead',
} as const;

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

/** Appends nudges in one round trip. Throws if Redis cannot take them; callers decide. */
export async function enqueueConversations(nudges: Nudge[], redis?: Redis): Promise<void> {
  if (nudges.length === 0) return;
  const pipeline = (redis ?? getRedis()).pipeline();
  for (const nudge of nudges) {
    pipeline.xadd(STREAMS.messages, 'MAXLEN', '~', String(STREAM_MAX_LENGTH), '*', ...nudgeFields(nudge));
  }
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([error]) => error);
  if (failed) throw failed[0];
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

/** Beyond this many unread entries the exact count no longer changes a decision. */
const LAG_COUNT_LIMIT = 10_000;

/**
 * Reads the backlog of the message workers' group (XINFO GROUPS): null when there is no stream
 * or no group yet (nothing was ever queued, or Redis restarted empty); Redis unreachable
 * rejects. Redis before 7.0 reports no `lag`, and 7.x
 * reports null when it cannot tell (entries deleted mid-stream): the unread entries after the
 * group's last delivered id are then counted, up to LAG_COUNT_LIMIT.
 */
export async function readGroupBacklog(redis: Redis = getRedis()): Promise<GroupBacklog | null> {
  let groups: unknown[][];
  try {
    groups = (await redis.xinfo('GROUPS', prefixedKey(redis, STREAMS.messages))) as unknown[][];
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
    const unread = await redis.xrange(STREAMS.messages, `(${String(fields.get('last-delivered-id'))}`, '+', 'COUNT', LAG_COUNT_LIMIT);
    return { lag: unread.length, pending };
  }
  return null;
}
