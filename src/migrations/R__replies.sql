-- The reply transaction as one statement, so the tenant's row lock (taken by the charge) is
-- held for the server-side work and the commit only, never across a client round trip: every
-- reply of a tenant queues on that lock. Repeatable: re-applied whenever this file changes
-- (see README.md).

-- Records a reply: under the conversation's row lock (which a human takeover and a relink
-- take too), marks the answered customer messages, appends the reply as `queued`, and charges
-- it. outcome 'paused_or_archived': the bot may no longer answer here (reason_not_to_answer:
-- paused, archived, or the agent unlinked) and nothing was written. If any of p_answered is
-- no longer pending (another worker answered it), it raises SQLSTATE MC001 and nothing is
-- written. p_hold_id, the credits held for this turn's model call (hold_credits,
-- R__credits.sql), is settled here: deleted in the same transaction as the charge of the actual
-- cost, so the tenant never sees both or neither. When the reply is dropped the hold is
-- deleted too; when the statement raises, the caller releases it.
CREATE OR REPLACE FUNCTION record_reply(
  p_user_id uuid, p_conversation_id uuid, p_answered uuid[], p_text text, p_reply_to uuid, p_cost bigint, p_tokens integer,
  p_hold_id uuid DEFAULT NULL, p_first_part text DEFAULT NULL, p_part_token uuid DEFAULT NULL)
RETURNS TABLE (outcome text, charged bigint, reply messages)
LANGUAGE plpgsql AS $$
DECLARE
  v_conversation conversations;
  v_answered integer;
  v_reply messages;
  v_charge record;
BEGIN
  IF p_hold_id IS NOT NULL THEN
    DELETE FROM credit_holds h WHERE h.user_id = p_user_id AND h.id = p_hold_id;
  END IF;
  SELECT * INTO v_conversation FROM conversations c WHERE c.user_id = p_user_id AND c.id = p_conversation_id FOR UPDATE;
  IF NOT FOUND OR reason_not_to_answer(v_conversation) IS NOT NULL THEN
    RETURN QUERY SELECT 'paused_or_archived'::text, 0::bigint, NULL::messages;
    RETURN;
  END IF;
  UPDATE messages m SET status = 'answered', error_code = NULL, error_message = NULL, updated_at = now()
   WHERE m.user_id = p_user_id AND m.id = ANY (p_answered) AND m.direction = 'inbound' AND m.status = 'pending';
  GET DIAGNOSTICS v_answered = ROW_COUNT;
  IF v_answered <> cardinality(p_answered) THEN
    RAISE EXCEPTION 'pending messages were answered elsewhere' USING ERRCODE = 'MC001';
  END IF;
  v_reply := append_message(v_conversation, 'outbound', 'agent', 'text', p_text, NULL, 'queued', p_reply_to => p_reply_to);
  -- The first part claimed for the sender (p_part_token) in this commit, as claim_outbound_part
  -- would claim it: the bot may speak here (checked above under the conversation's lock, which
  -- that claim would take again) and nothing of the reply went out, so it is `sending` now. The
  -- turn saves the claim's round trip and commit. Before the charge: the tenant's lock is held
  -- for as little as can be.
  IF p_first_part IS NOT NULL THEN
    INSERT INTO outbound_parts (message_id, part_no, user_id, channel, text, status, attempt_token, sending_since)
    VALUES (v_reply.id, 0, p_user_id, v_reply.channel, p_first_part, 'sending', p_part_token, now());
  END IF;
  SELECT * INTO v_charge FROM charge_credits(p_user_id, p_cost, 'reply', v_reply.id, p_conversation_id, NULL, p_tokens);
  RETURN QUERY SELECT 'recorded'::text, COALESCE(0 - v_charge.amount, 0), v_reply;
END $$;
