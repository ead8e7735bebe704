/**
 * Key rotation (`npm run rotate-keys`): re-encrypts every stored access token that is not yet
 * under the current `ENCRYPTION_KEY` (older keys in `ENCRYPTION_KEYS_PREVIOUS`, or the v1 form).
 *
 * - Resumable: each batch is one committed statement, and a row already under the current key
 *   is never read again, so a second run continues where the first stopped (and a run with
 *   nothing left does nothing).
 * - Safe while the product runs: a row is replaced only if it still holds the exact value that
 *   was decrypted (compare-and-set in the UPDATE, under its row lock), so a token a tenant
 *   PATCHed meanwhile is left as the PATCH wrote it, never overwritten with the old token.
 *   Readers (the API, the workers) decrypt either form throughout.
 */
import { currentPrefix, decryptSecret, encryptSecret, SecretDecryptionError } from '../utils/encryption';
import { accessTokenContext, listAccessTokensNotUnder, replaceAccessTokens } from '../models/PhoneNumber';
import { listSecretsNotUnder, replaceSecrets } from '../models/WebhookEndpoint';
import { forgetTurnNumbers } from './cachedLookups';

export interface RotationProgress {
  /** Rows read that were not under the current key. */
  scanned: number;
  /** Re-encrypted under the current key. */
  rotated: number;
  /** Changed by someone else between read and write: left as written (a new token is under the writer's key). */
  changedMeanwhile: number;
  /** Not decryptable with any configured key: left untouched; their ids are listed. */
  undecryptable: string[];
}

export interface RotationOptions {
  batchSize?: number;
  /** Called after each committed batch. */
  onBatch?: (progress: Readonly<RotationProgress>) => void;
}

export async function rotateAccessTokens(options: RotationOptions = {}): Promise<RotationProgress> {
  const batchSize = options.batchSize ?? 500;
  const prefix = currentPrefix();
  const progress: RotationProgress = { scanned: 0, rotated: 0, changedMeanwhile: 0, undecryptable: [] };
  let afterId: string | null = null;
  for (;;) {
    const batch = await listAccessTokensNotUnder(prefix, afterId, batchSize);
    if (batch.length === 0) return progress;
    afterId = batch[batch.length - 1]!.id;

    const replacements: { id: string; encrypted: string; reencrypted: string }[] = [];
    for (const row of batch) {
      const context = accessTokenContext(row.id);
      try {
        replacements.push({ id: row.id, encrypted: row.encrypted, reencrypted: encryptSecret(decryptSecret(row.encrypted, context), context) });
      } catch (error) {
        if (!(error instanceof SecretDecryptionError)) throw error;
        progress.undecryptable.push(row.id);
      }
    }
    const replaced = await replaceAccessTokens(replacements);
    // Turns read numbers (their tokens as stored) from the cache: the old ciphertext must not
    // outlive the rotation there, or retiring the old key would break sends until the TTL.
    await forgetTurnNumbers(replaced);
    progress.scanned += batch.length;
    progress.rotated += replaced.length;
    progress.changedMeanwhile += replacements.length - replaced.length;
    options.onBatch?.(progress);
  }
}

/** Where an endpoint's signing secrets are encrypted (the same as webhookEndpointService's). */
const webhookSecretContext = (endpointId: string) => `webhook_endpoints.secret:${endpointId}`;

/**
 * The same for tenant event endpoints' signing secrets (current and, after a secret rotation,
 * previous): resumable, compare-and-set, undecryptable endpoints listed and left untouched.
 */
export async function rotateWebhookSecrets(options: RotationOptions = {}): Promise<RotationProgress> {
  const batchSize = options.batchSize ?? 500;
  const prefix = currentPrefix();
  const progress: RotationProgress = { scanned: 0, rotated: 0, changedMeanwhile: 0, undecryptable: [] };
  let afterId: string | null = null;
  for (;;) {
    const batch = await listSecretsNotUnder(prefix, afterId, batchSize);
    if (batch.length === 0) return progress;
    afterId = batch[batch.length - 1]!.id;
    const replacements = [];
    for (const row of batch) {
      const context = webhookSecretContext(row.id);
      const reencrypt = (encrypted: string) => encryptSecret(decryptSecret(encrypted, context), context);
      try {
        replacements.push({ read: row, secret: reencrypt(row.secret), previous: row.previous === null ? null : reencrypt(row.previous) });
      } catch (error) {
        if (!(error instanceof SecretDecryptionError)) throw error;
        progress.undecryptable.push(row.id);
      }
    }
    const replaced = await replaceSecrets(replacements);
    progress.scanned += batch.length;
    progress.rotated += replaced.length;
    progress.changedMeanwhile += replacements.length - replaced.length;
    options.onBatch?.(progress);
  }
}
