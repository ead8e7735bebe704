import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { config } from '../../../src/config';
import { currentPrefix, decryptSecret, encryptSecret, isEncryptedUnder, keyIdOf, SecretDecryptionError } from '../../../src/utils/encryption';

const HERE = 'phone_numbers.access_token_encrypted:11111111-1111-4111-8111-111111111111';
const ELSEWHERE = 'phone_numbers.access_token_encrypted:22222222-2222-4222-8222-222222222222';

/** Parts of a v2 value: version, key id, iv, tag, ciphertext. */
const IV = 2;
const TAG = 3;
const CIPHERTEXT = 4;

/** Re-encodes one base64 part of a stored value after `mutate` changed its bytes. */
function tamper(encoded: string, part: number, mutate: (bytes: Buffer) => Buffer): string {
  const parts = encoded.split(':');
  parts[part] = mutate(Buffer.from(parts[part]!, 'base64')).toString('base64');
  return parts.join(':');
}

const flipFirstBit = (bytes: Buffer) => {
  const copy = Buffer.from(bytes);
  copy[0] = copy[0]! ^ 1;
  return copy;
};

describe('encryptSecret / decryptSecret', () => {
  it('when a secret is encrypted, then it decrypts back to itself in the same place', () => {
    const token = `EAAG${randomBytes(100).toString('hex')}`;
    expect(decryptSecret(encryptSecret(token, HERE), HERE)).toBe(token);
  });

  it('when given any string (empty, unicode, long), then the roundtrip is exact', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (secret) => {
        expect(decryptSecret(encryptSecret(secret, HERE), HERE)).toBe(secret);
      }),
    );
  });

  it('when encrypted, then the result is v2:<key id>:<12-byte iv>:<16-byte tag>:<ciphertext>, without the secret', () => {
    const secret = 'my-secret-token';
    const encoded = encryptSecret(secret, HERE);
    const [version, keyId, iv, tag, ciphertext] = encoded.split(':');
    expect(version).toBe('v2');
    expect(keyId).toBe(keyIdOf(config.ENCRYPTION_KEY));
    expect(keyId).toMatch(/^[0-9a-f]{8}$/);
    expect(Buffer.from(iv!, 'base64')).toHaveLength(12);
    expect(Buffer.from(tag!, 'base64')).toHaveLength(16);
    expect(Buffer.from(ciphertext!, 'base64')).toHaveLength(Buffer.byteLength(secret));
    expect(encoded).not.toContain(secret);
    expect(encoded).not.toContain(Buffer.from(secret).toString('base64'));
    expect(encoded).not.toContain(HERE);
  });

  it('when a ciphertext is copied to another row, then it does not decrypt there', () => {
    const encoded = encryptSecret('a token of one number', HERE);
    expect(() => decryptSecret(encoded, ELSEWHERE)).toThrow(SecretDecryptionError);
    expect(() => decryptSecret(encoded, ELSEWHERE)).toThrow(/not written for this row/);
  });

  it('when the same secret is encrypted many times, then every IV and every output differs', () => {
    const outputs = Array.from({ length: 500 }, () => encryptSecret('same', HERE));
    expect(new Set(outputs).size).toBe(outputs.length);
    expect(new Set(outputs.map((output) => output.split(':')[IV])).size).toBe(outputs.length);
  });

  it.each([
    ['the IV', IV],
    ['the tag', TAG],
    ['the ciphertext', CIPHERTEXT],
  ] as const)('when one bit of %s is flipped, then decryption throws SecretDecryptionError', (_what, part) => {
    const encoded = encryptSecret('a token worth protecting', HERE);
    expect(() => decryptSecret(tamper(encoded, part, flipFirstBit), HERE)).toThrow(SecretDecryptionError);
  });

  it('when the ciphertext is truncated or extended, then decryption throws', () => {
    const encoded = encryptSecret('a token worth protecting', HERE);
    expect(() => decryptSecret(tamper(encoded, CIPHERTEXT, (bytes) => bytes.subarray(1)), HERE)).toThrow(SecretDecryptionError);
    expect(() => decryptSecret(tamper(encoded, CIPHERTEXT, (bytes) => Buffer.concat([bytes, Buffer.from([0])])), HERE)).toThrow(SecretDecryptionError);
  });

  it('when the tag is shortened, then decryption refuses it rather than checking fewer bits', () => {
    const encoded = encryptSecret('a token', HERE);
    expect(() => decryptSecret(tamper(encoded, TAG, (bytes) => bytes.subarray(0, 4)), HERE)).toThrow(SecretDecryptionError);
  });

  it('when the key that encrypted it is not among the keys, then it throws naming the key id', () => {
    const key = randomBytes(32);
    const encoded = encryptSecret('a token', HERE, key);
    expect(() => decryptSecret(encoded, HERE, [randomBytes(32)])).toThrow(new RegExp(`key ${keyIdOf(key)}, which is not configured`));
  });

  it('when the key id is rewritten to another configured key, then GCM still refuses it', () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const encoded = encryptSecret('a token', HERE, oldKey).replace(keyIdOf(oldKey), keyIdOf(newKey));
    expect(() => decryptSecret(encoded, HERE, [newKey, oldKey])).toThrow(SecretDecryptionError);
  });

  it('when an older key is listed after the current one, then what it encrypted still decrypts', () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    expect(decryptSecret(encryptSecret('a token', HERE, oldKey), HERE, [newKey, oldKey])).toBe('a token');
  });

  it('when keys differ, then so do their ids; the same key always has the same id', () => {
    const key = randomBytes(32);
    expect(keyIdOf(key)).toBe(keyIdOf(Buffer.from(key)));
    expect(keyIdOf(key)).not.toBe(keyIdOf(randomBytes(32)));
  });

  it.each(['', 'plain-token', 'v2:a:b:c', 'v2:0011aabb:AAAA:AAAA', 'v2:nothex!!:a:b:c', 'v1:a:b', 'v1:a:b:c:d', 'v1:!!:AAAA:AAAA', 'v1:::', 'v3:0011aabb:a:b:c'])(
    'when the stored value is %j, then it is refused as malformed',
    (value) => {
      expect(() => decryptSecret(value, HERE)).toThrow(SecretDecryptionError);
    },
  );

  it('when decryption fails, then the error message does not carry the stored value', () => {
    const encoded = tamper(encryptSecret('a token', HERE), CIPHERTEXT, flipFirstBit);
    try {
      decryptSecret(encoded, HERE);
      throw new Error('expected a failure');
    } catch (error) {
      expect(error).toBeInstanceOf(SecretDecryptionError);
      expect((error as Error).message).not.toContain(encoded.split(':')[CIPHERTEXT]);
    }
  });

  it('when the key is not 32 bytes, then both directions throw', () => {
    expect(() => encryptSecret('x', HERE, randomBytes(16))).toThrow(/32 bytes/);
    expect(() => decryptSecret(encryptSecret('x', HERE), HERE, [randomBytes(31)])).toThrow(/32 bytes/);
  });
});

describe('values stored before key ids (v1)', () => {
  // Written by the previous release (v1: no key id, no row binding) under the development key
  // and under another key; databases out there hold such values.
  const UNDER_DEV_KEY = 'v1:mwjw89Ex8sWg5KYr:o36lRNEYIWNwcFsiWRBH5Q==:k+D+/xNd51+ckPlikM1SuK2N4YQTIN/XSU+vE+2uZbs=';
  const UNDER_OLD_KEY = 'v1:hFZ2q0tbvTxU2dKP:145KdrBJ5hm9eOlMwDtd4Q==:Z8Ehdl0c7x2B/LZ/ytySy/wWP5CAEreMfqx+';
  const OLD_KEY = Buffer.alloc(32, 0x42);

  it('when read with the key that wrote them, then they decrypt, in whatever row they sit', () => {
    expect(decryptSecret(UNDER_DEV_KEY, HERE)).toBe('EAAG-token-stored-before-key-ids');
    expect(decryptSecret(UNDER_DEV_KEY, ELSEWHERE)).toBe('EAAG-token-stored-before-key-ids');
  });

  it('when their key is now a previous one, then they still decrypt', () => {
    expect(decryptSecret(UNDER_OLD_KEY, HERE, [config.ENCRYPTION_KEY, OLD_KEY])).toBe('EAAG-token-under-an-old-key');
  });

  it('when no configured key wrote them, then SecretDecryptionError', () => {
    expect(() => decryptSecret(UNDER_OLD_KEY, HERE)).toThrow(SecretDecryptionError);
  });

  it('when a bit is flipped, then they fail like v2 values', () => {
    expect(() => decryptSecret(tamper(UNDER_DEV_KEY, 3, flipFirstBit), HERE)).toThrow(SecretDecryptionError);
  });

  it('then rotation sees them as not yet under the current key', () => {
    expect(isEncryptedUnder(UNDER_DEV_KEY)).toBe(false);
    expect(isEncryptedUnder(encryptSecret('x', HERE))).toBe(true);
    expect(isEncryptedUnder(encryptSecret('x', HERE, OLD_KEY))).toBe(false);
    expect(currentPrefix()).toBe(`v2:${keyIdOf(config.ENCRYPTION_KEY)}:`);
  });
});
