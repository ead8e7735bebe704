-- Exactly one copy of each part through a crash (guarantee 1): what a worker does before each
-- part goes to Graph, and how Meta's webhooks settle a part whose worker died between Graph's
-- answer and its record. Repeatable: re-applied whenever this file changes (README.md).

-- Claims part p_part_no of an outbound message for one attempt (p_token), before it is sent.
-- outcome:
--   'claimed'             the part was never sent: it is marked `sending` now (commit before the POST);
--   'settled'             Meta has it (external_id): never send it again;
--   'settled_by_status' / 'settled_by_echo'
--                         the same, learnt from Meta after its sender died; reported once per part
--                         so /metrics counts each doubt once;
--   'in_doubt'            another attempt left it `sending` less than p_grace_ms ago: Graph may
--                         have it; ask again within wait_ms, Meta's status or echo may settle it;
--   'resent_after_grace'  nothing settled it within the grace: it is this attempt's now, to send again.
-- The tenant is checked: another tenant's message raises, nothing is written.
CREATE OR REPLACE FUNCTION claim_outbound_part(
  p_user_id uuid, p_message_id uuid, p_part_no integer, p_text text, p_token uuid, p_grace_ms integer)
RETURNS TABLE (outcome text, external_id text, wait_ms integer)
LANGUAGE plpgsql AS $$
DECLARE
  part outbound_parts;
  in_doubt_until timestamptz;
BEGIN
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

-- An Instagram echo (our send coming back, or a human's from the app) in conversation
-- p_conversation_id: it settles a part of ours that is in doubt there, marked `sending` less
-- than p_grace_ms ago, with exactly this text. Instagram has no status to name a part, so
-- the text is all there is; no other echo is matched by text. Returns the part's message, or
-- NULL when none matched.
CREATE OR REPLACE FUNCTION settle_part_by_echo(
  p_conversation_id uuid, p_channel text, p_external_id text, p_text text, p_grace_ms integer)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  settled uuid;
BEGIN
  UPDATE outbound_parts op
     SET status = 'sent', external_id = p_external_id, settled_by = 'echo', updated_at = now()
   WHERE (op.message_id, op.part_no) = (
           SELECT p.message_id, p.part_no
             FROM outbound_parts p
             JOIN messages m ON m.id = p.message_id
            WHERE p.status = 'sending' AND p.channel = p_channel AND p.text = p_text
              AND p.sending_since > now() - make_interval(secs => p_grace_ms / 1000.0)
              AND m.conversation_id = p_conversation_id
            ORDER BY p.sending_since
            LIMIT 1)
     AND op.status = 'sending'
  RETURNING op.message_id INTO settled;
  RETURN settled;
END $$;
