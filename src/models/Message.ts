/** Messages of a conversation, numbered by the conversation's own counter. */
import { db, type Queryable } from '../utils/database';
import { notFound } from '../utils/errors';
import type { Channel } from './types';

export type MessageDirection = 'inbound' | 'outbound';
export type MessageAuthor = 'customer' | 'agent' | 'human';
/**
 * inbound: pending → answered | failed | insufficient_credits | ignored;
 * outbound: queued → sent → delivered → read, or failed (terminal).
 */
export type MessageStatus =
  | 'pending'
  | 'answered'
  | 'ignored'
  | 'insufficient_credits'
  | 'queued'
  | 'sent'
  | 'delivered'
  | 'read'
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

export interface ReplyToRecord {
  /** The pending customer messages the reply answers; all must still be pending. */
  answered: string[];
  text: string;
  /** The newest of them. */
  replyToMessageId: string;
  cost: number;
  tokens: number;
}

export type RecordedReply = { outcome: 'recorded'; reply: Message; charged: number } | { outcome: 'paused_or_archived' };

/** SQLSTATE record_reply raises when a message it was to answer is no longer pending. */
export const ANSWERED_ELSEWHERE = 'MC001';

/**
 * Records a reply in one statement (record_reply, R__replies.sql): under the conversation's
 * row lock, the answered messages, the reply as `queued`, and its clamped charge. Nothing is
 * written when the bot may no longer answer there (paused, archived or unlinked meanwhile); an error with code
 * ANSWERED_ELSEWHERE (nothing written either) when another worker answered a message first.
 */
export async function recordReply(userId: string, conversationId: string, reply: ReplyToRecord, client: Queryable = db): Promise<RecordedReply> {
  const { rows } = await client.query<Message & { outcome: 'recorded' | 'paused_or_archived'; charged: string }>(
    `SELECT outcome, charged, ${MESSAGE_COLUMNS}
       FROM (SELECT r.outcome, r.charged, (r.reply).* FROM record_reply($1, $2, $3::uuid[], $4, $5, $6, $7) r) recorded`,
    [userId, conversationId, reply.answered, reply.text, reply.replyToMessageId, reply.cost, reply.tokens],
  );
  const { outcome, charged, ...message } = rows[0]!;
  return outcome === 'recorded' ? { outcome, reply: message, charged: Number(charged) } : { outcome };
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

// ---------------------------------------------------------------------------------------------
// What the message worker reads and writes while it holds a conversation's lease.


/**
 * The last `limit` messages of the conversation up to the customer's message `uptoSequenceNo`,
 * in the order of the conversation's turns, oldest first. A reply is placed right after the
 * message it answers, not at its own sequence number: a customer who writes again while a
 * reply is being made gets that reply a higher number than their second message, and the model
 * must still read "question, answer, next question" or it answers the first question twice.
 * Reactions and messages that never reached anyone (failed) are left out.
 */
/** The newest `limit` messages up to a turn, newest first, each with its turn number (see listHistory). */
const recentTurnsSql = (user: string, conversation: string, upto: string, limit: string) => `
  SELECT m.*, COALESCE(answered.sequence_no, m.sequence_no) AS turn_no
    FROM messages m
    LEFT JOIN messages answered ON answered.id = m.reply_to_message_id
   WHERE m.user_id = ${user} AND m.conversation_id = ${conversation}
     AND COALESCE(answered.sequence_no, m.sequence_no) <= ${upto}
     AND m.type <> 'reaction' AND m.status <> 'failed'
   ORDER BY turn_no DESC, m.sequence_no DESC
   LIMIT ${limit}`;

export async function listHistory(
  userId: string,
  conversationId: string,
  limit: number,
  uptoSequenceNo: number,
  client: Queryable = db,
): Promise<Message[]> {
  const { rows } = await client.query<Message>(
    `SELECT ${MESSAGE_COLUMNS} FROM (${recentTurnsSql('$1', '$2', '$3', '$4')}) recent ORDER BY turn_no, sequence_no`,
    [userId, conversationId, uptoSequenceNo, limit],
  );
  return rows;
}

/**
 * Moves pending customer messages to a final status. Only rows still `pending` move, and the
 * count says how many did: a caller that expected all of them knows when it lost a race.
 */
export async function markInboundStatus(
  userId: string,
  ids: string[],
  status: 'answered' | 'ignored' | 'insufficient_credits' | 'failed',
  error: { code: string; message: string } | null = null,
  client: Queryable = db,
): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE messages SET status = $3, error_code = $4, error_message = $5, updated_at = now()
     WHERE user_id = $1 AND id = ANY($2::uuid[]) AND direction = 'inbound' AND status = 'pending'`,
    [userId, ids, status, error?.code ?? null, error?.message ?? null],
  );
  return rowCount ?? 0;
}

/** Fails whatever a conversation still owes (poison handling), so the API says why. */
export async function failPendingInbound(
  userId: string,
  conversationId: string,
  error: { code: string; message: string },
  client: Queryable = db,
): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE messages SET status = 'failed', error_code = $3, error_message = $4, updated_at = now()
     WHERE user_id = $1 AND conversation_id = $2 AND status IN ('pending', 'queued')`,
    [userId, conversationId, error.code, error.message],
  );
  return rowCount ?? 0;
}

export interface Turn {
  /** The highest attempt count among the messages, this turn included. */
  attempts: number;
  balance: number;
  /** What the model reads: listHistory up to the newest message. */
  history: Message[];
}

/**
 * Counts one more turn at the messages, reads the tenant's balance and the conversation's
 * history up to the newest of them, in one round trip: a worker needs all three before every
 * model call (the history is read as it was before the count).
 */
export async function beginTurn(
  userId: string,
  conversationId: string,
  ids: string[],
  historyLimit: number,
  uptoSequenceNo: number,
  client: Queryable = db,
): Promise<Turn> {
  const { rows } = await client.query<Message & { turnAttempts: number; turnBalance: string; turn_no: number | null }>(
    `WITH bumped AS (
       UPDATE messages SET attempts = attempts + 1, updated_at = now()
       WHERE user_id = $1 AND id = ANY($3::uuid[]) RETURNING attempts
     ), turn AS (
       SELECT COALESCE(max(attempts), 0) AS attempts, (SELECT credit_balance FROM users WHERE id = $1) AS balance FROM bumped
     )
     SELECT turn.attempts AS "turnAttempts", turn.balance AS "turnBalance", history.*
       FROM turn
       LEFT JOIN (SELECT ${MESSAGE_COLUMNS}, turn_no FROM (${recentTurnsSql('$1', '$2', '$5', '$4')}) recent) history ON true
      ORDER BY history.turn_no, history."sequenceNo"`,
    [userId, conversationId, ids, historyLimit, uptoSequenceNo],
  );
  const first = rows[0];
  return {
    attempts: first?.turnAttempts ?? 0,
    balance: Number(first?.turnBalance ?? 0),
    // eslint-disable-next-line @typescript-eslint/no-unused-vars
    history: rows.filter((row) => row.id !== null).map(({ turnAttempts, turnBalance, turn_no, ...message }) => message),
  };
}

/** Graph accepted every part: the first part's id is the message's id, all of them are kept. */
export async function markOutboundSent(userId: string, id: string, externalIds: string[], client: Queryable = db): Promise<void> {
  await client.query(
    `UPDATE messages
        SET status = 'sent', external_id = $3, updated_at = now(),
            payload = COALESCE(payload, '{}'::jsonb) - 'send_progress' || jsonb_build_object('external_ids', $4::jsonb)
      WHERE user_id = $1 AND id = $2 AND status = 'queued'`,
    [userId, id, externalIds[0] ?? null, JSON.stringify(externalIds)],
  );
}

/** Parts already delivered of a split message, so a retry never sends them again. */
export async function saveSendProgress(
  userId: string,
  id: string,
  progress: { nextPart: number; externalIds: string[] },
  client: Queryable = db,
): Promise<void> {
  await client.query(
    `UPDATE messages
        SET payload = COALESCE(payload, '{}'::jsonb) || jsonb_build_object('send_progress', $3::jsonb, 'external_ids', $4::jsonb),
            attempts = attempts + 1, updated_at = now()
      WHERE user_id = $1 AND id = $2`,
    [userId, id, JSON.stringify(progress), JSON.stringify(progress.externalIds)],
  );
}

export async function markOutboundFailed(
  userId: string,
  id: string,
  error: { code: string; message: string },
  client: Queryable = db,
): Promise<void> {
  await client.query(
    `UPDATE messages SET status = 'failed', error_code = $3, error_message = $4, updated_at = now()
     WHERE user_id = $1 AND id = $2 AND status = 'queued'`,
    [userId, id, error.code, error.message],
  );
}

/**
 * Conversations owed something (a pending customer message or a queued outbound one) that no
 * worker has touched for `idleMs`. Spans tenants on purpose: it is the system's own repair job,
 * and each result carries its tenant for the worker that picks it up.
 */
export async function findStaleConversations(
  idleMs: number,
  limit: number,
  client: Queryable = db,
): Promise<{ conversationId: string; userId: string }[]> {
  const { rows } = await client.query<{ conversationId: string; userId: string }>(
    `SELECT DISTINCT conversation_id AS "conversationId", user_id AS "userId" FROM messages
     WHERE status IN ('pending', 'queued') AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
     LIMIT $2`,
    [idleMs, limit],
  );
  return rows;
}
