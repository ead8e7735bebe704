-- The webhook's durable acceptance is one narrow insert per customer message: the inbox. A
-- message worker files inbox rows into conversations (ingest_customer_message) and answers
-- them. Filing touches a conversation row and five message indexes under row locks; doing it
-- before answering Meta cost the webhook two thirds of its throughput, while the inbox costs
-- one index probe and one two-index insert. Nothing is lost in between: a row leaves the
-- inbox only in the transaction that files it, and the sweeper nudges rows left waiting.

CREATE TABLE inbox (
  -- Arrival order, which filing keeps within a conversation. Not a key: no index of its own.
  id              bigint GENERATED ALWAYS AS IDENTITY,
  channel         text NOT NULL,
  -- Meta's message id: the dedupe key while the message waits here (messages' own unique
  -- index takes over once it is filed).
  external_id     text NOT NULL,
  -- Routing resolved at acceptance, from the number Meta's account id named then.
  user_id         uuid NOT NULL,
  phone_number_id uuid NOT NULL,
  customer_id     text NOT NULL,
  -- The normalised event: what ingest_customer_message takes, as the webhook built it.
  event           jsonb NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  -- Filing attempts the database refused (a constraint, a bug), with the last reason. Rows
  -- refused too often stay here for inspection instead of blocking their conversation.
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  PRIMARY KEY (channel, external_id)
);
CREATE INDEX inbox_conversation_idx ON inbox (phone_number_id, customer_id, id);

-- Most refusals a row may meet before filing leaves it aside.
CREATE FUNCTION inbox_max_attempts() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 5';

-- Files a customer's waiting messages on one number, oldest first, each in a subtransaction
-- so a row the database refuses does not hold back the others. Two workers filing the same
-- customer queue on the row locks and the second finds nothing left, so sequence numbers
-- follow arrival. conversation_id is where the last filed row went, else the customer's
-- active conversation (a redelivered nudge still serves what an earlier delivery filed).
CREATE FUNCTION file_inbox(p_user_id uuid, p_phone_number_id uuid, p_customer_id text)
RETURNS TABLE (conversation_id uuid, filed integer, dropped integer, refused integer)
LANGUAGE plpgsql AS $$
DECLARE
  item inbox;
  result record;
  v_conversation uuid;
  v_filed integer := 0;
  v_dropped integer := 0;
  v_refused integer := 0;
BEGIN
  FOR item IN
    SELECT * FROM inbox i
     WHERE i.user_id = p_user_id AND i.phone_number_id = p_phone_number_id AND i.customer_id = p_customer_id
       AND i.attempts < inbox_max_attempts()
     ORDER BY i.id
       FOR UPDATE
  LOOP
    BEGIN
      SELECT * INTO result FROM ingest_customer_message(
        item.channel, item.event->>'account_id', item.customer_id, item.event->>'customer_name', item.external_id,
        item.event->>'type', item.event->>'text', item.event->'payload', (item.event->>'timestamp')::timestamptz,
        (item.event->>'answerable')::boolean);
      DELETE FROM inbox i WHERE i.channel = item.channel AND i.external_id = item.external_id;
      IF result.outcome = 'recorded' THEN
        v_filed := v_filed + 1;
        v_conversation := result.conversation_id;
      ELSE
        -- A duplicate filed meanwhile, or a number deleted since acceptance.
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
