/**
 * What bounds the work Postgres can hold up: every pooled connection of the API and the workers
 * carries a statement_timeout, and when Postgres stalls, the webhook's queue of messages waiting
 * to be written stays bounded: past WEBHOOK_QUEUE_MAX, Meta is answered 503 (it retries) at once.
 */
import request from 'supertest';
import type { Express } from 'express';
import { db, withTransaction } from '../../src/utils/database';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { createTestTenant } from '../fixtures/tenants';
import { createTestPhoneNumber } from '../fixtures/conversations';
import { sign, uniqueWamid, whatsappTextBody } from '../fixtures/meta';

/* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
const shortTimeout = loadWithEnv({ DATABASE_STATEMENT_TIMEOUT_MS: '300' }, () => require('../../src/utils/database') as typeof import('../../src/utils/database'));
// The default statement timeout here, so a 503 can only come from the queue's bound.
const smallQueue = loadWithEnv({ WEBHOOK_QUEUE_MAX: '2' }, () => ({
  createApp: require('../../src/app').createApp as () => Express,
  closeDatabase: require('../../src/utils/database').closeDatabase as () => Promise<void>,
  closeRedis: require('../../src/utils/redis').closeRedis as () => Promise<void>,
}));
/* eslint-enable @typescript-eslint/no-require-imports */

beforeAll(setupTestDatabase);
afterAll(async () => {
  await shortTimeout.closeDatabase();
  await smallQueue.closeRedis();
  await smallQueue.closeDatabase();
  await teardownTestDatabase();
});

describe('statement_timeout', () => {
  it('when nothing is configured, then pooled statements and transactions run under the 30 s default', async () => {
    expect((await db.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('30s');
    await withTransaction(async (tx) => {
      expect((await tx.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('30s');
    });
  });

  it('when a statement runs past DATABASE_STATEMENT_TIMEOUT_MS, then Postgres cancels it (57014) and the pool goes on', async () => {
    const { db: bounded } = shortTimeout;
    await expect(bounded.query('SELECT pg_sleep(10)')).rejects.toMatchObject({ code: '57014' });
    expect((await bounded.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

describe("the webhook's queue", () => {
  const app = smallQueue.createApp();

  const post = (body: string) =>
    request(app).post('/webhooks/meta').set('Content-Type', 'application/json').set('X-Hub-Signature-256', sign(body)).send(body);

  it('when Postgres stalls, then webhooks past WEBHOOK_QUEUE_MAX get 503 at once, and what was queued is stored once it moves', async () => {
    const tenant = await createTestTenant();
    const number = await createTestPhoneNumber(tenant.userId);
    const bodies = Array.from({ length: 40 }, (_, i) =>
      whatsappTextBody({ phoneNumberId: number.externalId, from: `1555000${String(i).padStart(4, '0')}`, text: `message ${i}`, id: uniqueWamid() }),
    );

    // Writes to the inbox wait on this lock (reads do not): the webhook's accepts stall.
    const statuses = await withTransaction(async (tx) => {
      await tx.query('LOCK TABLE inbox IN EXCLUSIVE MODE');
      const answers = bodies.map((body) => post(body).then((res) => res.status));
      // 503s arrive while the lock is still held: refused, not queued behind it.
      const firstRefusal = await Promise.race(answers.map((answer) => answer.then((status) => (status === 503 ? status : new Promise(() => undefined)))));
      expect(firstRefusal).toBe(503);
      return answers;
    }).then((answers) => Promise.all(answers));

    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
    const refused = bodies.filter((_, i) => statuses[i] === 503);
    expect(refused.length).toBeGreaterThan(0);
    // Meta retries what was refused; then every message is in.
    for (const body of refused) expect((await post(body)).status).toBe(200);
    const stored = await db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM inbox WHERE user_id = $1) + (SELECT count(*) FROM messages WHERE user_id = $1) AS n`,
      [tenant.userId],
    );
    expect(Number(stored.rows[0]!.n)).toBe(40);
  });
});
