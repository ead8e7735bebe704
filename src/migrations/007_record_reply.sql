-- The reply transaction as one statement. Run as five round trips, it held the tenant's row
-- lock (taken by the charge) across the client's last round trip and COMMIT, and every reply
-- of a tenant queues on that lock: under load the wait, not the work, bounded replies per
-- second (46 ms of lock wait per charge in `npm run bench -- pipeline`). As one statement the
-- lock is held for the server-side work and the commit only.

-- A clamped charge: never more than the balance, so the balance never goes below zero
-- whatever the concurrency (the tenant's row is locked first). A second charge for the same
-- reply or extraction (a unique index each) writes nothing and returns no entry. No row
-- comes back when the tenant does not exist. plpgsql, not SQL: a SQL-language function is
-- parsed and planned on every call (~0.09 ms per reply, pg_stat_statements); plpgsql keeps
-- its plan for the session.
CREATE FUNCTION charge_credits(
  p_user_id uuid, p_cost bigint, p_reason text, p_message_id uuid, p_conversation_id uuid, p_extraction_id uuid, p_tokens integer)
RETURNS TABLE (id uuid, user_id uuid, amount bigint, reason text, description text, message_id uuid, conversation_id uuid,
               extraction_id uuid, tokens integer, created_at timestamptz, balance bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH locked AS (
    SELECT u.id, u.credit_balance FROM users u WHERE u.id = p_user_id FOR NO KEY UPDATE
  ), entry AS (
    INSERT INTO credit_ledger (user_id, amount, reason, message_id, conversation_id, extraction_id, tokens)
    SELECT locked.id, -LEAST(locked.credit_balance, p_cost), p_reason, p_message_id, p_conversation_id, p_extraction_id, p_tokens
      FROM locked
    ON CONFLICT DO NOTHING
    RETURNING *
  )
  SELECT entry.id, entry.user_id, entry.amount, entry.reason, entry.description, entry.message_id, entry.conversation_id,
         entry.extraction_id, entry.tokens, entry.created_at, locked.credit_balance + COALESCE(entry.amount, 0)
    FROM locked LEFT JOIN entry ON true;
END $$;

-- Records a reply: under the conversation's row lock (which a human takeover and a relink
-- take too), marks the answered customer messages, inserts the reply as `queued` under the
-- next sequence number, and charges it. outcome 'paused_or_archived': nothing was written.
-- If any of p_answered is no longer pending (another worker answered it), it raises
-- SQLSTATE MC001 and nothing is written.
CREATE FUNCTION record_reply(
  p_user_id uuid, p_conversation_id uuid, p_answered uuid[], p_text text, p_reply_to uuid, p_cost bigint, p_tokens integer)
RETURNS TABLE (outcome text, charged bigint, reply messages)
LANGUAGE plpgsql AS $$
DECLARE
  v_conversation conversations;
  v_answered integer;
  v_sequence integer;
  v_reply messages;
  v_charge record;
BEGIN
  SELECT * INTO v_conversation FROM conversations c WHERE c.user_id = p_user_id AND c.id = p_conversation_id FOR UPDATE;
  IF NOT FOUND OR NOT v_conversation.is_active OR v_conversation.bot_paused THEN
    RETURN QUERY SELECT 'paused_or_archived'::text, 0::bigint, NULL::messages;
    RETURN;
  END IF;
  UPDATE messages m SET status = 'answered', error_code = NULL, error_message = NULL, updated_at = now()
   WHERE m.user_id = p_user_id AND m.id = ANY (p_answered) AND m.direction = 'inbound' AND m.status = 'pending';
  GET DIAGNOSTICS v_answered = ROW_COUNT;
  IF v_answered <> cardinality(p_answered) THEN
    RAISE EXCEPTION 'pending messages were answered elsewhere' USING ERRCODE = 'MC001';
  END IF;
  UPDATE conversations c SET last_sequence_no = c.last_sequence_no + 1, last_message_at = now()
   WHERE c.id = p_conversation_id
  RETURNING c.last_sequence_no INTO v_sequence;
  INSERT INTO messages (user_id, conversation_id, sequence_no, channel, direction, author, type, text, status, reply_to_message_id)
  VALUES (p_user_id, p_conversation_id, v_sequence, v_conversation.channel, 'outbound', 'agent', 'text', p_text, 'queued', p_reply_to)
  RETURNING * INTO v_reply;
  SELECT * INTO v_charge FROM charge_credits(p_user_id, p_cost, 'reply', v_reply.id, p_conversation_id, NULL, p_tokens);
  RETURN QUERY SELECT 'recorded'::text, COALESCE(0 - v_charge.amount, 0), v_reply;
END $$;
