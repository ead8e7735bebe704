/**
 * Numbers' Graph access tokens, decrypted for sending. Each turn reads the token as stored
 * (encrypted); decrypting it once per ciphertext spares every turn an AES-GCM operation.
 */
import { decryptSecret } from '../utils/encryption';

/**
 * Decrypted tokens by their ciphertext, which changes with every new token (its IV is random),
 * so a replaced token is never served from here. Bounded: emptied when full.
 */
const decryptedTokens = new Map<string, string>();
const DECRYPTED_TOKENS_MAX = 1_000;

/** The token an encrypted value holds. Throws `SecretDecryptionError` when it does not decrypt. */
export function decryptAccessToken(encrypted: string): string {
  let token = decryptedTokens.get(encrypted);
  if (token === undefined) {
    token = decryptSecret(encrypted);
    if (decryptedTokens.size >= DECRYPTED_TOKENS_MAX) decryptedTokens.clear();
    decryptedTokens.set(encrypted, token);
  }
  return token;
}
