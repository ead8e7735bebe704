/**
 * What the model is sent, through the real webhook, worker and OpenAI stand-in: the agent's
 * max_prompt_tokens bounds the prompt (oldest turns cut first, system prompt kept), and a
 * customer's long message reaches the model capped.
 */
import { createBusiness, customerWrites, pipelineForFile } from '../fixtures/pipeline';
import { MAX_CUSTOMER_MESSAGE_CHARS, estimatePromptTokens } from '../../src/services/chatPrompt';
import type { ChatMessage } from '../../src/services/openaiService';

const pipelineOf = pipelineForFile();

describe('the prompt a reply sends', () => {
  it('when customers send 4096-character messages to an agent with max_prompt_tokens 1500, then each prompt fits it, keeps the system prompt and the newest message, and cuts the oldest turns', async () => {
    const pipeline = pipelineOf();
    const { app, openai } = pipeline;
    const systemPrompt = 'You are the shop assistant. Be brief.';
    const business = await createBusiness(app, { agent: { system_prompt: systemPrompt, history_limit: 50, max_prompt_tokens: 1500, debounce_ms: 0 } });
    await pipeline.startWorker();
    const customer = `1555${String(process.pid).slice(-4)}777`;
    const chats = () => openai.requests.filter((r) => r.path.endsWith('/chat/completions') && r.outcome === 'answered');
    for (let i = 0; i < 4; i++) {
      await customerWrites(app, business, customer, `${i}${'z'.repeat(4095)}`);
      await openai.waitFor(() => chats().length === i + 1, 15_000);
    }
    for (const [i, request] of chats().entries()) {
      const messages = request.body!.messages as ChatMessage[];
      expect(messages[0]).toEqual({ role: 'system', content: systemPrompt });
      const newest = messages[messages.length - 1]!;
      expect(newest.role).toBe('user');
      const content = newest.content as string;
      expect(content.startsWith(String(i))).toBe(true);
      expect(content.length).toBeLessThan(MAX_CUSTOMER_MESSAGE_CHARS + 10);
      expect(estimatePromptTokens(messages)).toBeLessThanOrEqual(1500);
    }
    // By the fourth reply, three capped customer messages and three replies do not fit: the first message is gone.
    const last = chats()[3]!.body!.messages as ChatMessage[];
    expect(last.some((m) => m.role === 'user' && (m.content as string).startsWith('0'))).toBe(false);
  });
});
