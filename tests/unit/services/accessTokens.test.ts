/**
 * The decrypted-token cache: a ciphertext is decrypted once, a new token (a new ciphertext) is
 * never answered from the cache, and neither is a ciphertext copied to another number.
 */
import * as encryption from '../../../src/utils/encryption';
import { decryptAccessToken } from '../../../src/services/accessTokens';
import { accessTokenContext } from '../../../src/models/PhoneNumber';

const NUMBER = '33333333-3333-4333-8333-333333333333';
const OTHER_NUMBER = '44444444-4444-4444-8444-444444444444';
const encryptFor = (phoneNumberId: string, token: string) => encryption.encryptSecret(token, accessTokenContext(phoneNumberId));

describe('decryptAccessToken', () => {
  afterEach(() => jest.restoreAllMocks());

  it('when the same ciphertext is read again, then it is decrypted only once', () => {
    const encrypted = encryptFor(NUMBER, 'token-a');
    const decrypt = jest.spyOn(encryption, 'decryptSecret');

    expect(decryptAccessToken(NUMBER, encrypted)).toBe('token-a');
    expect(decryptAccessToken(NUMBER, encrypted)).toBe('token-a');
    expect(decrypt).toHaveBeenCalledTimes(1);
  });

  it('when the token is replaced, then the new ciphertext gives the new token', () => {
    expect(decryptAccessToken(NUMBER, encryptFor(NUMBER, 'token-old'))).toBe('token-old');
    expect(decryptAccessToken(NUMBER, encryptFor(NUMBER, 'token-new'))).toBe('token-new');
  });

  it('when a ciphertext its own number decrypted is copied to another number, then it fails there, cache or not', () => {
    const encrypted = encryptFor(NUMBER, 'token-a');
    expect(decryptAccessToken(NUMBER, encrypted)).toBe('token-a');
    expect(() => decryptAccessToken(OTHER_NUMBER, encrypted)).toThrow(encryption.SecretDecryptionError);
  });

  it('when the stored value does not decrypt, then it throws rather than caching anything', () => {
    expect(() => decryptAccessToken(NUMBER, 'v1:not:a:secret')).toThrow();
  });
});
