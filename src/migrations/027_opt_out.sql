-- Opt-out (CONTRACT §3, agent settings; issue 16 item 6). A customer message equal to one of the
-- agent's opt_out_keywords (ignoring case and surrounding spaces) opts the customer out on that
-- number: no bot reply, no human or template send, one confirmation (opt_out_message, or a
-- default naming the first opt-in keyword). One of opt_in_keywords reverses it.
ALTER TABLE agents
  ADD COLUMN opt_out_keywords text[] NOT NULL DEFAULT '{STOP,UNSUBSCRIBE}' CHECK (cardinality(opt_out_keywords) <= 50),
  ADD COLUMN opt_in_keywords  text[] NOT NULL DEFAULT '{START}' CHECK (cardinality(opt_in_keywords) <= 50),
  ADD COLUMN opt_out_message  text CHECK (length(opt_out_message) BETWEEN 1 AND 4096);

-- Who opted out, per customer per number, not per conversation: a relinked number's new
-- conversation with the customer still knows. A row exists while the customer is opted out;
-- opting in deletes it. Written only by opt_out_customer / opt_in_customer (R__conversations.sql).
CREATE TABLE customer_opt_outs (
  user_id              uuid NOT NULL,
  phone_number_id      uuid NOT NULL,
  -- wa_id (or BSUID) on WhatsApp, IGSID on Instagram, as conversations.customer_external_id.
  customer_external_id text NOT NULL,
  opted_out_at         timestamptz NOT NULL DEFAULT now(),
  -- The customer's message that did it.
  message_id           uuid,
  PRIMARY KEY (phone_number_id, customer_external_id),
  -- The number's tenant, and with it the tenant's deletion, cascade here.
  FOREIGN KEY (phone_number_id, user_id) REFERENCES phone_numbers (id, user_id) ON DELETE CASCADE
);
