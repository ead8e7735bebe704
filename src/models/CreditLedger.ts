/**
 * The credit ledger: append-only, one row per movement of a tenant's credits. The balance on
 * `users` is moved by the AFTER INSERT trigger of the same statement, so it always equals the
 * ledger's sum; nothing here ever updates `users.credit_balance` itself.
 *
 * Every write locks the tenant's row first (SELECT … FOR NO KEY UPDATE inside the statement), which
 * serialises concurrent writers of one tenant and lets the statement compute the new balance
 * from the value it locked. NO KEY UPDATE, not UPDATE: a transaction that inserted a row with a
 * foreign key to users (a conversation, an extraction, a ledger entry) holds KEY SHARE on the
 * tenant's row, which UPDATE would wait on.
 */
import { db, type Queryable } from '../utils/database';

export type CreditReason = 'top_up' | 'reply' | 'extraction' | 'transcription' | 'refund' | 'adjustment';

export interface CreditEntry {
  id: string;
  userId: string;
  /** Negative for a charge; a charge clamped at an empty balance is zero. */
  amount: number;
  reason: CreditReason;
  description: string | null;
  messageId: string | null;
  conversationId: string | null;
  extractionId: string | null;
  tokens: number | null;
  createdAt: Date;
}

/** What a write returns: the entry, and the balance right after it, under the same lock. */
export interface LedgerWrite {
  entry: CreditEntry;
  balance: number;
}

/** What a charge refers to; `reply` needs `messageId` (a CHECK insists). */
export interface ChargeRefs {
  reason: 'reply' | 'extraction';
  messageId?: string | null;
  conversationId?: string | null;
  extractionId?: string | null;
  tokens?: number | null;
}

/** The outcome of a clamped charge; `entry` is null when this message/extraction was already charged. */
export interface ChargeWrite {
  entry: CreditEntry | null;
  balance: number;
}

interface EntryRow extends Omit<CreditEntry, 'amount'> {
  // bigint arrives as a string.
  amount: string;
}

const ENTRY_COLUMNS = `id, user_id AS "userId", amount, reason, description, message_id AS "messageId",
  conversation_id AS "conversationId", extraction_id AS "extractionId", tokens, created_at AS "createdAt"`;

const toEntry = (row: EntryRow): CreditEntry => ({ ...row, amount: Number(row.amount) });

/** A write's row: the inserted entry's columns (all null when nothing was inserted) plus `balance`. */
type WriteRow = { [K in keyof EntryRow]: EntryRow[K] | null } & { balance: string };

function fromWriteRow(row: WriteRow): { entry: CreditEntry | null; balance: number } {
  const { balance, ...entry } = row;
  return { entry: entry.id === null ? null : toEntry(entry as EntryRow), balance: Number(balance) };
}

/**
 * Adds credits (reason `top_up`, amount > 0) in one statement. Null when the user does not exist.
 * The balance after is the locked balance plus the amount: the trigger's update is invisible to
 * this statement's own snapshot, but nobody else can move the balance while the lock is held.
 */
export async function insertTopUp(
  userId: string,
  amount: number,
  description: string | null,
  client: Queryable = db,
): Promise<LedgerWrite | null> {
  const { rows } = await client.query<WriteRow>(
    `WITH locked AS (
       SELECT id, credit_balance FROM users WHERE id = $1 FOR NO KEY UPDATE
     ), entry AS (
       INSERT INTO credit_ledger (user_id, amount, reason, description)
       SELECT locked.id, $2::bigint, 'top_up', $3::text FROM locked
       RETURNING ${ENTRY_COLUMNS}
     )
     SELECT entry.*, locked.credit_balance + entry.amount AS balance
     FROM locked JOIN entry ON true`,
    [userId, amount, description],
  );
  const row = rows[0];
  if (!row) return null;
  const { entry, balance } = fromWriteRow(row);
  return entry ? { entry, balance } : null;
}

/**
 * Charges up to `cost` credits in one statement (charge_credits, R__credits.sql), clamped at the
 * balance: the entry's amount is -LEAST(balance, cost) computed from the row it has just locked, so no concurrency can take
 * the balance below zero and nothing is read into JS and written back.
 *
 * A second charge for the same reply message or extraction inserts nothing (the unique indexes
 * decide; ON CONFLICT keeps a caller's transaction alive) and comes back with `entry: null`.
 * Null when the user does not exist.
 */
export async function insertClampedCharge(
  userId: string,
  cost: number,
  refs: ChargeRefs,
  client: Queryable = db,
): Promise<ChargeWrite | null> {
  const { rows } = await client.query<WriteRow>(
    `SELECT ${ENTRY_COLUMNS}, balance FROM charge_credits($1, $2, $3, $4, $5, $6, $7)`,
    [userId, cost, refs.reason, refs.messageId ?? null, refs.conversationId ?? null, refs.extractionId ?? null, refs.tokens ?? null],
  );
  const row = rows[0];
  return row ? fromWriteRow(row) : null;
}

/** The tenant's balance, or null when there is no such tenant. */
export async function findBalance(userId: string, client: Queryable = db): Promise<number | null> {
  const { rows } = await client.query<{ balance: string }>(`SELECT credit_balance AS balance FROM users WHERE id = $1`, [userId]);
  return rows[0] ? Number(rows[0].balance) : null;
}

/**
 * The tenant's entries newest first, `limit` rows strictly after entry `afterId` in that order.
 * The cursor's row is looked up within the same tenant, so another tenant's entry id is no cursor.
 */
export async function listEntries(
  userId: string,
  limit: number,
  afterId: string | undefined,
  client: Queryable = db,
): Promise<CreditEntry[]> {
  const { rows } = afterId
    ? await client.query<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM credit_ledger
         WHERE user_id = $1
           AND (created_at, id) < (SELECT created_at, id FROM credit_ledger WHERE user_id = $1 AND id = $3)
         ORDER BY created_at DESC, id DESC LIMIT $2`,
        [userId, limit, afterId],
      )
    : await client.query<EntryRow>(
        `SELECT ${ENTRY_COLUMNS} FROM credit_ledger WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
        [userId, limit],
      );
  return rows.map(toEntry);
}

/** Credits the tenant has held for model calls in flight (unexpired holds). */
export async function sumHolds(userId: string, client: Queryable = db): Promise<number> {
  const { rows } = await client.query<{ held: string }>(`SELECT credits_held($1) AS held`, [userId]);
  return Number(rows[0]?.held ?? 0);
}
