/**
 * Messages as the tenant API sees them: reading a conversation's history and recording a
 * human's reply. Sending is the message worker's job; this module never calls a channel.
 */
import { findConversation, lockConversation } from '../models/Conversation';
import { insertHumanMessage, listMessages as listMessageRows, retryFailedMessages, type Message } from '../models/Message';
import { conflict, notFound } from '../utils/errors';
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
 * channel conversation is over and a new one starts only when the customer writes.
 */
export async function sendHumanMessage(userId: string, conversationId: string, text: string): Promise<Message> {
  const message = await withTransaction(async (tx) => {
    const conversation = await lockConversation(userId, conversationId, tx);
    if (!conversation) throw notFound('Conversation');
    if (!conversation.isActive) throw conflict('The conversation is archived; it can no longer take messages');
    return insertHumanMessage(userId, conversationId, { type: 'text', text, status: 'queued' }, tx);
  });
  await enqueueConversations([{ conversationId, userId, messageId: message.id, requestId: currentContext()?.requestId }]).catch((error: Error) =>
    logger.warn({ err: { message: error.message } }, 'could not queue the human message; the sweeper will'),
  );
  return message;
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
  await enqueueConversations([{ conversationId, userId, requestId: currentContext()?.requestId }]).catch((error: Error) =>
    logger.warn({ err: { message: error.message } }, 'could not queue the retried messages; the sweeper will'),
  );
  return retried;
}
