/**
 * A reply turn (replyService.serveConversation) on real Postgres, with only the model and
 * Graph faked: what record_reply really does when a human takes over, or another worker
 * answers, while the model is thinking. (The unit tests script record_reply's outcomes; these
 * prove the turn and the SQL agree.)
 */
import { randomUUID } from 'node:crypto';
import { db } from '../../src/utils/database';
import { encryptSecret } from '../../src/utils/encryption';
import { accessTokenContext } from '../../src/models/PhoneNumber';
import { serveConversation, type ReplyDeps } from '../../src/services/replyService';
import type { OpenAIService, CompletionResult } from '../../src/services/openaiService';
import type { GraphClient, SendTextResult } from '../../src/services/metaGraphService';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant } from '../fixtures/tenants';
import { createTestConversation, insertTestMessages } from '../fixtures/conversations';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Row = any;

const TOKEN = 'EAAG-reply-turn-token';

beforeAll(setupTestDatabase);
afterAll(teardownTestDatabase);

async function conversationWithPending(texts: string[]) {
  const { userId } = await createTestTenant({ credits: 1_000 });
  const conversation = await createTestConversation(userId);
  await db.query('UPDATE phone_numbers SET access_token_encrypted = $2 WHERE id = $1', [conversation.phoneNumberId, encryptSecret(TOKEN, accessTokenContext(conversation.phoneNumberId))]);
  const ids = (await insertTestMessages(userId, conversation.id, texts.map((text) => ({ status: 'pending', text })))).map((m) => m.id);
  return { userId, conversationId: conversation.id, ids };
}

function fakes(whileThinking: (call: number) => Promise<void> = async () => undefined) {
  let calls = 0;
  const complete = jest.fn(async (): Promise<CompletionResult> => {
    await whileThinking(++calls);
    return { text: `reply ${calls}`, promptTokens: 100, completionTokens: 20, model: 'gpt-test', latencyMs: 1, attempts: 1 };
  });
  const sendText = jest.fn(async (): Promise<SendTextResult> => ({ externalIds: [`wamid.OUT${randomUUID()}`], parts: ['part'], totalParts: 1 }));
  const deps: ReplyDeps = {
    openai: { complete, extractStructured: jest.fn(), circuitState: 'closed', circuitStateFor: () => 'closed', breakerOpen: () => false, circuitRetryAfterMs: () => 0 } as unknown as OpenAIService,
    graph: { sendText, markRead: jest.fn(async () => undefined) } as unknown as GraphClient,
    signal: new AbortController().signal,
  };
  return { deps, complete, sendText };
}

async function stateOf(userId: string, conversationId: string) {
  const { rows: messages } = await db.query<Row>('SELECT direction, status, text FROM messages WHERE conversation_id = $1 ORDER BY sequence_no', [conversationId]);
  const { rows: ledger } = await db.query<Row>(`SELECT amount::int FROM credit_ledger WHERE user_id = $1 AND reason = 'reply'`, [userId]);
  return { messages: messages.map((m: Row) => [m.direction, m.status, m.text]), charges: ledger.length };
}

describe('serveConversation on Postgres', () => {
  it('when a message is pending, then it is answered, the reply is charged once and sent with the decrypted token', async () => {
    const { userId, conversationId } = await conversationWithPending(['hello']);
    const { deps, sendText } = fakes();

    await serveConversation(userId, conversationId, deps);

    expect(await stateOf(userId, conversationId)).toEqual({
      messages: [['inbound', 'answered', 'hello'], ['outbound', 'sent', 'reply 1']],
      charges: 1,
    });
    expect(sendText).toHaveBeenCalledWith(expect.objectContaining({ accessToken: TOKEN, text: 'reply 1' }));
  });

  it('when a human pauses the bot while the model thinks, then nothing is recorded, charged or sent, and the message is left unanswered (ignored)', async () => {
    const { userId, conversationId } = await conversationWithPending(['hello']);
    const { deps, sendText } = fakes(async () => {
      await db.query('UPDATE conversations SET bot_paused = true WHERE id = $1', [conversationId]);
    });

    await serveConversation(userId, conversationId, deps);

    expect(await stateOf(userId, conversationId)).toEqual({ messages: [['inbound', 'ignored', 'hello']], charges: 0 });
    expect(sendText).not.toHaveBeenCalled();
  });

  it('when another worker answers a message while the model thinks, then that reply is dropped uncharged and the rest is answered next round', async () => {
    const { userId, conversationId, ids } = await conversationWithPending(['a', 'b']);
    const { deps, complete, sendText } = fakes(async (call) => {
      if (call === 1) await db.query(`UPDATE messages SET status = 'answered' WHERE id = $1`, [ids[0]]);
    });

    await serveConversation(userId, conversationId, deps);

    expect(complete).toHaveBeenCalledTimes(2);
    expect(await stateOf(userId, conversationId)).toEqual({
      messages: [['inbound', 'answered', 'a'], ['inbound', 'answered', 'b'], ['outbound', 'sent', 'reply 2']],
      charges: 1,
    });
    expect(sendText).toHaveBeenCalledTimes(1);
  });
});
