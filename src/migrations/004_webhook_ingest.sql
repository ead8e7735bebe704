-- The webhook's hot path: recording one event from Meta is one round trip. Each function
-- runs as a single statement, so it is atomic on its own; the unique index on
-- messages (channel, external_id) is the dedupe across Meta's whole retry horizon.

-- Outbound status order; 'failed' is terminal and ranks above everything.
CREATE FUNCTION outbound_status_rank(status text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE -1 END
$$;

-- The active conversation of a customer on a number, created if missing, locked for the
-- caller's statement. Two concurrent first messages race on the partial unique index; the
-- loser waits for the winner's commit, then finds its row.
CREATE FUNCTION lock_active_conversation(p_number phone_numbers, p_customer_id text, p_customer_name text)
RETURNS conversations LANGUAGE plpgsql AS $$
DECLARE
  conversation conversations;
BEGIN
  LOOP
    SELECT * INTO conversation FROM conversations
     WHERE phone_number_id = p_number.id AND customer_external_id = p_customer_id AND is_active
     FOR UPDATE;
    IF FOUND THEN
      RETURN conversation;
    END IF;
    INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id, customer_name)
    VALUES (p_number.user_id, p_number.id, p_number.agent_id, p_number.channel, p_customer_id, p_customer_name)
    ON CONFLICT (phone_number_id, customer_external_id) WHERE is_active DO NOTHING
    RETURNING * INTO conversation;
    IF FOUND THEN
      RETURN conversation;
    END IF;
  END LOOP;
END $$;

-- Records a customer's message. outcome: 'unknown_account' | 'duplicate' | 'recorded'.
-- status 'pending' means a reply is owed; 'ignored' means stored only (no agent linked,
-- bot paused, or nothing to answer such as a reaction).
CREATE FUNCTION ingest_customer_message(
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
  conversation := lock_active_conversation(num, p_customer_id, p_customer_name);
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
  new_status := CASE WHEN num.agent_id IS NULL OR conversation.bot_paused OR NOT p_answerable THEN 'ignored' ELSE 'pending' END;
  INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, payload,
                        status, external_id, external_timestamp)
  VALUES (num.user_id, conversation.id, next_sequence, 'inbound', 'customer', p_channel, p_type, p_text, p_payload,
          new_status, p_external_id, p_external_ts)
  RETURNING id INTO new_id;
  RETURN QUERY SELECT 'recorded', num.user_id, conversation.id, new_id, new_status, next_sequence;
END $$;

-- Records a message the business sent from outside our API (an Instagram echo). Our own
-- sends echo back too: those are recognised by their id, or, when the echo outruns the
-- worker's commit of that id, by matching an unsent reply's text. A human's message pauses
-- the bot for the conversation (CONTRACT §4.6).
-- outcome: 'unknown_account' | 'duplicate' | 'own_echo' | 'recorded'.
CREATE FUNCTION ingest_business_echo(
  p_channel text, p_account_id text, p_customer_id text, p_external_id text,
  p_type text, p_text text, p_payload jsonb, p_external_ts timestamptz)
RETURNS TABLE (outcome text, user_id uuid, conversation_id uuid, message_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
  conversation conversations;
  next_sequence integer;
  own_id uuid;
  new_id uuid;
BEGIN
  SELECT * INTO num FROM phone_numbers pn
   WHERE pn.channel = p_channel AND pn.external_id = p_account_id AND pn.deleted_at IS NULL
   -- A relink (FOR UPDATE on the number) waits for this message, or this message for the
   -- relink: never a message filed into a conversation the relink is archiving.
   FOR KEY SHARE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown_account', NULL::uuid, NULL::uuid, NULL::uuid;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_channel AND m.external_id = p_external_id) THEN
    RETURN QUERY SELECT 'duplicate', num.user_id, NULL::uuid, NULL::uuid;
    RETURN;
  END IF;
  conversation := lock_active_conversation(num, p_customer_id, NULL);
  SELECT m.id INTO own_id FROM messages m
   WHERE m.conversation_id = conversation.id AND m.direction = 'outbound' AND m.author IN ('agent', 'human')
     AND (
       -- A later part of a reply split in several: only the first part's id is external_id.
       (m.payload -> 'external_ids') ? p_external_id
       -- Graph answered, but the worker has not stored the id yet.
       OR (m.external_id IS NULL AND m.status IN ('queued', 'sent')
           AND p_text IS NOT NULL AND p_text <> '' AND position(p_text IN m.text) > 0
           AND m.created_at > now() - interval '10 minutes')
     )
   ORDER BY m.sequence_no DESC LIMIT 1;
  IF FOUND THEN
    RETURN QUERY SELECT 'own_echo', num.user_id, conversation.id, own_id;
    RETURN;
  END IF;
  UPDATE conversations c
     SET last_sequence_no = c.last_sequence_no + 1, last_message_at = now(), bot_paused = true
   WHERE c.id = conversation.id
  RETURNING c.last_sequence_no INTO next_sequence;
  INSERT INTO messages (user_id, conversation_id, sequence_no, direction, author, channel, type, text, payload,
                        status, external_id, external_timestamp)
  VALUES (num.user_id, conversation.id, next_sequence, 'outbound', 'human', p_channel, p_type, p_text, p_payload,
          'sent', p_external_id, p_external_ts)
  RETURNING id INTO new_id;
  RETURN QUERY SELECT 'recorded', num.user_id, conversation.id, new_id;
END $$;

-- Many customer messages in one statement, so concurrent webhooks share one round trip and one
-- commit (the webhook batches what arrives while a previous batch is in flight). Items are
-- taken in one global order (account, customer, then arrival), so two batches that touch the
-- same conversations lock them in the same order and cannot deadlock; within a conversation,
-- arrival order is kept.
CREATE FUNCTION ingest_customer_messages(p_batch jsonb)
RETURNS TABLE (ordinal bigint, outcome text, user_id uuid, conversation_id uuid, message_id uuid, status text, sequence_no integer)
LANGUAGE plpgsql AS $$
DECLARE
  item record;
BEGIN
  FOR item IN
    SELECT e.value AS v, e.ordinality AS n FROM jsonb_array_elements(p_batch) WITH ORDINALITY e
     ORDER BY e.value->>'channel', e.value->>'account_id', e.value->>'customer_id', e.ordinality
  LOOP
    RETURN QUERY
      SELECT item.n, r.outcome, r.user_id, r.conversation_id, r.message_id, r.status, r.sequence_no
        FROM ingest_customer_message(
          item.v->>'channel', item.v->>'account_id', item.v->>'customer_id', item.v->>'customer_name',
          item.v->>'external_id', item.v->>'type', item.v->>'text', item.v->'payload',
          (item.v->>'timestamp')::timestamptz, (item.v->>'answerable')::boolean) r;
  END LOOP;
END $$;
