/**
 * Tenants and their API keys, as the operator manages them, and a tenant's view of itself.
 * A plain API key exists only in the return value of the function that creates it; the
 * database keeps its SHA-256 and a short prefix.
 */
import { withTransaction } from '../utils/database';
import { conflict, notFound } from '../utils/errors';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import { findUserById, insertUser, listUsers as listUserRows, type User } from '../models/User';
import { generateApiKey, insertApiKey, revokeApiKey as revokeKeyRow } from '../models/ApiKey';
import { creditsHeld, topUp } from './creditService';
import { forgetApiKey, markApiKeyLive } from './liveApiKeys';

export type { User } from '../models/User';

export interface NewUser {
  name: string;
  email: string;
  /** Opening credits, booked as one `top_up` entry; 0 or absent books nothing. */
  credits?: number | undefined;
}

/** A freshly issued key: `apiKey` is the only time the plain key is ever available. */
export interface IssuedApiKey {
  id: string;
  apiKey: string;
}

/**
 * Creates a tenant with its first API key and opening credits, all in one transaction: a
 * failure leaves no half-made tenant behind. 409 when the email is taken (case-insensitively).
 */
export async function createUser(input: NewUser): Promise<{ user: User; apiKey: IssuedApiKey }> {
  const created = await withTransaction(async (tx) => {
    const created = await insertUser(input.name, input.email, tx);
    if (!created) throw conflict('A user with this email already exists');
    let user = created;
    if (input.credits) {
      const { balance } = await topUp(created.id, input.credits, 'opening credits', tx);
      user = { ...created, creditBalance: balance };
    }
    const { key, hash, prefix } = generateApiKey();
    const row = await insertApiKey(user.id, hash, prefix, tx);
    return { user, apiKey: { id: row.id, apiKey: key }, hash };
  });
  // Once committed, so a key that never existed is never hinted live.
  await markApiKeyLive(created.hash);
  return { user: created.user, apiKey: created.apiKey };
}

/** One tenant. 404 when there is none with that id. */
export async function getUser(id: string): Promise<User> {
  const user = await findUserById(id);
  if (!user) throw notFound('User');
  return user;
}

/** The calling tenant, with the credits held for its model calls in flight (guarantee 14). */
export async function getMe(id: string): Promise<User & { creditsHeld: number }> {
  const user = await getUser(id);
  return { ...user, creditsHeld: await creditsHeld(id) };
}

/** Tenants newest first, one page at a time (`cursor` from the previous page). */
export async function listUsers(page: PageRequest): Promise<Page<User>> {
  const afterId = page.cursor === undefined ? undefined : decodeCursor<string>(page.cursor, 'uuid');
  const rows = await listUserRows(page.limit + 1, afterId);
  return toPage(rows, page.limit, (user) => user.id);
}

/** Issues another key for the tenant. 404 when the tenant does not exist. */
export async function createApiKey(userId: string): Promise<IssuedApiKey> {
  const { issued, hash } = await withTransaction(async (tx) => {
    // Checked inside the transaction so the answer is a clean 404, not a foreign-key 500.
    if (!(await findUserById(userId, tx))) throw notFound('User');
    const { key, hash, prefix } = generateApiKey();
    const row = await insertApiKey(userId, hash, prefix, tx);
    return { issued: { id: row.id, apiKey: key }, hash };
  });
  await markApiKeyLive(hash);
  return issued;
}

/**
 * Revokes one of the tenant's keys; from the next request on it authenticates nothing, in every
 * API process: the cached key lookup is invalidated before this returns (503 when Redis cannot
 * be told; the key is revoked in Postgres and a retry invalidates again). Revoking an already
 * revoked key succeeds again, so a retried DELETE is harmless. 404 when the tenant has no key
 * with that id.
 */
export async function revokeApiKey(userId: string, keyId: string): Promise<void> {
  const revoked = await revokeKeyRow(userId, keyId);
  if (!revoked) throw notFound('API key');
  await forgetApiKey(revoked.keyHash);
}
