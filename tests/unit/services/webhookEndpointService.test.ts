/** The endpoint service's own logic, with the model (the database edge) mocked. */
import * as endpoints from '../../../src/models/WebhookEndpoint';
import type { WebhookEndpoint } from '../../../src/models/WebhookEndpoint';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listDeliveries,
  redeliver,
  rotateSecret,
  secretContext,
  signingSecrets,
  PREVIOUS_SECRET_VALID_MS,
} from '../../../src/services/webhookEndpointService';
import { decryptSecret, encryptSecret } from '../../../src/utils/encryption';
import { AppError } from '../../../src/utils/errors';
import { AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/models/WebhookEndpoint');
const model = jest.mocked(endpoints);

const ID = '99999999-9999-4999-8999-999999999991';
const lax = { requireHttps: false, allowPrivate: true };
const strict = { requireHttps: true, allowPrivate: false };

const endpointRow = (overrides: Partial<WebhookEndpoint> = {}): WebhookEndpoint => ({
  id: ID,
  userId: USER,
  url: 'http://127.0.0.1:9/hook',
  events: ['credits.low'],
  secretEncrypted: 'v2:x',
  previousSecretEncrypted: null,
  previousSecretExpiresAt: null,
  failingSince: null,
  disabledAt: null,
  disabledReason: null,
  createdAt: AT,
  ...overrides,
});

beforeEach(() => jest.resetAllMocks());

describe('createEndpoint', () => {
  it('when the URL is allowed, then the secret is stored encrypted for that row and returned once', async () => {
    model.insertEndpoint.mockImplementation(async (_user, row) => endpointRow({ id: row.id, secretEncrypted: row.secretEncrypted }));
    const { endpoint, secret } = await createEndpoint(USER, { url: 'http://127.0.0.1:9/hook', events: ['credits.low', 'credits.low'] }, lax);
    const stored = model.insertEndpoint.mock.calls[0]![1];
    expect(stored.events).toEqual(['credits.low']);
    expect(stored.secretEncrypted).not.toContain(secret);
    expect(decryptSecret(stored.secretEncrypted, secretContext(endpoint.id))).toBe(secret);
  });

  it('when the URL is private or plain http in production, then it is a validation error naming url and nothing is stored', async () => {
    for (const url of ['https://127.0.0.1/hook', 'http://93.184.216.34/hook']) {
      const error = await createEndpoint(USER, { url, events: ['credits.low'] }, strict).catch((e: AppError) => e);
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).details).toEqual([{ path: 'url', message: expect.any(String) }]);
    }
    expect(model.insertEndpoint).not.toHaveBeenCalled();
  });
});

describe('rotateSecret and signingSecrets', () => {
  it('when rotated, then a new secret is stored encrypted and the old one stays valid for 24 h', async () => {
    model.replaceSecret.mockResolvedValue(endpointRow());
    const secret = await rotateSecret(USER, ID);
    const [, , encrypted, validMs] = model.replaceSecret.mock.calls[0]!;
    expect(decryptSecret(encrypted, secretContext(ID))).toBe(secret);
    expect(validMs).toBe(PREVIOUS_SECRET_VALID_MS);
  });

  it('when both secrets sign, then the current comes first', () => {
    const stored = { secretEncrypted: encryptSecret('new', secretContext(ID)), previousSecretEncrypted: encryptSecret('old', secretContext(ID)) };
    expect(signingSecrets(ID, stored)).toEqual(['new', 'old']);
    expect(signingSecrets(ID, { ...stored, previousSecretEncrypted: null })).toEqual(['new']);
  });

  it('when the previous secret no longer decrypts, then the current one still signs alone; a lost current secret throws', () => {
    const lost = encryptSecret('old', secretContext(ID), Buffer.alloc(32, 7));
    expect(signingSecrets(ID, { secretEncrypted: encryptSecret('new', secretContext(ID)), previousSecretEncrypted: lost })).toEqual(['new']);
    expect(() => signingSecrets(ID, { secretEncrypted: lost, previousSecretEncrypted: null })).toThrow();
  });
});

describe('not found', () => {
  it("when the tenant has no such endpoint or delivery, then each call is not_found", async () => {
    model.findEndpoint.mockResolvedValue(null);
    model.deleteEndpoint.mockResolvedValue(false);
    model.replaceSecret.mockResolvedValue(null);
    model.redeliver.mockResolvedValue(null);
    for (const call of [getEndpoint(USER, ID), deleteEndpoint(USER, ID), rotateSecret(USER, ID), listDeliveries(USER, ID, { limit: 5 }), redeliver(USER, ID, ID)]) {
      await expect(call).rejects.toMatchObject({ code: 'not_found' });
    }
    expect(model.listDeliveries).not.toHaveBeenCalled();
  });
});
