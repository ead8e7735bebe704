-- Tenant events (CONTRACT §3): emitting one is one call, emit_tenant_event, in the transaction
-- that makes the change, so the event commits or rolls back with it (a transactional outbox).
-- The triggers below emit today's events from the tables that record the change (a message
-- filed, a reply sent, a failure, a pause, an extraction stored, a ledger entry), so no writer
-- of those rows needs to remember them. Repeatable: re-applied whenever this file changes.

-- Whether any live endpoint of the tenant takes events of this type. Triggers ask first, so a
-- tenant without endpoints costs one index probe per change and no payload is built.
-- plpgsql, not SQL: a SQL-language function called from a trigger is planned on every call,
-- which cost 0.4 ms per message insert; plpgsql keeps its plan for the session (~0.01 ms).
CREATE OR REPLACE FUNCTION tenant_event_wanted(p_user_id uuid, p_type text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.user_id = p_user_id AND e.disabled_at IS NULL AND p_type = ANY (e.events));
END $$;

-- Emits an event: the outbox row and one pending delivery per live endpoint subscribed to its
-- type, in the caller's transaction. Returns the event's id, or NULL (nothing written) when no
-- endpoint wants it. p_conversation_id orders deliveries: one conversation's events reach an
-- endpoint in emission order.
CREATE OR REPLACE FUNCTION emit_tenant_event(p_user_id uuid, p_type text, p_conversation_id uuid, p_data jsonb)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  v_id uuid;
BEGIN
  IF NOT tenant_event_wanted(p_user_id, p_type) THEN
    RETURN NULL;
  END IF;
  INSERT INTO tenant_events (user_id, type, conversation_id, data)
  VALUES (p_user_id, p_type, p_conversation_id, p_data)
  RETURNING id INTO v_id;
  INSERT INTO webhook_deliveries (user_id, endpoint_id, event_id, ordering_key, next_attempt_at, give_up_at)
  SELECT p_user_id, e.id, v_id, COALESCE(p_conversation_id, v_id), now(), now() + interval '24 hours'
    FROM webhook_endpoints e
   WHERE e.user_id = p_user_id AND e.disabled_at IS NULL AND p_type = ANY (e.events);
  RETURN v_id;
END $$;

-- What every conversation event carries, so a receiver can act without a second call: the
-- conversation, its number and its customer.
CREATE OR REPLACE FUNCTION tenant_event_subject(p_conversation_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
           'conversation', jsonb_build_object(
             'id', c.id, 'phone_number_id', c.phone_number_id, 'agent_id', c.agent_id, 'channel', c.channel,
             'is_active', c.is_active, 'bot_paused', c.bot_paused, 'paused_by', c.paused_by, 'resumes_at', c.resumes_at,
             'last_message_at', c.last_message_at, 'created_at', c.created_at),
           'phone_number', jsonb_build_object('id', p.id, 'channel', p.channel, 'external_id', p.external_id, 'display_name', p.display_name),
           'customer', jsonb_build_object('external_id', c.customer_external_id, 'name', c.customer_name))
    FROM conversations c JOIN phone_numbers p ON p.id = c.phone_number_id AND p.user_id = c.user_id
   WHERE c.id = p_conversation_id);
END $$;

-- A message as events show it (the API's message shape).
CREATE OR REPLACE FUNCTION tenant_event_message(p_message messages) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'id', p_message.id, 'sequence_no', p_message.sequence_no, 'direction', p_message.direction, 'author', p_message.author,
    'type', p_message.type, 'text', p_message.text, 'status', p_message.status, 'external_id', p_message.external_id,
    'reply_to_message_id', p_message.reply_to_message_id,
    'error', CASE WHEN p_message.error_code IS NULL THEN NULL
                  ELSE jsonb_build_object('code', p_message.error_code, 'message', p_message.error_message) END,
    'created_at', p_message.created_at);
$$;

-- customer.opted_out, for the opt-out keywords: one call where the opt-out is recorded, in
-- its transaction (see documentation/webhooks/README.md, "Emitting an event").
CREATE OR REPLACE FUNCTION emit_customer_opted_out(p_user_id uuid, p_conversation_id uuid, p_message_id uuid, p_keyword text)
RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
  IF NOT tenant_event_wanted(p_user_id, 'customer.opted_out') THEN
    RETURN NULL;
  END IF;
  RETURN emit_tenant_event(p_user_id, 'customer.opted_out', p_conversation_id,
    tenant_event_subject(p_conversation_id) || jsonb_build_object('message_id', p_message_id, 'keyword', p_keyword));
END $$;

-- message.received (a customer's message filed), message.answered (a bot reply left queued
-- for sent, delivered or read: it went out) and message.failed (any message turned failed).
CREATE OR REPLACE FUNCTION messages_emit_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_type text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    v_type := CASE WHEN NEW.status = 'failed' THEN 'message.failed' ELSE 'message.received' END;
  ELSIF NEW.status = 'failed' THEN
    v_type := 'message.failed';
  ELSE
    v_type := 'message.answered';
  END IF;
  IF tenant_event_wanted(NEW.user_id, v_type) THEN
    PERFORM emit_tenant_event(NEW.user_id, v_type, NEW.conversation_id,
      tenant_event_subject(NEW.conversation_id) || jsonb_build_object('message', tenant_event_message(NEW)));
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER messages_emit_received AFTER INSERT ON messages
  FOR EACH ROW WHEN (NEW.direction = 'inbound') EXECUTE FUNCTION messages_emit_events();
CREATE OR REPLACE TRIGGER messages_emit_status AFTER UPDATE OF status ON messages
  FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND (
    NEW.status = 'failed'
    OR (NEW.direction = 'outbound' AND NEW.author = 'agent' AND OLD.status = 'queued' AND NEW.status IN ('sent', 'delivered', 'read'))))
  EXECUTE FUNCTION messages_emit_events();

-- conversation.handoff / conversation.resumed: the bot switched off or on (pause_bot and
-- resume_bot: the API, a human's message, a handoff keyword, the resume timer). paused_by says
-- who paused it; a resume says who had.
CREATE OR REPLACE FUNCTION conversations_emit_pause_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_type text := CASE WHEN NEW.bot_paused THEN 'conversation.handoff' ELSE 'conversation.resumed' END;
  v_by text;
BEGIN
  IF NOT tenant_event_wanted(NEW.user_id, v_type) THEN
    RETURN NULL;
  END IF;
  v_by := CASE WHEN NEW.bot_paused THEN NEW.paused_by ELSE OLD.paused_by END;
  PERFORM emit_tenant_event(NEW.user_id, v_type, NEW.id,
    tenant_event_subject(NEW.id) || jsonb_build_object(CASE WHEN NEW.bot_paused THEN 'paused_by' ELSE 'was_paused_by' END, v_by));
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER conversations_emit_pause_events AFTER UPDATE OF bot_paused ON conversations
  FOR EACH ROW WHEN (NEW.bot_paused IS DISTINCT FROM OLD.bot_paused) EXECUTE FUNCTION conversations_emit_pause_events();

-- extraction.completed: an extraction stored, with its fields.
CREATE OR REPLACE FUNCTION extractions_emit_completed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF tenant_event_wanted(NEW.user_id, 'extraction.completed') THEN
    PERFORM emit_tenant_event(NEW.user_id, 'extraction.completed', NEW.conversation_id,
      tenant_event_subject(NEW.conversation_id) || jsonb_build_object('extraction', jsonb_build_object(
        'id', NEW.id, 'agent_id', NEW.agent_id, 'fields', NEW.fields, 'summary', NEW.summary,
        'up_to_sequence_no', NEW.up_to_sequence_no, 'extracted_at', NEW.created_at)));
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER extractions_emit_completed AFTER INSERT ON extractions
  FOR EACH ROW EXECUTE FUNCTION extractions_emit_completed();

-- credits.low: a charge took the balance under 10% of the last top-up (it was at or above it
-- before). Named to fire after credit_ledger_apply (triggers fire in name order), so the
-- tenant's balance already includes this entry.
CREATE OR REPLACE FUNCTION credit_ledger_emit_low_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_balance bigint;
  v_top_up credit_ledger;
BEGIN
  IF NOT tenant_event_wanted(NEW.user_id, 'credits.low') THEN
    RETURN NULL;
  END IF;
  SELECT u.credit_balance INTO v_balance FROM users u WHERE u.id = NEW.user_id;
  SELECT * INTO v_top_up FROM credit_ledger l WHERE l.user_id = NEW.user_id AND l.reason = 'top_up'
   ORDER BY l.created_at DESC, l.id DESC LIMIT 1;
  IF v_top_up.id IS NULL OR v_balance * 10 >= v_top_up.amount OR (v_balance - NEW.amount) * 10 < v_top_up.amount THEN
    RETURN NULL;
  END IF;
  PERFORM emit_tenant_event(NEW.user_id, 'credits.low', NULL, jsonb_build_object(
    'credit_balance', v_balance,
    'threshold', ceil(v_top_up.amount / 10.0)::bigint,
    'last_top_up', jsonb_build_object('id', v_top_up.id, 'amount', v_top_up.amount, 'created_at', v_top_up.created_at),
    'entry', jsonb_build_object('id', NEW.id, 'amount', NEW.amount, 'reason', NEW.reason, 'message_id', NEW.message_id,
                                'conversation_id', NEW.conversation_id, 'created_at', NEW.created_at)));
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER credit_ledger_low_balance AFTER INSERT ON credit_ledger
  FOR EACH ROW WHEN (NEW.amount < 0) EXECUTE FUNCTION credit_ledger_emit_low_balance();
