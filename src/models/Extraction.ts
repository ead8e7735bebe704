/**
 * Leads extracted from conversations. Every extraction is kept; a newer one of the same
 * conversation supersedes the older ones in what the API shows.
 */
import { db, type Queryable } from '../utils/database';

/** One row of `extractions`, camelCased, with the conversation's number for filtering and display. */
export interface Extraction {
  id: string;
  userId: string;
  conversationId: string;
  phoneNumberId: string;
  agentId: string | null;
  fields: Record<string, unknown>;
  summary: string | null;
  /** The newest message the extraction saw: a newer message makes it stale. */
  upToSequenceNo: number;
  model: string;
  promptTokens: number;
  completionTokens: number;
  createdAt: Date;
}

/** What storing an extraction takes; the tenant, number, id and time come from the database. */
export type NewExtraction = Omit<Extraction, 'id' | 'userId' | 'phoneNumberId' | 'createdAt'>;

export interface ExtractionFilters {
  phoneNumberId?: string;
  /** Only extractions made at or after this instant. */
  since?: Date;
}

// Qualified with `e.`/`c.`: every read joins the conversation for its phone_number_id.
const COLUMNS = `e.id, e.user_id AS "userId", e.conversation_id AS "conversationId", c.phone_number_id AS "phoneNumberId",
  e.agent_id AS "agentId", e.fields, e.summary, e.up_to_sequence_no AS "upToSequenceNo", e.model,
  e.prompt_tokens AS "promptTokens", e.completion_tokens AS "completionTokens", e.created_at AS "createdAt"`;

const FROM = `extractions e JOIN conversations c ON c.id = e.conversation_id AND c.user_id = e.user_id`;

/** Stores one extraction result (the extraction worker's write). */
export async function insertExtraction(userId: string, fields: NewExtraction, client: Queryable = db): Promise<Extraction> {
  const { rows } = await client.query<Extraction>(
    `WITH e AS (
       INSERT INTO extractions (user_id, conversation_id, agent_id, fields, summary, up_to_sequence_no, model,
                                prompt_tokens, completion_tokens)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       RETURNING *
     )
     SELECT ${COLUMNS} FROM e JOIN conversations c ON c.id = e.conversation_id AND c.user_id = e.user_id`,
    [
      userId,
      fields.conversationId,
      fields.agentId,
      JSON.stringify(fields.fields),
      fields.summary,
      fields.upToSequenceNo,
      fields.model,
      fields.promptTokens,
      fields.completionTokens,
    ],
  );
  return rows[0]!;
}

/** The conversation's newest extraction, or null (also for another tenant's conversation). */
export async function findLatestExtraction(userId: string, conversationId: string, client: Queryable = db): Promise<Extraction | null> {
  const { rows } = await client.query<Extraction>(
    `SELECT ${COLUMNS} FROM ${FROM}
     WHERE e.user_id = $1 AND e.conversation_id = $2
     ORDER BY e.created_at DESC, e.id DESC LIMIT 1`,
    [userId, conversationId],
  );
  return rows[0] ?? null;
}

/**
 * One page of the newest extraction of each of the tenant's conversations, newest first, plus
 * one extra row that only tells whether another page exists. "Newest of its conversation" is
 * an anti-join, so Postgres can walk `extractions_user_created_idx` in order and stop at the
 * limit instead of grouping every extraction first. `afterId` is the last extraction of the
 * previous page; its position is compared in SQL, keeping microsecond precision.
 */
export async function listLatestExtractions(
  userId: string,
  filters: ExtractionFilters,
  page: { limit: number; afterId?: string },
  client: Queryable = db,
): Promise<Extraction[]> {
  const params: unknown[] = [userId];
  const where = [
    'e.user_id = $1',
    `NOT EXISTS (SELECT 1 FROM extractions newer
                 WHERE newer.user_id = e.user_id AND newer.conversation_id = e.conversation_id
                   AND (newer.created_at, newer.id) > (e.created_at, e.id))`,
  ];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    params.push(value);
    where.push(condition(`$${params.length}`));
  };
  if (filters.phoneNumberId !== undefined) add((p) => `c.phone_number_id = ${p}`, filters.phoneNumberId);
  if (filters.since !== undefined) add((p) => `e.created_at >= ${p}`, filters.since);
  if (page.afterId !== undefined) {
    add((p) => `(e.created_at, e.id) < (SELECT created_at, id FROM extractions WHERE user_id = $1 AND id = ${p})`, page.afterId);
  }
  params.push(page.limit + 1);
  const { rows } = await client.query<Extraction>(
    `SELECT ${COLUMNS} FROM ${FROM} WHERE ${where.join(' AND ')}
     ORDER BY e.created_at DESC, e.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Claims: the extraction worker's bookkeeping on `conversations` (its claim columns). Only the
// extraction worker and `extractionService` use these.

/** A conversation a worker has claimed; `token` proves the claim is still this one. */
export interface ExtractionClaim {
  conversationId: string;
  userId: string;
  token: string;
  /** POST …/extract asked for it: extract even when the newest extraction is current. */
  requested: boolean;
  /** Consecutive failed attempts before this one, for backoff. */
  failures: number;
}

export interface ClaimOptions {
  /** Names the worker in the claim (for operators); a random token is appended per claim. */
  claimant: string;
  limit: number;
  leaseMs: number;
  /** A conversation this long without messages is due if it has unsettled messages. */
  idleSeconds: number;
  /** Only conversations someone asked to extract (the fast poll). */
  requestsOnly: boolean;
}

// A request counts unless the worker already tried it and is backing off; a request made after
// that try (newer than the claim that saw it) is served at once.
const REQUESTED_DUE = `c.extraction_requested_at IS NOT NULL
  AND (c.extraction_retry_at IS NULL OR c.extraction_retry_at <= now()
       OR c.extraction_claimed_at IS NULL OR c.extraction_requested_at > c.extraction_claimed_at)`;

const IDLE_DUE = `c.last_sequence_no > c.extraction_settled_seq
  AND c.last_message_at < now() - make_interval(secs => $4::double precision)
  AND (c.extraction_retry_at IS NULL OR c.extraction_retry_at <= now())`;

/**
 * Claims up to `limit` due conversations (CONTRACT §4.7) for one worker, in one statement: the
 * rows are picked with `FOR NO KEY UPDATE SKIP LOCKED`, so concurrent workers never pick the same
 * one and never wait on each other, and marked with a lease that expires, so a killed worker's
 * claim is taken over. NO KEY UPDATE rather than UPDATE: a message being inserted holds KEY SHARE
 * on its conversation, which must not make the row look busy. Requests come first.
 * Spans tenants on purpose, like the message sweeper: each claim carries its tenant.
 */
export async function claimDueConversations(options: ClaimOptions, client: Queryable = db): Promise<ExtractionClaim[]> {
  const due = options.requestsOnly ? `(${REQUESTED_DUE})` : `((${REQUESTED_DUE}) OR (${IDLE_DUE}))`;
  const { rows } = await client.query<ExtractionClaim>(
    `WITH due AS (
       SELECT c.id FROM conversations c
        WHERE (c.extraction_claimed_until IS NULL OR c.extraction_claimed_until < now()) AND ${due}
        ORDER BY c.extraction_requested_at ASC NULLS LAST, c.last_message_at ASC
        LIMIT $2
        FOR NO KEY UPDATE OF c SKIP LOCKED
     )
     UPDATE conversations c
        SET extraction_claimed_by = $1 || ':' || gen_random_uuid(),
            extraction_claimed_until = now() + make_interval(secs => $3::double precision / 1000),
            extraction_claimed_at = now()
       FROM due WHERE c.id = due.id
     RETURNING c.id AS "conversationId", c.user_id AS "userId", c.extraction_claimed_by AS token,
               c.extraction_requested_at IS NOT NULL AS requested, c.extraction_failures AS failures`,
    options.requestsOnly
      ? [options.claimant, options.limit, options.leaseMs]
      : [options.claimant, options.limit, options.leaseMs, options.idleSeconds],
  );
  return rows;
}

/** Pushes the claim's lease forward; false when the claim is no longer this one (expired and taken over). */
export async function extendExtractionClaim(claim: Pick<ExtractionClaim, 'userId' | 'conversationId' | 'token'>, leaseMs: number, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE conversations SET extraction_claimed_until = now() + make_interval(secs => $4::double precision / 1000)
      WHERE user_id = $1 AND id = $2 AND extraction_claimed_by = $3`,
    [claim.userId, claim.conversationId, claim.token, leaseMs],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Marks the conversation dealt with up to `upToSequenceNo` and ends the claim: clears the
 * backoff, and the request if it is not newer than the claim (compared in SQL, at Postgres'
 * microsecond precision; a request made during the attempt stays and is served next).
 *
 * With a `token`, it only acts while that claim holds, and its row lock then keeps the claim
 * until the caller's transaction ends: run it first in the transaction that stores the result,
 * and roll back on false. Without one (a direct call, no worker), it only moves the settled mark.
 */
export async function settleExtraction(
  userId: string,
  conversationId: string,
  settle: { token: string | null; upToSequenceNo: number },
  client: Queryable = db,
): Promise<boolean> {
  const { rowCount } = await client.query(
    settle.token === null
      ? `UPDATE conversations SET extraction_settled_seq = GREATEST(extraction_settled_seq, $3)
          WHERE user_id = $1 AND id = $2`
      : `UPDATE conversations
            SET extraction_settled_seq = GREATEST(extraction_settled_seq, $3),
                extraction_requested_at = CASE WHEN extraction_requested_at <= extraction_claimed_at THEN NULL
                                               ELSE extraction_requested_at END,
                extraction_claimed_by = NULL, extraction_claimed_until = NULL,
                extraction_retry_at = NULL, extraction_failures = 0
          WHERE user_id = $1 AND id = $2 AND extraction_claimed_by = $4`,
    settle.token === null ? [userId, conversationId, settle.upToSequenceNo] : [userId, conversationId, settle.upToSequenceNo, settle.token],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Ends the claim without settling: the conversation stays due, but not before `delayMs` from
 * now, so a failing provider or a tenant without credits is not retried in a tight loop. The
 * request, if any, stays. `countFailure` adds one to the consecutive failures behind the backoff.
 */
export async function postponeExtraction(
  claim: Pick<ExtractionClaim, 'userId' | 'conversationId' | 'token'>,
  options: { delayMs: number; countFailure: boolean },
  client: Queryable = db,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE conversations
        SET extraction_claimed_by = NULL, extraction_claimed_until = NULL,
            extraction_retry_at = now() + make_interval(secs => $4::double precision / 1000),
            extraction_failures = extraction_failures + CASE WHEN $5 THEN 1 ELSE 0 END
      WHERE user_id = $1 AND id = $2 AND extraction_claimed_by = $3`,
    [claim.userId, claim.conversationId, claim.token, options.delayMs, options.countFailure],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * A top-up ends the tenant's "no credits" postponements: conversations postponed without a
 * failure counted (no credits, no key) are due again at once. Backoffs after failures stay.
 * Returns how many were cleared.
 */
export async function clearNoCreditsPostponement(userId: string, client: Queryable = db): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE conversations SET extraction_retry_at = NULL
      WHERE user_id = $1 AND extraction_retry_at > now() AND extraction_failures = 0`,
    [userId],
  );
  return rowCount ?? 0;
}

/** Lets go of a claim as it is (shutdown mid-attempt): the conversation is due again at once. */
export async function releaseExtractionClaim(claim: Pick<ExtractionClaim, 'userId' | 'conversationId' | 'token'>, client: Queryable = db): Promise<void> {
  await client.query(
    `UPDATE conversations SET extraction_claimed_by = NULL, extraction_claimed_until = NULL
      WHERE user_id = $1 AND id = $2 AND extraction_claimed_by = $3`,
    [claim.userId, claim.conversationId, claim.token],
  );
}

/** Where a conversation's lead extraction stands, as the API shows it (`extraction_status`). */
export type ExtractionStatus = 'none' | 'due' | 'postponed' | 'done';

export interface ExtractionState {
  conversationId: string;
  status: ExtractionStatus;
  /** Set when postponed: not retried before this. */
  retryAt: Date | null;
  /** Consecutive failed attempts (0 when it was postponed for lack of credits or of a key). */
  failures: number;
  creditBalance: number;
}

/**
 * The extraction state of the tenant's conversations, read with the same conditions the
 * worker's claim uses (REQUESTED_DUE, IDLE_DUE): postponed while a backoff holds a request or
 * unsettled messages back; due when claimed, requested or idle long enough; done when an
 * extraction exists and nothing is due; none otherwise.
 */
export async function findExtractionStates(
  userId: string,
  conversationIds: string[],
  idleSeconds: number,
  client: Queryable = db,
): Promise<ExtractionState[]> {
  const { rows } = await client.query<ExtractionState>(
    `SELECT c.id AS "conversationId",
            CASE
              WHEN c.extraction_claimed_until > now() THEN 'due'
              WHEN c.extraction_retry_at > now()
                   AND (c.extraction_requested_at IS NOT NULL OR c.last_sequence_no > c.extraction_settled_seq)
                   AND NOT (c.extraction_requested_at IS NOT NULL
                            AND (c.extraction_claimed_at IS NULL OR c.extraction_requested_at > c.extraction_claimed_at)) THEN 'postponed'
              WHEN c.extraction_requested_at IS NOT NULL
                   OR (c.last_sequence_no > c.extraction_settled_seq
                       AND c.last_message_at < now() - make_interval(secs => $3::double precision)) THEN 'due'
              WHEN EXISTS (SELECT 1 FROM extractions e WHERE e.user_id = c.user_id AND e.conversation_id = c.id) THEN 'done'
              ELSE 'none'
            END AS status,
            c.extraction_retry_at AS "retryAt", c.extraction_failures AS failures, u.credit_balance::float8 AS "creditBalance"
       FROM conversations c JOIN users u ON u.id = c.user_id
      WHERE c.user_id = $1 AND c.id = ANY($2::uuid[])`,
    [userId, conversationIds, idleSeconds],
  );
  return rows;
}
