/**
 * The inbox: customer messages accepted from Meta's webhook, waiting to be filed into their
 * conversation by a message worker (the `inbox` table). Acceptance is one round trip, because the
 * webhook must record every message before answering 200 and Meta measures us on latency.
 * Routing is by Meta's account id, before any tenant is known, so acceptance is not keyed by a
 * caller's user id: the tenant comes from the phone number row the account id names. Filing,
 * the sweeper's scan and setting aside are keyed by the tenant the row was routed to.
 */
import { db, type Queryable } from '../utils/database';

/**
 * A message from Meta's webhook in the one shape it is stored in (`inbox.event`) and read back
 * by the filing SQL (`event->>'account_id'` and so on, R__filing.sql): snake_case, as stored,
 * so nothing maps it on the way.
 */
export interface InboxEvent {
  channel: string;
  account_id: string;
  customer_id: string;
  customer_name: string | null;
  external_id: string;
  type: string;
  text: string | null;
  payload: object | null;
  /** Meta's timestamp, ISO 8601. */
  timestamp: string;
  /** Whether the message is something the agent should answer at all. */
  answerable: boolean;
}

/** Where an accepted customer message waits to be filed: one customer of one number. */
export interface InboxKey {
  userId: string;
  phoneNumberId: string;
  customerId: string;
}

export type AcceptOutcome = 'accepted' | 'duplicate' | 'unknown_account';

export interface AcceptResult {
  outcome: AcceptOutcome;
  /** Null when the account is unknown. */
  key: InboxKey | null;
  /** Whether the number has an agent linked: without one, nothing will be answered. */
  hasAgent: boolean;
}

const ACCEPT_SQL = `
WITH items AS (
  SELECT e.ordinality AS ordinal, e.value AS v,
         row_number() OVER (PARTITION BY e.value->>'channel', e.value->>'external_id' ORDER BY e.ordinality) AS copy
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY e
), routed AS (
  SELECT i.ordinal, i.copy, i.v->>'channel' AS channel, i.v->>'external_id' AS external_id, i.v->>'customer_id' AS customer_id,
         i.v AS event, pn.id AS phone_number_id, pn.user_id, pn.agent_id IS NOT NULL AS has_agent
    FROM items i
    LEFT JOIN phone_numbers pn ON pn.channel = i.v->>'channel' AND pn.external_id = i.v->>'account_id' AND pn.deleted_at IS NULL
), accepted AS (
  INSERT INTO inbox (channel, external_id, user_id, phone_number_id, customer_id, event)
  SELECT r.channel, r.external_id, r.user_id, r.phone_number_id, r.customer_id, r.event
    FROM routed r
   WHERE r.phone_number_id IS NOT NULL AND r.copy = 1
     AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel = r.channel AND m.external_id = r.external_id)
   ORDER BY r.ordinal
  ON CONFLICT DO NOTHING
  RETURNING channel, external_id
)
SELECT r.ordinal,
       CASE WHEN r.phone_number_id IS NULL THEN 'unknown_account'
            WHEN a.external_id IS NOT NULL AND r.copy = 1 THEN 'accepted'
            ELSE 'duplicate' END AS outcome,
       r.user_id AS "userId", r.phone_number_id AS "phoneNumberId", r.customer_id AS "customerId", r.has_agent AS "hasAgent"
  FROM routed r
  LEFT JOIN accepted a ON a.channel = r.channel AND a.external_id = r.external_id`;

async function acceptBatch(batch: InboxEvent[], client: Queryable): Promise<AcceptResult[]> {
  const { rows } = await client.query<{
    ordinal: string;
    outcome: AcceptOutcome;
    userId: string | null;
    phoneNumberId: string | null;
    customerId: string;
    hasAgent: boolean | null;
  }>(
    ACCEPT_SQL,
    [JSON.stringify(batch)],
  );
  const results: AcceptResult[] = [];
  for (const { ordinal, outcome, userId, phoneNumberId, customerId, hasAgent } of rows) {
    results[Number(ordinal) - 1] = { outcome, key: userId && phoneNumberId ? { userId, phoneNumberId, customerId } : null, hasAgent: hasAgent === true };
  }
  return results;
}

/**
 * Durably accepts customer messages (and reactions) in one statement and one commit: each
 * is routed by its account id and put in the inbox unless it is already there or already
 * filed (dedupe across Meta's whole retry horizon). Results come back in the items' order.
 * If the batch fails as a whole, each item is retried alone, so one bad item fails only its
 * own webhook and never its batch-mates'.
 */
export async function acceptCustomerMessages(batch: InboxEvent[], client: Queryable = db): Promise<(AcceptResult | Error)[]> {
  try {
    return await acceptBatch(batch, client);
  } catch (error) {
    if (batch.length === 1) return [error as Error];
    const results: (AcceptResult | Error)[] = [];
    for (const fields of batch) results.push(await acceptBatch([fields], client).then(([result]) => result!, (failure: Error) => failure));
    return results;
  }
}

export interface FileResult {
  /** Where the last filed message went, else the customer's active conversation, if any. */
  conversationId: string | null;
  filed: number;
  /** Rows removed without filing: duplicates of filed messages, or a number deleted since. */
  dropped: number;
  /** Rows the database refused this time; each is left aside after a few refusals. */
  refused: number;
}

/** Files a customer's waiting inbox messages into their conversation, in arrival order. */
export async function fileInbox(key: InboxKey, client: Queryable = db): Promise<FileResult> {
  const { rows } = await client.query<FileResult>(
    `SELECT conversation_id AS "conversationId", filed, dropped, refused FROM file_inbox($1, $2, $3)`,
    [key.userId, key.phoneNumberId, key.customerId],
  );
  return rows[0]!;
}

/** Customers whose inbox messages have waited longer than `idleMs`: their nudge was lost. */
export async function findWaitingInbox(idleMs: number, limit: number, client: Queryable = db): Promise<InboxKey[]> {
  const { rows } = await client.query<InboxKey>(
    `SELECT DISTINCT user_id AS "userId", phone_number_id AS "phoneNumberId", customer_id AS "customerId" FROM inbox
      WHERE received_at < now() - make_interval(secs => $1::double precision / 1000) AND attempts < inbox_max_attempts()
      LIMIT $2`,
    [idleMs, limit],
  );
  return rows;
}

/**
 * Leaves a customer's inbox rows aside (kept, with the reason) after handling them kept
 * failing, and names the customer's active conversation, whose owed messages failed with them.
 */
export async function setInboxAside(key: InboxKey, reason: string, client: Queryable = db): Promise<{ setAside: number; conversationId: string | null }> {
  const { rows } = await client.query<{ setAside: number; conversationId: string | null }>(
    `WITH aside AS (
       UPDATE inbox SET attempts = inbox_max_attempts(), last_error = $4
        WHERE user_id = $1 AND phone_number_id = $2 AND customer_id = $3
       RETURNING 1)
     SELECT (SELECT count(*) FROM aside)::int AS "setAside",
            (SELECT id FROM conversations
              WHERE user_id = $1 AND phone_number_id = $2 AND customer_external_id = $3 AND is_active) AS "conversationId"`,
    [key.userId, key.phoneNumberId, key.customerId, reason],
  );
  return rows[0]!;
}

/**
 * The customer unsent a message: keep the row (history, sequence) but flag it, whether it is
 * filed already or still waits in the inbox (then it is filed flagged).
 */
export async function markUnsentByCustomer(channel: string, externalId: string, client: Queryable = db): Promise<boolean> {
  const { rows } = await client.query<{ flagged: number }>(
    `WITH filed AS (
       UPDATE messages SET payload = COALESCE(payload, '{}'::jsonb) || '{"deleted": true}'::jsonb, updated_at = now()
        WHERE channel = $1 AND external_id = $2 AND direction = 'inbound'
       RETURNING 1),
     waiting AS (
       UPDATE inbox SET event = event || jsonb_build_object('payload', COALESCE(NULLIF(event->'payload', 'null'::jsonb), '{}'::jsonb) || '{"deleted": true}'::jsonb)
        WHERE channel = $1 AND external_id = $2
       RETURNING 1)
     SELECT ((SELECT count(*) FROM filed) + (SELECT count(*) FROM waiting))::int AS flagged`,
    [channel, externalId],
  );
  return (rows[0]?.flagged ?? 0) > 0;
}
