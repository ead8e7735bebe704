/**
 * The conversation rules of R__conversations.sql against real Postgres, each written once and
 * shared by filing, record_reply and the models: whether a message is answered
 * (reason_not_to_answer), appending a message (append_message), finding or creating the active
 * conversation (find_or_create_conversation) and a human taking over (record_human_message).
 */
import { db } from '../../src/utils/database';
import { insertHumanMessage, insertMessage } from '../../src/models/Message';
import { withTransaction } from '../../src/utils/database';
import { lockConversation } from '../../src/models/Conversation';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestAgent, createTestConversation, createTestPhoneNumber, type TestConversationOptions } from '../fixtures/conversations';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

describe('conversation rules', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);

  async function conversationRow(id: string): Promise<Row> {
    return (await db.query<Row>('SELECT * FROM conversations WHERE id = $1', [id])).rows[0];
  }

  describe('reason_not_to_answer', () => {
    const reasonFor = async (conversationId: string, answerable: boolean | null = true) =>
      (await db.query<Row>('SELECT reason_not_to_answer(c, $2) AS reason FROM conversations c WHERE c.id = $1', [conversationId, answerable])).rows[0].reason;

    /** A conversation in some state, with whatever its agent and number became since. */
    async function conversationIn(
      state: TestConversationOptions & { agentArchived?: boolean; number?: 'deleted' | 'unlinked' | 'other_agent' },
    ): Promise<string> {
      const { userId } = await createTestTenant();
      const agent = await createTestAgent(userId);
      const phoneNumber = await createTestPhoneNumber(userId, { agentId: agent.id });
      const conversation = await createTestConversation(userId, { phoneNumber, ...state });
      if (state.agentArchived) await db.query('UPDATE agents SET archived_at = now() WHERE id = $1', [agent.id]);
      if (state.number === 'deleted') await db.query('UPDATE phone_numbers SET deleted_at = now() WHERE id = $1', [phoneNumber.id]);
      if (state.number === 'unlinked') await db.query('UPDATE phone_numbers SET agent_id = NULL WHERE id = $1', [phoneNumber.id]);
      if (state.number === 'other_agent') {
        await db.query('UPDATE phone_numbers SET agent_id = $2 WHERE id = $1', [phoneNumber.id, (await createTestAgent(userId)).id]);
      }
      return conversation.id;
    }

    it('when the conversation is active, unpaused and served by its number’s live agent, then it is answered (null), also for a NULL verdict of the message', async () => {
      const id = await conversationIn({});
      expect(await reasonFor(id)).toBeNull();
      expect(await reasonFor(id, null)).toBeNull();
    });

    it.each<[string, Parameters<typeof conversationIn>[0]]>([
      ['conversation_archived', { isActive: false }],
      ['bot_paused', { botPaused: true }],
      ['no_agent', { agentId: null }],
      ['no_agent', { agentArchived: true }],
      ['number_unlinked', { number: 'deleted' }],
      ['number_unlinked', { number: 'unlinked' }],
      ['number_unlinked', { number: 'other_agent' }],
    ])('when the conversation is %s (%j), then that is the reason', async (reason, state) => {
      expect(await reasonFor(await conversationIn(state))).toBe(reason);
    });

    it('when several reasons hold, then the message comes first, then archived, paused, the agent, the number', async () => {
      expect(await reasonFor(await conversationIn({ isActive: false, botPaused: true, agentId: null, number: 'deleted' }), false)).toBe('unanswerable');
      expect(await reasonFor(await conversationIn({ isActive: false, botPaused: true, agentId: null, number: 'deleted' }))).toBe('conversation_archived');
      expect(await reasonFor(await conversationIn({ botPaused: true, agentId: null, number: 'deleted' }))).toBe('bot_paused');
      expect(await reasonFor(await conversationIn({ agentId: null, number: 'deleted' }))).toBe('no_agent');
    });

    it('when filing a message the bot must not answer, then it is stored ignored; when it may, pending', async () => {
      const { userId } = await createTestTenant();
      const agent = await createTestAgent(userId);
      const phoneNumber = await createTestPhoneNumber(userId, { agentId: agent.id });
      const file = async (externalId: string, answerable: boolean) =>
        (
          await db.query<Row>(
            `SELECT status, sequence_no FROM ingest_customer_message('whatsapp', $1, 'cust-1', 'Ann', $2, 'text', 'hi', NULL, now(), $3)`,
            [phoneNumber.externalId, externalId, answerable],
          )
        ).rows[0];

      expect(await file('wamid.R1', true)).toEqual({ status: 'pending', sequence_no: 1 });
      expect(await file('wamid.R2', false)).toEqual({ status: 'ignored', sequence_no: 2 });
      await db.query('UPDATE conversations SET bot_paused = true WHERE phone_number_id = $1', [phoneNumber.id]);
      expect(await file('wamid.R3', true)).toEqual({ status: 'ignored', sequence_no: 3 });
    });
  });

  describe('find_or_create_conversation and append_message', () => {
    it('when a customer writes first, then the conversation is created already holding the first message’s number, and the next takes 2', async () => {
      const { userId } = await createTestTenant();
      const phoneNumber = await createTestPhoneNumber(userId, { agentId: (await createTestAgent(userId)).id });
      const opened = (
        await db.query<Row>(
          `SELECT (f.conversation).id, (f.conversation).last_sequence_no, f.held_sequence_no
             FROM phone_numbers pn, find_or_create_conversation(pn, 'cust-9', 'Bo') f WHERE pn.id = $1`,
          [phoneNumber.id],
        )
      ).rows[0];
      expect(opened).toMatchObject({ last_sequence_no: 1, held_sequence_no: 1 });

      const found = (
        await db.query<Row>(
          `SELECT (f.conversation).id, f.held_sequence_no FROM phone_numbers pn, find_or_create_conversation(pn, 'cust-9', NULL) f WHERE pn.id = $1`,
          [phoneNumber.id],
        )
      ).rows[0];
      expect(found).toEqual({ id: opened.id, held_sequence_no: null });
      const next = await insertMessage(userId, opened.id, { direction: 'inbound', author: 'customer', type: 'text', text: 'again', status: 'pending' });
      expect(next.sequenceNo).toBe(2);
    });

    it('when messages are appended, then they take consecutive numbers from the counter, which moves last_message_at, whatever the fields', async () => {
      const { userId } = await createTestTenant();
      const conversation = await createTestConversation(userId);
      const first = await insertMessage(userId, conversation.id, {
        direction: 'outbound',
        author: 'agent',
        type: 'text',
        text: 'Hello',
        status: 'failed',
        payload: { fallback: true, parts: [1, 2] },
        errorCode: '131047',
        errorMessage: 'Re-engagement message',
        externalId: 'wamid.A1',
        externalTimestamp: new Date('2025-01-02T03:04:05Z'),
      });
      const second = await insertMessage(userId, conversation.id, { direction: 'inbound', author: 'customer', type: 'text', text: 'Hi', status: 'pending', replyToMessageId: first.id });

      expect(first).toMatchObject({
        sequenceNo: 1,
        channel: 'whatsapp',
        payload: { fallback: true, parts: [1, 2] },
        errorCode: '131047',
        errorMessage: 'Re-engagement message',
        externalId: 'wamid.A1',
        externalTimestamp: new Date('2025-01-02T03:04:05Z'),
      });
      expect(second).toMatchObject({ sequenceNo: 2, replyToMessageId: first.id });
      const row = await conversationRow(conversation.id);
      expect(row.last_sequence_no).toBe(2);
      expect(row.last_message_at).not.toBeNull();
    });
  });

  describe('record_human_message', () => {
    it('when a human writes through the API, then the message is queued and the bot paused, and a second message keeps it paused', async () => {
      const { userId } = await createTestTenant();
      const conversation = await createTestConversation(userId);
      const write = (text: string) =>
        withTransaction(async (tx) => {
          await lockConversation(userId, conversation.id, tx);
          return insertHumanMessage(userId, conversation.id, { type: 'text', text, status: 'queued' }, tx);
        });

      expect(await write('A human here')).toMatchObject({ direction: 'outbound', author: 'human', status: 'queued', sequenceNo: 1, text: 'A human here' });
      expect((await conversationRow(conversation.id)).bot_paused).toBe(true);
      expect(await write('Still me')).toMatchObject({ sequenceNo: 2 });
      expect((await conversationRow(conversation.id)).bot_paused).toBe(true);
    });

    it('when a business echo opens a conversation, then it holds the human message as 1 and the bot is paused', async () => {
      const { userId } = await createTestTenant();
      const phoneNumber = await createTestPhoneNumber(userId, { channel: 'instagram', agentId: (await createTestAgent(userId)).id });
      const { rows } = await db.query<Row>(
        `SELECT outcome, conversation_id FROM ingest_business_echo('instagram', $1, 'igsid-1', 'mid.E1', 'text', 'From the phone', NULL, now(), 0)`,
        [phoneNumber.externalId],
      );
      expect(rows[0].outcome).toBe('recorded');
      expect(await conversationRow(rows[0].conversation_id)).toMatchObject({ bot_paused: true, last_sequence_no: 1 });
      const { rows: messages } = await db.query<Row>('SELECT sequence_no, author, status FROM messages WHERE conversation_id = $1', [rows[0].conversation_id]);
      expect(messages).toEqual([{ sequence_no: 1, author: 'human', status: 'sent' }]);
    });

    it('when the tenant has no such conversation, then not_found', async () => {
      const [mine, theirs] = [await createTestTenant(), await createTestTenant()];
      const conversation = await createTestConversation(theirs.userId);
      await expect(
        withTransaction((tx) => insertHumanMessage(mine.userId, conversation.id, { type: 'text', text: 'x', status: 'queued' }, tx)),
      ).rejects.toMatchObject({ code: 'not_found' });
    });
  });
});
