/**
 * What the model reads for a reply: the agent's system prompt, then the conversation's recent
 * history in the roles the chat API expects, within the agent's prompt budget. Pure reply
 * logic; `openaiService.ts` only sends it.
 *
 * Two bounds keep a reply's cost and its fit in the model's context window in the agent's hands,
 * whatever customers send:
 * - each customer message is cut to `MAX_CUSTOMER_MESSAGE_CHARS` characters before the model
 *   sees it (the stored message keeps every character);
 * - the whole prompt is kept within the agent's `max_prompt_tokens` (default 8000) by leaving
 *   out the oldest turns first. Tokens are estimated, not counted: `estimateTokens` below.
 */
import type { ChatContentPart, ChatMessage } from './openaiService';

/** One message of the history as the reply turn sees it, already rendered to text (or null). */
export interface HistoryMessage {
  author: 'customer' | 'agent' | 'human';
  text: string | null;
  /** A customer's image for the model to see, as a data URL (issue 16: agents with `vision`). */
  image?: string | undefined;
}

/**
 * What an image is counted as: OpenAI prices a low-detail image at a fixed number of tokens, up to
 * a few thousand on the small models (gpt-4o-mini: 2833), so the hold covers the dearest of them;
 * the model reports what it really cost.
 */
export const TOKENS_PER_IMAGE = 3_000;

/**
 * The estimate's rule: one token per 4 UTF-16 characters, rounded up, plus 4 tokens per message
 * for the chat format's framing of it. About right for English with OpenAI's tokenizers, high
 * for most other text, low for text dense in emoji or CJK characters; it needs no tokenizer
 * per model, and a model that counts otherwise reports its real usage, which is what is charged.
 */
export const CHARS_PER_TOKEN = 4;
export const TOKENS_PER_MESSAGE = 4;

/** Estimated tokens of a text (see `CHARS_PER_TOKEN`). */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/** Estimated prompt tokens of a chat, framing included. */
export function estimatePromptTokens(messages: ReadonlyArray<ChatMessage>): number {
  return messages.reduce((sum, message) => sum + TOKENS_PER_MESSAGE + estimateContentTokens(message.content), 0);
}

function estimateContentTokens(content: string | ChatContentPart[]): number {
  if (typeof content === 'string') return estimateTokens(content);
  return content.reduce((sum, part) => sum + (part.type === 'text' ? estimateTokens(part.text) : TOKENS_PER_IMAGE), 0);
}

/**
 * The most characters of one customer message the model sees (about 500 tokens by the rule
 * above): a WhatsApp text can be 4096 characters and a voice note's transcript far more, and
 * each would otherwise be paid for again on every later reply that reads it.
 */
export const MAX_CUSTOMER_MESSAGE_CHARS = 2000;
/** Tells the model (and whoever reads the prompt) that the customer wrote more. */
export const CUT_MARK = ' […]';

/** `text` cut to `MAX_CUSTOMER_MESSAGE_CHARS`, never inside a surrogate pair, marked when cut. */
export function capCustomerText(text: string): string {
  if (text.length <= MAX_CUSTOMER_MESSAGE_CHARS) return text;
  let end = MAX_CUSTOMER_MESSAGE_CHARS;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}${CUT_MARK}`;
}

/**
 * Pure: the system prompt, then the newest messages with text (at most `historyLimit`, each
 * customer message capped), oldest first, as many as fit `maxPromptTokens` with the system
 * prompt counted in. The system prompt always goes, and so does the newest message (the one
 * being answered) even when the two alone are over the budget; between them, the oldest turns
 * are left out first.
 *
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
  /** Omitted: no token budget (the message count alone bounds the history). */
  maxPromptTokens?: number | undefined;
}): ChatMessage[] {
  const system: ChatMessage[] = input.systemPrompt.trim() !== '' ? [{ role: 'system', content: input.systemPrompt }] : [];
  const limit = Math.max(0, Math.floor(input.historyLimit));
  if (limit === 0) return system;
  const withText = input.history.filter((m): m is HistoryMessage & { text: string } => m.text !== null && m.text.trim() !== '');
  const turns: ChatMessage[] = withText.slice(-limit).map((message): ChatMessage => {
    if (message.author !== 'customer') return { role: 'assistant', content: message.text };
    const text = capCustomerText(message.text);
    // Low detail: a fixed, small price per image, and enough to tell what a photo shows.
    return message.image
      ? { role: 'user', content: [{ type: 'text', text }, { type: 'image_url', image_url: { url: message.image, detail: 'low' } }] }
      : { role: 'user', content: text };
  });

  let budget = (input.maxPromptTokens ?? Number.POSITIVE_INFINITY) - estimatePromptTokens(system);
  let first = turns.length;
  // Newest first, so what is cut is the oldest; the newest turn goes whatever it costs.
  while (first > 0) {
    const cost = estimatePromptTokens([turns[first - 1]!]);
    if (first < turns.length && cost > budget) break;
    budget -= cost;
    first--;
  }
  return [...system, ...turns.slice(first)];
}
