/**
 * Instagram echoes: the business's own messages, sent from outside this platform, that Meta
 * reports back to the webhook. Each is recorded as a human's message (which pauses the bot),
 * unless it is our own send coming back (ingest_business_echo). Routed by Meta's account id,
 * like the inbox, so the tenant comes from the phone number row the account id names.
 */
import { db, type Queryable } from '../utils/database';
import type { InboxEvent } from './Inbox';

/**
 * `own_echo`: our own send came back, known by the id Graph returned; `parked`: it came while a
 * part of ours was in flight in that conversation, and waits for the sender to store its id
 * (ours) or to finish without it (a human's).
 */
export type IngestOutcome = 'unknown_account' | 'duplicate' | 'recorded' | 'own_echo' | 'parked';

/** What became of an echo, and where it was stored. */
export interface IngestResult {
  outcome: IngestOutcome;
  userId: string | null;
  conversationId: string | null;
  messageId: string | null;
  /** Always null for an echo: a business message owes no reply. */
  status: 'pending' | 'ignored' | null;
}

const UNIQUE_VIOLATION = '23505';

export type BusinessEchoFields = Omit<InboxEvent, 'customer_name' | 'answerable'>;

/**
 * Records a business echo; a race lost to a concurrent delivery of the same echo is `duplicate`.
 * Our own sends are known by the id Graph returned (`own_echo`); an echo arriving while a part
 * of ours, sent less than `graceMs` ago, has no id stored yet is `parked` until it has.
 */
export async function ingestBusinessEcho(fields: BusinessEchoFields, graceMs: number, client: Queryable = db): Promise<IngestResult> {
  try {
    const { rows } = await client.query<Omit<IngestResult, 'status'>>(
      `SELECT outcome, user_id AS "userId", conversation_id AS "conversationId", message_id AS "messageId"
         FROM ingest_business_echo($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [fields.channel, fields.account_id, fields.customer_id, fields.external_id, fields.type, fields.text, fields.payload, fields.timestamp, graceMs],
    );
    return { ...rows[0]!, status: null };
  } catch (error) {
    // A race lost to a concurrent delivery of the same echo still means "already stored".
    if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
      return { outcome: 'duplicate', userId: null, conversationId: null, messageId: null, status: null };
    }
    throw error;
  }
}

