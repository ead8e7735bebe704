-- The customer-service window (CONTRACT §3; Meta: WhatsApp Cloud API › Customer service
-- windows): a customer's message opens 24 h in which free text may be sent to them; outside it
-- only a template may go. The newest customer message's time (Meta's timestamp, never later than
-- our receipt), kept by append_message (R__conversations.sql); the API shows it plus 24 h as
-- window_expires_at. A column, not a look-up of the newest inbound message, so listing
-- conversations and refusing a send read one row.
ALTER TABLE conversations ADD COLUMN last_customer_message_at timestamptz;

UPDATE conversations c
   SET last_customer_message_at = newest.at
  FROM (SELECT m.conversation_id, max(LEAST(COALESCE(m.external_timestamp, m.created_at), m.created_at)) AS at
          FROM messages m
         WHERE m.direction = 'inbound'
         GROUP BY m.conversation_id) newest
 WHERE newest.conversation_id = c.id;
