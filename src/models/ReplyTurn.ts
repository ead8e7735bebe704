/**
 * The reply turn's data access: everything a message worker reads and writes while it holds a
 * conversation's lease (services/replyService.ts), and what "owed" means to the sweeper and to
 * poison handling. A conversation owes something while it has a `pending` customer message or
 * a `queued` outbound one.
 */
import { db, type Queryable } from '../utils/database';
import type { Channel } from './types';
import { CUSTOMER_WINDOW, type Conversation } from './Conversation';
import type { Agent } from './Agent';
import { MESSAGE_COLUMNS, type Message } from './Message';

// ---------------------------------------------------------------------------------------------
// What is owed

/** Everything a worker needs to answer a conversation, as stored (see replyService's ReplyContext). */
export interface StoredReplyContext {
  /** Why its pending messages get no reply, or null when they do (SQL reason_not_to_answer, R__conversations.sql). */
  reasonNotToAnswer: string | null;
  conversation: Pick<Conversation, 'id' | 'userId' | 'channel' | 'customerExternalId' | 'isActive' | 'botPaused' | 'agentId'> & {
    /** The customer-service window is open now (the customer wrote less than 24 h ago): free text may go. */
    windowOpen: boolean;
    /** The customer opted out on this number: only the opt-out confirmation may still go. */
    optedOut: boolean;
  };
  agent: Pick<Agent, 'id' | 'systemPrompt' | 'model' | 'temperature' | 'maxTokens' | 'historyLimit' | 'maxPromptTokens' | 'debounceMs' | 'fallbackMessage' | 'archivedAt' | 'vision'> | null;
  /** Null when the number was deleted. The access token as stored: encrypted. */
  phoneNumber: { id: string; externalId: string; agentId: string | null; accessTokenEncrypted: string } | null;
}

/** What a worker's turn starts from: the context, and what the conversation owes, oldest first. */
export interface OwedWork {
  context: StoredReplyContext;
  /** Pending customer messages and queued outbound ones, in sequence order. */
  owed: Message[];
  /** What the model reads: listHistory up to the newest pending customer message (none pending: empty). */
  history: Message[];
}

/** The conversation's columns in loadOwedConversation's rows; the rest are the owed message's. */
const CONTEXT_KEY = /^[cap]_/;

/** The agent of a turn, as a worker reads it (see StoredReplyContext). */
export type TurnAgent = NonNullable<StoredReplyContext['agent']>;
/** The live number of a turn, its access token as stored (encrypted). */
export type TurnNumber = NonNullable<StoredReplyContext['phoneNumber']>;

/** The conversation side of a turn; the agent and the number come from the cache. */
export interface OwedConversation {
  reasonNotToAnswer: string | null;
  conversation: StoredReplyContext['conversation'];
  phoneNumberId: string;
  owed: Message[];
  history: Message[];
}

/** The newest `limit` messages up to a turn, newest first, each with its turn number (see listHistory). */
const recentTurnsSql = (user: string, conversation: string, upto: string, limit: string) => `
  SELECT m.*, COALESCE(answered.sequence_no, m.sequence_no) AS turn_no
    FROM messages m
    LEFT JOIN messages answered ON answered.id = m.reply_to_message_id
   WHERE m.user_id = ${user} AND m.conversation_id = ${conversation}
     AND COALESCE(answered.sequence_no, m.sequence_no) <= ${upto}
     AND m.type <> 'reaction' AND m.status NOT IN ('failed', 'stale', 'cancelled')
     AND (m.payload ->> 'fallback') IS DISTINCT FROM 'true'
   ORDER BY turn_no DESC, m.sequence_no DESC
   LIMIT ${limit}`;

/** The newest pending customer message of conversation `c` (a statement's alias): where its history stops. */
const NEWEST_PENDING_SQL = `(SELECT max(p.sequence_no) FROM messages p
  WHERE p.user_id = c.user_id AND p.conversation_id = c.id AND p.direction = 'inbound' AND p.status = 'pending')`;

/**
 * The conversation, why not to answer it (SQL reason_not_to_answer), what it owes, and the
 * history the model reads for its pending messages (listHistory, at the agent's history_limit),
 * in one query: a turn needs all of them before its model call, and a round trip and a commit
 * fewer per reply is what the pipeline bench measures. The agent and number come from the cache
 * (services/cachedLookups.ts). Null when the conversation is not the tenant's.
 */
export async function loadOwedConversation(userId: string, conversationId: string, client: Queryable = db): Promise<OwedConversation | null> {
  const { rows } = await client.query<Record<string, unknown> & Message & { row_kind: 'owed' | 'history' | null }>(
    `SELECT c.id AS c_id, c.user_id AS c_user_id, c.channel AS c_channel, c.customer_external_id AS c_customer_external_id,
            c.is_active AS c_is_active, c.bot_paused AS c_bot_paused, c.agent_id AS c_agent_id,
            c.phone_number_id AS c_phone_number_id, reason_not_to_answer(c) AS c_reason_not_to_answer,
            COALESCE(c.last_customer_message_at + ${CUSTOMER_WINDOW} > now(), false) AS c_window_open,
            customer_opted_out(c) AS c_opted_out,
            turn.*
       FROM conversations c
       LEFT JOIN agents a ON a.id = c.agent_id AND a.user_id = c.user_id
       LEFT JOIN LATERAL (
         SELECT 'owed' AS row_kind, NULL::integer AS turn_no, ${MESSAGE_COLUMNS} FROM messages
          WHERE user_id = c.user_id AND conversation_id = c.id
            AND ((direction = 'inbound' AND status = 'pending') OR (direction = 'outbound' AND status = 'queued'))
         UNION ALL
         SELECT 'history', turn_no::integer, ${MESSAGE_COLUMNS}
           FROM (${recentTurnsSql('c.user_id', 'c.id', NEWEST_PENDING_SQL, 'COALESCE(a.history_limit, 0)')}) recent
       ) turn ON true
      WHERE c.user_id = $1 AND c.id = $2
      ORDER BY turn.row_kind, turn.turn_no, turn."sequenceNo"`,
    [userId, conversationId],
  );
  const row = rows[0];
  if (!row) return null;
  const messagesOf = (kind: 'owed' | 'history') =>
    rows
      .filter((r) => r.row_kind === kind)
      .map((r) => Object.fromEntries(Object.entries(r).filter(([key]) => !CONTEXT_KEY.test(key) && key !== 'row_kind' && key !== 'turn_no')) as unknown as Message);
  return {
    reasonNotToAnswer: row.c_reason_not_to_answer as string | null,
    conversation: {
      id: row.c_id as string,
      userId: row.c_user_id as string,
      channel: row.c_channel as Channel,
      customerExternalId: row.c_customer_external_id as string,
      isActive: row.c_is_active as boolean,
      botPaused: row.c_bot_paused as boolean,
      agentId: row.c_agent_id as string | null,
      windowOpen: row.c_window_open as boolean,
      optedOut: row.c_opted_out as boolean,
    },
    phoneNumberId: row.c_phone_number_id as string,
    owed: messagesOf('owed'),
    history: messagesOf('history'),
  };
}

/** The tenant's agent as a turn reads it, archived or not; null when it is not the tenant's. */
export async function findTurnAgent(userId: string, agentId: string, client: Queryable = db): Promise<TurnAgent | null> {
  const { rows } = await client.query<TurnAgent>(
    `SELECT id, system_prompt AS "systemPrompt", model, temperature::float8 AS temperature, max_tokens AS "maxTokens",
            history_limit AS "historyLimit", max_prompt_tokens AS "maxPromptTokens", debounce_ms AS "debounceMs",
            fallback_message AS "fallbackMessage", archived_at AS "archivedAt", vision
       FROM agents WHERE user_id = $1 AND id = $2`,
    [userId, agentId],
  );
  return rows[0] ?? null;
}

/** The tenant's live number as a turn reads it (token encrypted); null when deleted or not the tenant's. */
export async function findTurnNumber(userId: string, phoneNumberId: string, client: Queryable = db): Promise<TurnNumber | null> {
  const { rows } = await client.query<TurnNumber>(
    `SELECT id, external_id AS "externalId", agent_id AS "agentId", access_token_encrypted AS "accessTokenEncrypted"
       FROM phone_numbers WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [userId, phoneNumberId],
  );
  return rows[0] ?? null;
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

// ---------------------------------------------------------------------------------------------
// What the model reads


/**
 * The last `limit` messages of the conversation up to the customer's message `uptoSequenceNo`,
 * in the order of the conversation's turns, oldest first. A reply is placed right after the
 * message it answers, not at its own sequence number: a customer who writes again while a
 * reply is being made gets that reply a higher number than their second message, and the model
 * must still read "question, answer, next question" or it answers the first question twice.
 * Reactions, messages that never reached anyone (failed, cancelled), messages too old to
 * answer (stale) and the agent's no-credits fallbacks (no answer: after a top-up the real one
 * follows) are left out.
 */
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

/** A reply attempt begun: the credits held for its model call, and how many attempts the messages have had. */
export interface ReplyAttempt {
  /** The hold's id; null when the balance (less other holds) cannot cover it, and nothing was counted. */
  holdId: string | null;
  /** The highest attempt count among the messages, this attempt included (0 when nothing was held). */
  attempts: number;
}

/**
 * Begins a reply attempt in one round trip: holds `amount` credits for the model call
 * (hold_credits, R__credits.sql; see holdCredits) and, only when the hold was granted, counts one
 * more attempt at the messages. A refused hold counts nothing: no model call follows it.
 */
export async function beginReplyAttempt(
  userId: string,
  conversationId: string,
  ids: string[],
  amount: number,
  ttlMs: number,
  client: Queryable = db,
): Promise<ReplyAttempt> {
  const { rows } = await client.query<{ holdId: string | null; attempts: number }>(
    `WITH hold AS MATERIALIZED (
       SELECT hold_credits($1, $2, $3, $4) AS id
     ), bumped AS (
       UPDATE messages SET attempts = attempts + 1, updated_at = now()
        WHERE user_id = $1 AND id = ANY($5::uuid[]) AND (SELECT id FROM hold) IS NOT NULL
        RETURNING attempts
     )
     SELECT (SELECT id FROM hold) AS "holdId", (SELECT COALESCE(max(attempts), 0) FROM bumped)::integer AS attempts`,
    [userId, amount, conversationId, ttlMs, ids],
  );
  return { holdId: rows[0]?.holdId ?? null, attempts: rows[0]?.attempts ?? 0 };
}

/** Takes back the attempt beginReplyAttempt counted, for a turn whose model call was refused unmade. */
export async function undoReplyAttempt(userId: string, ids: string[], client: Queryable = db): Promise<void> {
  await client.query(
    `UPDATE messages SET attempts = greatest(attempts - 1, 0), updated_at = now() WHERE user_id = $1 AND id = ANY($2::uuid[]) AND attempts > 0`,
    [userId, ids],
  );
}

// ---------------------------------------------------------------------------------------------
// Holding credits for the model call (guarantee 14)

/**
 * Holds `amount` credits for this turn's model call (hold_credits, R__credits.sql): only when
 * the tenant's balance minus its unexpired holds covers it, under the tenant's row lock, so
 * concurrent turns of one tenant each see the others' holds. Returns the hold's id, or null
 * (nothing held) when the balance cannot cover it. The hold lapses after `ttlMs` unless settled
 * (recordReply) or released (releaseHold) first: only a crashed worker leaves one that long.
 */
export async function holdCredits(userId: string, conversationId: string, amount: number, ttlMs: number, client: Queryable = db): Promise<string | null> {
  const { rows } = await client.query<{ id: string | null }>(`SELECT hold_credits($1, $2, $3, $4) AS id`, [userId, amount, conversationId, ttlMs]);
  return rows[0]?.id ?? null;
}

/** Releases a hold whose model call failed or whose reply was not recorded; a settled or expired one is a no-op. */
export async function releaseHold(userId: string, holdId: string, client: Queryable = db): Promise<void> {
  await client.query(`DELETE FROM credit_holds WHERE user_id = $1 AND id = $2`, [userId, holdId]);
}

// ---------------------------------------------------------------------------------------------
// Inbound media (services/mediaService.ts)

/**
 * Stores what became of a customer message's media (`payload.media`, merged), and, when given,
 * the text the API and the model read for it from now on.
 */
export async function recordMediaOutcome(userId: string, messageId: string, media: Record<string, unknown>, text?: string, client: Queryable = db): Promise<void> {
  await client.query(
    `UPDATE messages
        SET payload = COALESCE(payload, '{}'::jsonb) || jsonb_build_object('media', COALESCE(payload -> 'media', '{}'::jsonb) || $3::jsonb),
            text = COALESCE($4, text), updated_at = now()
      WHERE user_id = $1 AND id = $2`,
    [userId, messageId, JSON.stringify(media), text ?? null],
  );
}

/**
 * A voice note's transcript, in one statement: the message gets it (as its text and in
 * `payload.media`), the tenant is charged one `transcription` entry naming the message (clamped
 * at the balance, at most once per message: charge_credits, R__credits.sql), and the hold taken
 * for it is settled. Returns the credits taken.
 */
export async function recordTranscription(
  userId: string,
  conversationId: string,
  messageId: string,
  outcome: { transcript: string; media: Record<string, unknown>; cost: number; holdId: string },
  client: Queryable = db,
): Promise<number> {
  const { rows } = await client.query<{ charged: string }>(
    `WITH charged AS (
       SELECT c.amount FROM charge_credits($1, $4::bigint, 'transcription', $3::uuid, $2::uuid, NULL::uuid, NULL::integer) c
     ), settled AS (
       DELETE FROM credit_holds WHERE user_id = $1 AND id = $5 RETURNING id
     ), transcribed AS (
       UPDATE messages
          SET text = $6,
              payload = COALESCE(payload, '{}'::jsonb) || jsonb_build_object('media', COALESCE(payload -> 'media', '{}'::jsonb) || $7::jsonb),
              updated_at = now()
        WHERE user_id = $1 AND id = $3 RETURNING id
     )
     SELECT COALESCE((SELECT 0 - amount FROM charged), 0) AS charged,
            (SELECT count(*) FROM settled) + (SELECT count(*) FROM transcribed) AS touched`,
    [userId, conversationId, messageId, outcome.cost, outcome.holdId, outcome.transcript, JSON.stringify(outcome.media)],
  );
  return Number(rows[0]?.charged ?? 0);
}

// ---------------------------------------------------------------------------------------------
// Recording the reply

export interface ReplyToRecord {
  /** The pending customer messages the reply answers; all must still be pending. */
  answered: string[];
  text: string;
  /** The newest of them. */
  replyToMessageId: string;
  cost: number;
  tokens: number;
  /** The turn's credit hold, settled (deleted) in the same statement as the charge. */
  holdId?: string | null;
  /**
   * The reply's first part, claimed for this attempt (`sending`, as claimOutboundPart's
   * 'claimed') in the same commit: the turn sends it without a claim of its own.
   */
  firstPart?: { text: string; token: string } | null;
}

export type RecordedReply = { outcome: 'recorded'; reply: Message; charged: number } | { outcome: 'paused_or_archived' };

/** SQLSTATE record_reply raises when a message it was to answer is no longer pending. */
export const ANSWERED_ELSEWHERE = 'MC001';

/**
 * Records a reply in one statement (record_reply, R__replies.sql): under the conversation's
 * row lock, the answered messages, the reply as `queued`, its clamped charge, and its first
 * part claimed when `firstPart` is given. Nothing is
 * written when the bot may no longer answer there (paused, archived or unlinked meanwhile); an error with code
 * ANSWERED_ELSEWHERE (nothing written either) when another worker answered a message first.
 */
export async function recordReply(userId: string, conversationId: string, reply: ReplyToRecord, client: Queryable = db): Promise<RecordedReply> {
  const { rows } = await client.query<Message & { outcome: 'recorded' | 'paused_or_archived'; charged: string }>(
    `SELECT outcome, charged, ${MESSAGE_COLUMNS}
       FROM (SELECT r.outcome, r.charged, (r.reply).* FROM record_reply($1, $2, $3::uuid[], $4, $5, $6, $7, $8, $9, $10) r) recorded`,
    [userId, conversationId, reply.answered, reply.text, reply.replyToMessageId, reply.cost, reply.tokens, reply.holdId ?? null, reply.firstPart?.text ?? null, reply.firstPart?.token ?? null],
  );
  const { outcome, charged, ...message } = rows[0]!;
  return outcome === 'recorded' ? { outcome, reply: message, charged: Number(charged) } : { outcome };
}

// ---------------------------------------------------------------------------------------------
// Settling messages

/**
 * Moves pending customer messages to a final status. Only rows still `pending` move, and the
 * count says how many did: a caller that expected all of them knows when it lost a race.
 */
export async function markInboundStatus(
  userId: string,
  ids: string[],
  status: 'answered' | 'ignored' | 'insufficient_credits' | 'stale' | 'failed',
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

/**
 * A top-up wakes the waiting: the tenant's `insufficient_credits` customer messages still inside
 * the stale window (`staleSeconds`, by Meta's timestamp) go back to `pending`, their attempts
 * reset. Returns the conversations to nudge.
 */
export async function requeueInsufficientCredits(userId: string, staleSeconds: number, client: Queryable = db): Promise<string[]> {
  const { rows } = await client.query<{ conversationId: string }>(
    `WITH requeued AS (
       UPDATE messages SET status = 'pending', attempts = 0, error_code = NULL, error_message = NULL, updated_at = now()
        WHERE user_id = $1 AND direction = 'inbound' AND status = 'insufficient_credits'
          AND COALESCE(external_timestamp, created_at) > now() - make_interval(secs => $2)
       RETURNING conversation_id
     )
     SELECT DISTINCT conversation_id AS "conversationId" FROM requeued`,
    [userId, staleSeconds],
  );
  return rows.map((row) => row.conversationId);
}

/** Whether the agent's fallback already went to one of these customer messages (it goes once, however often they wait for credits). */
export async function fallbackAlreadyQueued(userId: string, answering: string[], client: Queryable = db): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM messages
      WHERE user_id = $1 AND direction = 'outbound' AND reply_to_message_id = ANY($2::uuid[]) AND (payload ->> 'fallback')::boolean
      LIMIT 1`,
    [userId, answering],
  );
  return rows.length > 0;
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

/**
 * Graph accepted every part: the first part's id is the message's id, all of them are kept.
 * A status Meta reported for the first part while the message waited (a part settled by its
 * status after its worker died) is taken over, so the message does not lag behind Meta
 * (mark_outbound_sent, R__sending.sql).
 */
export async function markOutboundSent(userId: string, id: string, externalIds: string[], client: Queryable = db): Promise<void> {
  await client.query(`SELECT mark_outbound_sent($1, $2, $3)`, [userId, id, externalIds]);
}

// ---------------------------------------------------------------------------------------------
// One part at a time (outbound_parts; the rules are in R__sending.sql)

/** What claim_outbound_part found for a part about to be sent; see its comment for each outcome. */
export type PartClaim =
  | { outcome: 'claimed' | 'resent_after_grace' | 'cancelled' }
  | { outcome: 'settled' | 'settled_by_status' | 'settled_by_echo'; externalId: string }
  | { outcome: 'in_doubt'; waitMs: number };

/**
 * Marks a part `sending` for this attempt, in its own commit, before it goes to Graph; or says
 * why it must not go (Meta has it; or, for a bot reply nothing of which went out yet, the bot
 * may no longer speak there or the customer's message is older than `staleSeconds`: then it is
 * `cancelled` and refunded), or not yet (another attempt left it in doubt less than `graceMs` ago).
 */
export async function claimOutboundPart(
  userId: string,
  messageId: string,
  partNo: number,
  text: string,
  token: string,
  graceMs: number,
  staleSeconds: number,
  client: Queryable = db,
): Promise<PartClaim> {
  const { rows } = await client.query<{ outcome: PartClaim['outcome']; externalId: string | null; waitMs: number }>(
    `SELECT outcome, external_id AS "externalId", wait_ms AS "waitMs" FROM claim_outbound_part($1, $2, $3, $4, $5, $6, $7)`,
    [userId, messageId, partNo, text, token, graceMs, staleSeconds],
  );
  const { outcome, externalId, waitMs } = rows[0]!;
  if (outcome === 'in_doubt') return { outcome, waitMs };
  if (outcome === 'claimed' || outcome === 'resent_after_grace' || outcome === 'cancelled') return { outcome };
  return { outcome, externalId: externalId! };
}

/**
 * Graph answered this attempt with Meta's id: the part is sent, and nobody was in doubt about
 * it. On Instagram an echo parked with this id was ours, and echoes parked while nothing else
 * is in flight are a human's (record_part_sent, R__sending.sql). `messageExternalIds`: when this
 * was the message's last part, every part's id in order; the message is marked sent with them
 * (as markOutboundSent does) in the same statement, saving the turn a round trip and a commit.
 */
export async function recordPartSent(
  userId: string,
  messageId: string,
  partNo: number,
  externalId: string,
  messageExternalIds: string[] | null = null,
  client: Queryable = db,
): Promise<void> {
  await client.query(`SELECT record_part_sent($1, $2, $3, $4, $5)`, [userId, messageId, partNo, externalId, messageExternalIds]);
}

/**
 * Graph said no to this attempt: Meta does not have the part, so the next attempt is not in
 * doubt, and echoes parked while it was in flight were not it (flush_parked_echoes).
 */
export async function releasePart(userId: string, messageId: string, partNo: number, token: string, client: Queryable = db): Promise<void> {
  await client.query(
    `WITH released AS (
       DELETE FROM outbound_parts WHERE user_id = $1 AND message_id = $2 AND part_no = $3 AND attempt_token = $4 AND status = 'sending'
       RETURNING message_id
     )
     SELECT flush_parked_echoes(m.conversation_id) FROM released JOIN messages m ON m.id = released.message_id AND m.channel = 'instagram'`,
    [userId, messageId, partNo, token],
  );
}

/**
 * A bot reply that must not go out (its number is gone, or the bot may no longer speak there):
 * `cancelled`, its charge refunded by a `refund` entry naming it (cancel_bot_reply, R__sending.sql).
 * False when it was no longer queued.
 */
export async function cancelBotReply(userId: string, id: string, reason: string, client: Queryable = db): Promise<boolean> {
  const { rows } = await client.query<{ cancelled: boolean }>(`SELECT cancel_bot_reply($1, $2, $3) AS cancelled`, [userId, id, reason]);
  return rows[0]?.cancelled ?? false;
}

/** Graph refused the message for good (or its number is gone): it fails with the reason. */
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
