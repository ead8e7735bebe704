/**
 * Phone numbers: a tenant's WhatsApp numbers and Instagram accounts, each with its encrypted
 * access token and at most one linked agent (a single `agent_id` column, so "one agent per
 * number" is structural).
 *
 * Deleted numbers are soft-deleted (`deleted_at`): their conversations keep pointing at them,
 * and the partial unique index frees the account for a new registration. Every function here
 * except `findLiveByExternalId` is tenant-first and sees live rows only.
 *
 * Lock order, for anyone locking several of these rows in one transaction (deadlock-free only
 * if everybody follows it): agent row → phone number row → conversation rows.
 */
import { db, type Queryable } from '../utils/database';
import { decryptSecret } from '../utils/encryption';
import type { Channel } from './types';


export const CHANNELS = ['whatsapp', 'instagram'] as const satisfies readonly Channel[];

/** A phone number as the rest of the code sees it; the encrypted token never leaves this file. */
export interface PhoneNumber {
  id: string;
  userId: string;
  channel: Channel;
  externalId: string;
  displayName: string | null;
  agentId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What the webhook needs to route an inbound message. */
export interface PhoneNumberRoute {
  id: string;
  userId: string;
  agentId: string | null;
  channel: Channel;
  externalId: string;
}

const COLUMNS = `id, user_id AS "userId", channel, external_id AS "externalId", display_name AS "displayName",
  agent_id AS "agentId", created_at AS "createdAt", updated_at AS "updatedAt"`;

/** The unique index that makes a (channel, external_id) live at most once across all tenants. */
export const EXTERNAL_ID_UNIQUE_INDEX = 'phone_numbers_external_key';

/**
 * What an access token's ciphertext is bound to (its AES-GCM additional data): this table,
 * column and row. A ciphertext copied into another row does not decrypt there.
 */
export const accessTokenContext = (phoneNumberId: string) => `phone_numbers.access_token_encrypted:${phoneNumberId}`;

export interface NewPhoneNumber {
  /** Chosen by the caller: the token is encrypted for this row before the row exists. */
  id: string;
  channel: Channel;
  externalId: string;
  displayName: string | null;
  /** Already encrypted (`encryptSecret` with `accessTokenContext(id)`); the model never sees the plain token on the way in. */
  accessTokenEncrypted: string;
}

/**
 * Inserts a number. A live registration of the same account by any tenant makes Postgres raise
 * a unique violation (23505) on `EXTERNAL_ID_UNIQUE_INDEX`; the caller maps it.
 */
export async function insertPhoneNumber(userId: string, input: NewPhoneNumber, client: Queryable = db): Promise<PhoneNumber> {
  const { rows } = await client.query<PhoneNumber>(
    `INSERT INTO phone_numbers (id, user_id, channel, external_id, display_name, access_token_encrypted)
     VALUES ($6, $1, $2, $3, $4, $5)
     RETURNING ${COLUMNS}`,
    [userId, input.channel, input.externalId, input.displayName, input.accessTokenEncrypted, input.id],
  );
  return rows[0]!;
}

/**
 * One live number of the tenant, or null. `lock: 'update'` takes the row lock a link change
 * needs; `lock: 'share'` lets a reader (e.g. code opening a conversation under the number's
 * current agent) keep the link from changing until it commits. Locks only mean something
 * inside `withTransaction`.
 */
export async function findPhoneNumber(
  userId: string,
  id: string,
  client: Queryable = db,
  options: { lock?: 'update' | 'share' } = {},
): Promise<PhoneNumber | null> {
  const lock = options.lock === 'update' ? 'FOR UPDATE' : options.lock === 'share' ? 'FOR SHARE' : '';
  const { rows } = await client.query<PhoneNumber>(
    `SELECT ${COLUMNS} FROM phone_numbers WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL ${lock}`,
    [userId, id],
  );
  return rows[0] ?? null;
}

/**
 * A page of the tenant's live numbers, newest first, starting strictly after the `afterId` row.
 * Returns up to `limit + 1` rows so the caller can tell whether another page exists.
 */
export async function listPhoneNumbers(
  userId: string,
  options: { limit: number; afterId?: string | undefined },
  client: Queryable = db,
): Promise<PhoneNumber[]> {
  // The cursor row is looked up under the same tenant (deleted or not, so a cursor stays valid
  // when its row is deleted between pages); another tenant's id simply yields an empty page.
  const { rows } = await client.query<PhoneNumber>(
    `SELECT ${COLUMNS} FROM phone_numbers
     WHERE user_id = $1 AND deleted_at IS NULL
       AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM phone_numbers WHERE user_id = $1 AND id = $2))
     ORDER BY created_at DESC, id DESC
     LIMIT $3`,
    [userId, options.afterId ?? null, options.limit + 1],
  );
  return rows;
}

export interface PhoneNumberChanges {
  displayName?: string | null;
  accessTokenEncrypted?: string;
}

/** Updates the given fields of a live number; null when the tenant has no such number. */
export async function updatePhoneNumber(
  userId: string,
  id: string,
  changes: PhoneNumberChanges,
  client: Queryable = db,
): Promise<PhoneNumber | null> {
  // CASE on a "was it given" flag keeps one static statement while telling "set to null"
  // (clear the display name) apart from "not given".
  const { rows } = await client.query<PhoneNumber>(
    `UPDATE phone_numbers SET
       display_name = CASE WHEN $3 THEN $4 ELSE display_name END,
       access_token_encrypted = COALESCE($5, access_token_encrypted),
       updated_at = now()
     WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL
     RETURNING ${COLUMNS}`,
    [userId, id, changes.displayName !== undefined, changes.displayName ?? null, changes.accessTokenEncrypted ?? null],
  );
  return rows[0] ?? null;
}

/** Points a live number at an agent (or at none); null when the tenant has no such number. */
export async function setPhoneNumberAgent(
  userId: string,
  id: string,
  agentId: string | null,
  client: Queryable = db,
): Promise<PhoneNumber | null> {
  const { rows } = await client.query<PhoneNumber>(
    `UPDATE phone_numbers SET agent_id = $3, updated_at = now()
     WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL
     RETURNING ${COLUMNS}`,
    [userId, id, agentId],
  );
  return rows[0] ?? null;
}

/**
 * Unlinks an agent from every number of the tenant it is linked to; returns those numbers (id,
 * channel and account, what their cached routes are named by). Each updated row is locked until
 * the transaction ends.
 */
export async function unlinkAgentEverywhere(
  userId: string,
  agentId: string,
  client: Queryable = db,
): Promise<{ id: string; channel: Channel; externalId: string }[]> {
  const { rows } = await client.query<{ id: string; channel: Channel; externalId: string }>(
    `UPDATE phone_numbers SET agent_id = NULL, updated_at = now()
     WHERE user_id = $1 AND agent_id = $2
     RETURNING id, channel, external_id AS "externalId"`,
    [userId, agentId],
  );
  return rows;
}

/**
 * Soft-deletes a live number and drops its agent link; false when the tenant has no such number.
 * The row stays so its conversations (and their foreign keys) remain readable.
 */
export async function softDeletePhoneNumber(userId: string, id: string, client: Queryable = db): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE phone_numbers SET deleted_at = now(), agent_id = NULL, updated_at = now()
     WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [userId, id],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * The live number registered for a Meta account, whichever tenant owns it, or null.
 *
 * Deliberately NOT tenant-filtered: Meta's webhook names only the account (WhatsApp
 * `phone_number_id`, Instagram account id) and the webhook has no tenant until this lookup
 * gives it one. It is safe because the partial unique index lets at most one live row match,
 * and everything after it uses the returned `userId`. Never expose this to a tenant-keyed route.
 */
export async function findLiveByExternalId(
  channel: Channel,
  externalId: string,
  client: Queryable = db,
): Promise<PhoneNumberRoute | null> {
  const { rows } = await client.query<PhoneNumberRoute>(
    `SELECT id, user_id AS "userId", agent_id AS "agentId", channel, external_id AS "externalId"
     FROM phone_numbers WHERE channel = $1 AND external_id = $2 AND deleted_at IS NULL`,
    [channel, externalId],
  );
  return rows[0] ?? null;
}

/**
 * The decrypted access token of one live number of the tenant, or null when the tenant has no
 * such live number (deleted numbers send nothing). Throws `SecretDecryptionError` when the
 * stored value does not decrypt under the configured key. Keep the result out of logs.
 */
export async function getAccessToken(userId: string, phoneNumberId: string, client: Queryable = db): Promise<string | null> {
  const { rows } = await client.query<{ encrypted: string }>(
    `SELECT access_token_encrypted AS encrypted FROM phone_numbers WHERE user_id = $1 AND id = $2 AND deleted_at IS NULL`,
    [userId, phoneNumberId],
  );
  const row = rows[0];
  return row ? decryptSecret(row.encrypted, accessTokenContext(phoneNumberId)) : null;
}

/** A stored access token as key rotation sees it: any tenant's, deleted numbers' included. */
export interface StoredAccessToken {
  id: string;
  encrypted: string;
}

/**
 * Up to `limit` tokens not yet stored under `currentPrefix`, in id order after `afterId`.
 * Not tenant-filtered: key rotation is the operator's, over every row (deleted numbers keep
 * their tokens, and the old key must be retirable from them too).
 */
export async function listAccessTokensNotUnder(
  currentPrefix: string,
  afterId: string | null,
  limit: number,
  client: Queryable = db,
): Promise<StoredAccessToken[]> {
  const { rows } = await client.query<StoredAccessToken>(
    `SELECT id, access_token_encrypted AS encrypted FROM phone_numbers
     WHERE ($1::uuid IS NULL OR id > $1) AND left(access_token_encrypted, length($2)) <> $2
     ORDER BY id LIMIT $3`,
    [afterId, currentPrefix, limit],
  );
  return rows;
}

/**
 * Replaces each token whose row still holds exactly `encrypted` (compare-and-set, one
 * statement): a token changed since it was read (a PATCH) is left as its writer wrote it.
 * Returns the numbers replaced, with their tenants (whose cached entries hold the old value).
 */
export async function replaceAccessTokens(
  replacements: { id: string; encrypted: string; reencrypted: string }[],
  client: Queryable = db,
): Promise<{ id: string; userId: string }[]> {
  if (replacements.length === 0) return [];
  const { rows } = await client.query<{ id: string; userId: string }>(
    `UPDATE phone_numbers p SET access_token_encrypted = r.reencrypted
     FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r (id, encrypted, reencrypted)
     WHERE p.id = r.id AND p.access_token_encrypted = r.encrypted
     RETURNING p.id, p.user_id AS "userId"`,
    [replacements.map((r) => r.id), replacements.map((r) => r.encrypted), replacements.map((r) => r.reencrypted)],
  );
  return rows;
}
