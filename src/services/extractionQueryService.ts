/**
 * The read side of lead extractions. The API shows the newest extraction of each conversation:
 * a newer extraction re-reads the whole conversation, so it replaces what an older one said.
 * Older ones stay in the table as history.
 */
import { config } from '../config';
import { findConversation } from '../models/Conversation';
import {
  findExtractionStates,
  findLatestExtraction,
  listLatestExtractions,
  type Extraction,
  type ExtractionFilters,
  type ExtractionState,
  type ExtractionStatus,
} from '../models/Extraction';
import { AppError, notFound } from '../utils/errors';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';

/**
 * The newest extraction of each conversation, newest first; the cursor names the last
 * extraction of a page. A conversation re-extracted while a client pages moves to the front,
 * where a client polling with `since` finds it.
 */
export async function listExtractions(userId: string, filters: ExtractionFilters, page: PageRequest): Promise<Page<Extraction>> {
  const afterId = page.cursor === undefined ? undefined : decodeCursor<string>(page.cursor, 'uuid');
  const rows = await listLatestExtractions(userId, filters, { limit: page.limit, afterId });
  return toPage(rows, page.limit, (row) => row.id);
}

/**
 * The conversation's newest extraction; `not_found` when the conversation is not the tenant's,
 * or has none yet (the message then says where it stands, so a client polling it is not
 * left guessing whether it will ever come).
 */
export async function getLatestExtraction(userId: string, conversationId: string): Promise<Extraction> {
  const extraction = await findLatestExtraction(userId, conversationId);
  if (extraction) return extraction;
  // Say which is missing, without revealing anything about other tenants' ids.
  if (!(await findConversation(userId, conversationId))) throw notFound('Conversation');
  const state = (await extractionStates(userId, [conversationId])).get(conversationId);
  throw new AppError('not_found', `No extraction yet: ${describeExtractionState(state ?? { status: 'none', postponed: null })}`);
}

/** Why an extraction is postponed: what the worker met when it last tried. */
export type PostponedReason = 'insufficient_credits' | 'openai_not_configured' | 'extraction_failed';

export interface ConversationExtractionState {
  status: ExtractionStatus;
  postponed: { reason: PostponedReason; message: string; retryAt: Date } | null;
}

/**
 * The extraction state of each of the tenant's conversations (ids of other tenants are
 * absent). The reason of a postponement is not stored: failures are counted, and a
 * postponement without one was for want of credits or of OPENAI_API_KEY, which the API can
 * still see.
 */
export async function extractionStates(userId: string, conversationIds: string[]): Promise<Map<string, ConversationExtractionState>> {
  if (conversationIds.length === 0) return new Map();
  const rows = await findExtractionStates(userId, conversationIds, config.EXTRACTION_IDLE_SECONDS);
  return new Map(rows.map((row) => [row.conversationId, { status: row.status, postponed: postponement(row) }]));
}

function postponement(row: ExtractionState): ConversationExtractionState['postponed'] {
  if (row.status !== 'postponed' || !row.retryAt) return null;
  const retryAt = row.retryAt;
  if (row.failures > 0) {
    return { reason: 'extraction_failed', message: `the last ${row.failures} attempt(s) failed (see the extraction worker's log)`, retryAt };
  }
  if (!config.OPENAI_API_KEY) {
    return { reason: 'openai_not_configured', message: 'OPENAI_API_KEY is not set, so no model can be called', retryAt };
  }
  return { reason: 'insufficient_credits', message: 'the tenant had no credits left', retryAt };
}

export function describeExtractionState(state: ConversationExtractionState): string {
  switch (state.status) {
    case 'postponed':
      return `extraction_status is postponed: ${state.postponed!.message}; retried after ${state.postponed!.retryAt.toISOString()}, or at once on POST /v1/conversations/:id/extract`;
    case 'due':
      return 'extraction_status is due: an extraction worker runs it shortly';
    case 'done':
      return 'extraction_status is done';
    case 'none':
      return `extraction_status is none: a conversation is extracted once idle for EXTRACTION_IDLE_SECONDS (${config.EXTRACTION_IDLE_SECONDS} s here), or on POST /v1/conversations/:id/extract`;
  }
}
