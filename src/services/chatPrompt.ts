/**
 * What the model reads for a reply: the agent's system prompt, then the conversation's recent
 * history in the roles the chat API expects. Pure reply logic; `openaiService.ts` only sends it.
 */
import type { ChatMessage } from './openaiService';

/** One message of the history as the reply turn sees it, already rendered to text (or null). */
export interface HistoryMessage {
  author: 'customer' | 'agent' | 'human';
  text: string | null;
}

/**
 * Pure: the system prompt, then the last `historyLimit` messages that have text, oldest first.
 * Customers speak as `user`; the agent and a human writing from the business side both speak as
 * `assistant`, since to the customer they are one voice and the model should continue it.
 * The caller renders non-text messages first (`replyService.renderForModel`: an image arrives
 * here as "[image]" or "[image] its caption"), so only messages with no text at all (null or
 * blank) are left out, before counting, so they do not eat the history budget.
 */
export function buildChatMessages(input: {
  systemPrompt: string;
  history: ReadonlyArray<HistoryMessage>;
  historyLimit: number;
}): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (input.systemPrompt.trim() !== '') messages.push({ role: 'system', content: input.systemPrompt });
  const limit = Math.max(0, Math.floor(input.historyLimit));
  if (limit === 0) return messages;
  const withText = input.history.filter((m): m is HistoryMessage & { text: string } => m.text !== null && m.text.trim() !== '');
  for (const message of withText.slice(-limit)) {
    messages.push({ role: message.author === 'customer' ? 'user' : 'assistant', content: message.text });
  }
  return messages;
}
