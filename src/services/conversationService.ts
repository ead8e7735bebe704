/**
 * Conversations as the tenant API sees them: listing, reading, and the handoff switch
 * (CONTRACT §4.6). Every function takes the tenant first; another tenant's id is `not_found`.
 */
import * as conversations from '../models/Conversation';
import type { Conversation, ConversationFilters } from '../models/Conversation';
import { notFound } from '../utils/errors';
import { logger } from '../utils/logger';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';

/** The tenant's conversations, newest first; the cursor names the last conversation of a page. */
export async function listConversations(userId: string, filters: ConversationFilters, page: PageRequest): Promise<Page<Conversation>> {
  const afterId = page.cursor === undefined ? undefined : decodeCursor<string>(page.cursor, 'uuid');
  const rows = await conversations.listConversations(userId, filters, { limit: page.limit, afterId });
  return toPage(rows, page.limit, (row) => row.id);
}

/** One conversation of the tenant; throws `not_found` otherwise. */
export async function getConversation(userId: string, id: string): Promise<Conversation> {
  const conversation = await conversations.findConversation(userId, id);
  if (!conversation) throw notFound('Conversation');
  return conversation;
}

/**
 * Turns the bot off for the conversation. Idempotent, and allowed on archived conversations
 * too: the flag is harmless there and refusing would only make dashboards special-case them.
 */
export async function pauseConversation(userId: string, id: string): Promise<Conversation> {
  return found(await conversations.pauseBot(userId, id, 'api'));
}

/**
 * Turns the bot back on (by API); what the customer wrote meanwhile stays unanswered, and the
 * next message is the bot's.
 */
export async function resumeConversation(userId: string, id: string): Promise<Conversation> {
  return found(await conversations.resumeBot(userId, id));
}

/** At most this many conversations are resumed per sweep; the rest go at the next one. */
const RESUME_BATCH = 500;

/**
 * The resume timer (agent setting `resume_after_minutes`): resumes every conversation whose
 * human pause has run out. Run by the message workers' sweep, so it needs no process of its own
 * and survives any of them dying: the deadline is a column, not a timer in memory.
 */
export async function resumeDueConversations(): Promise<number> {
  const resumed = await conversations.resumeDueConversations(RESUME_BATCH);
  if (resumed.length > 0) logger.info({ conversations: resumed.length }, 'resume timer: bot resumed where no human wrote for resume_after_minutes');
  return resumed.length;
}

/**
 * Asks for an extraction now. It only marks the conversation: the extraction worker picks the
 * mark up, so the request survives restarts and costs the API no OpenAI call.
 */
export async function requestExtraction(userId: string, id: string): Promise<void> {
  if (!(await conversations.markExtractionRequested(userId, id))) throw notFound('Conversation');
}

function found(conversation: Conversation | null): Conversation {
  if (!conversation) throw notFound('Conversation');
  return conversation;
}
