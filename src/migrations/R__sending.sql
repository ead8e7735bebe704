-- Exactly one copy of each part through a crash (guarantee 1): what a worker does before each
-- part goes to Graph, and how Meta's webhooks settle a part whose worker died between Graph's
-- answer and its record. Repeatable: re-applied whenever this file changes (README.md).

-- Claims part p_part_no of an outbound message for one attempt (p_token), before it is sent.
-- outcome:
--   'claimed'             the part was never sent: it is marked `sending` now (commit before the POST);
--   'cancelled'           a bot reply (or fallback) nothing of which went to Graph yet, and the
--                         bot may no longer speak there (guarantee 13: a human wrote, the
--                         conversation was paused, archived, or its number relinked or unlinked;
--                         reason_not_to_answer, checked here under the conversation's row lock,
--                         which a takeover takes too), or the message it answers is older than
--                         p_stale_seconds (outside Meta's 24 h window): it is `cancelled` and its
--                         charge refunded (cancel_bot_reply). Humans' messages are always sent;
--   'settled'             Meta has it (external_id): never send it again;
--   'settled_by_status' / 'settled_by_echo'
--                         the same, learnt from Meta after its sender died; reported once per part
--                         so /metrics counts each doubt once;
--   'in_doubt'            another attempt left it `sending` less than p_grace_ms ago: Graph may
--                         have it; ask again within wait_ms, Meta's status or echo may settle it;
--   'resent_after_grace'  nothing settled it within the grace: it is this attempt's now, to send again.
-- The tenant is checked: another tenant's message raises, nothing is written.
CREATE OR REPLACE FUNCTION claim_outbound_part(
  p_user_id uuid, p_message_id uuid, p_part_no integer, p_text text, p_token uuid, p_grace_ms integer,
  p_stale_seconds integer)
RETURNS TABLE (outcome text, external_id text, wait_ms integer)
LANGUAGE plpgsql AS $$
DECLARE
  part outbound_parts;
  in_doubt_until timestamptz;
  v_message messages;
  v_conversation conversations;
  v_why text;
BEGIN
  SELECT * INTO v_message FROM messages m WHERE m.user_id = p_user_id AND m.id = p_message_id AND m.direction = 'outbound';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no outbound message % for tenant %', p_message_id, p_user_id USING ERRCODE = 'no_data_found';
  END IF;
  -- The opt-out confirmation is exempt: it is owed to a customer who opted out, agent or none.
  IF v_message.author = 'agent' AND (v_message.payload ->> 'opt_out_confirmation') IS DISTINCT FROM 'true'
     AND NOT EXISTS (SELECT 1 FROM outbound_parts op WHERE op.message_id = p_message_id) THEN
    -- Nothing of it went out yet: the bot must still be allowed to speak here, as record_reply
    -- required when it was written. The conversation's row lock orders this against a human's
    -- message (record_human_message), a pause and a relink: either they come after this claim
    -- (the reply was on its way first) or this claim sees them.
    SELECT * INTO v_conversation FROM conversations c WHERE c.user_id = p_user_id AND c.id = v_message.conversation_id FOR UPDATE;
    v_why := reason_not_to_answer(v_conversation);
    IF v_why IS NULL AND v_message.reply_to_message_id IS NOT NULL AND EXISTS (
         SELECT 1 FROM messages q WHERE q.user_id = p_user_id AND q.id = v_message.reply_to_message_id
            AND COALESCE(q.external_timestamp, q.created_at) < now() - make_interval(secs => p_stale_seconds)) THEN
      v_why := 'window_closed';
    END IF;
    IF v_why IS NOT NULL THEN
      PERFORM cancel_bot_reply(p_user_id, p_message_id, v_why);
      RETURN QUERY SELECT 'cancelled'::text, NULL::text, 0;
      RETURN;
    END IF;
  END IF;
  INSERT INTO outbound_parts (message_id, part_no, user_id, channel, text, status, attempt_token, sending_since)
  SELECT m.id, p_part_no, m.user_id, m.channel, p_text, 'sending', p_token, now()
    FROM messages m
   WHERE m.user_id = p_user_id AND m.id = p_message_id AND m.direction = 'outbound'
  ON CONFLICT (message_id, part_no) DO NOTHING;
  IF FOUND THEN
    RETURN QUERY SELECT 'claimed'::text, NULL::text, 0;
    RETURN;
  END IF;
  SELECT * INTO part FROM outbound_parts op
   WHERE op.user_id = p_user_id AND op.message_id = p_message_id AND op.part_no = p_part_no
     FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no outbound message % for tenant %', p_message_id, p_user_id USING ERRCODE = 'no_data_found';
  END IF;
  IF part.status = 'sent' THEN
    IF part.settled_by IN ('status', 'echo') AND NOT part.doubt_reported THEN
      UPDATE outbound_parts op SET doubt_reported = true, updated_at = now()
       WHERE op.message_id = p_message_id AND op.part_no = p_part_no;
      RETURN QUERY SELECT 'settled_by_' || part.settled_by, part.external_id, 0;
    ELSE
      RETURN QUERY SELECT 'settled'::text, part.external_id, 0;
    END IF;
    RETURN;
  END IF;
  -- Its sender never stored Graph's id: our echo, parked meanwhile, may say it went out.
  part.external_id := settle_part_by_parked_echo(p_message_id, p_part_no);
  IF part.external_id IS NOT NULL THEN
    UPDATE outbound_parts op SET doubt_reported = true WHERE op.message_id = p_message_id AND op.part_no = p_part_no;
    PERFORM flush_parked_echoes(v_message.conversation_id);
    RETURN QUERY SELECT 'settled_by_echo'::text, part.external_id, 0;
    RETURN;
  END IF;
  in_doubt_until := part.sending_since + make_interval(secs => p_grace_ms / 1000.0);
  IF now() < in_doubt_until THEN
    RETURN QUERY SELECT 'in_doubt'::text, NULL::text, ceil(extract(epoch FROM in_doubt_until - now()) * 1000)::integer;
    RETURN;
  END IF;
  UPDATE outbound_parts op
     SET attempt_token = p_token, sending_since = now(), resends = op.resends + 1, text = p_text, updated_at = now()
   WHERE op.message_id = p_message_id AND op.part_no = p_part_no;
  RETURN QUERY SELECT 'resent_after_grace'::text, NULL::text, 0;
END $$;

-- A WhatsApp status (sent, delivered, read, failed) whose biz_opaque_callback_data names part
-- p_part_no of our message p_message_id: the part is settled, with Meta's id and status, even
-- when its worker never recorded the id. Only a message of a conversation on the number the
-- status came for (p_channel, p_account_id) is touched: a status cannot reach another tenant's
-- message. A status for another id than the one recorded (a late one of a copy sent before a
-- resend) changes nothing. True when the part was found.
CREATE OR REPLACE FUNCTION settle_part_by_status(
  p_channel text, p_account_id text, p_message_id uuid, p_part_no integer, p_external_id text,
  p_status text, p_error_code text, p_error_message text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE outbound_parts op
     SET status = 'sent',
         external_id = p_external_id,
         settled_by = COALESCE(op.settled_by, 'status'),
         meta_status = CASE WHEN outbound_status_rank(op.meta_status) < outbound_status_rank(p_status) THEN p_status ELSE op.meta_status END,
         error_code = CASE WHEN p_status = 'failed' THEN p_error_code ELSE op.error_code END,
         error_message = CASE WHEN p_status = 'failed' THEN p_error_message ELSE op.error_message END,
         updated_at = now()
    FROM messages m
    JOIN conversations c ON c.id = m.conversation_id AND c.user_id = m.user_id
    JOIN phone_numbers pn ON pn.id = c.phone_number_id AND pn.user_id = c.user_id
   WHERE op.message_id = p_message_id AND op.part_no = p_part_no AND op.channel = p_channel
     AND (op.external_id IS NULL OR op.external_id = p_external_id)
     AND m.id = op.message_id AND pn.channel = p_channel AND pn.external_id = p_account_id;
  RETURN FOUND;
END $$;

-- The outbound message of conversation p_conversation_id one of whose parts Meta knows as
-- p_external_id (recorded by its worker, or settled by Meta), or NULL. Each call reads what is
-- committed when it runs.
CREATE OR REPLACE FUNCTION echoed_part_message(p_conversation_id uuid, p_channel text, p_external_id text)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  found uuid;
BEGIN
  SELECT op.message_id INTO found FROM outbound_parts op JOIN messages m ON m.id = op.message_id
   WHERE op.channel = p_channel AND op.external_id = p_external_id AND m.conversation_id = p_conversation_id;
  IF found IS NULL THEN
    -- A reply sent before parts were recorded one by one kept its parts' ids in its payload.
    SELECT m.id INTO found FROM messages m
     WHERE m.conversation_id = p_conversation_id AND m.direction = 'outbound'
       AND (m.payload -> 'external_ids') ? p_external_id;
  END IF;
  RETURN found;
END $$;

-- An Instagram echo parked while part p_part_no of p_message_id was on its way (ingest_business_echo,
-- R__filing.sql) whose sender never stored Graph's id (it died, or got no answer): Instagram has
-- no status to name a part, so an echo parked in that conversation since the part was sent, with
-- exactly its text, is taken for it and settles it. Only parked echoes are looked at, never an
-- echo that came while nothing of ours was in flight. Returns the echo's id, or NULL.
CREATE OR REPLACE FUNCTION settle_part_by_parked_echo(p_message_id uuid, p_part_no integer)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_echo parked_echoes;
BEGIN
  SELECT pe.* INTO v_echo
    FROM outbound_parts op
    JOIN messages m ON m.id = op.message_id
    JOIN parked_echoes pe ON pe.conversation_id = m.conversation_id AND pe.channel = op.channel
   WHERE op.message_id = p_message_id AND op.part_no = p_part_no AND op.status = 'sending'
     AND pe.text = op.text AND pe.received_at >= op.sending_since
   ORDER BY pe.received_at
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  DELETE FROM parked_echoes pe WHERE pe.channel = v_echo.channel AND pe.external_id = v_echo.external_id;
  UPDATE outbound_parts op
     SET status = 'sent', external_id = v_echo.external_id, settled_by = 'echo', updated_at = now()
   WHERE op.message_id = p_message_id AND op.part_no = p_part_no;
  RETURN v_echo.external_id;
END $$;

-- Graph answered the sender of part p_part_no with Meta's id: the part is `sent`. On Instagram,
-- under the conversation's row lock (which ingest_business_echo holds while it parks an echo),
-- an echo parked with this id was ours and is dropped, and once no part of the conversation is
-- in flight any more the echoes still parked are a human's (flush_parked_echoes).
-- p_message_external_ids: given when this was the message's last part (every part's id, in
-- order), the message is marked sent too (mark_outbound_sent), in the same round trip and commit.
CREATE OR REPLACE FUNCTION record_part_sent(p_user_id uuid, p_message_id uuid, p_part_no integer, p_external_id text,
                                            p_message_external_ids text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_message messages;
BEGIN
  SELECT * INTO v_message FROM messages m WHERE m.user_id = p_user_id AND m.id = p_message_id;
  IF v_message.channel = 'instagram' THEN
    PERFORM 1 FROM conversations c WHERE c.id = v_message.conversation_id FOR UPDATE;
  END IF;
  UPDATE outbound_parts op
     SET status = 'sent', external_id = p_external_id, settled_by = 'answer', doubt_reported = true, updated_at = now()
   WHERE op.user_id = p_user_id AND op.message_id = p_message_id AND op.part_no = p_part_no;
  IF v_message.channel = 'instagram' THEN
    DELETE FROM parked_echoes pe WHERE pe.channel = 'instagram' AND pe.external_id = p_external_id;
    PERFORM flush_parked_echoes(v_message.conversation_id);
  END IF;
  IF p_message_external_ids IS NOT NULL THEN
    PERFORM mark_outbound_sent(p_user_id, p_message_id, p_message_external_ids);
  END IF;
END $$;

-- Graph accepted every part of a queued message: the first part's id is the message's id, and
-- all of them are kept. A status Meta reported for the first part while the message waited (a
-- part settled by its status after its worker died) is taken over, so the message does not lag
-- behind Meta.
CREATE OR REPLACE FUNCTION mark_outbound_sent(p_user_id uuid, p_message_id uuid, p_external_ids text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_reported outbound_parts;
BEGIN
  SELECT * INTO v_reported FROM outbound_parts op
   WHERE op.user_id = p_user_id AND op.message_id = p_message_id AND op.part_no = 0 AND op.external_id = p_external_ids[1]
     AND outbound_status_rank(op.meta_status) > outbound_status_rank('sent');
  UPDATE messages m
     SET status = COALESCE(v_reported.meta_status, 'sent'),
         error_code = CASE WHEN v_reported.meta_status = 'failed' THEN COALESCE(v_reported.error_code, 'unknown') ELSE m.error_code END,
         error_message = CASE WHEN v_reported.meta_status = 'failed' THEN COALESCE(v_reported.error_message, m.error_message) ELSE m.error_message END,
         external_id = p_external_ids[1], updated_at = now(),
         payload = COALESCE(m.payload, '{}'::jsonb) - 'send_progress' || jsonb_build_object('external_ids', to_jsonb(COALESCE(p_external_ids, '{}'::text[])))
   WHERE m.user_id = p_user_id AND m.id = p_message_id AND m.status = 'queued';
END $$;

-- Echoes parked in a conversation (ingest_business_echo) become humans' messages, pausing the
-- bot (record_human_message), once no part of ours is in flight there: none of them was ours.
-- Under the conversation's row lock. Returns how many were recorded.
CREATE OR REPLACE FUNCTION flush_parked_echoes(p_conversation_id uuid)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_conversation conversations;
  v_echo parked_echoes;
  v_count integer := 0;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM parked_echoes pe WHERE pe.conversation_id = p_conversation_id) THEN
    RETURN 0;
  END IF;
  SELECT * INTO v_conversation FROM conversations c WHERE c.id = p_conversation_id FOR UPDATE;
  IF EXISTS (SELECT 1 FROM outbound_parts op JOIN messages m ON m.id = op.message_id
              WHERE op.status = 'sending' AND m.conversation_id = p_conversation_id) THEN
    RETURN 0;
  END IF;
  FOR v_echo IN DELETE FROM parked_echoes pe WHERE pe.conversation_id = p_conversation_id RETURNING pe.* LOOP
    IF NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel = v_echo.channel AND m.external_id = v_echo.external_id) THEN
      PERFORM record_human_message(v_conversation, v_echo.type, v_echo.text, v_echo.payload, 'sent',
                                   v_echo.external_id, v_echo.external_ts);
      v_count := v_count + 1;
    END IF;
  END LOOP;
  RETURN v_count;
END $$;

-- Cancels a queued bot reply that must not go out (guarantee 13), and gives back what it was
-- charged: one `refund` ledger entry naming the message (a fallback was free: no entry). Only a
-- `queued` message moves; true when it did. p_reason says why (reason_not_to_answer's verdict,
-- 'window_closed', 'number_unavailable'), kept as the message's error code.
CREATE OR REPLACE FUNCTION cancel_bot_reply(p_user_id uuid, p_message_id uuid, p_reason text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_conversation uuid;
BEGIN
  UPDATE messages m
     SET status = 'cancelled', error_code = p_reason,
         error_message = CASE p_reason
           WHEN 'window_closed' THEN 'The customer''s message is too old to answer (STALE_MESSAGE_SECONDS); the reply was not sent and is refunded'
           ELSE 'The bot may no longer answer here (' || p_reason || '); the reply was not sent and is refunded' END,
         updated_at = now()
   WHERE m.user_id = p_user_id AND m.id = p_message_id AND m.direction = 'outbound' AND m.author = 'agent' AND m.status = 'queued'
  RETURNING m.conversation_id INTO v_conversation;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO credit_ledger (user_id, amount, reason, message_id, conversation_id, description)
  SELECT l.user_id, -l.amount, 'refund', l.message_id, v_conversation, 'reply cancelled: ' || p_reason
    FROM credit_ledger l
   WHERE l.user_id = p_user_id AND l.message_id = p_message_id AND l.reason = 'reply' AND l.amount < 0
  ON CONFLICT DO NOTHING;
  RETURN true;
END $$;
