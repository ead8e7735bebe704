-- Issue 13 (CONTRACT guarantees 3, 12, 13): new message statuses and ledger reasons, a refund
-- once per message, and Instagram echoes held until we know whose they are.

-- `stale`: a customer message too old to answer when it could first be answered
-- (STALE_MESSAGE_SECONDS); `cancelled`: a bot reply a takeover stopped before it went out.
-- The full lists of the contract, so a later migration adding to them starts from all of them.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check CHECK (status IN (
  'pending', 'answered', 'ignored', 'insufficient_credits', 'stale',
  'queued', 'sent', 'delivered', 'read', 'cancelled', 'failed'));

-- `refund`: a cancelled reply's charge given back, naming the message (positive, once).
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_reason_check;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_reason_check CHECK (reason IN (
  'top_up', 'reply', 'extraction', 'transcription', 'refund', 'adjustment'));
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_refund_names_message CHECK (
  reason <> 'refund' OR (message_id IS NOT NULL AND amount > 0));
CREATE UNIQUE INDEX credit_ledger_refund_once_idx ON credit_ledger (message_id) WHERE reason = 'refund';

-- An Instagram echo that came while a part of ours was on its way to Graph in that
-- conversation: ours if the sender stores this id (park_or_record_echo, R__filing.sql), a
-- human's once no part of the conversation is in flight any more (flush_parked_echoes).
CREATE TABLE parked_echoes (
  channel         text NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
  external_id     text NOT NULL,
  user_id         uuid NOT NULL,
  conversation_id uuid NOT NULL,
  type            text NOT NULL,
  text            text,
  payload         jsonb,
  external_ts     timestamptz,
  received_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel, external_id),
  FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id) ON DELETE CASCADE
);
CREATE INDEX parked_echoes_conversation_idx ON parked_echoes (conversation_id);

-- claim_outbound_part re-checks the takeover and the stale cut-off now: a new signature.
DROP FUNCTION IF EXISTS claim_outbound_part(uuid, uuid, integer, text, uuid, integer);

-- Echoes are told apart by id now (parked_echoes): the text match is gone.
DROP FUNCTION IF EXISTS settle_part_by_echo(uuid, text, text, text, integer);
