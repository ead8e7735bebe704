/**
 * Secrets at rest (channel access tokens): AES-256-GCM under `config.ENCRYPTION_KEY`.
 *
 * Stored form: `v1:<iv>:<tag>:<ciphertext>`, each part base64. The version prefix lets a later
 * format (another cipher, a key id for rotation) live beside this one; the database refuses
 * anything that does not start with `v1:`. GCM authenticates as well as encrypts, so a value
 * altered in the database fails to decrypt instead of yielding a wrong token.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { config } from '../config';

const VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
/** 96-bit IVs are GCM's native size; a random one per value never repeats in practice. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Thrown when a stored secret cannot be decrypted: malformed, tampered with, or encrypted under
 * another key. The message never contains the value itself.
 */
export class SecretDecryptionError extends Error {
  override name = 'SecretDecryptionError';
}

function checkKey(key: Buffer): void {
  // config already guarantees this; a test or script passing its own key gets the same check.
  if (key.length !== 32) throw new Error('the encryption key must be 32 bytes');
}

/** Encrypts `plain` with a fresh random IV; two calls on the same input give different outputs. */
export function encryptSecret(plain: string, key: Buffer = config.ENCRYPTION_KEY): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [VERSION, iv.toString('base64'), tag.toString('base64'), ciphertext.toString('base64')].join(':');
}

/** Decrypts what `encryptSecret` produced; throws `SecretDecryptionError` on anything else. */
export function decryptSecret(encoded: string, key: Buffer = config.ENCRYPTION_KEY): string {
  checkKey(key);
  const parts = encoded.split(':');
  if (parts.length !== 4 || parts[0] !== VERSION || !parts.slice(1).every((part) => BASE64.test(part))) {
    throw new SecretDecryptionError('the stored secret is not in the v1 format');
  }
  const iv = Buffer.from(parts[1]!, 'base64');
  const tag = Buffer.from(parts[2]!, 'base64');
  const ciphertext = Buffer.from(parts[3]!, 'base64');
  // A short tag would weaken authentication (GCM accepts truncated tags unless told otherwise).
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new SecretDecryptionError('the stored secret is not in the v1 format');
  }
  try {
    const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch (error) {
    throw new SecretDecryptionError('the stored secret failed authentication (tampered, or another key)', { cause: error });
  }
}
