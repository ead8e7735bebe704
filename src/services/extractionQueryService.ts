/**
 * The read side of lead extractions. The API shows the newest extraction of each conversation:
 * a newer extraction re-reads the whole conversation, so it replaces what an older one said.
 * Older ones stay in the table as history.
 */
import { findConversation } from '../models/Conversation';
import { findLatestExtraction, listLatestExtractions, type Extraction, type ExtractionFilters } from '../models/Extraction';
import { notFound } from '../utils/errors';
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

/** The conversation's newest extraction; `not_found` when the conversation is not the tenant's or has none yet. */
export async function getLatestExtraction(userId: string, conversationId: string): Promise<Extraction> {
  const extraction = await findLatestExtraction(userId, conversationId);
  if (extraction) return extraction;
  // Say which is missing, without revealing anything about other tenants' ids.
  if (!(await findConversation(userId, conversationId))) throw notFound('Conversation');
  throw notFound('Extraction');
}
