/** Tenant API keys: stored as SHA-256 hashes only, looked up by hash, revocable. */
import { createHash, randomBytes } from 'node:crypto';
import { db, type Queryable } from '../utils/database';

export interface ApiKey {
  id: string;
  userId: string;
  keyPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** 32 random bytes: a key cannot be guessed, so a fast unsalted hash is a safe lookup key. */
export function generateApiKey(): { key: string; hash: string; prefix: string } {
  const secret = randomBytes(32).toString('base64url');
  const key = `mca_${secret}`;
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 12) };
}

export const hashApiKey = (key: string) => createHash('sha256').update(key).digest('hex');

export async function insertApiKey(userId: string, hash: string, prefix: string, client: Queryable = db): Promise<ApiKey> {
  const { rows } = await client.query<ApiKey>(
    `INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES ($1, $2, $3)
     RETURNING id, user_id AS "userId", key_prefix AS "keyPrefix", created_at AS "createdAt", revoked_at AS "revokedAt"`,
    [userId, hash, prefix],
  );
  return rows[0]!;
}

/** The tenant behind a live key, or null. Revoked keys never match. */
export async function findActiveKeyByHash(hash: string, client: Queryable = db): Promise<{ id: string; userId: string } | null> {
  const { rows } = await client.query<{ id: string; userId: string }>(
    `SELECT id, user_id AS "userId" FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
    [hash],
  );
  return rows[0] ?? null;
}

/**
 * Revokes one of the tenant's keys (a revoked one keeps its first revocation time); returns its
 * hash, so caches can be invalidated again on a retry, or null when the tenant has no such key.
 */
export async function revokeApiKey(userId: string, keyId: string, client: Queryable = db): Promise<{ keyHash: string } | null> {
  const { rows } = await client.query<{ keyHash: string }>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE user_id = $1 AND id = $2 RETURNING key_hash AS "keyHash"`,
    [userId, keyId],
  );
  return rows[0] ?? null;
}

/** One of the tenant's keys, live or revoked, or null; never the hash. */
export async function findApiKey(userId: string, keyId: string, client: Queryable = db): Promise<ApiKey | null> {
  const { rows } = await client.query<ApiKey>(
    `SELECT id, user_id AS "userId", key_prefix AS "keyPrefix", created_at AS "createdAt", revoked_at AS "revokedAt"
     FROM api_keys WHERE user_id = $1 AND id = $2`,
    [userId, keyId],
  );
  return rows[0] ?? null;
}
