-- Credits: the ledger's triggers and the clamped charge. Repeatable: the migrator re-applies
-- this file whenever it changes, so edit it in place (see README.md).

-- The balance is the ledger's sum by construction: every entry moves it, in the inserting
-- transaction, under the user's row lock. The CHECK on users refuses a negative result.
CREATE OR REPLACE FUNCTION credit_ledger_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users SET credit_balance = credit_balance + NEW.amount WHERE id = NEW.user_id;
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger FOR EACH ROW EXECUTE FUNCTION credit_ledger_apply();

-- The ledger is append-only: corrections are new 'adjustment' entries.
CREATE OR REPLACE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_ledger is append-only';
END $$;
CREATE OR REPLACE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();

-- A clamped charge: never more than the balance, so the balance never goes below zero
-- whatever the concurrency (the tenant's row is locked first). A second charge for the same
-- reply or extraction (a unique index each) writes nothing and returns no entry. No row
-- comes back when the tenant does not exist. plpgsql, not SQL: a SQL-language function is
-- parsed and planned on every call; plpgsql keeps its plan for the session.
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

-- Holds (CONTRACT guarantee 14). What a tenant may still spend is its balance minus its
-- unexpired holds; a hold is placed only when that covers it (and is above zero: a tenant with
-- nothing gets no model call even if the call would be priced at zero). The tenant's row is
-- locked first, as a charge locks it, so concurrent holds queue and each sees the others: N
-- conversations at once on one call's worth of credits get one hold, not N. Expired holds (a
-- crashed worker's) count for nothing and are cleared here. Returns the hold's id, or NULL
-- with nothing written when the balance cannot cover it (or the tenant does not exist).
CREATE OR REPLACE FUNCTION hold_credits(p_user_id uuid, p_amount bigint, p_conversation_id uuid, p_ttl_ms integer)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_held bigint;
  v_id uuid;
BEGIN
  SELECT u.credit_balance INTO v_balance FROM users u WHERE u.id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  DELETE FROM credit_holds h WHERE h.user_id = p_user_id AND h.expires_at <= now();
  SELECT COALESCE(sum(h.amount), 0) INTO v_held FROM credit_holds h WHERE h.user_id = p_user_id;
  IF v_balance - v_held <= 0 OR v_balance - v_held < p_amount THEN
    RETURN NULL;
  END IF;
  INSERT INTO credit_holds (user_id, conversation_id, amount, expires_at)
  VALUES (p_user_id, p_conversation_id, p_amount, now() + make_interval(secs => p_ttl_ms / 1000.0))
  RETURNING id INTO v_id;
  RETURN v_id;
END $$;

-- Credits held for a tenant's model calls in flight: unexpired holds only.
-- plpgsql for its plan kept per session, as customer_opted_out (R__conversations.sql).
CREATE OR REPLACE FUNCTION credits_held(p_user_id uuid) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT COALESCE(sum(h.amount), 0)::bigint FROM credit_holds h WHERE h.user_id = p_user_id AND h.expires_at > now());
END $$;
