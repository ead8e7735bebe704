/**
 * `npm run rotate-keys` on a real Postgres: tokens stored under an old key (as v2, and in the
 * v1 form older releases wrote) are re-encrypted under the current key, the worker still sends
 * with them, a ciphertext copied to another number fails there, a concurrent PATCH is never
 * overwritten, and a second run does nothing. The product side runs in a registry whose config
 * has rotated: a new ENCRYPTION_KEY, the old one in ENCRYPTION_KEYS_PREVIOUS.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import request from 'supertest';
import { config } from '../../src/config';
import { db } from '../../src/utils/database';
import { encryptSecret } from '../../src/utils/encryption';
import { accessTokenContext } from '../../src/models/PhoneNumber';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

const OLD_KEY = config.ENCRYPTION_KEY;
const NEW_KEY = randomBytes(32);

/* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
const rotated = loadWithEnv({ ENCRYPTION_KEY: NEW_KEY.toString('hex'), ENCRYPTION_KEYS_PREVIOUS: OLD_KEY.toString('hex') }, () => ({
  pipeline: require('../fixtures/pipeline') as typeof import('../fixtures/pipeline'),
  rotation: require('../../src/services/keyRotation') as typeof import('../../src/services/keyRotation'),
  phoneNumbers: require('../../src/models/PhoneNumber') as typeof import('../../src/models/PhoneNumber'),
  accessTokens: require('../../src/services/accessTokens') as typeof import('../../src/services/accessTokens'),
  encryption: require('../../src/utils/encryption') as typeof import('../../src/utils/encryption'),
  closeDatabase: require('../../src/utils/database').closeDatabase as () => Promise<void>,
  closeRedis: require('../../src/utils/redis').closeRedis as () => Promise<void>,
}));
/* eslint-enable @typescript-eslint/no-require-imports */

/** The v1 form earlier releases stored: `v1:<iv>:<tag>:<ciphertext>`, no key id, no row binding. */
function legacyV1(plain: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ciphertext.toString('base64')].join(':');
}

const storedToken = async (id: string) =>
  (await db.query<{ token: string }>('SELECT access_token_encrypted AS token FROM phone_numbers WHERE id = $1', [id])).rows[0]!.token;
const store = (id: string, value: string) => db.query('UPDATE phone_numbers SET access_token_encrypted = $2 WHERE id = $1', [id, value]);

describe('rotate-keys', () => {
  let pipeline: Awaited<ReturnType<typeof rotated.pipeline.startPipeline>>;

  beforeAll(async () => {
    await setupTestDatabase();
    pipeline = await rotated.pipeline.startPipeline();
  });
  afterAll(async () => {
    await pipeline.close();
    await rotated.closeRedis();
    await rotated.closeDatabase();
    await teardownTestDatabase();
  });

  it('when tokens are under the old key (v2 and v1), then rotation puts them under the new one, the worker sends with them, and a second run does nothing', async () => {
    const business = await rotated.pipeline.createBusiness(pipeline.app);
    const [WA_TOKEN, IG_TOKEN] = [business.whatsapp.token, business.instagram.token];
    // What a database holds before the rotation: the old key's v2 values, and a v1 value.
    await store(business.whatsapp.id, encryptSecret(WA_TOKEN, accessTokenContext(business.whatsapp.id), OLD_KEY));
    await store(business.instagram.id, legacyV1(IG_TOKEN, OLD_KEY));

    const batches: number[] = [];
    const first = await rotated.rotation.rotateAccessTokens({ batchSize: 1, onBatch: (progress) => batches.push(progress.rotated) });

    expect(first).toEqual({ scanned: 2, rotated: 2, changedMeanwhile: 0, undecryptable: [] });
    expect(batches).toEqual([1, 2]);
    for (const id of [business.whatsapp.id, business.instagram.id]) {
      expect(rotated.encryption.isEncryptedUnder(await storedToken(id))).toBe(true);
    }
    // The old key could now be retired: the new key alone reads every token.
    expect(rotated.encryption.decryptSecret(await storedToken(business.instagram.id), accessTokenContext(business.instagram.id), [NEW_KEY])).toBe(IG_TOKEN);

    await pipeline.startWorker();
    await rotated.pipeline.customerWrites(pipeline.app, business, '15550001111', 'Hello after the rotation');
    await rotated.pipeline.customerWritesOnInstagram(pipeline.app, business, '99887766', 'Hi on Instagram');
    await pipeline.graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.ok).length >= 2);
    const tokens = pipeline.graph.texts().map((send) => send.token);
    expect(tokens.sort()).toEqual([WA_TOKEN, IG_TOKEN].sort());
    await pipeline.stopWorkers();

    const again = await rotated.rotation.rotateAccessTokens();
    expect(again).toEqual({ scanned: 0, rotated: 0, changedMeanwhile: 0, undecryptable: [] });
  });

  it('when a ciphertext is copied to another number, then it does not decrypt there', async () => {
    const business = await rotated.pipeline.createBusiness(pipeline.app);
    const copied = await storedToken(business.whatsapp.id);
    await store(business.instagram.id, copied);

    await expect(rotated.phoneNumbers.getAccessToken(business.tenant.userId, business.instagram.id)).rejects.toBeInstanceOf(rotated.encryption.SecretDecryptionError);
    expect(() => rotated.accessTokens.decryptAccessToken(business.instagram.id, copied)).toThrow(/not written for this row/);
    expect(await rotated.phoneNumbers.getAccessToken(business.tenant.userId, business.whatsapp.id)).toBe(business.whatsapp.token);
  });

  it('when a token is under no configured key, then rotation leaves it as it is and names its number', async () => {
    const business = await rotated.pipeline.createBusiness(pipeline.app);
    const lost = encryptSecret('EAAG-under-a-forgotten-key', accessTokenContext(business.whatsapp.id), randomBytes(32));
    await store(business.whatsapp.id, lost);

    const result = await rotated.rotation.rotateAccessTokens();

    expect(result.undecryptable).toEqual([business.whatsapp.id]);
    expect(await storedToken(business.whatsapp.id)).toBe(lost);
  });

  it("when a tenant PATCHes the token between rotation's read and its write, then the PATCH is kept, not the old token", async () => {
    const business = await rotated.pipeline.createBusiness(pipeline.app);
    const id = business.whatsapp.id;
    await store(id, encryptSecret('EAAG-the-old-token', accessTokenContext(id), OLD_KEY));
    const read = (await rotated.phoneNumbers.listAccessTokensNotUnder(rotated.encryption.currentPrefix(), null, 1_000)).find((row) => row.id === id)!;
    const reencrypted = rotated.encryption.encryptSecret('EAAG-the-old-token', accessTokenContext(id));

    // A PATCH of the token is verified with Graph first: the new token is one the stand-in accepts for this account.
    const newToken = standinAccessToken('whatsapp', business.whatsapp.externalId);
    const patch = await request(pipeline.app).patch(`/v1/phone-numbers/${id}`).set(business.tenant.auth).send({ access_token: newToken });
    expect(patch.status).toBe(200);
    const replaced = await rotated.phoneNumbers.replaceAccessTokens([{ id, encrypted: read.encrypted, reencrypted }]);

    expect(replaced).toEqual([]);
    expect(await rotated.phoneNumbers.getAccessToken(business.tenant.userId, id)).toBe(newToken);
  });

  it('when webhook endpoint secrets (current and previous) are under the old key, then rotation re-encrypts both, the same secrets, and leaves lost ones named', async () => {
    const business = await rotated.pipeline.createBusiness(pipeline.app);
    const created = await request(pipeline.app).post('/v1/webhook-endpoints').set(business.tenant.auth).send({ url: 'http://127.0.0.1:9/hook', events: ['credits.low'] });
    const lostEndpoint = await request(pipeline.app).post('/v1/webhook-endpoints').set(business.tenant.auth).send({ url: 'http://127.0.0.1:9/other', events: ['credits.low'] });
    const id = created.body.id as string;
    const context = `webhook_endpoints.secret:${id}`;
    await db.query(
      `UPDATE webhook_endpoints SET secret_encrypted = $2, previous_secret_encrypted = $3, previous_secret_expires_at = now() + interval '1 hour' WHERE id = $1`,
      [id, encryptSecret('whsec_current', context, OLD_KEY), encryptSecret('whsec_previous', context, OLD_KEY)],
    );
    const lost = encryptSecret('whsec_lost', `webhook_endpoints.secret:${lostEndpoint.body.id}`, randomBytes(32));
    await db.query('UPDATE webhook_endpoints SET secret_encrypted = $2 WHERE id = $1', [lostEndpoint.body.id, lost]);

    const result = await rotated.rotation.rotateWebhookSecrets();

    expect(result).toMatchObject({ rotated: 1, undecryptable: [lostEndpoint.body.id] });
    const { rows } = await db.query<{ secret: string; previous: string }>(
      'SELECT secret_encrypted AS secret, previous_secret_encrypted AS previous FROM webhook_endpoints WHERE id = $1',
      [id],
    );
    expect(rotated.encryption.decryptSecret(rows[0]!.secret, context, [NEW_KEY])).toBe('whsec_current');
    expect(rotated.encryption.decryptSecret(rows[0]!.previous, context, [NEW_KEY])).toBe('whsec_previous');
    expect((await rotated.rotation.rotateWebhookSecrets()).rotated).toBe(0);
  });
});
