/**
 * The cached tenant lookups (services/cachedLookups.ts) against the real app, Postgres and Redis,
 * across processes: a second app with its own module registry (its own config, pools, Redis
 * connection and single-flight map) stands in for another API or worker process, and a third
 * whose Redis is at a port nothing listens on stands in for a process that lost Redis. Every
 * write made through one process is seen by the next read of another at once, two tenants'
 * entries never answer for each other, and without Redis everything is still answered from
 * Postgres, correctly.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { getRedis } from '../../src/utils/redis';
import { cacheKeys } from '../../src/services/cacheService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant, type TestTenant } from '../fixtures/tenants';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { sign, uniqueWamid, whatsappTextBody } from '../fixtures/meta';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

type Lookups = typeof import('../../src/services/cachedLookups');

/* eslint-disable @typescript-eslint/no-require-imports */
const otherProcess = (env: Record<string, string> = {}) =>
  loadWithEnv(env, () => ({
    app: (require('../../src/app') as typeof import('../../src/app')).createApp() as Express,
    lookups: require('../../src/services/cachedLookups') as Lookups,
    closeDatabase: (require('../../src/utils/database') as typeof import('../../src/utils/database')).closeDatabase,
    closeRedis: (require('../../src/utils/redis') as typeof import('../../src/utils/redis')).closeRedis,
  }));
/* eslint-enable @typescript-eslint/no-require-imports */

const app = createApp();
const second = otherProcess();
const noRedis = otherProcess({ REDIS_URL: 'redis://127.0.0.1:1/0' });

beforeAll(setupTestDatabase);
afterAll(async () => {
  for (const process of [second, noRedis]) {
    await process.closeRedis();
    await process.closeDatabase();
  }
  await teardownTestDatabase();
});

const account = () => `1555${randomBytes(4).readUInt32BE(0)}`;

async function api<T = Record<string, unknown>>(method: 'post' | 'patch' | 'put' | 'delete', path: string, auth: Record<string, string>, body?: object, status = 200): Promise<T> {
  const res = await request(app)[method](path).set(auth).send(body);
  expect({ path, status: res.status }).toEqual({ path, status });
  return res.body as T;
}

async function registerNumber(tenant: TestTenant, externalId: string): Promise<string> {
  const body = await api<{ id: string }>('post', '/v1/phone-numbers', tenant.auth, {
    channel: 'whatsapp',
    external_id: externalId,
    access_token: standinAccessToken('whatsapp', externalId),
  }, 201);
  return body.id;
}

async function createAgent(tenant: TestTenant, systemPrompt: string): Promise<string> {
  return (await api<{ id: string }>('post', '/v1/agents', tenant.auth, { name: 'Bot', system_prompt: systemPrompt }, 201)).id;
}

function postWebhook(target: Express, phoneNumberId: string, from: string) {
  const id = uniqueWamid();
  const body = whatsappTextBody({ phoneNumberId, from, text: 'hi', id });
  return { id, response: request(target).post('/webhooks/meta').set('Content-Type', 'application/json').set('X-Hub-Signature-256', sign(body)).send(body) };
}

/** The tenant the webhook accepted a message under (inbox or, once filed, messages), or null. */
async function acceptedUnder(externalId: string): Promise<string | null> {
  const { rows } = await db.query<{ user_id: string }>(
    `SELECT user_id FROM inbox WHERE external_id = $1 UNION ALL SELECT user_id FROM messages WHERE external_id = $1`,
    [externalId],
  );
  return rows[0]?.user_id ?? null;
}

describe('account routes across processes', () => {
  it('when another process cached an account as unknown and this one registers it, then that process accepts its next message at once', async () => {
    const tenant = await createTestTenant();
    const externalId = account();
    const before = postWebhook(second.app, externalId, '15550000001');
    expect((await before.response).status).toBe(200);
    expect(await acceptedUnder(before.id)).toBeNull();
    expect(await getRedis().exists(cacheKeys.account('whatsapp', externalId))).toBe(1);

    await registerNumber(tenant, externalId);

    const after = postWebhook(second.app, externalId, '15550000001');
    expect((await after.response).status).toBe(200);
    expect(await acceptedUnder(after.id)).toBe(tenant.userId);
  });

  it('when a number is deleted and its account registered by another tenant, then messages another process accepts go to the new owner (guarantee 10)', async () => {
    const [first, next] = [await createTestTenant(), await createTestTenant()];
    const externalId = account();
    const numberId = await registerNumber(first, externalId);
    const before = postWebhook(second.app, externalId, '15550000002');
    expect((await before.response).status).toBe(200);
    expect(await acceptedUnder(before.id)).toBe(first.userId);

    await api('delete', `/v1/phone-numbers/${numberId}`, first.auth, undefined, 204);
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toBeNull();
    await registerNumber(next, externalId);

    const after = postWebhook(second.app, externalId, '15550000002');
    expect((await after.response).status).toBe(200);
    expect(await acceptedUnder(after.id)).toBe(next.userId);
    expect(await acceptedUnder(before.id)).toBe(first.userId);
  });

  it('when an agent is linked, relinked or unlinked in one process, then the other reads the route with that agent at once', async () => {
    const tenant = await createTestTenant();
    const [a, b] = [await createAgent(tenant, 'A'), await createAgent(tenant, 'B')];
    const externalId = account();
    const numberId = await registerNumber(tenant, externalId);
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toEqual({ userId: tenant.userId, phoneNumberId: numberId, agentId: null });
    await api('put', `/v1/phone-numbers/${numberId}/agent`, tenant.auth, { agent_id: a });
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toMatchObject({ agentId: a });
    expect(await second.lookups.findCachedTurnNumber(tenant.userId, numberId)).toMatchObject({ agentId: a });
    await api('put', `/v1/phone-numbers/${numberId}/agent`, tenant.auth, { agent_id: b });
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toMatchObject({ agentId: b });
    expect(await second.lookups.findCachedTurnNumber(tenant.userId, numberId)).toMatchObject({ agentId: b });
    await api('post', `/v1/agents/${b}/archive`, tenant.auth);
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toMatchObject({ agentId: null });
    expect(await second.lookups.findCachedTurnAgent(tenant.userId, b)).toMatchObject({ archivedAt: expect.any(Date) });
    await api('put', `/v1/phone-numbers/${numberId}/agent`, tenant.auth, { agent_id: a });
    await api('delete', `/v1/phone-numbers/${numberId}/agent`, tenant.auth, undefined, 200);
    expect(await second.lookups.findAccountRoute('whatsapp', externalId)).toMatchObject({ agentId: null });
  });
});

describe("a turn's agent and number, and the credits pre-check, across processes", () => {
  it('when an agent is changed in one process, then the other process reads the change at once', async () => {
    const tenant = await createTestTenant();
    const agentId = await createAgent(tenant, 'Before');
    expect(await second.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'Before' });
    expect(await getRedis().exists(cacheKeys.tenant(tenant.userId, 'agent', agentId))).toBe(1);
    await api('patch', `/v1/agents/${agentId}`, tenant.auth, { system_prompt: 'After' });
    expect(await second.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'After' });
  });

  it('when a number is deleted in one process, then the other finds no number to send from', async () => {
    const tenant = await createTestTenant();
    const numberId = await registerNumber(tenant, account());
    expect(await second.lookups.findCachedTurnNumber(tenant.userId, numberId)).toMatchObject({ id: numberId });
    await api('delete', `/v1/phone-numbers/${numberId}`, tenant.auth, undefined, 204);
    expect(await second.lookups.findCachedTurnNumber(tenant.userId, numberId)).toBeNull();
  });

  it('when a tenant with no credits is topped up in one process, then the other sees credits at once', async () => {
    const tenant = await createTestTenant();
    expect(await second.lookups.hasCreditsCached(tenant.userId)).toBe(false);
    await api('post', `/v1/users/${tenant.userId}/credits`, ADMIN_AUTH, { amount: 10 }, 201);
    expect(await second.lookups.hasCreditsCached(tenant.userId)).toBe(true);
  });

  it("when two tenants' entries are cached, then neither answers for the other, not even for the other's ids", async () => {
    const [a, b] = [await createTestTenant({ credits: 5 }), await createTestTenant()];
    const agentOfA = await createAgent(a, 'Tenant A only');
    const numberOfA = await registerNumber(a, account());
    // Cached for A in one process…
    expect(await second.lookups.findCachedTurnAgent(a.userId, agentOfA)).toMatchObject({ systemPrompt: 'Tenant A only' });
    expect(await second.lookups.findCachedTurnNumber(a.userId, numberOfA)).toMatchObject({ id: numberOfA });
    expect(await second.lookups.hasCreditsCached(a.userId)).toBe(true);
    // …never read by B through another, whatever id B names.
    const { findCachedTurnAgent, findCachedTurnNumber, hasCreditsCached } = await import('../../src/services/cachedLookups');
    expect(await findCachedTurnAgent(b.userId, agentOfA)).toBeNull();
    expect(await findCachedTurnNumber(b.userId, numberOfA)).toBeNull();
    expect(await hasCreditsCached(b.userId)).toBe(false);
    expect(cacheKeys.tenant(a.userId, 'agent', agentOfA)).not.toBe(cacheKeys.tenant(b.userId, 'agent', agentOfA));
    // And A's entries are still A's.
    expect(await findCachedTurnAgent(a.userId, agentOfA)).toMatchObject({ systemPrompt: 'Tenant A only' });
  });
});

describe('Redis down', () => {
  it('when a process has no Redis, then routes, agents, numbers and credits come from Postgres, current and correct', async () => {
    const tenant = await createTestTenant();
    const agentId = await createAgent(tenant, 'One');
    const externalId = account();
    const numberId = await registerNumber(tenant, externalId);

    const accepted = postWebhook(noRedis.app, externalId, '15550000003');
    expect((await accepted.response).status).toBe(200);
    expect(await acceptedUnder(accepted.id)).toBe(tenant.userId);
    const unknown = postWebhook(noRedis.app, account(), '15550000003');
    expect((await unknown.response).status).toBe(200);
    expect(await acceptedUnder(unknown.id)).toBeNull();

    expect(await noRedis.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'One' });
    await api('patch', `/v1/agents/${agentId}`, tenant.auth, { system_prompt: 'Two' });
    expect(await noRedis.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'Two' });
    expect(await noRedis.lookups.hasCreditsCached(tenant.userId)).toBe(false);
    await api('post', `/v1/users/${tenant.userId}/credits`, ADMIN_AUTH, { amount: 3 }, 201);
    expect(await noRedis.lookups.hasCreditsCached(tenant.userId)).toBe(true);
    await api('delete', `/v1/phone-numbers/${numberId}`, tenant.auth, undefined, 204);
    expect(await noRedis.lookups.findCachedTurnNumber(tenant.userId, numberId)).toBeNull();
    expect(await noRedis.lookups.findAccountRoute('whatsapp', externalId)).toBeNull();
  });

  it('when a write is made by a process without Redis, then it is saved but answered 503, and the retry from a process with Redis makes every process see it', async () => {
    const tenant = await createTestTenant();
    const agentId = await createAgent(tenant, 'Old');
    expect(await second.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'Old' });
    const res = await request(noRedis.app).patch(`/v1/agents/${agentId}`).set(tenant.auth).send({ system_prompt: 'New' });
    expect(res.status).toBe(503);
    await api('patch', `/v1/agents/${agentId}`, tenant.auth, { system_prompt: 'New' });
    expect(await second.lookups.findCachedTurnAgent(tenant.userId, agentId)).toMatchObject({ systemPrompt: 'New' });
  });
});
