-- Filing: what Meta's webhook accepted becomes messages of conversations. Each function runs
-- as a single statement, so it is atomic on its own; the unique index on messages (channel,
-- external_id) is the dedupe across Meta's whole retry horizon. The conversation rules they
-- follow (find or create, append, answer or not, a human taking over) are R__conversations.sql.
-- Repeatable: re-applied whenever this file changes (see README.md).

-- The live number Meta's account id names (NULL fields when none), held FOR KEY SHARE until the
-- caller's transaction ends: a relink (FOR UPDATE on the number) waits for the message being
-- filed, or the message for the relink, so a message is never filed into a conversation the
-- relink is archiving.
CREATE OR REPLACE FUNCTION live_number(p_channel text, p_account_id text) RETURNS phone_numbers LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
BEGIN
  SELECT * INTO num FROM phone_numbers pn
   WHERE pn.channel = p_channel AND pn.external_id = p_account_id AND pn.deleted_at IS NULL
     FOR KEY SHARE;
  RETURN num;
END $$;

-- Records a customer's message, routed by Meta's account id to the live number that has it now
-- (tests and direct callers; the worker files by the number the webhook routed to: file_inbox).
-- outcome: 'unknown_account' | 'duplicate' | 'recorded'.
CREATE OR REPLACE FUNCTION ingest_customer_message(
  p_channel text, p_account_id text, p_customer_id text, p_customer_name text, p_external_id text,
  p_type text, p_text text, p_payload jsonb, p_external_ts timestamptz, p_answerable boolean)
RETURNS TABLE (outcome text, user_id uuid, conversation_id uuid, message_id uuid, status text, sequence_no integer)
LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
BEGIN
  num := live_number(p_channel, p_account_id);
  IF num.id IS NULL THEN
    RETURN QUERY SELECT 'unknown_account', NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;
  RETURN QUERY SELECT * FROM file_customer_message(num, p_customer_id, p_customer_name, p_external_id, p_type, p_text,
                                                   p_payload, p_external_ts, p_answerable);
END $$;

-- Records a customer's message on the number given, whoever has Meta's account now: a message
-- belongs to the tenant whose number it reached when the webhook accepted it (CONTRACT §4.10),
-- even if that number was deleted and the account registered by another tenant since. On a
-- deleted number it joins the customer's latest conversation there (archived by the delete),
-- or a new archived one, and is stored, never answered. The caller holds p_number FOR KEY SHARE.
-- status 'pending' means a reply is owed; 'ignored' means stored only (reason_not_to_answer:
-- nothing to answer such as a reaction, no agent linked, bot paused, conversation archived).
-- outcome: 'duplicate' | 'recorded'.
CREATE OR REPLACE FUNCTION file_customer_message(
  p_number phone_numbers, p_customer_id text, p_customer_name text, p_external_id text,
  p_type text, p_text text, p_payload jsonb, p_external_ts timestamptz, p_answerable boolean)
RETURNS TABLE (outcome text, user_id uuid, conversation_id uuid, message_id uuid, status text, sequence_no integer)
LANGUAGE plpgsql AS $$
DECLARE
  found_conversation record;
  conversation conversations;
  held_sequence_no integer;
  new_status text;
  appended messages;
  keyword text;
BEGIN
  -- Checked again under the conversation lock below; this first look spares retries the lock.
  IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_number.channel AND m.external_id = p_external_id) THEN
    RETURN QUERY SELECT 'duplicate', p_number.user_id, NULL::uuid, NULL::uuid, NULL::text, NULL::integer;
    RETURN;
  END IF;
  IF p_number.deleted_at IS NULL THEN
    SELECT * INTO found_conversation FROM find_or_create_conversation(p_number, p_customer_id, p_customer_name);
    conversation := found_conversation.conversation;
    held_sequence_no := found_conversation.held_sequence_no;
  ELSE
    SELECT * INTO conversation FROM conversations c
     WHERE c.user_id = p_number.user_id AND c.phone_number_id = p_number.id AND c.customer_external_id = p_customer_id
     ORDER BY c.created_at DESC LIMIT 1
       FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id, customer_name,
                                 is_active, archived_at, archive_reason, last_sequence_no, last_message_at)
      VALUES (p_number.user_id, p_number.id, NULL, p_number.channel, p_customer_id, p_customer_name,
              false, now(), 'phone_number_deleted', 1, now())
      RETURNING * INTO conversation;
      held_sequence_no := 1;
    END IF;
  END IF;
  IF held_sequence_no IS NULL THEN
    IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_number.channel AND m.external_id = p_external_id) THEN
      RETURN QUERY SELECT 'duplicate', p_number.user_id, conversation.id, NULL::uuid, NULL::text, NULL::integer;
      RETURN;
    END IF;
    -- The customer's newest name; and an active conversation begun while no agent was linked
    -- is taken over by the agent linked since. Written only when something changes.
    IF (p_customer_name IS NOT NULL AND p_customer_name IS DISTINCT FROM conversation.customer_name)
       OR (conversation.is_active AND conversation.agent_id IS NULL AND p_number.agent_id IS NOT NULL) THEN
      UPDATE conversations c
         SET customer_name = COALESCE(p_customer_name, c.customer_name),
             agent_id = CASE WHEN c.is_active THEN COALESCE(c.agent_id, p_number.agent_id) ELSE c.agent_id END
       WHERE c.id = conversation.id
      RETURNING * INTO conversation;
    END IF;
  END IF;
  -- Keywords act before the message is judged. Opting out (opt_out_keywords) leaves it
  -- unanswered, as everything after it, and queues one confirmation; opting in
  -- (opt_in_keywords) lets it be answered; a customer asking for a human (handoff_keywords)
  -- pauses the bot: the message is ignored, and the bot says nothing more until resumed.
  IF conversation.is_active THEN
    keyword := customer_keyword(conversation, p_text);
    IF keyword = 'opt_in' THEN
      PERFORM opt_in_customer(conversation);
    ELSIF keyword = 'handoff' AND NOT conversation.bot_paused THEN
      SELECT * INTO conversation FROM pause_bot(conversation.user_id, conversation.id, 'keyword');
    END IF;
  END IF;
  new_status := CASE WHEN keyword IS DISTINCT FROM 'opt_out' AND reason_not_to_answer(conversation, p_answerable) IS NULL
                     THEN 'pending' ELSE 'ignored' END;
  appended := append_message(conversation, 'inbound', 'customer', p_type, p_text, p_payload, new_status,
                             p_external_id => p_external_id, p_external_ts => p_external_ts,
                             p_held_sequence_no => held_sequence_no);
  -- Nested, not AND: SQL does not short-circuit, and a NULL keyword would still opt out.
  IF keyword = 'opt_out' THEN
    IF opt_out_customer(conversation, appended.id) THEN
      PERFORM queue_opt_out_confirmation(conversation, appended.id);
    END IF;
  END IF;
  RETURN QUERY SELECT 'recorded', p_number.user_id, conversation.id, appended.id, new_status, appended.sequence_no;
END $$;

-- Records a message the business sent from outside our API (an Instagram echo). Our own
-- sends echo back too: those are recognised by the id Graph returned for them. An echo that
-- comes while a part of ours is in flight in that conversation (sent less than p_grace_ms
-- ago, its id not stored yet) is parked until the sender stores its id ('parked'); any other
-- echo is a human's message, and pauses the bot for the conversation (record_human_message;
-- CONTRACT §4.6).
-- outcome: 'unknown_account' | 'duplicate' | 'own_echo' | 'parked' | 'recorded'.
CREATE OR REPLACE FUNCTION ingest_business_echo(
  p_channel text, p_account_id text, p_customer_id text, p_external_id text,
  p_type text, p_text text, p_payload jsonb, p_external_ts timestamptz, p_grace_ms integer)
RETURNS TABLE (outcome text, user_id uuid, conversation_id uuid, message_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
  found_conversation record;
  conversation conversations;
  own_id uuid;
  appended messages;
BEGIN
  num := live_number(p_channel, p_account_id);
  IF num.id IS NULL THEN
    RETURN QUERY SELECT 'unknown_account', NULL::uuid, NULL::uuid, NULL::uuid;
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM messages m WHERE m.channel = p_channel AND m.external_id = p_external_id)
     OR EXISTS (SELECT 1 FROM parked_echoes pe WHERE pe.channel = p_channel AND pe.external_id = p_external_id) THEN
    RETURN QUERY SELECT 'duplicate', num.user_id, NULL::uuid, NULL::uuid;
    RETURN;
  END IF;
  SELECT * INTO found_conversation FROM find_or_create_conversation(num, p_customer_id, NULL);
  conversation := found_conversation.conversation;
  -- A conversation created just now has no reply of ours to recognise.
  IF found_conversation.held_sequence_no IS NULL THEN
    own_id := echoed_part_message(conversation.id, p_channel, p_external_id);
    IF own_id IS NOT NULL THEN
      RETURN QUERY SELECT 'own_echo', num.user_id, conversation.id, own_id;
      RETURN;
    END IF;
    -- A part of ours is on its way to Graph here (marked `sending` within the grace): this may
    -- be it, come back before its sender stored Graph's id. Parked until we know: the sender
    -- storing this id makes it ours; no part in flight any more makes it a human's
    -- (record_part_sent, flush_parked_echoes, R__sending.sql). The conversation's row lock, held
    -- here and taken by record_part_sent, keeps the two from missing each other.
    -- (Instagram only: its sends are the ones whose echoes come back, and whose record takes the lock.)
    IF p_channel = 'instagram' AND EXISTS (SELECT 1 FROM outbound_parts op JOIN messages m ON m.id = op.message_id
                WHERE op.status = 'sending' AND op.channel = p_channel AND m.conversation_id = conversation.id
                  AND op.sending_since > now() - make_interval(secs => p_grace_ms / 1000.0)) THEN
      INSERT INTO parked_echoes (channel, external_id, user_id, conversation_id, type, text, payload, external_ts)
      VALUES (p_channel, p_external_id, num.user_id, conversation.id, p_type, p_text, p_payload, p_external_ts)
      ON CONFLICT DO NOTHING;
      RETURN QUERY SELECT 'parked', num.user_id, conversation.id, NULL::uuid;
      RETURN;
    END IF;
  END IF;
  appended := record_human_message(conversation, p_type, p_text, p_payload, 'sent', p_external_id, p_external_ts,
                                   found_conversation.held_sequence_no);
  RETURN QUERY SELECT 'recorded', num.user_id, conversation.id, appended.id;
END $$;

-- Most refusals a row may meet before filing leaves it aside.
CREATE OR REPLACE FUNCTION inbox_max_attempts() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 5';

-- Files a customer's waiting messages on one number, oldest first, each in a subtransaction
-- so a row the database refuses does not hold back the others. Two workers filing the same
-- customer queue on the row locks and the second finds nothing left, so sequence numbers
-- follow arrival. conversation_id is where the last filed row went, else the customer's
-- active conversation (a redelivered nudge still serves what an earlier delivery filed).
CREATE OR REPLACE FUNCTION file_inbox(p_user_id uuid, p_phone_number_id uuid, p_customer_id text)
RETURNS TABLE (conversation_id uuid, filed integer, dropped integer, refused integer)
LANGUAGE plpgsql AS $$
DECLARE
  num phone_numbers;
  item inbox;
  result record;
  v_conversation uuid;
  v_filed integer := 0;
  v_dropped integer := 0;
  v_refused integer := 0;
BEGIN
  -- The number the webhook routed these rows to, deleted or not: never Meta's account id again,
  -- which may name another tenant's number by now. FOR KEY SHARE until the commit, so a relink
  -- (FOR UPDATE on the number) waits for the messages being filed, or they for it, and no message
  -- is filed into a conversation the relink is archiving.
  SELECT * INTO num FROM phone_numbers pn WHERE pn.id = p_phone_number_id AND pn.user_id = p_user_id FOR KEY SHARE;
  FOR item IN
    SELECT * FROM inbox i
     WHERE i.user_id = p_user_id AND i.phone_number_id = p_phone_number_id AND i.customer_id = p_customer_id
       AND i.attempts < inbox_max_attempts()
     ORDER BY i.id
       FOR UPDATE
  LOOP
    BEGIN
      IF num.id IS NULL THEN
        SELECT 'unknown_account'::text AS outcome, NULL::uuid AS conversation_id INTO result;
      ELSE
        SELECT * INTO result FROM file_customer_message(
          num, item.customer_id, item.event->>'customer_name', item.external_id,
          item.event->>'type', item.event->>'text', item.event->'payload', (item.event->>'timestamp')::timestamptz,
          (item.event->>'answerable')::boolean);
      END IF;
      DELETE FROM inbox i WHERE i.channel = item.channel AND i.external_id = item.external_id;
      IF result.outcome = 'recorded' THEN
        v_filed := v_filed + 1;
        v_conversation := result.conversation_id;
      ELSE
        -- A duplicate filed meanwhile (or a number gone from the table altogether).
        v_dropped := v_dropped + 1;
      END IF;
    EXCEPTION WHEN OTHERS THEN
      -- Transient trouble (deadlock, serialization, shutdown, resources) fails the call and
      -- is retried whole; only a refusal of this row counts against it.
      IF SQLSTATE LIKE '40%' OR SQLSTATE LIKE '53%' OR SQLSTATE LIKE '57%' OR SQLSTATE LIKE '08%' THEN
        RAISE;
      END IF;
      UPDATE inbox i SET attempts = i.attempts + 1, last_error = SQLSTATE || ': ' || SQLERRM
       WHERE i.channel = item.channel AND i.external_id = item.external_id;
      v_refused := v_refused + 1;
    END;
  END LOOP;
  IF v_conversation IS NULL THEN
    SELECT c.id INTO v_conversation FROM conversations c
     WHERE c.user_id = p_user_id AND c.phone_number_id = p_phone_number_id AND c.customer_external_id = p_customer_id AND c.is_active;
  END IF;
  RETURN QUERY SELECT v_conversation, v_filed, v_dropped, v_refused;
END $$;
