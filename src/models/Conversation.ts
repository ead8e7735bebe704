/** Conversations: one per customer per number while active; archived ones stay readable. */
import { db, type Queryable } from '../utils/database';
import type { Channel } from './types';

export type ArchiveReason = 'agent_relinked' | 'agent_unlinked' | 'agent_archived' | 'phone_number_deleted';

/** Who paused the bot: a human writing from the business side, the API, or the customer's handoff keyword. */
export type PausedBy = 'human' | 'api' | 'keyword';

/** One row of `conversations`, camelCased. */
export interface Conversation {
  id: string;
  userId: string;
  phoneNumberId: string;
  /** Null when the number had no agent linked when the conversation opened. */
  agentId: string | null;
  channel: Channel;
  /** wa_id (or BSUID) on WhatsApp, IGSID on Instagram. */
  customerExternalId: string;
  customerName: string | null;
  isActive: boolean;
  botPaused: boolean;
  /** Null while the bot answers. */
  pausedBy: PausedBy | null;
  /** When a human's pause ends by itself (the agent's resume_after_minutes after the last human message); null otherwise. */
  resumesAt: Date | null;
  /** The highest sequence_no handed out so far (0 before the first message). */
  lastSequenceNo: number;
  lastMessageAt: Date | null;
  createdAt: Date;
  archivedAt: Date | null;
  archiveReason: ArchiveReason | null;
  /** Set by `POST …/extract`; the extraction worker clears it once it stored a result. */
  extractionRequestedAt: Date | null;
  /**
   * The end of the customer-service window: the customer's newest message + 24 h (null before
   * any). Past it only a template may be sent (Meta: WhatsApp Cloud API › Customer service windows).
   */
  windowExpiresAt: Date | null;
  /** The customer opted out on this number (customer_opt_outs): nothing may be sent to them. */
  optedOut: boolean;
}

export interface ConversationFilters {
  phoneNumberId?: string;
  agentId?: string;
  isActive?: boolean;
}

/** How long a customer's message lets the business send free text (Meta's customer-service window). */
export const CUSTOMER_WINDOW = `interval '24 hours'`;

const COLUMNS = `id, user_id AS "userId", phone_number_id AS "phoneNumberId", agent_id AS "agentId", channel,
  customer_external_id AS "customerExternalId", customer_name AS "customerName", is_active AS "isActive",
  bot_paused AS "botPaused", paused_by AS "pausedBy", resumes_at AS "resumesAt", last_sequence_no AS "lastSequenceNo", last_message_at AS "lastMessageAt",
  created_at AS "createdAt", archived_at AS "archivedAt", archive_reason AS "archiveReason",
  extraction_requested_at AS "extractionRequestedAt",
  last_customer_message_at + ${CUSTOMER_WINDOW} AS "windowExpiresAt",
  customer_opted_out(conversations) AS "optedOut"`;

/** The tenant's conversation, or null (also for another tenant's id). */
export async function findConversation(userId: string, id: string, client: Queryable = db): Promise<Conversation | null> {
  const { rows } = await client.query<Conversation>(`SELECT ${COLUMNS} FROM conversations WHERE user_id = $1 AND id = $2`, [
    userId,
    id,
  ]);
  return rows[0] ?? null;
}

/**
 * Like `findConversation`, but holds the row lock until the caller's transaction ends, so the
 * conversation cannot be archived (or take another message) between a check and a write.
 * Only meaningful inside `withTransaction`.
 */
export async function lockConversation(userId: string, id: string, client: Queryable): Promise<Conversation | null> {
  const { rows } = await client.query<Conversation>(
    `SELECT ${COLUMNS} FROM conversations WHERE user_id = $1 AND id = $2 FOR UPDATE`,
    [userId, id],
  );
  return rows[0] ?? null;
}

/**
 * One page of the tenant's conversations, newest first, with one extra row that only tells
 * whether another page exists. `afterId` is the last conversation of the previous page: the
 * position is compared in SQL against that row's own (created_at, id), so microsecond
 * timestamps never lose precision in a JavaScript Date and ties are broken by id.
 */
export async function listConversations(
  userId: string,
  filters: ConversationFilters,
  page: { limit: number; afterId?: string },
  client: Queryable = db,
): Promise<Conversation[]> {
  const params: unknown[] = [userId];
  const where = ['user_id = $1'];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    params.push(value);
    where.push(condition(`$${params.length}`));
  };
  if (filters.phoneNumberId !== undefined) add((p) => `phone_number_id = ${p}`, filters.phoneNumberId);
  if (filters.agentId !== undefined) add((p) => `agent_id = ${p}`, filters.agentId);
  if (filters.isActive !== undefined) add((p) => `is_active = ${p}`, filters.isActive);
  if (page.afterId !== undefined) {
    add((p) => `(created_at, id) < (SELECT created_at, id FROM conversations WHERE user_id = $1 AND id = ${p})`, page.afterId);
  }
  params.push(page.limit + 1);
  const { rows } = await client.query<Conversation>(
    `SELECT ${COLUMNS} FROM conversations WHERE ${where.join(' AND ')}
     ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

/**
 * Turns the bot off for one conversation (pause_bot, R__conversations.sql: the one place a
 * conversation is paused, with who did it); null when the tenant has no such conversation.
 */
export async function pauseBot(userId: string, id: string, by: PausedBy, client: Queryable = db): Promise<Conversation | null> {
  const { rows } = await client.query<Conversation>(`SELECT ${COLUMNS} FROM pause_bot($1, $2, $3) conversations`, [userId, id, by]);
  return rows[0] ?? null;
}

/** Turns the bot back on (resume_bot, the one place a conversation is resumed); null when the tenant has no such conversation. */
export async function resumeBot(userId: string, id: string, client: Queryable = db): Promise<Conversation | null> {
  const { rows } = await client.query<Conversation>(`SELECT ${COLUMNS} FROM resume_bot($1, $2) conversations`, [userId, id]);
  return rows[0] ?? null;
}

/**
 * The resume timer: resumes up to `limit` conversations whose `resumes_at` has come
 * (resume_due_conversations), and names them. Spans tenants on purpose, like the sweeper it
 * runs in: it is the system's own clock, and each result carries its tenant.
 */
export async function resumeDueConversations(limit: number, client: Queryable = db): Promise<{ userId: string; conversationId: string }[]> {
  const { rows } = await client.query<{ userId: string; conversationId: string }>(
    `SELECT user_id AS "userId", conversation_id AS "conversationId" FROM resume_due_conversations($1)`,
    [limit],
  );
  return rows;
}

/**
 * Marks the conversation for the extraction worker; false when the tenant has no such
 * conversation. A column, not a queue entry, so the request survives a Redis restart. Each
 * request moves the mark to now(), so a request made while an extraction runs is not lost:
 * the worker should clear the mark only if it is not newer than the one it read.
 */
export async function markExtractionRequested(userId: string, id: string, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE conversations SET extraction_requested_at = now() WHERE user_id = $1 AND id = $2`,
    [userId, id],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Archives the number's active conversations, so the next customer message opens a fresh one
 * (CONTRACT §4.8). Callers run it in the transaction that changes the link.
 */
export async function archiveActiveConversations(
  userId: string,
  phoneNumberId: string,
  reason: ArchiveReason,
  client: Queryable = db,
): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE conversations SET is_active = false, archived_at = now(), archive_reason = $3
     WHERE user_id = $1 AND phone_number_id = $2 AND is_active`,
    [userId, phoneNumberId, reason],
  );
  return rowCount ?? 0;
}
