/**
 * The dispatcher's side of deliveries: claiming due ones, reading what to post, and recording
 * each attempt. Postgres is the whole queue; a claim is a lease on the row (a killed
 * dispatcher's lease expires and another takes the delivery over: at least once).
 */
import { db, type Queryable } from '../utils/database';

export interface DeliveryClaim {
  id: string;
  userId: string;
  endpointId: string;
  eventId: string;
  /** Attempts made before this one. */
  attempts: number;
  giveUpAt: Date;
  leaseToken: string;
}

/** What one attempt posts, and where. */
export interface DeliveryWork {
  url: string;
  secretEncrypted: string;
  /** The secret before the last rotation, while it still signs. */
  previousSecretEncrypted: string | null;
  event: { id: string; type: string; createdAt: Date; data: Record<string, unknown> };
}

/**
 * Claims up to `limit` due deliveries. Only the head of each queue (endpoint × conversation) is
 * due, so one conversation's events reach an endpoint one at a time, in emission order, while
 * other conversations go on. At most `perEndpoint` deliveries of one endpoint are in flight at
 * once (counting other dispatchers' leases), so a slow endpoint cannot take every slot.
 */
export async function claimDueDeliveries(
  options: { limit: number; perEndpoint: number; leaseMs: number; leaseToken: string },
  client: Queryable = db,
): Promise<DeliveryClaim[]> {
  const { rows } = await client.query<DeliveryClaim>(
    `WITH heads AS (
       SELECT d.id, d.endpoint_id, d.seq
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.user_id = d.user_id AND e.disabled_at IS NULL
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.leased_until IS NULL OR d.leased_until < now())
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                           WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
                             AND p.status = 'pending' AND p.seq < d.seq)
        ORDER BY d.next_attempt_at, d.seq
        LIMIT $1 * 4
     ), busy AS (
       SELECT b.endpoint_id, count(*)::int AS n FROM webhook_deliveries b
        WHERE b.status = 'pending' AND b.leased_until >= now() AND b.endpoint_id IN (SELECT endpoint_id FROM heads)
        GROUP BY b.endpoint_id
     ), picked AS (
       SELECT ranked.id FROM (
         SELECT h.id, h.endpoint_id, h.seq, row_number() OVER (PARTITION BY h.endpoint_id ORDER BY h.seq) AS rank FROM heads h
       ) ranked LEFT JOIN busy ON busy.endpoint_id = ranked.endpoint_id
        WHERE ranked.rank + COALESCE(busy.n, 0) <= $2
        ORDER BY ranked.seq
        LIMIT $1
     )
     UPDATE webhook_deliveries d
        SET leased_until = now() + $3 * interval '1 millisecond', lease_token = $4
       FROM picked
      WHERE d.id = picked.id AND d.status = 'pending' AND (d.leased_until IS NULL OR d.leased_until < now())
     RETURNING d.id, d.user_id AS "userId", d.endpoint_id AS "endpointId", d.event_id AS "eventId", d.attempts,
               d.give_up_at AS "giveUpAt", d.lease_token AS "leaseToken"`,
    [options.limit, options.perEndpoint, options.leaseMs, options.leaseToken],
  );
  return rows;
}

/** The endpoint and event of a claimed delivery; null when the endpoint was deleted meanwhile. */
export async function loadDeliveryWork(claim: DeliveryClaim, client: Queryable = db): Promise<DeliveryWork | null> {
  const { rows } = await client.query<{
    url: string;
    secretEncrypted: string;
    previousSecretEncrypted: string | null;
    eventId: string;
    type: string;
    createdAt: Date;
    data: Record<string, unknown>;
  }>(
    `SELECT e.url, e.secret_encrypted AS "secretEncrypted",
            CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret_encrypted END AS "previousSecretEncrypted",
            ev.id AS "eventId", ev.type, ev.created_at AS "createdAt", ev.data
       FROM webhook_endpoints e JOIN tenant_events ev ON ev.user_id = e.user_id AND ev.id = $3
      WHERE e.user_id = $1 AND e.id = $2`,
    [claim.userId, claim.endpointId, claim.eventId],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    url: row.url,
    secretEncrypted: row.secretEncrypted,
    previousSecretEncrypted: row.previousSecretEncrypted,
    event: { id: row.eventId, type: row.type, createdAt: row.createdAt, data: row.data },
  };
}

/** A 2xx: delivered, and the endpoint's run of failures (if any) is over. False if the lease was lost. */
export async function recordDelivered(claim: DeliveryClaim, statusCode: number, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(
    `WITH d AS (
       UPDATE webhook_deliveries
          SET status = 'delivered', attempts = attempts + 1, last_status_code = $4, last_error = NULL, next_attempt_at = NULL,
              delivered_at = now(), leased_until = NULL, lease_token = NULL
        WHERE user_id = $1 AND id = $2 AND lease_token = $3
       RETURNING endpoint_id
     ), e AS (
       UPDATE webhook_endpoints SET failing_since = NULL
        WHERE user_id = $1 AND id IN (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL
     )
     SELECT 1 FROM d`,
    [claim.userId, claim.id, claim.leaseToken, statusCode],
  );
  return (rowCount ?? 0) > 0;
}

export interface FailedAttempt {
  statusCode: number | null;
  error: string;
  /** When to try again; null, or later than the delivery's give-up time, makes it `failed`. */
  nextAttemptAt: Date | null;
  /** An endpoint failing without a success for this long is disabled. */
  disableAfterMs: number;
}

/**
 * A failed attempt: retried at `nextAttemptAt` or given up, and counted against the endpoint,
 * which is disabled (with the reason, for the tenant to read) once it has failed for
 * `disableAfterMs`; its pending deliveries then fail with that reason. Returns the delivery's
 * new status and whether the endpoint was disabled now; null if the lease was lost.
 */
export async function recordFailedAttempt(
  claim: DeliveryClaim,
  attempt: FailedAttempt,
  client: Queryable = db,
): Promise<{ status: 'pending' | 'failed'; endpointDisabled: boolean } | null> {
  const { rows } = await client.query<{ status: 'pending' | 'failed'; endpointDisabled: boolean }>(
    `WITH d AS (
       UPDATE webhook_deliveries
          SET attempts = attempts + 1, last_status_code = $4, last_error = $5,
              status = CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz > give_up_at THEN 'failed' ELSE 'pending' END,
              next_attempt_at = CASE WHEN $6::timestamptz IS NULL OR $6::timestamptz > give_up_at THEN NULL ELSE $6::timestamptz END,
              leased_until = NULL, lease_token = NULL
        WHERE user_id = $1 AND id = $2 AND lease_token = $3
       RETURNING endpoint_id, status
     ), e AS (
       UPDATE webhook_endpoints e
          SET failing_since = COALESCE(e.failing_since, now()),
              disabled_at = CASE WHEN e.failing_since <= now() - $7 * interval '1 millisecond' THEN now() END,
              disabled_reason = CASE WHEN e.failing_since <= now() - $7 * interval '1 millisecond'
                                     THEN format('every delivery failed since %s; last error: %s', e.failing_since, $5) END
        WHERE e.user_id = $1 AND e.id IN (SELECT endpoint_id FROM d) AND e.disabled_at IS NULL
       RETURNING e.disabled_at IS NOT NULL AS disabled
     )
     SELECT d.status, COALESCE((SELECT disabled FROM e), false) AS "endpointDisabled" FROM d`,
    [claim.userId, claim.id, claim.leaseToken, attempt.statusCode, attempt.error.slice(0, 500), attempt.nextAttemptAt, attempt.disableAfterMs],
  );
  return rows[0] ?? null;
}

/** Fails an endpoint's pending deliveries once it is disabled: the tenant reads why on each. */
export async function failPendingDeliveries(userId: string, endpointId: string, reason: string, client: Queryable = db): Promise<number> {
  const { rowCount } = await client.query(
    `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $3, leased_until = NULL, lease_token = NULL
      WHERE user_id = $1 AND endpoint_id = $2 AND status = 'pending'`,
    [userId, endpointId, reason],
  );
  return rowCount ?? 0;
}
