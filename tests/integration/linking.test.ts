import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { findLiveByExternalId } from '../../src/models/PhoneNumber';
import * as phoneNumberService from '../../src/services/phoneNumberService';
import * as agentService from '../../src/services/agentService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant, type TestTenant } from '../fixtures/tenants';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

const newExternalId = () => `1${randomBytes(6).readUIntBE(0, 6)}`;

interface ConversationRow {
  id: string;
  agent_id: string | null;
  is_active: boolean;
  archived_at: Date | null;
  archive_reason: string | null;
}

describe('linking agents to phone numbers', () => {
  beforeAll(async () => {
    await setupTestDatabase();
    // Test-only audit of archive events in this file's own database: it proves each
    // conversation is archived exactly once, however many link changes race.
    await db.query(`
      CREATE TABLE test_archive_events (conversation_id uuid NOT NULL, reason text, at timestamptz DEFAULT clock_timestamp());
      CREATE FUNCTION test_record_archive() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO test_archive_events (conversation_id, reason) VALUES (NEW.id, NEW.archive_reason);
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_record_archive AFTER UPDATE ON conversations
        FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active) EXECUTE FUNCTION test_record_archive();
    `);
  });
  afterAll(teardownTestDatabase);
  const app = createApp();

  async function createAgent(tenant: TestTenant, name = 'Agent'): Promise<string> {
    const res = await request(app).post('/v1/agents').set(tenant.auth).send({ name, system_prompt: 'Be helpful.' });
    return res.body.id;
  }

  async function createNumber(tenant: TestTenant): Promise<{ id: string; externalId: string }> {
    const externalId = newExternalId();
    const res = await request(app)
      .post('/v1/phone-numbers')
      .set(tenant.auth)
      .send({ channel: 'whatsapp', external_id: externalId, access_token: standinAccessToken('whatsapp', externalId) });
    return { id: res.body.id, externalId };
  }

  const link = (tenant: TestTenant, numberId: string, agentId: string) =>
    request(app).put(`/v1/phone-numbers/${numberId}/agent`).set(tenant.auth).send({ agent_id: agentId });

  /** An active conversation with one message, opened under the number's current agent. */
  async function seedConversation(numberId: string): Promise<string> {
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id, last_sequence_no)
       SELECT user_id, id, agent_id, channel, $2, 1 FROM phone_numbers WHERE id = $1 RETURNING id`,
      [numberId, `customer-${randomBytes(4).toString('hex')}`],
    );
    const conversationId = rows[0]!.id;
    await db.query(
      `INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, status)
       SELECT user_id, id, 1, 'inbound', 'customer', channel, 'text', 'Hello there', 'answered' FROM conversations WHERE id = $1`,
      [conversationId],
    );
    return conversationId;
  }

  async function conversation(id: string): Promise<ConversationRow> {
    const { rows } = await db.query<ConversationRow>(
      'SELECT id, agent_id, is_active, archived_at, archive_reason FROM conversations WHERE id = $1',
      [id],
    );
    return rows[0]!;
  }

  async function archiveEvents(conversationId: string): Promise<string[]> {
    const { rows } = await db.query<{ reason: string }>('SELECT reason FROM test_archive_events WHERE conversation_id = $1', [conversationId]);
    return rows.map((row) => row.reason);
  }

  describe('PUT /v1/phone-numbers/:id/agent', () => {
    it('when an agent is linked, then 200 with the number showing it, and the webhook lookup routes to it', async () => {
      const tenant = await createTestTenant();
      const agent = await createAgent(tenant);
      const number = await createNumber(tenant);
      const res = await link(tenant, number.id, agent);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: number.id, agent_id: agent });
      expect((await request(app).get(`/v1/phone-numbers/${number.id}`).set(tenant.auth)).body.agent_id).toBe(agent);
      expect(await findLiveByExternalId('whatsapp', number.externalId)).toMatchObject({ id: number.id, userId: tenant.userId, agentId: agent });
    });

    it('when the same agent is linked again, then it is a no-op and its conversations stay active', async () => {
      const tenant = await createTestTenant();
      const agent = await createAgent(tenant);
      const number = await createNumber(tenant);
      await link(tenant, number.id, agent);
      const conversationId = await seedConversation(number.id);
      const { rows: before } = await db.query('SELECT updated_at FROM phone_numbers WHERE id = $1', [number.id]);

      const res = await link(tenant, number.id, agent);
      expect(res.status).toBe(200);
      expect(res.body.agent_id).toBe(agent);
      expect(await conversation(conversationId)).toMatchObject({ is_active: true, archived_at: null });
      const { rows: after } = await db.query('SELECT updated_at FROM phone_numbers WHERE id = $1', [number.id]);
      expect(after[0]).toEqual(before[0]);
    });

    it('when another agent is linked, then active conversations are archived (agent_relinked) and stay readable with their messages', async () => {
      const tenant = await createTestTenant();
      const [oldAgent, newAgent] = [await createAgent(tenant, 'Old'), await createAgent(tenant, 'New')];
      const number = await createNumber(tenant);
      await link(tenant, number.id, oldAgent);
      const conversationId = await seedConversation(number.id);

      const res = await link(tenant, number.id, newAgent);
      expect(res.status).toBe(200);
      expect(res.body.agent_id).toBe(newAgent);

      expect(await conversation(conversationId)).toEqual({
        id: conversationId,
        agent_id: oldAgent,
        is_active: false,
        archived_at: expect.any(Date),
        archive_reason: 'agent_relinked',
      });
      const { rows: messages } = await db.query('SELECT text FROM messages WHERE conversation_id = $1', [conversationId]);
      expect(messages).toEqual([{ text: 'Hello there' }]);
      expect(await archiveEvents(conversationId)).toEqual(['agent_relinked']);
      // The next customer message may open a fresh active conversation for the same customer.
      const { rows: customer } = await db.query<{ customer_external_id: string }>(
        'SELECT customer_external_id FROM conversations WHERE id = $1',
        [conversationId],
      );
      await expect(
        db.query(
          `INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id) VALUES ($1, $2, $3, 'whatsapp', $4)`,
          [tenant.userId, number.id, newAgent, customer[0]!.customer_external_id],
        ),
      ).resolves.toBeDefined();
    });

    it('when the relink touches one number, then other numbers’ conversations stay active', async () => {
      const tenant = await createTestTenant();
      const [a, b] = [await createAgent(tenant), await createAgent(tenant)];
      const [first, second] = [await createNumber(tenant), await createNumber(tenant)];
      await link(tenant, first.id, a);
      await link(tenant, second.id, a);
      const untouched = await seedConversation(second.id);
      await seedConversation(first.id);
      await link(tenant, first.id, b);
      expect(await conversation(untouched)).toMatchObject({ is_active: true });
    });

    it('when the agent is archived, then 409 conflict and the link is unchanged', async () => {
      const tenant = await createTestTenant();
      const [current, archived] = [await createAgent(tenant), await createAgent(tenant)];
      const number = await createNumber(tenant);
      await link(tenant, number.id, current);
      await request(app).post(`/v1/agents/${archived}/archive`).set(tenant.auth);
      const res = await link(tenant, number.id, archived);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('conflict');
      expect((await request(app).get(`/v1/phone-numbers/${number.id}`).set(tenant.auth)).body.agent_id).toBe(current);
    });

    it('when the agent is another tenant’s or unknown, then 404 and the link is unchanged', async () => {
      const [tenant, other] = [await createTestTenant(), await createTestTenant()];
      const foreignAgent = await createAgent(other);
      const number = await createNumber(tenant);
      for (const agentId of [foreignAgent, randomUUID()]) {
        const res = await link(tenant, number.id, agentId);
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
      expect((await request(app).get(`/v1/phone-numbers/${number.id}`).set(tenant.auth)).body.agent_id).toBeNull();
    });

    it('when the number is another tenant’s or deleted, then 404', async () => {
      const [tenant, other] = [await createTestTenant(), await createTestTenant()];
      const agent = await createAgent(tenant);
      const foreignNumber = await createNumber(other);
      expect((await link(tenant, foreignNumber.id, agent)).status).toBe(404);
      const deleted = await createNumber(tenant);
      await request(app).delete(`/v1/phone-numbers/${deleted.id}`).set(tenant.auth);
      expect((await link(tenant, deleted.id, agent)).status).toBe(404);
      const { rows } = await db.query('SELECT agent_id FROM phone_numbers WHERE id = ANY($1::uuid[])', [[foreignNumber.id, deleted.id]]);
      expect(rows).toEqual([{ agent_id: null }, { agent_id: null }]);
    });

    it.each([
      [{}, 'agent_id'],
      [{ agent_id: 'agent-1' }, 'agent_id'],
      [{ agent_id: null }, 'agent_id'],
    ])('when the body is %j, then 400 naming "%s"', async (body, path) => {
      const tenant = await createTestTenant();
      const number = await createNumber(tenant);
      const res = await request(app).put(`/v1/phone-numbers/${number.id}/agent`).set(tenant.auth).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path })]);
    });

    it('when no key is sent, then 401', async () => {
      expect((await request(app).put(`/v1/phone-numbers/${randomUUID()}/agent`).send({ agent_id: randomUUID() })).status).toBe(401);
      expect((await request(app).delete(`/v1/phone-numbers/${randomUUID()}/agent`)).status).toBe(401);
    });
  });

  describe('DELETE /v1/phone-numbers/:id/agent', () => {
    it('when unlinked, then 200 with agent_id null, conversations archived (agent_unlinked), and unlinking again is a no-op', async () => {
      const tenant = await createTestTenant();
      const agent = await createAgent(tenant);
      const number = await createNumber(tenant);
      await link(tenant, number.id, agent);
      const conversationId = await seedConversation(number.id);

      const res = await request(app).delete(`/v1/phone-numbers/${number.id}/agent`).set(tenant.auth);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: number.id, agent_id: null });
      expect(await conversation(conversationId)).toMatchObject({ is_active: false, archive_reason: 'agent_unlinked' });
      expect(await findLiveByExternalId('whatsapp', number.externalId)).toMatchObject({ agentId: null });

      const again = await request(app).delete(`/v1/phone-numbers/${number.id}/agent`).set(tenant.auth);
      expect(again.status).toBe(200);
      expect(again.body.agent_id).toBeNull();
      expect(await archiveEvents(conversationId)).toEqual(['agent_unlinked']);
    });

    it('when an agent is linked after a spell without one, then conversations opened meanwhile are archived', async () => {
      const tenant = await createTestTenant();
      const agent = await createAgent(tenant);
      const number = await createNumber(tenant);
      const unanswered = await seedConversation(number.id);
      expect((await conversation(unanswered)).agent_id).toBeNull();
      await link(tenant, number.id, agent);
      expect(await conversation(unanswered)).toMatchObject({ is_active: false, archive_reason: 'agent_relinked' });
    });

    it('when the number is another tenant’s, then 404 and its agent stays linked', async () => {
      const [owner, intruder] = [await createTestTenant(), await createTestTenant()];
      const agent = await createAgent(owner);
      const number = await createNumber(owner);
      await link(owner, number.id, agent);
      const res = await request(app).delete(`/v1/phone-numbers/${number.id}/agent`).set(intruder.auth);
      expect(res.status).toBe(404);
      expect((await request(app).get(`/v1/phone-numbers/${number.id}`).set(owner.auth)).body.agent_id).toBe(agent);
    });
  });

  describe('concurrency', () => {
    it('when 20 different agents are linked to one number at once, then exactly one ends up linked and the conversation is archived exactly once', async () => {
      const tenant = await createTestTenant();
      const initial = await createAgent(tenant, 'Initial');
      const agents: string[] = [];
      for (let i = 0; i < 20; i++) agents.push(await createAgent(tenant, `Racer ${i}`));
      const number = await createNumber(tenant);
      await link(tenant, number.id, initial);
      const conversationId = await seedConversation(number.id);

      const responses = await Promise.all(agents.map((agent) => link(tenant, number.id, agent)));

      expect(responses.map((res) => res.status)).toEqual(agents.map(() => 200));
      // Each request saw its own link applied: none was lost to another's write.
      expect(responses.map((res) => res.body.agent_id)).toEqual(agents);
      const { rows } = await db.query<{ agent_id: string }>('SELECT agent_id FROM phone_numbers WHERE id = $1', [number.id]);
      const linked = rows[0]!.agent_id;
      expect(agents).toContain(linked);

      expect(await conversation(conversationId)).toMatchObject({ is_active: false, archive_reason: 'agent_relinked', agent_id: initial });
      expect(await archiveEvents(conversationId)).toEqual(['agent_relinked']);
      const { rows: stray } = await db.query(
        `SELECT id FROM conversations WHERE phone_number_id = $1 AND is_active AND agent_id IS DISTINCT FROM $2`,
        [number.id, linked],
      );
      expect(stray).toEqual([]);
    });

    it('when links race with conversations opened in between, then every archive matches one link change', async () => {
      const tenant = await createTestTenant();
      const agents: string[] = [];
      for (let i = 0; i < 10; i++) agents.push(await createAgent(tenant, `Racer ${i}`));
      const number = await createNumber(tenant);

      // Like the webhook: open a conversation under the number's agent while holding it FOR SHARE.
      const openConversation = () =>
        db.query(
          `INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id)
           SELECT user_id, id, agent_id, channel, $2 FROM phone_numbers WHERE id = $1 AND deleted_at IS NULL FOR SHARE`,
          [number.id, `customer-${randomBytes(4).toString('hex')}`],
        );
      const results = await Promise.all([
        ...agents.map((agent) => phoneNumberService.linkAgent(tenant.userId, number.id, agent)),
        ...agents.map(() => openConversation()),
      ]);

      const changes = results.slice(0, agents.length) as phoneNumberService.LinkResult[];
      const archivedByLinks = changes.reduce((sum, change) => sum + change.archivedConversations, 0);
      const { rows } = await db.query<{ count: string }>(
        `SELECT count(*) FROM test_archive_events e JOIN conversations c ON c.id = e.conversation_id WHERE c.phone_number_id = $1`,
        [number.id],
      );
      expect(Number(rows[0]!.count)).toBe(archivedByLinks);
      const { rows: linked } = await db.query<{ agent_id: string }>('SELECT agent_id FROM phone_numbers WHERE id = $1', [number.id]);
      const { rows: stray } = await db.query(
        `SELECT id FROM conversations WHERE phone_number_id = $1 AND is_active AND agent_id IS DISTINCT FROM $2`,
        [number.id, linked[0]!.agent_id],
      );
      expect(stray).toEqual([]);
    });

    it('when an agent is archived while being linked, then no number ends up linked to an archived agent', async () => {
      const tenant = await createTestTenant();
      for (let round = 0; round < 5; round++) {
        const agent = await createAgent(tenant);
        const numbers = [await createNumber(tenant), await createNumber(tenant), await createNumber(tenant)];
        const outcomes = await Promise.allSettled([
          ...numbers.map((number) => phoneNumberService.linkAgent(tenant.userId, number.id, agent)),
          agentService.archiveAgent(tenant.userId, agent),
        ]);
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') expect(outcome.reason).toMatchObject({ code: 'conflict' });
        }
        const { rows } = await db.query('SELECT id FROM phone_numbers WHERE agent_id = $1', [agent]);
        expect(rows).toEqual([]);
      }
    });
  });
});
