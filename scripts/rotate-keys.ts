/**
 * `npm run rotate-keys`: re-encrypts every stored access token under the current
 * `ENCRYPTION_KEY` (src/services/keyRotation.ts), printing progress after each batch. Run it
 * after moving the old key to `ENCRYPTION_KEYS_PREVIOUS` and restarting with the new one; it
 * may run while the product serves. Exits 1 when a token decrypts under no configured key
 * (those rows are named and left as they are), so the old key is not retired too early.
 */
import { closeDatabase } from '../src/utils/database';
import { rotateAccessTokens, rotateWebhookSecrets, type RotationProgress } from '../src/services/keyRotation';

const line = (text: string) => process.stdout.write(`rotate-keys: ${text}\n`);
const summary = (p: Readonly<RotationProgress>) =>
  `${p.scanned} read, ${p.rotated} re-encrypted, ${p.changedMeanwhile} changed meanwhile (left as written), ${p.undecryptable.length} undecryptable`;

async function main(): Promise<number> {
  try {
    const result = await rotateAccessTokens({ onBatch: (progress) => line(summary(progress)) });
    line(`done: ${summary(result)}`);
    // Tenant event endpoints' signing secrets are encrypted the same way.
    const secrets = await rotateWebhookSecrets({ onBatch: (progress) => line(`webhook secrets: ${summary(progress)}`) });
    line(`webhook secrets done: ${summary(secrets)}`);
    if (result.undecryptable.length === 0 && secrets.undecryptable.length === 0) return 0;
    if (result.undecryptable.length > 0) {
      line(`these phone numbers hold tokens no configured key decrypts (add their key to ENCRYPTION_KEYS_PREVIOUS, or set new tokens): ${result.undecryptable.join(', ')}`);
    }
    if (secrets.undecryptable.length > 0) {
      line(`these webhook endpoints hold secrets no configured key decrypts (add their key to ENCRYPTION_KEYS_PREVIOUS, or rotate their secrets): ${secrets.undecryptable.join(', ')}`);
    }
    return 1;
  } finally {
    await closeDatabase();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`rotate-keys: ${error.message}\n`);
    process.exit(1);
  },
);
