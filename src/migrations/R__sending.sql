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
