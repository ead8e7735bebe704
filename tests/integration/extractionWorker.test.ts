/**
 * Extraction workers (CONTRACT §4.7) on real Postgres and Redis, with the OpenAI stand-in
 * answering structured outputs from the transcript. Conversations are made straight in the
 * database; "idle" is made by moving last_message_at into the past, except where idleness
 * itself is under test.
 */
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { costForTokens } from '../../src/services/creditService';
import { createOpenAIService, type OpenAIService } from '../../src/services/openaiService';
import { buildLeadJsonSchema } from '../../src/services/extractionService';
import { ExtractionWorker, type ExtractionWorkerOptions } from '../../src/workers/extractionWorker';
import type { LeadField } from '../../src/models/Agent';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH, createTestTenant, type TestTenant } from '../fixtures/tenants';
import {
  createTestAgent,
  createTestConversation,
  createTestPhoneNumber,
  insertTestMessages,
  type TestConversation,
  type TestMessage,
} from '../fixtures/conversations';
import { eventually, ledgerOf, type Row } from '../fixtures/pipeline';
import { messageText, startOpenAIStandin, type OpenAIStandin, type RecordedRequest } from '../fixtures/standins/openaiStandin';

const app = createApp();
let standin: OpenAIStandin;
let openai: OpenAIService;
const workers: ExtractionWorker[] = [];

beforeAll(async () => {
  await setupTestDatabase();
  standin = await startOpenAIStandin();
  openai = createOpenAIService({ apiKey: 'test', baseURL: standin.url, retry: { attempts: 1, baseMs: 1, maxMs: 1 } });
});
afterAll(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  await standin.close();
  await teardownTestDatabase();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  standin.reset();
  // Nothing a test leaves due may reach the next test's workers.
  await db.query(
    `UPDATE conversations SET extraction_settled_seq = last_sequence_no, extraction_requested_at = NULL,
            extraction_claimed_by = NULL, extraction_claimed_until = NULL, extraction_retry_at = NULL`,
  );
});

async function startWorker(options: ExtractionWorkerOptions = {}): Promise<ExtractionWorker> {
  const worker = new ExtractionWorker({
    openai,
    pollIntervalMs: 100,
    requestPollMs: 50,
    idleSeconds: 600,
    leaseMs: 5_000,
    consumerName: `extraction-test-${workers.length + 1}`,
    ...options,
  });
  await worker.start();
  workers.push(worker);
  return worker;
}

/** A conversation of its own agent and number, with these messages; idle unless told otherwise. */
async function conversationWith(
  tenant: TestTenant,
  messages: TestMessage[],
  options: { idle?: boolean; agentId?: string } = {},
): Promise<TestConversation> {
  const agentId = options.agentId ?? (await createTestAgent(tenant.userId)).id;
  const phoneNumber = await createTestPhoneNumber(tenant.userId, { agentId });
  const conversation = await createTestConversation(tenant.userId, { phoneNumber });
  await insertTestMessages(tenant.userId, conversation.id, messages);
  if (options.idle ?? true) await makeIdle(conversation.id);
  return conversation;
}

const makeIdle = (conversationId: string) =>
  db.query(`UPDATE conversations SET last_message_at = now() - interval '1 hour' WHERE id = $1`, [conversationId]);

const extractionsOf = async (conversationId: string): Promise<Row[]> =>
  (await db.query<Row>(`SELECT * FROM extractions WHERE conversation_id = $1 ORDER BY created_at, id`, [conversationId])).rows;

const bookkeeping = async (conversationId: string): Promise<Row> =>
  (
    await db.query<Row>(
      `SELECT last_sequence_no, extraction_settled_seq, extraction_requested_at, extraction_claimed_by, extraction_claimed_at,
              extraction_retry_at, extraction_retry_at > now() AS backing_off, extraction_failures,
              extraction_claimed_at >= extraction_requested_at AS request_seen
         FROM conversations WHERE id = $1`,
      [conversationId],
    )
  ).rows[0];

const requestExtraction = async (tenant: TestTenant, conversationId: string) => {
  const res = await request(app).post(`/v1/conversations/${conversationId}/extract`).set(tenant.auth);
  expect(res.status).toBe(202);
};

const latestViaApi = async (tenant: TestTenant, conversationId: string) =>
  request(app).get(`/v1/conversations/${conversationId}/extraction`).set(tenant.auth);

/** The stand-in's calls whose transcript contains `marker`. */
const callsAbout = (marker: string): RecordedRequest[] =>
  standin.completions().filter((call) => (call.body?.messages ?? []).some((message) => messageText(message).includes(marker)));

/** When each conversation was last claimed (null: never): a claim a test forbids would move it. */
const claimTimes = async (conversations: TestConversation[]) =>
  Promise.all(conversations.map(async (c) => (await bookkeeping(c.id)).extraction_claimed_at as Date | null));

/**
 * The positive signal "nothing else was claimed" checks wait for: a conversation that is due
 * (idle, unsettled) in a tenant without credits. The one statement that claims it claims every
 * other conversation due at that moment too (these tests keep fewer due than the concurrency), so
 * once it is claimed, a conversation whose claim time did not move was not due at that poll. It
 * costs no model call and no credits (no credits: postponed), so it disturbs no count.
 */
async function dueSentinel(): Promise<{ claimed(): Promise<void> }> {
  const tenant = await createTestTenant({ credits: 0 });
  const sentinel = await conversationWith(tenant, [{ text: 'sentinel case' }]);
  return {
    claimed: async () => {
      await eventually(async () => (await bookkeeping(sentinel.id)).extraction_claimed_at !== null, 5_000, 'a full poll (the sentinel claimed)');
    },
  };
}

/** A full poll that started after this call: the sentinel is made due now and waited for. */
const nextFullPoll = async () => (await dueSentinel()).claimed();

/** A full chat completion, for answers the stand-in would not give on its own (sent through its fault hook). */
const completionAnswering = (content: string) => ({
  id: 'chatcmpl-malformed',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
  usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
});

describe('extraction worker (CONTRACT §4.7)', () => {
  it('when a conversation has been idle long enough, then its lead is extracted once, normalised and charged at the token price', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const lead = await conversationWith(
      tenant,
      [
        { text: 'Hi, my name is Ada Lovelace. Reach me at ADA@Example.com or +44 20 7946 0958, I want to buy the lamp' },
        { direction: 'outbound', text: 'Thanks Ada, noted!' },
      ],
      { idle: false },
    );
    const businessOnly = await conversationWith(tenant, [{ direction: 'outbound', author: 'human', text: 'Your order shipped' }], { idle: false });
    const firstPoll = await dueSentinel();
    await startWorker({ idleSeconds: 1 });

    // The first full poll took the sentinel, and not these, which had been quiet under a second.
    await firstPoll.claimed();
    expect(await claimTimes([lead, businessOnly])).toEqual([null, null]);
    expect(await extractionsOf(lead.id)).toHaveLength(0);
    expect(standin.completions()).toHaveLength(0);

    const [extraction] = await eventually(async () => {
      const rows = await extractionsOf(lead.id);
      return rows.length > 0 ? rows : null;
    }, 5_000, 'the idle conversation to be extracted');
    const { rows: waited } = await db.query<Row>(
      `SELECT extraction_claimed_at - last_message_at >= interval '1 second' AS idle_enough FROM conversations WHERE id = $1`,
      [lead.id],
    );
    expect(waited[0].idle_enough).toBe(true);
    const res = await latestViaApi(tenant, lead.id);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      conversation_id: lead.id,
      up_to_sequence_no: 2,
      fields: { name: 'Ada Lovelace', email: 'ada@example.com', phone: '+442079460958', intent: 'purchase' },
    });
    expect(typeof res.body.fields.summary).toBe('string');
    expect(res.body.summary).toBe(res.body.fields.summary);

    const usage = standin.completions()[0]!.usage!;
    const ledger = await ledgerOf(tenant.userId);
    const charges = ledger.entries.filter((entry) => entry.reason === 'extraction');
    expect(charges).toHaveLength(1);
    expect(charges[0]).toMatchObject({ extraction_id: extraction.id, conversation_id: lead.id, tokens: usage.total_tokens });
    expect(Number(charges[0].amount)).toBe(-costForTokens(usage.total_tokens));
    expect(Number(extraction.prompt_tokens) + Number(extraction.completion_tokens)).toBe(usage.total_tokens);
    expect(ledger.balance).toBe(ledger.sum);

    // The conversation the customer never wrote in is settled without an extraction, and a later
    // full poll claims neither of them again.
    await eventually(async () => {
      const row = await bookkeeping(businessOnly.id);
      return row.extraction_settled_seq === 1 && row.extraction_claimed_by === null;
    }, 5_000, 'the business-only conversation settled');
    const claimed = await claimTimes([lead, businessOnly]);
    await nextFullPoll();
    expect(await claimTimes([lead, businessOnly])).toEqual(claimed);
    expect(standin.completions()).toHaveLength(1);
    expect(await extractionsOf(lead.id)).toHaveLength(1);
    expect(await extractionsOf(businessOnly.id)).toHaveLength(0);
    expect((await bookkeeping(businessOnly.id)).extraction_settled_seq).toBe(1);
  });

  it('when new messages follow an extraction, then a fresh one replaces it in the API and both are kept', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const conversation = await conversationWith(tenant, [{ text: 'Hi, just looking around' }, { direction: 'outbound', text: 'Sure!' }]);
    await startWorker();
    await eventually(async () => (await extractionsOf(conversation.id)).length === 1, 5_000, 'the first extraction');
    expect((await latestViaApi(tenant, conversation.id)).body).toMatchObject({ up_to_sequence_no: 2, fields: { intent: 'inquiry' } });

    await insertTestMessages(tenant.userId, conversation.id, [{ text: 'Actually I want to buy two' }]);
    await makeIdle(conversation.id);
    const rows = await eventually(async () => {
      const all = await extractionsOf(conversation.id);
      return all.length === 2 ? all : null;
    }, 5_000, 'the second extraction');
    expect(rows.map((row) => row.up_to_sequence_no)).toEqual([2, 3]);
    const latest = await latestViaApi(tenant, conversation.id);
    expect(latest.body).toMatchObject({ id: rows[1].id, up_to_sequence_no: 3, fields: { intent: 'purchase' } });
    const listed = await request(app).get('/v1/extractions').set(tenant.auth);
    expect(listed.body.data.map((e: { id: string }) => e.id)).toEqual([rows[1].id]);
    const ledger = await ledgerOf(tenant.userId);
    expect(ledger.entries.filter((entry) => entry.reason === 'extraction').map((entry) => entry.extraction_id).sort()).toEqual(
      rows.map((row) => row.id).sort(),
    );
  });

  it('when the agent has custom enum, number, boolean and string fields, then the schema says so and the answer is typed', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const leadFields: LeadField[] = [
      { name: 'product', description: 'The product they want', type: 'enum', values: ['shoes', 'jacket', 'hat'] },
      { name: 'quantity', description: 'How many items', type: 'number' },
      { name: 'is_gift', description: 'Whether it is a gift', type: 'boolean' },
      { name: 'city', description: 'Where to deliver', type: 'string' },
    ];
    const agent = await request(app).post('/v1/agents').set(tenant.auth).send({ name: 'Shop', system_prompt: 'Sell.', lead_fields: leadFields });
    expect(agent.status).toBe(201);
    const conversation = await conversationWith(tenant, [{ text: "I'd like 3 jackets please" }], { idle: false, agentId: agent.body.id });
    await startWorker();
    await requestExtraction(tenant, conversation.id);

    await eventually(async () => (await latestViaApi(tenant, conversation.id)).status === 200, 5_000, 'the extraction');
    const res = await latestViaApi(tenant, conversation.id);
    expect(res.body.fields).toEqual({ product: 'jacket', quantity: 3, is_gift: null, city: null });
    expect(res.body.summary).toBeNull();
    const format = standin.completions()[0]!.body!.response_format!;
    expect(format).toEqual({ type: 'json_schema', json_schema: { name: 'lead_extraction', strict: true, schema: buildLeadJsonSchema(leadFields) } });
    expect(format.json_schema!.schema!.properties!.product).toMatchObject({ enum: ['shoes', 'jacket', 'hat', null] });
  });

  it('when the model answers malformed output, then the worker neither crashes nor stores, charges or retries in a loop', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    await startWorker();

    // Not JSON at all.
    const garbled = await conversationWith(tenant, [{ text: 'not-json case' }], { idle: false });
    standin.setFault({ status: 200, count: 1, body: completionAnswering('Sure! The customer is Ada.') });
    await requestExtraction(tenant, garbled.id);
    await eventually(async () => (await bookkeeping(garbled.id)).extraction_requested_at === null, 5_000, 'the request to be served');
    // JSON, but a list rather than the object the schema asks for.
    const listed = await conversationWith(tenant, [{ text: 'list case' }], { idle: false });
    standin.setFault({ status: 200, count: 1, body: completionAnswering('[1, 2]') });
    await requestExtraction(tenant, listed.id);
    await eventually(async () => (await bookkeeping(listed.id)).extraction_requested_at === null, 5_000, 'the request to be served');

    // Served (the request is cleared by the same statement that ends the claim); a later full poll
    // takes neither again.
    const claimed = await claimTimes([garbled, listed]);
    await nextFullPoll();
    expect(await claimTimes([garbled, listed])).toEqual(claimed);
    expect(standin.completions()).toHaveLength(2);
    for (const conversation of [garbled, listed]) {
      expect(await extractionsOf(conversation.id)).toHaveLength(0);
      // Given up on until a newer message arrives: not due, so not retried.
      expect(await bookkeeping(conversation.id)).toMatchObject({ extraction_settled_seq: 1, extraction_claimed_by: null });
    }
    expect((await ledgerOf(tenant.userId)).entries.filter((entry) => entry.reason === 'extraction')).toHaveLength(0);

    // An object with wrong types: those fields become null, the rest is stored and charged.
    const mistyped = await conversationWith(tenant, [{ text: 'wrong types case' }], { idle: false });
    standin.setFault({
      status: 200,
      count: 1,
      body: completionAnswering(JSON.stringify({ name: 42, email: 'not-an-email', phone: true, intent: ['buy'], summary: 'Wants a quote', extra: 'x' })),
    });
    await requestExtraction(tenant, mistyped.id);
    await eventually(async () => (await latestViaApi(tenant, mistyped.id)).status === 200, 5_000, 'the mistyped extraction');
    const res = await latestViaApi(tenant, mistyped.id);
    expect(res.body.fields).toEqual({ name: null, email: null, phone: null, intent: null, summary: 'Wants a quote' });
    expect(res.body.summary).toBe('Wants a quote');
    const charges = (await ledgerOf(tenant.userId)).entries.filter((entry) => entry.reason === 'extraction');
    expect(charges.map((entry) => Number(entry.amount))).toEqual([-costForTokens(120)]);

    // And the worker is still at work.
    const healthy = await conversationWith(tenant, [{ text: 'my name is Grace' }], { idle: false });
    await requestExtraction(tenant, healthy.id);
    await eventually(async () => (await latestViaApi(tenant, healthy.id)).status === 200, 5_000, 'a normal extraction afterwards');
    expect((await latestViaApi(tenant, healthy.id)).body.fields.name).toBe('Grace');
  });

  it('when the provider keeps failing, then the conversation is postponed with a backoff instead of retried at once', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const conversation = await conversationWith(tenant, [{ text: 'provider down case' }]);
    standin.setFault({ status: 503 });
    await startWorker({ retryBaseMs: 60_000 });
    await eventually(async () => (await bookkeeping(conversation.id)).extraction_failures === 1, 5_000, 'the failed attempt');
    const claimed = await claimTimes([conversation]);
    await nextFullPoll();
    expect(await claimTimes([conversation])).toEqual(claimed);
    expect(callsAbout('provider down case')).toHaveLength(1);
    expect(await bookkeeping(conversation.id)).toMatchObject({ backing_off: true, extraction_claimed_by: null, extraction_settled_seq: 0 });
    expect(await extractionsOf(conversation.id)).toHaveLength(0);
  });

  it('when the tenant has no credits, then it is skipped without a model call, and served once credits and a new request come', async () => {
    const tenant = await createTestTenant({ credits: 0 });
    const conversation = await conversationWith(tenant, [{ text: 'my name is Broke' }]);
    await startWorker();
    await requestExtraction(tenant, conversation.id);

    // Idle as well as requested, it may be claimed (and skipped) once before the request and once
    // for it, at once (a request newer than the last claim is served): wait for the second skip.
    await eventually(async () => {
      const row = await bookkeeping(conversation.id);
      return row.backing_off === true && row.request_seen === true && row.extraction_claimed_by === null;
    }, 5_000, 'the skip of the request');
    const claimed = await claimTimes([conversation]);
    await nextFullPoll();
    expect(await claimTimes([conversation])).toEqual(claimed);
    expect(standin.completions()).toHaveLength(0);
    expect(await extractionsOf(conversation.id)).toHaveLength(0);
    expect((await ledgerOf(tenant.userId)).entries).toHaveLength(0);
    // Still wanted: the request stays, for when there are credits.
    expect(await bookkeeping(conversation.id)).toMatchObject({ extraction_claimed_by: null, extraction_failures: 0 });
    expect((await bookkeeping(conversation.id)).extraction_requested_at).not.toBeNull();

    const topUp = await request(app).post(`/v1/users/${tenant.userId}/credits`).set(ADMIN_AUTH).send({ amount: 10_000 });
    expect(topUp.status).toBe(201);
    await requestExtraction(tenant, conversation.id);
    await eventually(async () => (await latestViaApi(tenant, conversation.id)).status === 200, 5_000, 'the extraction after the top-up');
    expect((await latestViaApi(tenant, conversation.id)).body.fields.name).toBe('Broke');
    const ledger = await ledgerOf(tenant.userId);
    expect(ledger.balance).toBe(ledger.sum);
  });

  it('when two workers race over 20 due conversations, then each is extracted and charged exactly once', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const conversations = await Promise.all(
      Array.from({ length: 20 }, (_, i) => conversationWith(tenant, [{ text: `race case ${String.fromCharCode(97 + i)}` }])),
    );
    standin.setLatency(30);
    await Promise.all([startWorker({ consumerName: 'racer-a' }), startWorker({ consumerName: 'racer-b' })]);

    await eventually(async () => {
      const { rows } = await db.query<Row>(`SELECT count(*)::int AS n FROM extractions WHERE user_id = $1`, [tenant.userId]);
      return rows[0].n === 20;
    }, 10_000, '20 extractions');
    // Closing drains what both workers have in flight: after it nothing more can be stored.
    await Promise.all(workers.map((worker) => worker.close()));
    const { rows } = await db.query<Row>(
      `SELECT conversation_id, count(*)::int AS n FROM extractions WHERE user_id = $1 GROUP BY conversation_id`,
      [tenant.userId],
    );
    expect(rows).toHaveLength(20);
    expect(rows.every((row) => row.n === 1)).toBe(true);
    expect(new Set(rows.map((row) => row.conversation_id))).toEqual(new Set(conversations.map((c) => c.id)));
    expect(standin.completions()).toHaveLength(20);
    const ledger = await ledgerOf(tenant.userId);
    const charges = ledger.entries.filter((entry) => entry.reason === 'extraction');
    expect(charges).toHaveLength(20);
    expect(new Set(charges.map((entry) => entry.extraction_id)).size).toBe(20);
    expect(ledger.balance).toBe(ledger.sum);
  });

  it('when a tenant asks for an extraction of a conversation that is not idle, then it is served within a couple of seconds', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const conversation = await conversationWith(tenant, [{ text: 'my name is Quick, price please' }], { idle: false });
    // The production poll intervals, not the test's fast ones.
    await startWorker({ pollIntervalMs: 5_000, requestPollMs: 500 });
    const started = Date.now();
    await requestExtraction(tenant, conversation.id);
    await eventually(async () => (await latestViaApi(tenant, conversation.id)).status === 200, 3_000, 'the requested extraction');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await latestViaApi(tenant, conversation.id)).body.fields).toMatchObject({ name: 'Quick', intent: 'purchase' });
    expect((await bookkeeping(conversation.id)).extraction_requested_at).toBeNull();
  });

  it("when a worker died holding a claim, then another takes it over after the lease, and a live claim is left alone", async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const orphaned = await conversationWith(tenant, [{ text: 'orphaned case' }]);
    const held = await conversationWith(tenant, [{ text: 'held case' }]);
    await db.query(
      `UPDATE conversations SET extraction_claimed_by = 'dead-worker:1', extraction_claimed_at = now() - interval '2 minutes',
              extraction_claimed_until = CASE WHEN id = $1 THEN now() - interval '1 second' ELSE now() + interval '1 hour' END
        WHERE id IN ($1, $2)`,
      [orphaned.id, held.id],
    );
    await startWorker();
    await eventually(async () => (await extractionsOf(orphaned.id)).length === 1, 5_000, 'the orphaned conversation');
    await nextFullPoll();
    expect((await bookkeeping(held.id)).extraction_claimed_by).toBe('dead-worker:1');
    expect(await extractionsOf(held.id)).toHaveLength(0);
    expect(callsAbout('held case')).toHaveLength(0);
    expect((await bookkeeping(orphaned.id)).extraction_claimed_by).toBeNull();
  });

  it('when close() is called twice, then both calls share one shutdown and nothing is claimed afterwards', async () => {
    const tenant = await createTestTenant({ credits: 1_000_000 });
    const worker = await startWorker();
    const first = worker.close();
    expect(worker.close()).toBe(first);
    await first;
    // A successor that polls five times slower than the closed worker did, and calls the model
    // with a key of its own: that it, and only it, serves the request is the signal that the
    // closed worker, had it still been polling, had its chances first and took none.
    const successor = await startWorker({
      consumerName: 'successor',
      requestPollMs: 250,
      pollIntervalMs: 250,
      openai: createOpenAIService({ apiKey: 'successor', baseURL: standin.url, retry: { attempts: 1, baseMs: 1, maxMs: 1 } }),
    });
    const conversation = await conversationWith(tenant, [{ text: 'after close case' }]);
    await requestExtraction(tenant, conversation.id);
    await eventually(async () => (await extractionsOf(conversation.id)).length === 1, 5_000, 'the successor to serve the request');
    await successor.close();
    expect(standin.completions().map((call) => call.apiKey)).toEqual(['successor']);
    expect((await bookkeeping(conversation.id)).extraction_claimed_by).toBeNull();
  });
});
