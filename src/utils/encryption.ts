/**
 * Secrets at rest (channel access tokens): AES-256-GCM under `config.ENCRYPTION_KEY`.
 *
 * Stored form: `v2:<key id>:<iv>:<tag>:<ciphertext>` (the last three base64). The key id names
 * which key encrypted the value, so older keys (`ENCRYPTION_KEYS_PREVIOUS`) still decrypt what
 * they wrote and `npm run rotate-keys` can tell what is left to re-encrypt. Each value is bound
 * to where it is stored by GCM's additional data (its `context`: table, column and row id), so a
 * ciphertext copied into another row fails authentication there instead of lending that row its
 * token. GCM authenticates as well as encrypts: a value altered in the database fails to
 * decrypt instead of yielding a wrong token.
 *
 * `v1:<iv>:<tag>:<ciphertext>` is the earlier form (no key id, no context); databases still hold
 * it, so it decrypts (under each configured key in turn) until rotation rewrites it as v2.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { config } from '../config';

const VERSION = 'v2';
const LEGACY_VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
/** 96-bit IVs are GCM's native size; a random one per value never repeats in practice. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const KEY_ID = /^[0-9a-f]{8}$/;

/**
 * Thrown when a stored secret cannot be decrypted: malformed, tampered with, copied from
 * another row, or encrypted under a key that is not configured. The message never contains the
 * value itself.
 */
export class SecretDecryptionError extends Error {
  override name = 'SecretDecryptionError';
}

function checkKey(key: Buffer): void {
  // config already guarantees this; a test or script passing its own key gets the same check.
  if (key.length !== 32) throw new Error('the encryption key must be 32 bytes');
}

const keyIds = new WeakMap<Buffer, string>();

/**
 * A short public name for a key: a hash of it, so it reveals nothing and needs no configuring.
 * Eight hex digits tell a deployment's handful of keys apart; GCM, not the id, decides whether
 * a key is the right one.
 */
export function keyIdOf(key: Buffer): string {
  let id = keyIds.get(key);
  if (id === undefined) {
    checkKey(key);
    id = createHash('sha256').update('mca encryption key id\0').update(key).digest('hex').slice(0, 8);
    keyIds.set(key, id);
  }
  return id;
}

/** The keys that may decrypt: the current one first, then the previous ones. */
export function configuredKeys(): readonly Buffer[] {
  return [config.ENCRYPTION_KEY, ...config.ENCRYPTION_KEYS_PREVIOUS];
}

/** Whether `encoded` is already in the current form under `key` (what rotation leaves alone). */
export function isEncryptedUnder(encoded: string, key: Buffer = config.ENCRYPTION_KEY): boolean {
  return encoded.startsWith(currentPrefix(key));
}

/** The stored prefix of every value `encryptSecret` writes under `key`. */
export function currentPrefix(key: Buffer = config.ENCRYPTION_KEY): string {
  return `${VERSION}:${keyIdOf(key)}:`;
}

/**
 * Encrypts `plain` for the place named by `context` (e.g. `phone_numbers.access_token_encrypted:<id>`)
 * with a fresh random IV; two calls on the same input give different outputs.
 */
export function encryptSecret(plain: string, context: string, key: Buffer = config.ENCRYPTION_KEY): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, keyIdOf(key), iv.toString('base64'), tag.toString('base64'), ciphertext.toString('base64')].join(':');
}

interface Sealed {
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

function unpack(parts: string[], version: string): Sealed {
  if (!parts.every((part) => BASE64.test(part))) throw new SecretDecryptionError(`the stored secret is not in the ${version} format`);
  const [iv, tag, ciphertext] = parts.map((part) => Buffer.from(part, 'base64')) as [Buffer, Buffer, Buffer];
  // A short tag would weaken authentication (GCM accepts truncated tags unless told otherwise).
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SecretDecryptionError(`the stored secret is not in the ${version} format`);
  return { iv, tag, ciphertext };
}

function open(sealed: Sealed, key: Buffer, context: string | null): string {
  const decipher = createDecipheriv(ALGORITHM, key, sealed.iv, { authTagLength: TAG_BYTES });
  if (context !== null) decipher.setAAD(Buffer.from(context, 'utf8'));
  decipher.setAuthTag(sealed.tag);
  return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString('utf8');
}

/**
 * Decrypts what `encryptSecret` wrote for `context`, or a legacy v1 value, with whichever of
 * `keys` (by default the configured ones) encrypted it. Throws `SecretDecryptionError` on
 * anything else, including a value written for another context.
 */
export function decryptSecret(encoded: string, context: string, keys: readonly Buffer[] = configuredKeys()): string {
  keys.forEach(checkKey);
  const parts = encoded.split(':');
  if (parts[0] === VERSION && parts.length === 5 && KEY_ID.test(parts[1]!)) {
    const sealed = unpack(parts.slice(2), VERSION);
    const key = keys.find((candidate) => keyIdOf(candidate) === parts[1]);
    if (!key) throw new SecretDecryptionError(`the stored secret is under key ${parts[1]}, which is not configured (ENCRYPTION_KEYS_PREVIOUS?)`);
    try {
      return open(sealed, key, context);
    } catch (error) {
      throw new SecretDecryptionError('the stored secret failed authentication (tampered with, or not written for this row)', { cause: error });
    }
  }
  if (parts[0] === LEGACY_VERSION && parts.length === 4) {
    // No key id and no context: each key is tried; GCM's tag tells the right one.
    const sealed = unpack(parts.slice(1), LEGACY_VERSION);
    for (const key of keys) {
      try {
        return open(sealed, key, null);
      } catch {
        // the next key
      }
    }
    throw new SecretDecryptionError('the stored secret failed authentication (tampered with, or under a key that is not configured)');
  }
  throw new SecretDecryptionError('the stored secret is not in a known format');
}
