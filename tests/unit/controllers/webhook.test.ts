/**
 * The webhook's signature check on its own: `X-Hub-Signature-256` against an HMAC of the raw
 * bytes (Meta: WhatsApp Cloud API › Webhooks › Create a webhook endpoint, on validating
 * payloads). The routes around it are covered end to end in tests/integration/webhook.test.ts.
 */
import { createHmac } from 'node:crypto';
import { isValidSignature } from '../../../src/controllers/webhook';
import { config } from '../../../src/config';

const SECRET = 'test-app-secret';
const body = Buffer.from('{"object":"whatsapp_business_account","entry":[]}');
const sign = (bytes: Buffer, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(bytes).digest('hex')}`;

describe('isValidSignature', () => {
  // The expected signature was computed apart from this code (Python's hmac), so the test does
  // not check our HMAC against itself.
  it('when given a signature computed independently for a known body and secret, then it verifies', () => {
    expect(isValidSignature(body, 'sha256=c84a394cc475525991e78ff16e430b02e47f953877d2af0ade26956ce6f384dc', SECRET)).toBe(true);
  });

  it('when the header is the HMAC of the body under the secret, then it is valid', () => {
    const other = Buffer.from('{"entry":[{"id":"1"}]}');

    expect(isValidSignature(other, sign(other), SECRET)).toBe(true);
  });

  it('when the hex digits are uppercase, then it is still valid', () => {
    expect(isValidSignature(body, `sha256=${sign(body).slice('sha256='.length).toUpperCase()}`, SECRET)).toBe(true);
  });

  it('when the header has surrounding whitespace, then it is trimmed and valid', () => {
    expect(isValidSignature(body, `  ${sign(body)}\t`, SECRET)).toBe(true);
  });

  it('when the body was signed with another secret, then it is invalid', () => {
    expect(isValidSignature(body, sign(body, 'another-app-secret'), SECRET)).toBe(false);
  });

  it('when one byte of the body differs, then it is invalid', () => {
    expect(isValidSignature(Buffer.from('{"object":"whatsapp_business_account","entry":[ ]}'), sign(body), SECRET)).toBe(false);
  });

  it('when the body is escaped unicode but was signed as decoded UTF-8, then it is invalid (raw bytes only)', () => {
    const escaped = Buffer.from('{"text":"Jos\\u00e9"}');
    const decoded = Buffer.from('{"text":"José"}');

    expect(isValidSignature(escaped, sign(escaped), SECRET)).toBe(true);
    expect(isValidSignature(escaped, sign(decoded), SECRET)).toBe(false);
  });

  it('when the header is missing or empty, then it is invalid', () => {
    expect(isValidSignature(body, undefined, SECRET)).toBe(false);
    expect(isValidSignature(body, '', SECRET)).toBe(false);
  });

  it.each([
    ['no prefix', (h: string) => h.slice('sha256='.length)],
    ['the SHA-1 prefix', (h: string) => `sha1=${h.slice('sha256='.length)}`],
    ['an uppercase prefix', (h: string) => `SHA256=${h.slice('sha256='.length)}`],
    ['a space after the prefix', (h: string) => `sha256= ${h.slice('sha256='.length)}`],
  ])('when the header has %s, then it is invalid', (_what, mangle) => {
    expect(isValidSignature(body, mangle(sign(body)), SECRET)).toBe(false);
  });

  it.each([
    ['one hex digit short', (h: string) => h.slice(0, -1)],
    ['one hex digit too many', (h: string) => `${h}0`],
    ['a non-hex character', (h: string) => `${h.slice(0, -1)}g`],
    ['a SHA-1 sized digest', (h: string) => h.slice(0, 'sha256='.length + 40)],
    ['a second signature appended', (h: string) => `${h},${h}`],
  ])('when the digest has %s, then it is invalid without throwing', (_what, mangle) => {
    expect(() => isValidSignature(body, mangle(sign(body)), SECRET)).not.toThrow();
    expect(isValidSignature(body, mangle(sign(body)), SECRET)).toBe(false);
  });

  it('when the body is empty, then its signature is still checked like any other', () => {
    const empty = Buffer.alloc(0);

    expect(isValidSignature(empty, sign(empty), SECRET)).toBe(true);
    expect(isValidSignature(empty, sign(body), SECRET)).toBe(false);
  });

  it('when no secret is passed, then the configured META_APP_SECRET is used', () => {
    expect(isValidSignature(body, sign(body, config.META_APP_SECRET))).toBe(true);
    expect(isValidSignature(body, sign(body, `${config.META_APP_SECRET}x`))).toBe(false);
  });
});
