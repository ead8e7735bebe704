/** Conversations: one per customer per number while active; archived ones stay readable. */
import { db, type Queryable } from '../utils/database';
import { decryptSecret } from '../utils/encryption';
import type { Channel } from './types';
import type { Agent } from './Agent';
import { MESSAGE_COLUMNS, type Message } from './Message';


export type ArchiveReason = 'agent_relinked' | 'agent_unlinked' | 'agent_archived' | 'phone_number_deleted';

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
  /** The highest sequence_no handed out so far (0 before the first message). */
  lastSequenceNo: number;
  lastMessageAt: Date | null;
  createdAt: Date;
  archivedAt: Date | null;
  archiveReason: ArchiveReason | null;
  /** Set by `POST …/extract`; the extraction worker clears it once it stored a result. */
  extractionRequestedAt: Date | null;
}

export interface ConversationFilters {
  phoneNumberId?: string;
  agentId?: string;
  isActive?: boolean;
}

const COLUMNS = `id, user_id AS "userId", phone_number_id AS "phoneNumberId", agent_id AS "agentId", channel,
  customer_external_id AS "customerExternalId", customer_name AS "customerName", is_active AS "isActive",
  bot_paused AS "botPaused", last_sequence_no AS "lastSequenceNo", last_message_at AS "lastMessageAt",
  created_at AS "createdAt", archived_at AS "archivedAt", archive_reason AS "archiveReason",
  extraction_requested_at AS "extractionRequestedAt"`;

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

/** Turns the bot off (true) or on (false) for one conversation; null when the tenant has no such conversation. */
export async function setBotPaused(userId: string, id: string, paused: boolean, client: Queryable = db): Promise<Conversation | null> {
  const { rows } = await client.query<Conversation>(
    `UPDATE conversations SET bot_paused = $3 WHERE user_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [userId, id, paused],
  );
  return rows[0] ?? null;
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

/** Everything a worker needs to answer a conversation, read in one query. */
export interface ReplyContext {
  /** Why its pending messages get no reply, or null when they do (SQL reason_not_to_answer, R__conversations.sql). */
  reasonNotToAnswer: string | null;
  conversation: Pick<Conversation, 'id' | 'userId' | 'channel' | 'customerExternalId' | 'isActive' | 'botPaused' | 'agentId'>;
  agent: Pick<Agent, 'id' | 'systemPrompt' | 'model' | 'temperature' | 'maxTokens' | 'historyLimit' | 'debounceMs' | 'fallbackMessage' | 'archivedAt'> | null;
  /** Null when the number was deleted. The access token comes decrypted, read once per load. */
  phoneNumber: { id: string; externalId: string; agentId: string | null; accessToken: string } | null;
}

/** What a worker's turn starts from: the context, and what the conversation owes, oldest first. */
export interface ReplyTurn {
  context: ReplyContext;
  /** Pending customer messages and queued outbound ones, in sequence order. */
  owed: Message[];
}

/**
 * Decrypted access tokens by their ciphertext (which changes with every new token, its IV being
 * random), so a turn does not pay for AES-GCM each time. Bounded: emptied when full.
 */
const decryptedTokens = new Map<string, string>();
const DECRYPTED_TOKENS_MAX = 1_000;

function accessToken(encrypted: string): string {
  let token = decryptedTokens.get(encrypted);
  if (token === undefined) {
    token = decryptSecret(encrypted);
    if (decryptedTokens.size >= DECRYPTED_TOKENS_MAX) decryptedTokens.clear();
    decryptedTokens.set(encrypted, token);
  }
  return token;
}

/**
 * The start of a turn, in one query: the conversation with its agent and number, and what it
 * owes. Null when the conversation is not the tenant's.
 */
export async function loadReplyTurn(userId: string, conversationId: string, client: Queryable = db): Promise<ReplyTurn | null> {
  const { rows } = await client.query<Record<string, unknown> & Message>(
    `SELECT c.id AS c_id, c.user_id AS c_user_id, c.channel AS c_channel, c.customer_external_id AS c_customer_external_id,
            c.is_active AS c_is_active, c.bot_paused AS c_bot_paused, c.agent_id AS c_agent_id,
            reason_not_to_answer(c) AS c_reason_not_to_answer,
            a.id AS a_id, a.system_prompt AS a_system_prompt, a.model AS a_model, a.temperature::float8 AS a_temperature,
            a.max_tokens AS a_max_tokens, a.history_limit AS a_history_limit, a.debounce_ms AS a_debounce_ms,
            a.fallback_message AS a_fallback_message, a.archived_at AS a_archived_at,
            p.id AS p_id, p.external_id AS p_external_id, p.agent_id AS p_agent_id, p.access_token_encrypted AS p_token,
            owed.*
       FROM conversations c
       LEFT JOIN agents a ON a.id = c.agent_id AND a.user_id = c.user_id
       LEFT JOIN phone_numbers p ON p.id = c.phone_number_id AND p.user_id = c.user_id AND p.deleted_at IS NULL
       LEFT JOIN LATERAL (
         SELECT ${MESSAGE_COLUMNS} FROM messages
          WHERE user_id = c.user_id AND conversation_id = c.id
            AND ((direction = 'inbound' AND status = 'pending') OR (direction = 'outbound' AND status = 'queued'))
       ) owed ON true
      WHERE c.user_id = $1 AND c.id = $2
      ORDER BY owed."sequenceNo"`,
    [userId, conversationId],
  );
  const row = rows[0];
  if (!row) return null;
  const context: ReplyContext = {
    reasonNotToAnswer: row.c_reason_not_to_answer as string | null,
    conversation: {
      id: row.c_id as string,
      userId: row.c_user_id as string,
      channel: row.c_channel as Channel,
      customerExternalId: row.c_customer_external_id as string,
      isActive: row.c_is_active as boolean,
      botPaused: row.c_bot_paused as boolean,
      agentId: row.c_agent_id as string | null,
    },
    agent: row.a_id
      ? {
          id: row.a_id as string,
          systemPrompt: row.a_system_prompt as string,
          model: row.a_model as string,
          temperature: row.a_temperature as number,
          maxTokens: row.a_max_tokens as number,
          historyLimit: row.a_history_limit as number,
          debounceMs: row.a_debounce_ms as number,
          fallbackMessage: row.a_fallback_message as string | null,
          archivedAt: row.a_archived_at as Date | null,
        }
      : null,
    phoneNumber: row.p_id
      ? {
          id: row.p_id as string,
          externalId: row.p_external_id as string,
          agentId: row.p_agent_id as string | null,
          accessToken: accessToken(row.p_token as string),
        }
      : null,
  };
  const owed = rows
    .filter((r) => r.id !== null)
    .map((r) => Object.fromEntries(Object.entries(r).filter(([key]) => !CONTEXT_KEY.test(key))) as unknown as Message);
  return { context, owed };
}

/** The context's columns in loadReplyTurn's rows; the rest are the owed message's. */
const CONTEXT_KEY = /^[cap]_/;
