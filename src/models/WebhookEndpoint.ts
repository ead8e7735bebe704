/**
 * A tenant's event endpoints and the deliveries made to them, as the tenant API reads and
 * changes them. Tenant first: every statement filters on the tenant, so another tenant's id
 * finds nothing.
 */
import { db, type Queryable } from '../utils/database';

export interface WebhookEndpoint {
  id: string;
  userId: string;
  url: string;
  events: string[];
  secretEncrypted: string;
  previousSecretEncrypted: string | null;
  previousSecretExpiresAt: Date | null;
  failingSince: Date | null;
  disabledAt: Date | null;
  disabledReason: string | null;
  createdAt: Date;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One delivery of one event to one endpoint, as the deliveries list shows it. */
export interface WebhookDelivery {
  id: string;
  seq: number;
  eventId: string;
  eventType: string;
  status: DeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

const COLUMNS = `id, user_id AS "userId", url, events, secret_encrypted AS "secretEncrypted",
  previous_secret_encrypted AS "previousSecretEncrypted", previous_secret_expires_at AS "previousSecretExpiresAt",
  failing_since AS "failingSince", disabled_at AS "disabledAt", disabled_reason AS "disabledReason", created_at AS "createdAt"`;

/** `id` is chosen by the caller: the secret's encryption is bound to it before the row exists. */
export async function insertEndpoint(
  userId: string,
  endpoint: { id: string; url: string; events: string[]; secretEncrypted: string },
  client: Queryable = db,
): Promise<WebhookEndpoint> {
  const { rows } = await client.query<WebhookEndpoint>(
    `INSERT INTO webhook_endpoints (user_id, id, url, events, secret_encrypted) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
    [userId, endpoint.id, endpoint.url, endpoint.events, endpoint.secretEncrypted],
  );
  return rows[0]!;
}

export async function findEndpoint(userId: string, id: string, client: Queryable = db): Promise<WebhookEndpoint | null> {
  const { rows } = await client.query<WebhookEndpoint>(`SELECT ${COLUMNS} FROM webhook_endpoints WHERE user_id = $1 AND id = $2`, [userId, id]);
  return rows[0] ?? null;
}

/** One page, newest first, plus one row telling whether another page exists. */
export async function listEndpoints(userId: string, page: { limit: number; afterId?: string }, client: Queryable = db): Promise<WebhookEndpoint[]> {
  const params: unknown[] = [userId, page.limit + 1];
  let after = '';
  if (page.afterId !== undefined) {
    params.push(page.afterId);
    after = 'AND (created_at, id) < (SELECT created_at, id FROM webhook_endpoints WHERE user_id = $1 AND id = $3)';
  }
  const { rows } = await client.query<WebhookEndpoint>(
    `SELECT ${COLUMNS} FROM webhook_endpoints WHERE user_id = $1 ${after} ORDER BY created_at DESC, id DESC LIMIT $2`,
    params,
  );
  return rows;
}

/** Deletes the endpoint and its deliveries; false when the tenant has no such endpoint. */
export async function deleteEndpoint(userId: string, id: string, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(`DELETE FROM webhook_endpoints WHERE user_id = $1 AND id = $2`, [userId, id]);
  return (rowCount ?? 0) > 0;
}

/**
 * Makes `secretEncrypted` the signing secret; the current one keeps signing until
 * `previousValidMs` from now. Null when the tenant has no such endpoint.
 */
export async function replaceSecret(
  userId: string,
  id: string,
  secretEncrypted: string,
  previousValidMs: number,
  client: Queryable = db,
): Promise<WebhookEndpoint | null> {
  const { rows } = await client.query<WebhookEndpoint>(
    `UPDATE webhook_endpoints
        SET previous_secret_encrypted = secret_encrypted,
            previous_secret_expires_at = now() + $4 * interval '1 millisecond',
            secret_encrypted = $3
      WHERE user_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [userId, id, secretEncrypted, previousValidMs],
  );
  return rows[0] ?? null;
}

const DELIVERY_COLUMNS = `d.id, d.seq, d.event_id AS "eventId", ev.type AS "eventType", d.status, d.attempts,
  d.last_status_code AS "lastStatusCode", d.last_error AS "lastError", d.next_attempt_at AS "nextAttemptAt",
  d.delivered_at AS "deliveredAt", d.created_at AS "createdAt"`;

/** One page of an endpoint's deliveries, newest first; `afterSeq` is the last one of the previous page. */
export async function listDeliveries(
  userId: string,
  endpointId: string,
  page: { limit: number; afterSeq?: number },
  client: Queryable = db,
): Promise<WebhookDelivery[]> {
  const params: unknown[] = [userId, endpointId, page.limit + 1];
  let after = '';
  if (page.afterSeq !== undefined) {
    params.push(page.afterSeq);
    after = 'AND d.seq < $4';
  }
  const { rows } = await client.query<WebhookDelivery>(
    `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN tenant_events ev ON ev.id = d.event_id
      WHERE d.user_id = $1 AND d.endpoint_id = $2 ${after} ORDER BY d.seq DESC LIMIT $3`,
    params,
  );
  return rows.map((row) => ({ ...row, seq: Number(row.seq) }));
}

/**
 * Sends a delivery again: pending now, with a fresh 24 h of retries. A disabled endpoint is
 * enabled again by it: the tenant says the endpoint is fixed. Null when the tenant has no such
 * delivery on that endpoint.
 */
export async function redeliver(userId: string, endpointId: string, deliveryId: string, client: Queryable = db): Promise<WebhookDelivery | null> {
  const { rows } = await client.query<WebhookDelivery>(
    `WITH endpoint AS (
       UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
        WHERE user_id = $1 AND id = $2 AND disabled_at IS NOT NULL
          AND EXISTS (SELECT 1 FROM webhook_deliveries WHERE user_id = $1 AND endpoint_id = $2 AND id = $3)
     ), d AS (
       -- A delivery in flight keeps its lease: a second worker must not post it at the same time.
       UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), give_up_at = now() + interval '24 hours',
              leased_until = CASE WHEN status = 'pending' THEN leased_until END,
              lease_token = CASE WHEN status = 'pending' THEN lease_token END
        WHERE user_id = $1 AND endpoint_id = $2 AND id = $3
       RETURNING *
     )
     SELECT ${DELIVERY_COLUMNS} FROM d JOIN tenant_events ev ON ev.id = d.event_id`,
    [userId, endpointId, deliveryId],
  );
  return rows[0] ? { ...rows[0], seq: Number(rows[0].seq) } : null;
}

/** An endpoint's stored secrets, for key rotation. */
export interface StoredSecrets {
  id: string;
  secret: string;
  previous: string | null;
}

/**
 * Key rotation (every tenant, in id order after `afterId`): endpoints with a secret, current
 * or previous, not under `currentPrefix`.
 */
export async function listSecretsNotUnder(currentPrefix: string, afterId: string | null, limit: number, client: Queryable = db): Promise<StoredSecrets[]> {
  const { rows } = await client.query<StoredSecrets>(
    `SELECT id, secret_encrypted AS secret, previous_secret_encrypted AS previous FROM webhook_endpoints
      WHERE ($1::uuid IS NULL OR id > $1)
        AND (left(secret_encrypted, length($2)) <> $2 OR left(previous_secret_encrypted, length($2)) <> $2)
      ORDER BY id LIMIT $3`,
    [afterId, currentPrefix, limit],
  );
  return rows;
}

/**
 * Replaces both secrets of each endpoint that still holds exactly what was read
 * (compare-and-set): one rotated meanwhile keeps what its rotation wrote. Returns the ids replaced.
 */
export async function replaceSecrets(
  replacements: Array<{ read: StoredSecrets; secret: string; previous: string | null }>,
  client: Queryable = db,
): Promise<string[]> {
  if (replacements.length === 0) return [];
  const { rows } = await client.query<{ id: string }>(
    `UPDATE webhook_endpoints e SET secret_encrypted = r.secret, previous_secret_encrypted = r.previous
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r (id, old_secret, old_previous, secret, previous)
      WHERE e.id = r.id AND e.secret_encrypted = r.old_secret AND e.previous_secret_encrypted IS NOT DISTINCT FROM r.old_previous
      RETURNING e.id`,
    [
      replacements.map((r) => r.read.id),
      replacements.map((r) => r.read.secret),
      replacements.map((r) => r.read.previous),
      replacements.map((r) => r.secret),
      replacements.map((r) => r.previous),
    ],
  );
  return rows.map((row) => row.id);
}
