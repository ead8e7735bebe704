/**
 * The decrypted-token cache: a ciphertext is decrypted once, and a new token (a new
 * ciphertext) is never answered from the cache.
 */
import * as encryption from '../../../src/utils/encryption';
import { decryptAccessToken } from '../../../src/services/accessTokens';

describe('decryptAccessToken', () => {
  afterEach(() => jest.restoreAllMocks());

  it('when the same ciphertext is read again, then it is decrypted only once', () => {
    const encrypted = encryption.encryptSecret('token-a');
    const decrypt = jest.spyOn(encryption, 'decryptSecret');

    expect(decryptAccessToken(encrypted)).toBe('token-a');
    expect(decryptAccessToken(encrypted)).toBe('token-a');
    expect(decrypt).toHaveBeenCalledTimes(1);
  });

  it('when the token is replaced, then the new ciphertext gives the new token', () => {
    expect(decryptAccessToken(encryption.encryptSecret('token-old'))).toBe('token-old');
    expect(decryptAccessToken(encryption.encryptSecret('token-new'))).toBe('token-new');
  });

  it('when the stored value does not decrypt, then it throws rather than caching anything', () => {
    expect(() => decryptAccessToken('v1:not:a:secret')).toThrow();
  });
});
