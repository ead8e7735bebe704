/** Conversations: one per customer per number while active; archived ones stay readable. */
import { db, type Queryable } from '../utils/database';

export type ArchiveReason = 'agent_relinked' | 'agent_unlinked' | 'agent_archived' | 'phone_number_deleted';

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
