/**
 * Tenant events (CONTRACT §3): the types, and emitting one in the caller's transaction. The
 * outbox and its fan-out to endpoints are `emit_tenant_event` (R__events.sql); today's events
 * are emitted there by triggers on the rows that record each change. Code that makes a new kind
 * of change emits with one call, inside the transaction that makes it:
 *
 *     await emitTenantEvent(tx, userId, 'customer.opted_out', conversationId, data);
 *
 * or, in SQL, `PERFORM emit_tenant_event(user_id, type, conversation_id, data)`.
 */
import type { Queryable } from '../utils/database';

export const TENANT_EVENT_TYPES = [
  'message.received',
  'message.answered',
  'message.failed',
  'conversation.handoff',
  'conversation.resumed',
  'customer.opted_out',
  'extraction.completed',
  'credits.low',
] as const;

export type TenantEventType = (typeof TENANT_EVENT_TYPES)[number];

/**
 * Writes the event and its deliveries with `client`, the caller's transaction: they commit or
 * roll back with the change. Returns the event's id, or null when no endpoint of the tenant
 * takes this type (nothing is written). `conversationId` orders deliveries per conversation.
 */
export async function emitTenantEvent(
  client: Queryable,
  userId: string,
  type: TenantEventType,
  conversationId: string | null,
  data: Record<string, unknown>,
): Promise<string | null> {
  const { rows } = await client.query<{ id: string | null }>('SELECT emit_tenant_event($1, $2, $3, $4) AS id', [
    userId,
    type,
    conversationId,
    JSON.stringify(data),
  ]);
  return rows[0]?.id ?? null;
}
