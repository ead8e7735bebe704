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

-- Whether the conversation's customer opted out on its number (customer_opt_outs).
-- plpgsql, not SQL, here and in keyword_matches: Postgres 15 parses and plans a SQL function
-- with a subquery at every call (it cannot inline it), and a turn asks this five times; plpgsql
-- keeps its plan for the session (tests/load/README.md, "Figures behind choices").
CREATE OR REPLACE FUNCTION customer_opted_out(p_conversation conversations) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM customer_opt_outs o
                  WHERE o.phone_number_id = p_conversation.phone_number_id
                    AND o.customer_external_id = p_conversation.customer_external_id);
END $$;

-- Whether a customer message is to be answered: NULL when it is, else why not, the first
-- that holds of 'unanswerable' (the message itself is nothing to answer, a verdict the
-- webhook passes down as p_answerable), 'conversation_archived', 'opted_out' (the customer
-- opted out on this number), 'bot_paused', 'no_agent'
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
  ELSIF customer_opted_out(p_conversation) THEN
    RETURN 'opted_out';
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

-- The bot stops answering a conversation of the tenant (CONTRACT §4.6): the one place a
-- conversation is paused, so whatever must happen on a handoff (conversation.handoff) hangs
-- here. p_by says who: 'api' (POST …/pause: always, and it stops any resume timer: an explicit
-- switch stays off until switched on), 'keyword' (the customer asked for a human: only a
-- running bot is paused; no timer, a human is awaited), 'human' (a human wrote from the
-- business side: (re)starts the agent's resume_after_minutes clock, unless the API paused it).
-- Written only when something changes. Returns the conversation as it is now (no row when the
-- tenant has no such conversation).
CREATE OR REPLACE FUNCTION pause_bot(p_user_id uuid, p_conversation_id uuid, p_by text)
RETURNS SETOF conversations LANGUAGE plpgsql AS $$
DECLARE
  v_conversation conversations;
  v_resume_after integer;
BEGIN
  SELECT * INTO v_conversation FROM conversations c WHERE c.user_id = p_user_id AND c.id = p_conversation_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF p_by = 'human' THEN
    SELECT a.resume_after_minutes INTO v_resume_after FROM agents a WHERE a.id = v_conversation.agent_id AND a.user_id = p_user_id;
  END IF;
  IF p_by = 'api'
     OR (p_by = 'keyword' AND NOT v_conversation.bot_paused)
     OR (p_by = 'human' AND v_conversation.paused_by IS DISTINCT FROM 'api') THEN
    UPDATE conversations c
       SET bot_paused = true, paused_by = p_by,
           resumes_at = CASE WHEN p_by = 'human' THEN now() + make_interval(mins => v_resume_after) END
     WHERE c.id = v_conversation.id
       AND NOT (c.bot_paused AND c.paused_by = p_by AND c.resumes_at IS NULL AND v_resume_after IS NULL)
    RETURNING * INTO v_conversation;
    IF NOT FOUND THEN
      SELECT * INTO v_conversation FROM conversations c WHERE c.id = p_conversation_id;
    END IF;
  END IF;
  RETURN NEXT v_conversation;
END $$;

-- The bot answers the conversation again: by the API (POST …/resume) or by the resume timer
-- (resume_due_conversations). The one place a conversation is resumed, so whatever must happen
-- then (conversation.resumed) hangs here. Customer messages that came while it was paused stay
-- as they were (ignored); the next one is answered. Returns the conversation as it is now.
CREATE OR REPLACE FUNCTION resume_bot(p_user_id uuid, p_conversation_id uuid)
RETURNS SETOF conversations LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY
    UPDATE conversations c SET bot_paused = false, paused_by = NULL, resumes_at = NULL
     WHERE c.user_id = p_user_id AND c.id = p_conversation_id
    RETURNING *;
END $$;

-- The resume timer, run by the message workers' sweep: every conversation a human paused whose
-- resumes_at has come is resumed (resume_bot), at most p_limit per call. Any number of workers
-- may run it at once: each row is taken under its lock, skipping those another run holds.
CREATE OR REPLACE FUNCTION resume_due_conversations(p_limit integer)
RETURNS TABLE (user_id uuid, conversation_id uuid) LANGUAGE plpgsql AS $$
DECLARE
  due record;
BEGIN
  FOR due IN
    SELECT c.user_id, c.id FROM conversations c
     WHERE c.resumes_at <= now()
     ORDER BY c.resumes_at
     LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM resume_bot(due.user_id, due.id);
    user_id := due.user_id;
    conversation_id := due.id;
    RETURN NEXT;
  END LOOP;
END $$;

-- Whether a customer's text is one of the keywords: equal ignoring case, surrounding white
-- space, and how much white space separates words ("Talk to  a human " = "talk to a human").
CREATE OR REPLACE FUNCTION keyword_matches(p_text text, p_keywords text[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_text text;
BEGIN
  IF p_text IS NULL OR p_keywords IS NULL THEN
    RETURN false;
  END IF;
  v_text := lower(regexp_replace(btrim(p_text, E' \t\r\n'), '\s+', ' ', 'g'));
  RETURN EXISTS (SELECT 1 FROM unnest(p_keywords) k
                  WHERE lower(regexp_replace(btrim(k, E' \t\r\n'), '\s+', ' ', 'g')) = v_text);
END $$;

-- The opt-out and opt-in words of a conversation without an agent: the columns' defaults
-- (027_opt_out.sql). A customer can always stop a number's messages, agent or not.
CREATE OR REPLACE FUNCTION default_opt_out_keywords() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['STOP', 'UNSUBSCRIBE'] $$;
CREATE OR REPLACE FUNCTION default_opt_in_keywords() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['START'] $$;

-- What a customer's message says to the platform rather than to the bot, by the conversation's
-- agent's keywords, the first that matches of 'opt_out' (opt_out_keywords), 'opt_in'
-- (opt_in_keywords) and 'handoff' (handoff_keywords); NULL for an ordinary message.
CREATE OR REPLACE FUNCTION customer_keyword(p_conversation conversations, p_text text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_agent agents;
BEGIN
  IF p_text IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT * INTO v_agent FROM agents a WHERE a.id = p_conversation.agent_id AND a.user_id = p_conversation.user_id;
  IF keyword_matches(p_text, CASE WHEN v_agent.id IS NULL THEN default_opt_out_keywords() ELSE v_agent.opt_out_keywords END) THEN
    RETURN 'opt_out';
  ELSIF keyword_matches(p_text, CASE WHEN v_agent.id IS NULL THEN default_opt_in_keywords() ELSE v_agent.opt_in_keywords END) THEN
    RETURN 'opt_in';
  ELSIF v_agent.id IS NOT NULL AND keyword_matches(p_text, v_agent.handoff_keywords) THEN
    RETURN 'handoff';
  END IF;
  RETURN NULL;
END $$;

-- The customer opts out on the conversation's number (the one place it happens, so whatever
-- must follow, customer.opted_out, hangs here). True when they were not opted out already: the
-- caller then queues the one confirmation (opt_out_confirmation), so a second STOP sends none.
CREATE OR REPLACE FUNCTION opt_out_customer(p_conversation conversations, p_message_id uuid DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO customer_opt_outs (user_id, phone_number_id, customer_external_id, message_id)
  VALUES (p_conversation.user_id, p_conversation.phone_number_id, p_conversation.customer_external_id, p_message_id)
  ON CONFLICT (phone_number_id, customer_external_id) DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- customer.opted_out, in this transaction: the tenant hears of it exactly when it happened.
  PERFORM emit_customer_opted_out(p_conversation.user_id, p_conversation.id, p_message_id,
    (SELECT btrim(m.text) FROM messages m WHERE m.id = p_message_id AND m.user_id = p_conversation.user_id));
  RETURN true;
END $$;

-- The customer opts back in on the conversation's number. True when they had opted out.
CREATE OR REPLACE FUNCTION opt_in_customer(p_conversation conversations) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM customer_opt_outs o
   WHERE o.phone_number_id = p_conversation.phone_number_id AND o.customer_external_id = p_conversation.customer_external_id
     AND o.user_id = p_conversation.user_id;
  RETURN FOUND;
END $$;

-- The confirmation an opted-out customer gets, once: the agent's opt_out_message, else a
-- default that names the first way back in. Queued as the agent's message, free (no ledger
-- entry), marked so the send path lets it through to a customer who opted out.
CREATE OR REPLACE FUNCTION queue_opt_out_confirmation(p_conversation conversations, p_reply_to uuid) RETURNS messages
LANGUAGE plpgsql AS $$
DECLARE
  v_agent agents;
  v_opt_in text;
BEGIN
  SELECT * INTO v_agent FROM agents a WHERE a.id = p_conversation.agent_id AND a.user_id = p_conversation.user_id;
  v_opt_in := (CASE WHEN v_agent.id IS NULL THEN default_opt_in_keywords() ELSE v_agent.opt_in_keywords END)[1];
  RETURN append_message(
    p_conversation, 'outbound', 'agent', 'text',
    COALESCE(v_agent.opt_out_message,
             'You are unsubscribed and will get no more messages from us here.'
             || CASE WHEN v_opt_in IS NULL THEN '' ELSE ' Reply ' || v_opt_in || ' to subscribe again.' END),
    '{"opt_out_confirmation": true}'::jsonb, 'queued', p_reply_to => p_reply_to);
END $$;

-- A human's message from the business side (the API, or an echo of the business app): it is
-- appended and the bot is paused (pause_bot 'human', which restarts the resume clock), in the
-- caller's transaction under the conversation's row lock, so once the human has spoken no bot
-- reply slips in (record_reply checks the pause under the same lock).
CREATE OR REPLACE FUNCTION record_human_message(
  p_conversation conversations, p_type text, p_text text, p_payload jsonb, p_status text,
  p_external_id text DEFAULT NULL, p_external_ts timestamptz DEFAULT NULL, p_held_sequence_no integer DEFAULT NULL)
RETURNS messages LANGUAGE plpgsql AS $$
DECLARE
  v_message messages;
BEGIN
  v_message := append_message(p_conversation, 'outbound', 'human', p_type, p_text, p_payload, p_status,
                              p_external_id => p_external_id, p_external_ts => p_external_ts, p_held_sequence_no => p_held_sequence_no);
  -- pause_bot writes only what changes: a human writing on in a taken-over conversation with no
  -- resume timer costs no second row version.
  PERFORM pause_bot(p_conversation.user_id, p_conversation.id, 'human');
  RETURN v_message;
END $$;
