/**
 * Meta's status webhooks for our outbound messages (sent, delivered, read, failed). Keyed by
 * Meta's message id, before any tenant is known: the row the id names carries its tenant.
 */
import { db, type Queryable } from '../utils/database';

/**
 * Moves an outbound message's status forward only (sent < delivered < read; failed is
 * terminal), whatever order Meta's status webhooks arrive in. False when no message of ours
 * has that id, or the status would move it backwards.
 */
export async function applyOutboundStatus(
  channel: string,
  externalId: string,
  status: 'sent' | 'delivered' | 'read' | 'failed',
  error: { code: string; message: string } | null,
  client: Queryable = db,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE messages
        SET status = $3, error_code = COALESCE($4, error_code), error_message = COALESCE($5, error_message), updated_at = now()
      WHERE channel = $1 AND external_id = $2 AND direction = 'outbound'
        AND outbound_status_rank(status) < outbound_status_rank($3)`,
    [channel, externalId, status, error?.code ?? null, error?.message ?? null],
  );
  return (rowCount ?? 0) > 0;
}
