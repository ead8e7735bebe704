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

export interface NewExtraction {
  conversationId: string;
  agentId: string | null;
  fields: Record<string, unknown>;
  summary: string | null;
  upToSequenceNo: number;
  model: string;
  promptTokens: number;
  completionTokens: number;
}

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
