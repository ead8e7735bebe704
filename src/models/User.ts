/**
 * Tenants (the `users` table). A tenant is the root of everything it owns, so these functions
 * are keyed by the user's own id; only the operator lists across tenants.
 * `credit_balance` is written by the ledger trigger alone (see CreditLedger.ts), never here.
 */
import { db, type Queryable } from '../utils/database';

export interface User {
  id: string;
  name: string;
  email: string;
  /** Equal to the sum of the tenant's ledger, by the trigger on credit_ledger. */
  creditBalance: number;
  createdAt: Date;
}

interface UserRow {
  id: string;
  name: string;
  email: string;
  // bigint: pg hands it over as a string so no precision is lost on the way.
  creditBalance: string;
  createdAt: Date;
}

const USER_COLUMNS = `id, name, email, credit_balance AS "creditBalance", created_at AS "createdAt"`;

// Amounts are capped far below 2^53 at the API, so a balance converts to a number exactly.
const toUser = (row: UserRow): User => ({ ...row, creditBalance: Number(row.creditBalance) });

/**
 * Inserts a tenant with a zero balance. Returns null when the email is taken (the unique index
 * is on lower(email)): ON CONFLICT instead of catching the error keeps a caller's transaction
 * usable, and the race between two creators is settled by the index, not by a prior SELECT.
 */
export async function insertUser(name: string, email: string, client: Queryable = db): Promise<User | null> {
  const { rows } = await client.query<UserRow>(
    `INSERT INTO users (name, email) VALUES ($1, $2)
     ON CONFLICT ((lower(email))) DO NOTHING
     RETURNING ${USER_COLUMNS}`,
    [name, email],
  );
  return rows[0] ? toUser(rows[0]) : null;
}

/** One tenant, or null. */
export async function findUserById(id: string, client: Queryable = db): Promise<User | null> {
  const { rows } = await client.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0] ? toUser(rows[0]) : null;
}

/**
 * Tenants newest first, `limit` rows strictly after the user `afterId` in that order.
 * An `afterId` that names no user yields no rows rather than restarting the list.
 */
export async function listUsers(limit: number, afterId: string | undefined, client: Queryable = db): Promise<User[]> {
  const { rows } = afterId
    ? await client.query<UserRow>(
        `SELECT ${USER_COLUMNS} FROM users
         WHERE (created_at, id) < (SELECT created_at, id FROM users WHERE id = $2)
         ORDER BY created_at DESC, id DESC LIMIT $1`,
        [limit, afterId],
      )
    : await client.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT $1`, [limit]);
  return rows.map(toUser);
}
