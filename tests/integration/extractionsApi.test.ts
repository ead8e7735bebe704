import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { findConversation } from '../../src/models/Conversation';
import { insertExtraction } from '../../src/models/Extraction';
import { db } from '../../src/utils/database';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant, type TestTenant } from '../fixtures/tenants';
import {
  createTestConversation,
  createTestExtraction,
  createTestPhoneNumber,
  type TestConversation,
} from '../fixtures/conversations';

describe('extractions API', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000);
  const ids = (res: request.Response) => res.body.data.map((e: { id: string }) => e.id);

  /** Walks the pages of `path` (which already has a query string) from `cursor` on, returning the ids in order. */
  async function collect(tenant: TestTenant, path: string, cursor: string | null = null): Promise<string[]> {
    const seen: string[] = [];
    do {
      const res: request.Response = await request(app)
        .get(`${path}${cursor ? `&cursor=${cursor}` : ''}`)
        .set(tenant.auth);
      expect(res.status).toBe(200);
      seen.push(...ids(res));
      cursor = res.body.next_cursor;
    } while (cursor);
    return seen;
  }

  describe('auth and tenants', () => {
    const routes = (id: string) => [
      { method: 'get' as const, path: `/v1/conversations/${id}/extraction` },
      { method: 'post' as const, path: `/v1/conversations/${id}/extract` },
    ];

    it('when no key is sent, then every route answers 401', async () => {
      for (const route of [{ method: 'get' as const, path: '/v1/extractions' }, ...routes(randomUUID())]) {
        const res = await request(app)[route.method](route.path);
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('unauthorized');
      }
    });

    it("when a tenant names another tenant's conversation, then 404 and no extraction is requested", async () => {
      const owner = await createTestTenant();
      const other = await createTestTenant();
      const conversation = await createTestConversation(owner.userId);
      await createTestExtraction(owner.userId, conversation.id);
      for (const route of routes(conversation.id)) {
        const res = await request(app)[route.method](route.path).set(other.auth);
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
      expect((await findConversation(owner.userId, conversation.id))?.extractionRequestedAt).toBeNull();
    });

    it("when a tenant lists extractions, then another tenant's never appear", async () => {
      const mine = await createTestTenant();
      const theirs = await createTestTenant();
      const own = await createTestExtraction(mine.userId, (await createTestConversation(mine.userId)).id);
      const foreignConversation = await createTestConversation(theirs.userId);
      await createTestExtraction(theirs.userId, foreignConversation.id);
      expect(ids(await request(app).get('/v1/extractions').set(mine.auth))).toEqual([own.id]);
      const filtered = await request(app).get(`/v1/extractions?phone_number_id=${foreignConversation.phoneNumberId}`).set(mine.auth);
      expect(filtered.body).toEqual({ data: [], next_cursor: null });
    });

    it('when the conversation id is not a uuid, then 400 naming id', async () => {
      const tenant = await createTestTenant();
      for (const route of routes('nope')) {
        const res = await request(app)[route.method](route.path).set(tenant.auth);
        expect(res.status).toBe(400);
        expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'id' })]);
      }
    });
  });

  describe('GET /v1/conversations/:id/extraction', () => {
    it('when a conversation was extracted several times, then the newest extraction comes back in the contract shape', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      await createTestExtraction(tenant.userId, conversation.id, { fields: { name: 'A' }, createdAt: minutesAgo(10) });
      const newest = await createTestExtraction(tenant.userId, conversation.id, {
        fields: { name: 'Ada', email: 'ada@example.com', budget: 1200, vip: true },
        summary: 'Ada wants a quote.',
        upToSequenceNo: 7,
        createdAt: minutesAgo(1),
      });
      const res = await request(app).get(`/v1/conversations/${conversation.id}/extraction`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id: newest.id,
        conversation_id: conversation.id,
        phone_number_id: conversation.phoneNumberId,
        fields: { name: 'Ada', email: 'ada@example.com', budget: 1200, vip: true },
        summary: 'Ada wants a quote.',
        extracted_at: newest.createdAt.toISOString(),
        up_to_sequence_no: 7,
      });
    });

    it('when the conversation has no extraction yet, then the 404 and the conversation say where it stands: none, due, postponed and why, then done', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const state = async () => {
        const extraction = await request(app).get(`/v1/conversations/${conversation.id}/extraction`).set(tenant.auth);
        const shown = await request(app).get(`/v1/conversations/${conversation.id}`).set(tenant.auth);
        const listed = await request(app).get('/v1/conversations').set(tenant.auth);
        expect(listed.body.data[0]).toEqual(shown.body);
        return { extraction, status: shown.body.extraction_status, postponed: shown.body.extraction_postponed };
      };

      let now = await state();
      expect(now.extraction.status).toBe(404);
      expect(now.extraction.body.error.code).toBe('not_found');
      expect(now.extraction.body.error.message).toMatch(/^No extraction yet: extraction_status is none: .*EXTRACTION_IDLE_SECONDS/);
      expect([now.status, now.postponed]).toEqual(['none', null]);

      await request(app).post(`/v1/conversations/${conversation.id}/extract`).set(tenant.auth).expect(202);
      now = await state();
      expect(now.extraction.body.error.message).toBe('No extraction yet: extraction_status is due: an extraction worker runs it shortly');
      expect(now.status).toBe('due');

      // What the worker leaves behind when the tenant had no credits: the request seen, a backoff.
      await db.query(
        `UPDATE conversations SET extraction_claimed_at = now(), extraction_retry_at = now() + interval '10 minutes' WHERE id = $1`,
        [conversation.id],
      );
      now = await state();
      expect(now.status).toBe('postponed');
      expect(now.postponed).toEqual({ reason: 'insufficient_credits', message: 'the tenant had no credits left', retry_at: expect.any(String) });
      expect(now.extraction.body.error.message).toContain('extraction_status is postponed: the tenant had no credits left; retried after');

      await db.query(`UPDATE conversations SET extraction_failures = 2 WHERE id = $1`, [conversation.id]);
      expect((await state()).postponed.reason).toBe('extraction_failed');

      await db.query(`UPDATE conversations SET extraction_requested_at = NULL, extraction_retry_at = NULL, extraction_failures = 0 WHERE id = $1`, [conversation.id]);
      await createTestExtraction(tenant.userId, conversation.id);
      now = await state();
      expect([now.extraction.status, now.status, now.postponed]).toEqual([200, 'done', null]);
    });

    it('when the conversation does not exist, then 404 names the conversation', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).get(`/v1/conversations/${randomUUID()}/extraction`).set(tenant.auth);
      expect(res.status).toBe(404);
      expect(res.body.error).toMatchObject({ code: 'not_found', message: 'Conversation not found' });
    });

    it('when the extraction worker stores a result through the model, then the API shows it', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const stored = await insertExtraction(tenant.userId, {
        conversationId: conversation.id,
        agentId: conversation.agentId,
        fields: { intent: 'book' },
        summary: null,
        upToSequenceNo: 3,
        model: 'gpt-4o-mini',
        promptTokens: 120,
        completionTokens: 30,
      });
      expect(stored).toMatchObject({ phoneNumberId: conversation.phoneNumberId, promptTokens: 120, fields: { intent: 'book' } });
      const res = await request(app).get(`/v1/conversations/${conversation.id}/extraction`).set(tenant.auth);
      expect(res.body).toMatchObject({ id: stored.id, fields: { intent: 'book' }, summary: null, up_to_sequence_no: 3 });
    });
  });

  describe('POST /v1/conversations/:id/extract', () => {
    it('when asked, then 202 queued and the conversation is marked for the extraction worker', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId);
      const before = Date.now();
      const res = await request(app).post(`/v1/conversations/${conversation.id}/extract`).set(tenant.auth);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ status: 'queued' });
      const marked = await findConversation(tenant.userId, conversation.id);
      expect(marked?.extractionRequestedAt?.getTime()).toBeGreaterThanOrEqual(before - 1_000);
    });

    it('when the conversation is archived, then it can still be extracted', async () => {
      const tenant = await createTestTenant();
      const conversation = await createTestConversation(tenant.userId, { isActive: false });
      const res = await request(app).post(`/v1/conversations/${conversation.id}/extract`).set(tenant.auth);
      expect(res.status).toBe(202);
    });

    it('when the conversation does not exist, then 404', async () => {
      const tenant = await createTestTenant();
      const res = await request(app).post(`/v1/conversations/${randomUUID()}/extract`).set(tenant.auth);
      expect(res.status).toBe(404);
    });
  });

  describe('GET /v1/extractions', () => {
    let tenant: TestTenant;
    let first: TestConversation;
    let second: TestConversation;
    let elsewhere: TestConversation;
    const extraction: Record<string, { id: string; createdAt: Date }> = {};

    beforeAll(async () => {
      tenant = await createTestTenant();
      const number = await createTestPhoneNumber(tenant.userId);
      first = await createTestConversation(tenant.userId, { phoneNumber: number });
      second = await createTestConversation(tenant.userId, { phoneNumber: number });
      elsewhere = await createTestConversation(tenant.userId);
      extraction.firstOld = await createTestExtraction(tenant.userId, first.id, { fields: { name: 'old' }, createdAt: minutesAgo(50) });
      extraction.second = await createTestExtraction(tenant.userId, second.id, { createdAt: minutesAgo(40) });
      extraction.elsewhere = await createTestExtraction(tenant.userId, elsewhere.id, { createdAt: minutesAgo(30) });
      extraction.firstNew = await createTestExtraction(tenant.userId, first.id, { fields: { name: 'new' }, createdAt: minutesAgo(20) });
    });

    it('when listed, then only the newest extraction of each conversation comes back, newest first', async () => {
      const res = await request(app).get('/v1/extractions').set(tenant.auth);
      expect(res.status).toBe(200);
      expect(ids(res)).toEqual([extraction.firstNew!.id, extraction.elsewhere!.id, extraction.second!.id]);
      expect(res.body.data[0]).toEqual({
        id: extraction.firstNew!.id,
        conversation_id: first.id,
        phone_number_id: first.phoneNumberId,
        fields: { name: 'new' },
        summary: 'Wants to buy.',
        extracted_at: extraction.firstNew!.createdAt.toISOString(),
        up_to_sequence_no: 0,
      });
      expect(res.body.next_cursor).toBeNull();
    });

    it('when filtered by phone_number_id, then only that number’s conversations are listed', async () => {
      const res = await request(app).get(`/v1/extractions?phone_number_id=${first.phoneNumberId}`).set(tenant.auth);
      expect(ids(res)).toEqual([extraction.firstNew!.id, extraction.second!.id]);
    });

    it('when filtered by since, then extractions made at or after it are listed', async () => {
      const since = extraction.elsewhere!.createdAt;
      const res = await request(app).get(`/v1/extractions?since=${encodeURIComponent(since.toISOString())}`).set(tenant.auth);
      expect(ids(res)).toEqual([extraction.firstNew!.id, extraction.elsewhere!.id]);
    });

    it('when since is given with a time-zone offset, then it means the same instant', async () => {
      const since = minutesAgo(35);
      // The same instant written two hours east of UTC.
      const shifted = new Date(since.getTime() + 2 * 3_600_000).toISOString().replace('Z', '+02:00');
      const res = await request(app).get(`/v1/extractions?since=${encodeURIComponent(shifted)}`).set(tenant.auth);
      expect(ids(res)).toEqual([extraction.firstNew!.id, extraction.elsewhere!.id]);
    });

    it.each([
      ['since=yesterday', 'since'],
      ['since=2026-01-01', 'since'],
      ['phone_number_id=42', 'phone_number_id'],
      ['limit=abc', 'limit'],
      ['cursor=%%%', 'cursor'],
    ])('when the query has %s, then 400 naming %s', async (query, path) => {
      const res = await request(app).get(`/v1/extractions?${query}`).set(tenant.auth);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_error');
      expect(res.body.error.details).toEqual([expect.objectContaining({ path })]);
    });

    it('when paging while new conversations get extracted, then pages have no duplicates and no gaps', async () => {
      const pager = await createTestTenant();
      const number = await createTestPhoneNumber(pager.userId);
      const existing: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        const conversation = await createTestConversation(pager.userId, { phoneNumber: number });
        // An older, superseded extraction per conversation must never surface on a later page.
        await createTestExtraction(pager.userId, conversation.id, { createdAt: minutesAgo(100 - i) });
        existing.unshift((await createTestExtraction(pager.userId, conversation.id, { createdAt: minutesAgo(50 - i) })).id);
      }
      const page1 = await request(app).get('/v1/extractions?limit=2').set(pager.auth);
      expect(ids(page1)).toEqual(existing.slice(0, 2));

      for (let i = 0; i < 3; i += 1) {
        await createTestExtraction(pager.userId, (await createTestConversation(pager.userId, { phoneNumber: number })).id);
      }

      const rest = await collect(pager, '/v1/extractions?limit=2', page1.body.next_cursor);
      expect([...ids(page1), ...rest]).toEqual(existing);
    });

    it('when extractions share one timestamp, then the id breaks the tie and each is listed once', async () => {
      const pager = await createTestTenant();
      const at = minutesAgo(3);
      const all: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        all.push((await createTestExtraction(pager.userId, (await createTestConversation(pager.userId)).id, { createdAt: at })).id);
      }
      expect(await collect(pager, '/v1/extractions?limit=2')).toEqual([...all].sort().reverse());
    });
  });
});
