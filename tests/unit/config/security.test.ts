import { z } from 'zod';
import { encryptionKey, previousEncryptionKeys, PRODUCTION_ADMIN_KEY_LENGTH, securitySection } from '../../../src/config/security';

describe('security config section', () => {
  it('when the encryption key is 32 bytes in hex or base64, then it is a Buffer; other lengths are refused without echoing', () => {
    expect(encryptionKey.parse('01'.repeat(32))).toEqual(Buffer.alloc(32, 1));
    expect(encryptionKey.parse(Buffer.alloc(32, 2).toString('base64'))).toEqual(Buffer.alloc(32, 2));
    const refused = encryptionKey.safeParse('c2hvcnQ=');
    expect(refused.success).toBe(false);
    expect(JSON.stringify(refused.error?.issues)).not.toContain('c2hvcnQ=');
  });

  it('when previous keys are listed, then each is parsed and a bad one is named by position', () => {
    expect(previousEncryptionKeys.parse(` ${'01'.repeat(32)} ,`)).toEqual([Buffer.alloc(32, 1)]);
    expect(previousEncryptionKeys.safeParse(`${'01'.repeat(32)},bad`).error?.issues[0]?.message).toBe('key 2 must be 32 bytes, as 64 hex digits or base64');
  });

  it('when its development secrets are used, then they parse (they are what development runs on)', () => {
    const result = z.object(securitySection.shape).safeParse({ ...securitySection.devSecrets });
    expect(result.success).toBe(true);
    expect(Object.keys(securitySection.devSecrets ?? {})).toEqual(['ADMIN_API_KEY', 'ENCRYPTION_KEY']);
  });

  it('when production has a short operator key, then the check names ADMIN_API_KEY without echoing it; elsewhere it passes', () => {
    const short = 'x'.repeat(PRODUCTION_ADMIN_KEY_LENGTH - 1);
    const problems = securitySection.check!({ ADMIN_API_KEY: short }, true);
    expect(problems).toEqual([`ADMIN_API_KEY: invalid (must be at least ${PRODUCTION_ADMIN_KEY_LENGTH} characters when NODE_ENV=production)`]);
    expect(problems.join()).not.toContain(short);
    expect(securitySection.check!({ ADMIN_API_KEY: short }, false)).toEqual([]);
    expect(securitySection.check!({ ADMIN_API_KEY: 'x'.repeat(PRODUCTION_ADMIN_KEY_LENGTH) }, true)).toEqual([]);
    expect(securitySection.check!({}, true)).toEqual([]);
  });
});
