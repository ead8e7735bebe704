import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { decryptSecret, encryptSecret, SecretDecryptionError } from '../../../src/utils/encryption';

/** Re-encodes one base64 part of a stored value after `mutate` changed its bytes. */
function tamper(encoded: string, part: 1 | 2 | 3, mutate: (bytes: Buffer) => Buffer): string {
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
  it('when a secret is encrypted, then it decrypts back to itself', () => {
    const token = `EAAG${randomBytes(100).toString('hex')}`;
    expect(decryptSecret(encryptSecret(token))).toBe(token);
  });

  it('when given any string (empty, unicode, long), then the roundtrip is exact', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (secret) => {
        expect(decryptSecret(encryptSecret(secret))).toBe(secret);
      }),
    );
  });

  it('when encrypted, then the result is v1:<12-byte iv>:<16-byte tag>:<ciphertext>, all base64, without the secret', () => {
    const secret = 'my-secret-token';
    const encoded = encryptSecret(secret);
    const [version, iv, tag, ciphertext] = encoded.split(':');
    expect(version).toBe('v1');
    expect(Buffer.from(iv!, 'base64')).toHaveLength(12);
    expect(Buffer.from(tag!, 'base64')).toHaveLength(16);
    expect(Buffer.from(ciphertext!, 'base64')).toHaveLength(Buffer.byteLength(secret));
    expect(encoded).not.toContain(secret);
    expect(encoded).not.toContain(Buffer.from(secret).toString('base64'));
  });

  it('when the same secret is encrypted many times, then every IV and every output differs', () => {
    const outputs = Array.from({ length: 500 }, () => encryptSecret('same'));
    expect(new Set(outputs).size).toBe(outputs.length);
    expect(new Set(outputs.map((output) => output.split(':')[1])).size).toBe(outputs.length);
  });

  it.each([
    ['the IV', 1],
    ['the tag', 2],
    ['the ciphertext', 3],
  ] as const)('when one bit of %s is flipped, then decryption throws SecretDecryptionError', (_what, part) => {
    const encoded = encryptSecret('a token worth protecting');
    expect(() => decryptSecret(tamper(encoded, part, flipFirstBit))).toThrow(SecretDecryptionError);
  });

  it('when the ciphertext is truncated or extended, then decryption throws', () => {
    const encoded = encryptSecret('a token worth protecting');
    expect(() => decryptSecret(tamper(encoded, 3, (bytes) => bytes.subarray(1)))).toThrow(SecretDecryptionError);
    expect(() => decryptSecret(tamper(encoded, 3, (bytes) => Buffer.concat([bytes, Buffer.from([0])])))).toThrow(SecretDecryptionError);
  });

  it('when the tag is shortened, then decryption refuses it rather than checking fewer bits', () => {
    const encoded = encryptSecret('a token');
    expect(() => decryptSecret(tamper(encoded, 2, (bytes) => bytes.subarray(0, 4)))).toThrow(SecretDecryptionError);
  });

  it('when decrypted with another key, then it throws', () => {
    const encoded = encryptSecret('a token', randomBytes(32));
    expect(() => decryptSecret(encoded, randomBytes(32))).toThrow(SecretDecryptionError);
  });

  it('when an explicit key is used on both sides, then the roundtrip works', () => {
    const key = randomBytes(32);
    expect(decryptSecret(encryptSecret('a token', key), key)).toBe('a token');
  });

  it.each(['', 'plain-token', 'v2:a:b:c', 'v1:a:b', 'v1:a:b:c:d', 'v1:!!:AAAA:AAAA', 'v1:::'])(
    'when the stored value is %j, then it is refused as malformed',
    (value) => {
      expect(() => decryptSecret(value)).toThrow(SecretDecryptionError);
    },
  );

  it('when decryption fails, then the error message does not carry the stored value', () => {
    const encoded = tamper(encryptSecret('a token'), 3, flipFirstBit);
    try {
      decryptSecret(encoded);
      throw new Error('expected a failure');
    } catch (error) {
      expect(error).toBeInstanceOf(SecretDecryptionError);
      expect((error as Error).message).not.toContain(encoded.split(':')[3]);
    }
  });

  it('when the key is not 32 bytes, then both directions throw', () => {
    expect(() => encryptSecret('x', randomBytes(16))).toThrow(/32 bytes/);
    expect(() => decryptSecret(encryptSecret('x'), randomBytes(31))).toThrow(/32 bytes/);
  });
});
