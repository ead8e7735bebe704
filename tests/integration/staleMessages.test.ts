/**
 * The stale cut-off (STALE_MESSAGE_SECONDS, CONTRACT §2): a customer message older than it by
 * Meta's timestamp when it could first be answered is kept `stale`, unanswered and uncharged;
 * a queued bot reply to such a message is cancelled and refunded instead of sent outside
 * WhatsApp's 24 h window.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { db } from '../../src/utils/database';
import { claimOutboundPart } from '../../src/models/ReplyTurn';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile, postWebhook } from '../fixtures/pipeline';
import { uniqueWamid, whatsappTextBody } from '../fixtures/meta';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';
import { createTestTenant } from '../fixtures/tenants';

const pipeline = pipelineForFile();
const DAY_S = 86_400;

afterEach(() => pipeline().reset());

describe('stale cut-off', () => {
  it('when Meta delivers a message sent two days ago (a backlog after an outage), then it is kept stale, not answered, not charged; a fresh one is answered', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    await pipeline().startWorker();
    const customer = '15558880001';
    const twoDaysAgo = Math.floor(Date.now() / 1000) - 2 * DAY_S;
    await postWebhook(app, whatsappTextBody({ phoneNumberId: business.whatsapp.externalId, from: customer, text: 'from last week', id: uniqueWamid(), timestamp: twoDaysAgo }));
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[0]?.status === 'stale');

    await customerWrites(app, business, customer, 'are you there today?');
    await graph.waitFor((sends) => sends.some((s) => s.ok && s.to === customer));
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Thanks! You said: "are you there today?"']);
    expect(openai.completions()).toHaveLength(1);
    const rows = await messagesOf(business.tenant.userId, customer);
    expect(rows[0]).toMatchObject({ text: 'from last week', status: 'stale', error_code: 'stale' });
    const api = await request(app).get(`/v1/conversations/${rows[0].conversation_id}/messages`).set(business.tenant.auth);
    expect(api.body.data[0]).toMatchObject({ status: 'stale', error: { code: 'stale' } });
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'reply')).toHaveLength(1);
  });

  it('when a queued bot reply answers a message older than the cut-off, then the claim cancels and refunds it instead of sending', async () => {
    const { userId } = await createTestTenant({ credits: 1_000 });
    const conversation = await createTestConversation(userId);
    const [question] = await insertTestMessages(userId, conversation.id, [{ direction: 'inbound', status: 'answered' }]);
    await db.query(`UPDATE messages SET external_timestamp = now() - interval '2 days' WHERE id = $1`, [question!.id]);
    const { rows: [reply] } = await db.query<{ id: string }>(
      `WITH seq AS (UPDATE conversations SET last_sequence_no = last_sequence_no + 1 WHERE id = $1 RETURNING last_sequence_no)
       INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, status, reply_to_message_id)
       SELECT $2, $1, last_sequence_no, 'outbound', 'agent', 'whatsapp', 'text', 'Too late', 'queued', $3 FROM seq RETURNING id`,
      [conversation.id, userId, question!.id],
    );
    await db.query(`SELECT charge_credits($1, 40, 'reply', $2, $3, NULL, 40)`, [userId, reply!.id, conversation.id]);

    expect(await claimOutboundPart(userId, reply!.id, 0, 'Too late', randomUUID(), 15_000, DAY_S)).toEqual({ outcome: 'cancelled' });
    const { rows: [after] } = await db.query('SELECT status, error_code FROM messages WHERE id = $1', [reply!.id]);
    expect(after).toEqual({ status: 'cancelled', error_code: 'window_closed' });
    const ledger = await ledgerOf(userId);
    expect(ledger.entries.filter((e) => e.reason === 'refund').map((e) => [e.message_id, Number(e.amount)])).toEqual([[reply!.id, 40]]);
    expect(ledger.balance).toBe(1_000);
  });
});
