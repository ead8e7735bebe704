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

/**
 * A status whose biz_opaque_callback_data names one of our parts settles it with Meta's id and
 * status (settle_part_by_status, R__sending.sql), even when its worker died before recording
 * the id. Routed like the message: only a part sent from the number the status came for.
 * False when no such part is waiting for it.
 */
export async function settlePartByStatus(
  channel: string,
  accountId: string,
  part: { messageId: string; partNo: number },
  externalId: string,
  status: 'sent' | 'delivered' | 'read' | 'failed',
  error: { code: string; message: string } | null,
  client: Queryable = db,
): Promise<boolean> {
  const { rows } = await client.query<{ settled: boolean }>(
    `SELECT settle_part_by_status($1, $2, $3, $4, $5, $6, $7, $8) AS settled`,
    [channel, accountId, part.messageId, part.partNo, externalId, status, error?.code ?? null, error?.message ?? null],
  );
  return rows[0]?.settled ?? false;
}
