-- Two costs of filing a message, cut.
--
-- 1. messages.user_id had a foreign key to users besides its composite key to conversations,
--    which already pins the tenant. Each insert checked it by KEY SHARE-locking the tenant's
--    row, the row every reply's charge updates: two checks per reply on the busiest row. The
--    composite key now cascades, so deleting a tenant still removes its messages.
-- 2. A customer's first message created the conversation, then updated it for the sequence
--    number; it is now created holding it.

ALTER TABLE messages
  DROP CONSTRAINT messages_user_id_fkey,
  DROP CONSTRAINT messages_conversation_id_user_id_fkey,
  ADD CONSTRAINT messages_conversation_id_user_id_fkey
    FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id) ON DELETE CASCADE;

CREATE OR REPLACE FUNCTION ingest_customer_message(
  p_channel text, p_account_id text, p_customer_id text, p_customer_name text, p_external_id text,
  p_type text, p_text text, p_payload jsonb, p_external_ts timestamptz, p_answerable boolean)
RETURNS TABLE (outcome text, user_id uuid, conversation_id uuid, message_id uuid, status text, sequence_no integer)
LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
  conversation conversations;
  next_sequence integer;
  new_status text;
  new_id uuid;
BEGIN
  SELECT * INTO num FROM phone_numbers pn
   WHERE pn.channel = p_channel AND pn.external_id = p_account_id AND pn.deleted_at IS NULL
   -- A relink (FOR UPDATE on the number) waits for this message, or this message for the
   -- relink: never a message filed into a conversation the relink is archiving.
   FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown_account', NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;
  -- Checked again under the conversation lock below; this first look spares retries the lock.
  IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_channel AND m.external_id = p_external_id) THEN
    RETURN QUERY SELECT 'duplicate', num.user_id, NULL::uuid, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;
  -- The active conversation under its row lock, with the next sequence number. A new one is
  -- created holding this message's number already: an UPDATE right after the INSERT would
  -- write every index of the row a second time. Two first messages racing on the partial
  -- unique index: the loser waits for the winner's commit, then finds its row.
  LOOP
    SELECT * INTO conversation FROM conversations c
     WHERE c.phone_number_id = num.id AND c.customer_external_id = p_customer_id AND c.is_active
       FOR UPDATE;
    IF FOUND THEN
      IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_channel AND m.external_id = p_external_id) THEN
        RETURN QUERY SELECT 'duplicate', num.user_id, conversation.id, NULL::uuid, NULL::text, NULL::integer;
        RETURN;
      END IF;
      UPDATE conversations c
         SET last_sequence_no = c.last_sequence_no + 1,
             last_message_at = now(),
             customer_name = COALESCE(p_customer_name, c.customer_name),
             -- A conversation begun while no agent was linked is taken over by the agent linked since.
             agent_id = COALESCE(c.agent_id, num.agent_id)
       WHERE c.id = conversation.id
      RETURNING c.last_sequence_no INTO next_sequence;
      EXIT;
    END IF;
    INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id, customer_name,
                               last_sequence_no, last_message_at)
    VALUES (num.user_id, num.id, num.agent_id, num.channel, p_customer_id, p_customer_name, 1, now())
    ON CONFLICT (phone_number_id, customer_external_id) WHERE is_active DO NOTHING
    RETURNING * INTO conversation;
    IF FOUND THEN
      next_sequence := 1;
      EXIT;
    END IF;
  END LOOP;
  new_status := CASE WHEN num.agent_id IS NULL OR conversation.bot_paused OR NOT p_answerable THEN 'ignored' ELSE 'pending' END;
  INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, payload,
                        status, external_id, external_timestamp)
  VALUES (num.user_id, conversation.id, next_sequence, 'inbound', 'customer', p_channel, p_type, p_text, p_payload,
          new_status, p_external_id, p_external_ts)
  RETURNING id INTO new_id;
  RETURN QUERY SELECT 'recorded', num.user_id, conversation.id, new_id, new_status, next_sequence;
END $$;
