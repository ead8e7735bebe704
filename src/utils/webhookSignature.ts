/**
 * The signature of a tenant event (CONTRACT §3): `X-Signature: t=<unix seconds>,v1=<hex
 * HMAC-SHA256 of "<t>.<raw body>">`, one `v1=` per secret that signs (two for a day after a
 * rotation), so a receiver holding either secret verifies it. The timestamp is signed, so a
 * captured delivery replayed later fails the receiver's age check.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** The hex HMAC of one delivery under one secret. */
export const signatureOf = (secret: string, timestamp: number, body: string): string =>
  createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');

/** The header's value: the timestamp, then one `v1=` per secret, current secret first. */
export function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((secret) => `v1=${signatureOf(secret, timestamp, body)}`)].join(',');
}

/** A new signing secret: 32 random bytes, prefixed so a leaked one is recognisable in a scan. */
export const newSigningSecret = (): string => `whsec_${randomBytes(32).toString('hex')}`;
