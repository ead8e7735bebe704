/**
 * Guarantee 14 (spend) on real Postgres: a model call is made only when the balance minus what
 * is already held covers its dearest outcome; the hold is settled to the actual cost with the
 * reply, released when the call fails, and a crashed worker's hold lapses. Turns run through
 * replyService.serveConversation with only the model and Graph faked.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { db } from '../../src/utils/database';
import { encryptSecret } from '../../src/utils/encryption';
import { accessTokenContext } from '../../src/models/PhoneNumber';
import { serveConversation, type ReplyDeps } from '../../src/services/replyService';
import { ModelError } from '../../src/services/modelErrors';
import { createApp } from '../../src/app';
import type { OpenAIService, CompletionResult } from '../../src/services/openaiService';
import type { GraphClient, SendTextResult } from '../../src/services/metaGraphService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';
import { loadWithEnv } from '../fixtures/isolatedModules';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

const TOKEN = 'EAAG-credit-holds-token';
/** The test agents' max_tokens: at 1 credit a token (the default price) a hold is a bit more. */
const MAX_TOKENS = 500;

beforeAll(setupTestDatabase);
afterAll(teardownTestDatabase);

async function pendingConversation(userId: string, text = 'hello') {
  const conversation = await createTestConversation(userId);
  await db.query('UPDATE phone_numbers SET access_token_encrypted = $2 WHERE id = $1', [conversation.phoneNumberId, encryptSecret(TOKEN, accessTokenContext(conversation.phoneNumberId))]);
  await db.query('UPDATE agents SET max_tokens = $2 WHERE id = (SELECT agent_id FROM phone_numbers WHERE id = $1)', [conversation.phoneNumberId, MAX_TOKENS]);
  await insertTestMessages(userId, conversation.id, [{ status: 'pending', text }]);
  return conversation.id;
}

function fakes(complete: () => Promise<CompletionResult>) {
  const model = jest.fn(complete);
  const sendText = jest.fn(async (): Promise<SendTextResult> => ({ externalIds: [`wamid.OUT${randomUUID()}`], parts: ['part'], totalParts: 1 }));
  const deps: ReplyDeps = {
    openai: { complete: model, extractStructured: jest.fn(), circuitState: 'closed', circuitStateFor: () => 'closed', breakerOpen: () => false, circuitRetryAfterMs: () => 0 } as unknown as OpenAIService,
    graph: { sendText, markRead: jest.fn(async () => undefined) } as unknown as GraphClient,
    signal: new AbortController().signal,
  };
  return { deps, model };
}

const answer = (promptTokens = 100, completionTokens = 20): CompletionResult => ({ text: 'reply', promptTokens, completionTokens, model: 'gpt-test', latencyMs: 1, attempts: 1 });

async function accountOf(userId: string) {
  const { rows } = await db.query<Row>(
    `SELECT u.credit_balance::int AS balance, (SELECT COALESCE(sum(amount), 0)::int FROM credit_ledger WHERE user_id = u.id) AS sum,
            (SELECT count(*)::int FROM credit_holds WHERE user_id = u.id) AS holds
       FROM users u WHERE u.id = $1`,
    [userId],
  );
  return rows[0] as { balance: number; sum: number; holds: number };
}

async function statusesOf(userId: string) {
  const { rows } = await db.query<Row>(`SELECT status, count(*)::int AS n FROM messages WHERE user_id = $1 AND direction = 'inbound' GROUP BY status`, [userId]);
  return Object.fromEntries(rows.map((r: Row) => [r.status, r.n]));
}

describe('credit holds (guarantee 14)', () => {
  it('when 10 conversations ask at once on credits for one reply, then exactly one model call is made and the rest are insufficient_credits', async () => {
    // Covers one hold (max_tokens + the prompt estimate, ~520) but not two.
    const { userId } = await createTestTenant({ credits: 800 });
    const conversations = await Promise.all(Array.from({ length: 10 }, () => pendingConversation(userId)));
    const { deps, model } = fakes(async () => {
      // Thinks long enough that every other turn asks while this hold is in place.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return answer();
    });

    await Promise.all(conversations.map((id) => serveConversation(userId, id, deps)));

    expect(model).toHaveBeenCalledTimes(1);
    expect(await statusesOf(userId)).toEqual({ answered: 1, insufficient_credits: 9 });
    // Settled to the actual cost (120 tokens at 1 credit a token), not the 500-odd held.
    expect(await accountOf(userId)).toEqual({ balance: 680, sum: 680, holds: 0 });
  });

  it('when the balance is above zero but below prompt + max_tokens, then no model call is made', async () => {
    const { userId } = await createTestTenant({ credits: MAX_TOKENS });
    const conversationId = await pendingConversation(userId);
    const { deps, model } = fakes(async () => answer());

    await serveConversation(userId, conversationId, deps);

    expect(model).not.toHaveBeenCalled();
    expect(await statusesOf(userId)).toEqual({ insufficient_credits: 1 });
    expect(await accountOf(userId)).toEqual({ balance: MAX_TOKENS, sum: MAX_TOKENS, holds: 0 });
  });

  it.each([
    ['fails transiently', new ModelError('retryable', 'model_timeout', 'slow')],
    ['fails for good', new ModelError('permanent', 'model_bad_request', 'bad')],
  ])('when the model %s, then the hold is released and nothing is charged', async (_name, error) => {
    const { userId } = await createTestTenant({ credits: 1_000 });
    const conversationId = await pendingConversation(userId);
    const { deps } = fakes(async () => {
      throw error;
    });

    await serveConversation(userId, conversationId, deps).catch(() => undefined);

    expect(await accountOf(userId)).toEqual({ balance: 1_000, sum: 1_000, holds: 0 });
  });

  it("when a crashed worker's hold is unexpired it still counts; once expired it counts for nothing", async () => {
    const { userId } = await createTestTenant({ credits: 1_000 });
    await db.query(`INSERT INTO credit_holds (user_id, amount, expires_at) VALUES ($1, 900, now() + interval '1 hour')`, [userId]);
    const blocked = await pendingConversation(userId);
    const { deps, model } = fakes(async () => answer());

    await serveConversation(userId, blocked, deps);
    expect(model).not.toHaveBeenCalled();
    expect(await statusesOf(userId)).toEqual({ insufficient_credits: 1 });

    await db.query(`UPDATE credit_holds SET expires_at = now() - interval '1 second' WHERE user_id = $1`, [userId]);
    const served = await pendingConversation(userId);
    await serveConversation(userId, served, deps);

    expect(model).toHaveBeenCalledTimes(1);
    // The expired hold was cleared by the next hold, and the new one settled with the reply.
    expect(await accountOf(userId)).toEqual({ balance: 880, sum: 880, holds: 0 });
  });

  it('when a model call is in flight, then GET /v1/me shows what is held, and 0 once the reply is charged', async () => {
    const app: Express = createApp();
    const tenant = await createTestTenant({ credits: 2_000 });
    const conversationId = await pendingConversation(tenant.userId);
    let held: Row;
    const { deps } = fakes(async () => {
      held = (await request(app).get('/v1/me').set(tenant.auth)).body;
      return answer();
    });

    await serveConversation(tenant.userId, conversationId, deps);

    expect(held.credit_balance).toBe(2_000);
    expect(held.credits_held).toBeGreaterThan(MAX_TOKENS);
    const after = (await request(app).get('/v1/me').set(tenant.auth)).body;
    expect(after).toMatchObject({ credit_balance: 1_880, credits_held: 0 });
  });
});

/* eslint-disable @typescript-eslint/no-require-imports -- a fresh registry needs require */
describe('with MODEL_PRICES set', () => {
  const PRICES = { 'cheap-model': { input: 100, output: 200 }, 'dear-model': { input: 10_000, output: 30_000 } };
  const isolated = loadWithEnv({ MODEL_PRICES: JSON.stringify(PRICES) }, () => ({
    createApp: require('../../src/app').createApp as typeof createApp,
    serveConversation: require('../../src/services/replyService').serveConversation as typeof serveConversation,
    closeDatabase: require('../../src/utils/database').closeDatabase as () => Promise<void>,
    closeRedis: require('../../src/utils/redis').closeRedis as () => Promise<void>,
  }));
  afterAll(async () => {
    await isolated.closeRedis();
    await isolated.closeDatabase();
  });

  it('when an agent names a model without a price, then 400 naming the allowed ones; a priced one is accepted', async () => {
    const app = isolated.createApp();
    const tenant = await createTestTenant();
    const body = { name: 'Shop', system_prompt: 'Be nice.' };

    const refused = await request(app).post('/v1/agents').set(tenant.auth).send({ ...body, model: 'gpt-4o' });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain('cheap-model, dear-model');

    const created = await request(app).post('/v1/agents').set(tenant.auth).send({ ...body, model: 'cheap-model' });
    expect(created.status).toBe(201);
    const patched = await request(app).patch(`/v1/agents/${created.body.id}`).set(tenant.auth).send({ model: 'gpt-4o' });
    expect(patched.status).toBe(400);
    expect(JSON.stringify(patched.body)).toContain('cheap-model, dear-model');
  });

  it("when the reply is charged, then at the model's input and output prices; a dear model's hold can outgrow the balance", async () => {
    const { userId } = await createTestTenant({ credits: 5_000 });
    const cheap = await pendingConversation(userId);
    await db.query(`UPDATE agents SET model = 'cheap-model' WHERE user_id = $1`, [userId]);
    const { deps, model } = fakes(async () => answer(1_000, 500));

    await isolated.serveConversation(userId, cheap, deps);
    // 1000 prompt tokens × 100/1K + 500 completion tokens × 200/1K = 100 + 100.
    expect(await accountOf(userId)).toEqual({ balance: 4_800, sum: 4_800, holds: 0 });

    // The dear model's max_tokens alone (500 × 30/token) is more than the 4,800 left.
    const dear = await pendingConversation(userId);
    await db.query(`UPDATE agents SET model = 'dear-model' WHERE user_id = $1`, [userId]);
    await isolated.serveConversation(userId, dear, deps);

    expect(model).toHaveBeenCalledTimes(1);
    expect(await statusesOf(userId)).toEqual({ answered: 1, insufficient_credits: 1 });
  });
});
/* eslint-enable @typescript-eslint/no-require-imports */
