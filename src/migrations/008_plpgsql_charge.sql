-- charge_credits as plpgsql: a SQL-language function is parsed and planned on every call,
-- which cost the reply statement ~0.09 ms each time (pg_stat_statements, npm run bench --
-- pipeline); plpgsql keeps its plan for the session. Same statement, same result.
CREATE OR REPLACE FUNCTION charge_credits(
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
