/** The operator key and the keys that encrypt stored access tokens. */
import { z } from 'zod';
import { defineSection } from './parsers';

/** An AES-256 key: exactly 32 bytes, written as 64 hex digits or as base64. */
export const encryptionKey = z.string().transform((value, ctx) => {
  const key = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
  if (key.length !== 32) {
    ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, as 64 hex digits or base64' });
    return z.NEVER;
  }
  return key;
});

/** Older AES-256 keys, comma-separated, each written as `ENCRYPTION_KEY` is. */
export const previousEncryptionKeys = z.string().transform((value, ctx) => {
  const keys: Buffer[] = [];
  for (const part of value.split(',').map((item) => item.trim()).filter((item) => item !== '')) {
    const parsed = encryptionKey.safeParse(part);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `key ${keys.length + 1} must be 32 bytes, as 64 hex digits or base64` });
      return z.NEVER;
    }
    keys.push(parsed.data);
  }
  return keys;
});

/** The operator key's minimum length in production; the development default is shorter on purpose. */
export const PRODUCTION_ADMIN_KEY_LENGTH = 32;

export const securitySection = defineSection({
  shape: {
    ADMIN_API_KEY: z.string().min(12, 'must be at least 12 characters'),
    ENCRYPTION_KEY: encryptionKey,
    /** Keys that encrypted tokens before `ENCRYPTION_KEY`; they decrypt until `npm run rotate-keys` ran. */
    ENCRYPTION_KEYS_PREVIOUS: previousEncryptionKeys.default([]),
  },
  devSecrets: {
    ADMIN_API_KEY: 'dev-admin-key',
    // 32 bytes of hex, public on purpose: it only protects development data.
    ENCRYPTION_KEY: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  },
  // A guessable operator key opens every tenant; production wants one worth brute-forcing.
  check: (source, production) => {
    const adminKey = source.ADMIN_API_KEY;
    return production && adminKey !== undefined && adminKey.length < PRODUCTION_ADMIN_KEY_LENGTH
      ? [`ADMIN_API_KEY: invalid (must be at least ${PRODUCTION_ADMIN_KEY_LENGTH} characters when NODE_ENV=production)`]
      : [];
  },
});
