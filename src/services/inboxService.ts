/**
 * Filing: a customer's accepted messages move from the inbox into their conversation, in
 * arrival order (file_inbox). Called by the message worker a nudge reaches, and by the webhook
 * for numbers without an agent.
 */
import { logger } from '../utils/logger';
import { fileInbox, type InboxKey } from '../models/Inbox';

/**
 * Files the customer's waiting messages and names the conversation to serve: where they went,
 * else the customer's active conversation; null when there is none. Rows the database refuses
 * stay in the inbox (set aside after a few refusals) and never block the rest.
 */
export async function fileWaitingMessages(key: InboxKey): Promise<string | null> {
  const filed = await fileInbox(key);
  if (filed.refused > 0) {
    // The customer's id is their phone number on WhatsApp: kept out of logs.
    logger.error({ phone_number_id: key.phoneNumberId, refused: filed.refused }, 'inbox messages refused by the database; kept in the inbox');
  }
  return filed.conversationId;
}
