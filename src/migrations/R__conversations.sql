-- The rules every writer of a conversation shares, each written once: find or create the
-- active conversation, append a message, whether the bot may answer, a human taking over.
-- Filing (R__filing.sql), record_reply (R__replies.sql) and models/Message.ts call these;
-- nothing else restates them. Repeatable: re-applied whenever this file changes (README.md).

-- The active conversation of a customer on a number, under its row lock until the caller's
-- transaction ends, created if missing. For a caller about to append a message: a conversation
-- created here already holds that message's sequence number (held_sequence_no = 1, NULL when
-- found), since an UPDATE right after the INSERT would write every index of the row a second
-- time. Two first messages racing on the partial unique index: the loser waits for the
-- winner's commit, then finds its row.
CREATE OR REPLACE FUNCTION find_or_create_conversation(
  p_number phone_numbers, p_customer_id text, p_customer_name text,
  OUT conversation conversations, OUT held_sequence_no integer)
LANGUAGE plpgsql AS $$
BEGIN
  LOOP
    SELECT * INTO conversation FROM conversations c
     WHERE c.phone_number_id = p_number.id AND c.customer_external_id = p_customer_id AND c.is_active
       FOR UPDATE;
    IF FOUND THEN
      RETURN;
    END IF;
    INSERT INTO conversations (user_id, phone_number_id, agent_id, channel, customer_external_id, customer_name,
                               last_sequence_no, last_message_at)
    VALUES (p_number.user_id, p_number.id, p_number.agent_id, p_number.channel, p_customer_id, p_customer_name, 1, now())
    ON CONFLICT (phone_number_id, customer_external_id) WHERE is_active DO NOTHING
    RETURNING * INTO conversation;
    IF FOUND THEN
      held_sequence_no := 1;
      RETURN;
    END IF;
  END LOOP;
END $$;

-- Appends a message to a conversation: the conversation's counter gives it the next
-- sequence_no, and last_message_at moves. The counter's UPDATE holds the conversation's row
-- lock until the caller's transaction ends, so concurrent writers get distinct, consecutive
-- numbers in commit order; a failed insert (a duplicate external_id) fails the caller's
-- statement, counter included. It does not look at is_active or bot_paused: callers decide
-- whether the conversation may take the message. p_held_sequence_no: the number a
-- conversation created for this very message already holds (find_or_create_conversation).
-- A customer's message also moves last_customer_message_at, the start of the customer-service
-- window (025_customer_window.sql): Meta's timestamp, never later than now.
CREATE OR REPLACE FUNCTION append_message(
  p_conversation conversations, p_direction text, p_author text, p_type text, p_text text, p_payload jsonb, p_status text,
  p_external_id text DEFAULT NULL, p_reply_to uuid DEFAULT NULL, p_external_ts timestamptz DEFAULT NULL,
  p_error_code text DEFAULT NULL, p_error_message text DEFAULT NULL, p_held_sequence_no integer DEFAULT NULL)
RETURNS messages LANGUAGE plpgsql AS $$
DECLARE
  v_sequence integer := p_held_sequence_no;
  v_customer_at timestamptz;
  v_message messages;
BEGIN
  IF p_direction = 'inbound' THEN
    v_customer_at := LEAST(COALESCE(p_external_ts, now()), now());
  END IF;
  IF v_sequence IS NULL THEN
    UPDATE conversations c
       SET last_sequence_no = c.last_sequence_no + 1, last_message_at = now(),
           last_customer_message_at = GREATEST(c.last_customer_message_at, v_customer_at)
     WHERE c.id = p_conversation.id
    RETURNING c.last_sequence_no INTO v_sequence;
  ELSIF v_customer_at IS NOT NULL THEN
    -- The conversation was created for this message: only its first message pays a second write.
    UPDATE conversations c SET last_customer_message_at = GREATEST(c.last_customer_message_at, v_customer_at)
     WHERE c.id = p_conversation.id;
  END IF;
  INSERT INTO messages (user_id, conversation_id, sequence_no, channel, direction, author, type, text, payload, status,
                        external_id, reply_to_message_id, error_code, error_message, external_timestamp)
  VALUES (p_conversation.user_id, p_conversation.id, v_sequence, p_conversation.channel, p_direction, p_author, p_type, p_text,
          p_payload, p_status, p_external_id, p_reply_to, p_error_code, p_error_message, p_external_ts)
  RETURNING * INTO v_message;
  RETURN v_message;
END $$;

-- Whether a customer message is to be answered: NULL when it is, else why not, the first
-- that holds of 'unanswerable' (the message itself is nothing to answer, a verdict the
-- webhook passes down as p_answerable), 'conversation_archived', 'bot_paused', 'no_agent'
-- (none, or archived) and 'number_unlinked' (the number is deleted or serves another agent).
-- Filing a message (pending or ignored), record_reply (under the conversation's lock) and the
-- message worker before a model call (loadReplyTurn) all ask here. A NULL p_answerable counts
-- as answerable.
CREATE OR REPLACE FUNCTION reason_not_to_answer(p_conversation conversations, p_answerable boolean DEFAULT true)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT p_answerable THEN
    RETURN 'unanswerable';
  ELSIF NOT p_conversation.is_active THEN
    RETURN 'conversation_archived';
  ELSIF p_conversation.bot_paused THEN
    RETURN 'bot_paused';
  ELSIF NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = p_conversation.agent_id AND a.archived_at IS NULL) THEN
    RETURN 'no_agent';
  ELSIF NOT EXISTS (SELECT 1 FROM phone_numbers p
                     WHERE p.id = p_conversation.phone_number_id AND p.deleted_at IS NULL AND p.agent_id = p_conversation.agent_id) THEN
    RETURN 'number_unlinked';
  END IF;
  RETURN NULL;
END $$;

-- A human's message from the business side (the API, or an echo of the business app): it is
-- appended and the bot is paused, in the caller's transaction under the conversation's row
-- lock, so once the human has spoken no bot reply slips in (record_reply checks the pause
-- under the same lock).
CREATE OR REPLACE FUNCTION record_human_message(
  p_conversation conversations, p_type text, p_text text, p_payload jsonb, p_status text,
  p_external_id text DEFAULT NULL, p_external_ts timestamptz DEFAULT NULL, p_held_sequence_no integer DEFAULT NULL)
RETURNS messages LANGUAGE plpgsql AS $$
DECLARE
  v_message messages;
BEGIN
  v_message := append_message(p_conversation, 'outbound', 'human', p_type, p_text, p_payload, p_status,
                              p_external_id => p_external_id, p_external_ts => p_external_ts, p_held_sequence_no => p_held_sequence_no);
  -- Written only when it changes: a human writing on in a taken-over conversation costs no second row version.
  UPDATE conversations c SET bot_paused = true WHERE c.id = p_conversation.id AND NOT c.bot_paused;
  RETURN v_message;
END $$;
