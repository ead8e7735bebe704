/**
 * Messages as the tenant API sees them: reading a conversation's history and recording a
 * human's reply. Sending is the message worker's job; this module never calls a channel.
 */
import { findConversation, lockConversation, type Conversation } from '../models/Conversation';
import { insertHumanMessage, insertMessage, listMessages as listMessageRows, retryFailedMessages, type Message } from '../models/Message';
import { conflict, notFound, optedOut, validationError, windowClosed } from '../utils/errors';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import { withTransaction } from '../utils/database';
import { enqueueConversations } from '../utils/queue';
import { currentContext } from '../utils/context';
import { logger } from '../utils/logger';

/** The conversation's messages in sequence order; the cursor names the last sequence_no of a page. */
export async function listMessages(userId: string, conversationId: string, page: PageRequest): Promise<Page<Message>> {
  const afterSequenceNo = page.cursor === undefined ? undefined : decodeCursor<number>(page.cursor, 'integer');
  // An empty list must mean "no messages yet", never "not yours": check ownership first.
  if (!(await findConversation(userId, conversationId))) throw notFound('Conversation');
  const rows = await listMessageRows(userId, conversationId, { limit: page.limit, afterSequenceNo });
  return toPage(rows, page.limit, (row) => row.sequenceNo);
}

/**
 * Records a human's message from the business side as `queued` and pauses the bot, in one
 * transaction (CONTRACT §4.6; the takeover itself is record_human_message, which the Instagram
 * echo uses too): once the human has spoken, no bot reply may slip in between.
 * The message worker sends queued human messages; it is nudged once the message is committed
 * (if Redis is down, its sweeper finds the message anyway). The conversation's row lock is taken first
 * so an archive cannot land between the `is_active` check and the insert.
 * Throws `not_found` for another tenant's conversation, `conflict` for an archived one: its
 * channel conversation is over and a new one starts only when the customer writes;
 * `opted_out` when the customer opted out on the number, `window_closed` outside their 24 h.
 */
export async function sendHumanMessage(userId: string, conversationId: string, text: string): Promise<Message> {
  const message = await withTransaction(async (tx) => {
    const conversation = await lockConversation(userId, conversationId, tx);
    if (!conversation) throw notFound('Conversation');
    if (!conversation.isActive) throw conflict('The conversation is archived; it can no longer take messages');
    if (conversation.optedOut) throw optedOut();
    // Refused at once: Meta would refuse it anyway (131047), after a pause the human did not mean.
    if (!windowOpen(conversation)) throw windowClosed();
    return insertHumanMessage(userId, conversationId, { type: 'text', text, status: 'queued' }, tx);
  });
  await nudge(userId, conversationId, message.id);
  return message;
}

/** Whether free text may go to the customer now: their newest message is less than 24 h old. */
export function windowOpen(conversation: Pick<Conversation, 'windowExpiresAt'>, now: number = Date.now()): boolean {
  return conversation.windowExpiresAt !== null && conversation.windowExpiresAt.getTime() > now;
}

/** A WhatsApp message template as Meta's send API takes it (`type: "template"`). */
export interface TemplateToSend {
  name: string;
  /** Meta's `language.code`, e.g. `en_US`. */
  language: string;
  /** Meta's `components` (header, body and button parameters), passed through as given. */
  components?: unknown[] | undefined;
}

/**
 * Queues a WhatsApp template message, the one kind of send Meta allows outside the 24 h
 * window; the message worker sends it like any queued message (parts, statuses, failures with
 * Meta's code). It is the business writing, so its author is `human`, but it does not pause the
 * bot: a template is how a business re-opens a conversation, and the customer's answer is the
 * bot's to take. Throws `not_found`, `conflict` (archived), `opted_out`, `validation_error` on Instagram.
 */
export async function sendTemplate(userId: string, conversationId: string, template: TemplateToSend): Promise<Message> {
  const message = await withTransaction(async (tx) => {
    const conversation = await lockConversation(userId, conversationId, tx);
    if (!conversation) throw notFound('Conversation');
    if (conversation.channel !== 'whatsapp') {
      throw validationError([{ path: 'name', message: 'templates are a WhatsApp feature' }], 'Templates can only be sent on WhatsApp; this conversation is on Instagram');
    }
    if (!conversation.isActive) throw conflict('The conversation is archived; it can no longer take messages');
    if (conversation.optedOut) throw optedOut();
    return insertMessage(
      userId,
      conversationId,
      {
        direction: 'outbound',
        author: 'human',
        type: 'template',
        // What the history (and the model) shows for it: the template's name.
        text: template.name,
        payload: { template: { name: template.name, language: { code: template.language }, ...(template.components ? { components: template.components } : {}) } },
        status: 'queued',
      },
      tx,
    );
  });
  await nudge(userId, conversationId, message.id);
  return message;
}

/** The message worker sends queued messages; if Redis is down, its sweeper finds them anyway. */
async function nudge(userId: string, conversationId: string, messageId?: string): Promise<void> {
  await enqueueConversations([{ conversationId, userId, ...(messageId ? { messageId } : {}), requestId: currentContext()?.requestId }]).catch((error: Error) =>
    logger.warn({ err: { message: error.message } }, 'could not queue the message; the sweeper will'),
  );
}

/**
 * Tries the conversation's `failed` messages again (after an outage, or a cause fixed since):
 * inbound back to `pending`, outbound back to `queued`, then the conversation is nudged. The
 * worker's usual rules apply again: the stale cut-off, the takeover check before a bot reply
 * goes, credits. `not_found` for another tenant's conversation, `conflict` when nothing failed.
 */
export async function retryFailed(userId: string, conversationId: string): Promise<Message[]> {
  const retried = await withTransaction(async (tx) => {
    if (!(await lockConversation(userId, conversationId, tx))) throw notFound('Conversation');
    return retryFailedMessages(userId, conversationId, tx);
  });
  if (retried.length === 0) throw conflict('The conversation has no failed messages to retry');
  await nudge(userId, conversationId);
  return retried;
}
