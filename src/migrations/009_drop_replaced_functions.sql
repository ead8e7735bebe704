-- Functions no R__ file defines any more. ingest_customer_messages (a batch filing) lost its
-- last caller to the inbox; lock_active_conversation is find_or_create_conversation now
-- (R__conversations.sql), which creates a conversation already holding its first message's
-- number.
DROP FUNCTION IF EXISTS ingest_customer_messages(jsonb);
DROP FUNCTION IF EXISTS lock_active_conversation(phone_numbers, text, text);
