/**
 * What Meta's webhook writes. Each function is one round trip (the SQL functions of
 * migration 004), because the webhook must record every message before answering 200 and
 * Meta measures us on latency. Routing is by Meta's account id, before any tenant is known,
 * so these are the only writes not keyed by a caller's user id: the tenant comes from the
 * phone number row the account id names.
 */
import { db, type Queryable } from '../utils/database';

export type IngestOutcome = 'unknown_account' | 'duplicate' | 'recorded' | 'own_echo';

export interface IngestResult {
  outcome: IngestOutcome;
  userId: string | null;
  conversationId: string | null;
  messageId: string | null;
  /** 'pending' when a reply is owed, 'ignored' when the message is only stored. */
  status: 'pending' | 'ignored' | null;
}

export interface InboundMessageFields {
  channel: string;
  accountId: string;
  customerId: string;
  customerName: string | null;
  externalId: string;
  type: string;
  text: string | null;
  payload: object | null;
  timestamp: Date;
  /** Whether the message is something the agent should answer at all. */
  answerable: boolean;
}

const UNIQUE_VIOLATION = '23505';

/** A race lost to a concurrent delivery of the same message still means "already stored". */
async function dedupingUniqueViolation(run: () => Promise<IngestResult>): Promise<IngestResult> {
  try {
    return await run();
  } catch (error) {
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
      return { outcome: 'duplicate', userId: null, conversationId: null, messageId: null, status: null };
    }
    throw error;
  }
}

export function ingestCustomerMessage(fields: InboundMessageFields, client: Queryable = db): Promise<IngestResult> {
  return dedupingUniqueViolation(async () => {
    const { rows } = await client.query<IngestResult>(
      `SELECT outcome, user_id AS "userId", conversation_id AS "conversationId", message_id AS "messageId", status
         FROM ingest_customer_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        fields.channel,
        fields.accountId,
        fields.customerId,
        fields.customerName,
        fields.externalId,
        fields.type,
        fields.text,
        fields.payload,
        fields.timestamp,
        fields.answerable,
      ],
    );
    return rows[0]!;
  });
}

/**
 * Records many customer messages in one statement (and one commit). Results come back in the
 * items' order. If the batch fails as a whole, each item is retried alone, so one bad message
 * fails only its own webhook and never its batch-mates'.
 */
export async function ingestCustomerMessages(batch: InboundMessageFields[], client: Queryable = db): Promise<(IngestResult | Error)[]> {
  if (batch.length === 1) return [await ingestCustomerMessage(batch[0]!, client).catch((error: Error) => error)];
  try {
    const { rows } = await client.query<IngestResult & { ordinal: string }>(
      `SELECT ordinal, outcome, user_id AS "userId", conversation_id AS "conversationId", message_id AS "messageId", status
         FROM ingest_customer_messages($1::jsonb)`,
      [
        JSON.stringify(
          batch.map((fields) => ({
            channel: fields.channel,
            account_id: fields.accountId,
            customer_id: fields.customerId,
            customer_name: fields.customerName,
            external_id: fields.externalId,
            type: fields.type,
            text: fields.text,
            payload: fields.payload,
            timestamp: fields.timestamp.toISOString(),
            answerable: fields.answerable,
          })),
        ),
      ],
    );
    const results: IngestResult[] = [];
    for (const { ordinal, ...result } of rows) results[Number(ordinal) - 1] = result;
    return results;
  } catch {
    const results: (IngestResult | Error)[] = [];
    for (const fields of batch) results.push(await ingestCustomerMessage(fields, client).catch((error: Error) => error));
    return results;
  }
}

export type BusinessEchoFields = Omit<InboundMessageFields, 'customerName' | 'answerable'>;

export function ingestBusinessEcho(fields: BusinessEchoFields, client: Queryable = db): Promise<IngestResult> {
  return dedupingUniqueViolation(async () => {
    const { rows } = await client.query<Omit<IngestResult, 'status'>>(
      `SELECT outcome, user_id AS "userId", conversation_id AS "conversationId", message_id AS "messageId"
         FROM ingest_business_echo($1, $2, $3, $4, $5, $6, $7, $8)`,
      [fields.channel, fields.accountId, fields.customerId, fields.externalId, fields.type, fields.text, fields.payload, fields.timestamp],
    );
    return { ...rows[0]!, status: null };
  });
}

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

/** The customer unsent a message: keep the row (history, sequence) but flag it. */
export async function markUnsentByCustomer(channel: string, externalId: string, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE messages SET payload = COALESCE(payload, '{}'::jsonb) || '{"deleted": true}'::jsonb, updated_at = now()
      WHERE channel = $1 AND external_id = $2 AND direction = 'inbound'`,
    [channel, externalId],
  );
  return (rowCount ?? 0) > 0;
}
