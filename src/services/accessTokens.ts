/**
 * Numbers' Graph access tokens, decrypted for sending. Each turn reads the token as stored
 * (encrypted); decrypting it once per ciphertext spares every turn an AES-GCM operation.
 */
import { decryptSecret } from '../utils/encryption';
import { accessTokenContext } from '../models/PhoneNumber';

/**
 * Decrypted tokens by number and ciphertext. The ciphertext changes with every new token (its
 * IV is random) and with rotation, so a replaced token is never served from here; the number
 * is part of the key because a ciphertext is valid only in its own row, so one copied to
 * another number must fail there, not be answered from what its own row decrypted to.
 * Bounded: emptied when full.
 */
const decryptedTokens = new Map<string, string>();
const DECRYPTED_TOKENS_MAX = 1_000;

/** The token a number's encrypted value holds. Throws `SecretDecryptionError` when it does not decrypt there. */
export function decryptAccessToken(phoneNumberId: string, encrypted: string): string {
  const cacheKey = `${phoneNumberId}\u0000${encrypted}`;
  let token = decryptedTokens.get(cacheKey);
  if (token === undefined) {
    token = decryptSecret(encrypted, accessTokenContext(phoneNumberId));
    if (decryptedTokens.size >= DECRYPTED_TOKENS_MAX) decryptedTokens.clear();
    decryptedTokens.set(cacheKey, token);
  }
  return token;
}
