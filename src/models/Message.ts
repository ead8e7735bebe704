/** Messages of a conversation, numbered by the conversation's own counter. */
import { db, type Queryable } from '../utils/database';
import { notFound } from '../utils/errors';
import type { Channel } from './types';

export type MessageDirection = 'inbound' | 'outbound';
export type MessageAuthor = 'customer' | 'agent' | 'human';
/**
 * inbound: pending → answered | failed | insufficient_credits | ignored;
 * outbound: queued → sent → delivered → read, or failed (terminal).
 * inbound `stale`: too old to answer when it could first be (STALE_MESSAGE_SECONDS); outbound
 * `cancelled`: a bot reply a takeover stopped before it went out, refunded (guarantee 13).
 * `failed` may go back (POST /v1/conversations/:id/retry): inbound to pending, outbound to queued.
 */
export type MessageStatus =
  | 'pending'
  | 'answered'
  | 'ignored'
  | 'insufficient_credits'
  | 'stale'
  | 'queued'
  | 'sent'
  | 'delivered'
  | 'read'
  | 'cancelled'
  | 'failed';

/** One row of `messages`, camelCased. */
export interface Message {
  id: string;
  userId: string;
  conversationId: string;
  sequenceNo: number;
  direction: MessageDirection;
  author: MessageAuthor;
  channel: Channel;
  type: string;
  text: string | null;
  payload: unknown;
  status: MessageStatus;
  /** Meta's id (wamid / mid); unique per channel. */
  externalId: string | null;
  replyToMessageId: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  attempts: number;
  externalTimestamp: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What a caller chooses for a new message; the sequence number and channel come from the conversation. */
export interface NewMessage {
  direction: MessageDirection;
  author: MessageAuthor;
  type: string;
  text?: string | null;
  payload?: unknown;
  status: MessageStatus;
  externalId?: string | null;
  replyToMessageId?: string | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  externalTimestamp?: Date | null;
}

/** A message row, camelCased; shared with queries that read messages beside other rows. */
export const MESSAGE_COLUMNS = `id, user_id AS "userId", conversation_id AS "conversationId", sequence_no AS "sequenceNo", direction,
  author, channel, type, text, payload, status, external_id AS "externalId", reply_to_message_id AS "replyToMessageId",
  error_code AS "errorCode", error_message AS "errorMessage", attempts, external_timestamp AS "externalTimestamp",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

/** The parameters of append_message after the conversation, in its order, as `$3`…`$13` of a statement. */
function appendParams(fields: NewMessage): unknown[] {
  return [
    fields.direction,
    fields.author,
    fields.type,
    fields.text ?? null,
    // pg would send a JS array as a Postgres array; JSON text is what a jsonb column wants.
    fields.payload === undefined || fields.payload === null ? null : JSON.stringify(fields.payload),
    fields.status,
    fields.externalId ?? null,
    fields.replyToMessageId ?? null,
    fields.externalTimestamp ?? null,
    fields.errorCode ?? null,
    fields.errorMessage ?? null,
  ];
}

/**
 * Stores a message under the conversation's next sequence number (append_message,
 * R__conversations.sql: the counter and the row move together, in one statement). The counter's
 * row lock is held until the caller's transaction ends, so concurrent writers get distinct,
 * consecutive numbers in commit order. It does not look at `is_active` or `bot_paused`: callers
 * decide whether the conversation may take the message.
 * Throws `not_found` when the tenant has no such conversation, and Postgres' unique violation
 * (23505) when `externalId` was already stored on this channel; the counter is then untouched.
 */
export async function insertMessage(
  userId: string,
  conversationId: string,
  fields: NewMessage,
  client: Queryable = db,
): Promise<Message> {
  const { rows } = await client.query<Message>(
    `SELECT ${MESSAGE_COLUMNS} FROM (
       SELECT m.* FROM conversations c
        CROSS JOIN LATERAL append_message(c, $3, $4, $5, $6, $7::jsonb, $8, $9, $10::uuid, $11::timestamptz, $12, $13) m
        WHERE c.user_id = $1 AND c.id = $2) appended`,
    [userId, conversationId, ...appendParams(fields)],
  );
  const message = rows[0];
  if (!message) throw notFound('Conversation');
  return message;
}

/**
 * Stores a human's message from the business side and pauses the bot (record_human_message,
 * R__conversations.sql, the one place a human takes over). Call it inside the transaction that
 * holds the conversation's row lock (lockConversation). Throws `not_found` when the tenant has
 * no such conversation.
 */
export async function insertHumanMessage(
  userId: string,
  conversationId: string,
  fields: { type: string; text: string | null; status: 'queued' },
  client: Queryable,
): Promise<Message> {
  const { rows } = await client.query<Message>(
    `SELECT ${MESSAGE_COLUMNS} FROM (
       SELECT m.* FROM conversations c CROSS JOIN LATERAL record_human_message(c, $3, $4, NULL, $5) m
        WHERE c.user_id = $1 AND c.id = $2) recorded`,
    [userId, conversationId, fields.type, fields.text, fields.status],
  );
  const message = rows[0];
  if (!message) throw notFound('Conversation');
  return message;
}

/**
 * Tries `failed` messages of a conversation again: inbound back to `pending` (attempts from
 * zero), outbound back to `queued`, their errors cleared. Parts Meta already has stay sent
 * (outbound_parts): only what is missing goes. Returns the messages moved, in sequence order.
 */
export async function retryFailedMessages(userId: string, conversationId: string, client: Queryable = db): Promise<Message[]> {
  const { rows } = await client.query<Message>(
    `WITH retried AS (
       UPDATE messages
          SET status = CASE direction WHEN 'inbound' THEN 'pending' ELSE 'queued' END,
              attempts = 0, error_code = NULL, error_message = NULL, updated_at = now()
        WHERE user_id = $1 AND conversation_id = $2 AND status = 'failed'
       RETURNING *
     )
     SELECT ${MESSAGE_COLUMNS} FROM retried ORDER BY sequence_no`,
    [userId, conversationId],
  );
  return rows;
}

/**
 * One page of a conversation's messages in sequence order, plus one extra row that only tells
 * whether another page exists. Sequence numbers only grow, so a page after `afterSequenceNo`
 * never repeats or skips a message, however many arrive meanwhile.
 */
export async function listMessages(
  userId: string,
  conversationId: string,
  page: { limit: number; afterSequenceNo?: number },
  client: Queryable = db,
): Promise<Message[]> {
  const { rows } = await client.query<Message>(
    `SELECT ${MESSAGE_COLUMNS} FROM messages
     WHERE user_id = $1 AND conversation_id = $2 AND sequence_no > $3
     ORDER BY sequence_no LIMIT $4`,
    [userId, conversationId, page.afterSequenceNo ?? 0, page.limit + 1],
  );
  return rows;
}
