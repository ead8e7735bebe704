-- The parts of an outbound message as they go to Graph, so a send's fate survives its worker.
-- A part is marked `sending` in its own commit before its POST: a worker killed between Graph's
-- answer and the record of it leaves the part `sending`, and whoever finds it so knows Graph may
-- have it (the part is in doubt). It then waits SEND_IN_DOUBT_GRACE_MS for Meta to settle it (a
-- WhatsApp status naming the part in biz_opaque_callback_data, or our Instagram echo) before
-- sending it again. The rules are claim_outbound_part, settle_part_by_status and
-- settle_part_by_echo (R__sending.sql).
CREATE TABLE outbound_parts (
  message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  -- The part's index in the message's deterministic split (utils/textSplit.ts), from 0.
  part_no        integer NOT NULL CHECK (part_no >= 0),
  -- The message's tenant and channel, copied from it by claim_outbound_part.
  user_id        uuid NOT NULL,
  channel        text NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
  -- The part as sent: an Instagram echo has only its text to be recognised by.
  text           text NOT NULL,
  -- sending: an attempt went to Graph and nobody knows yet whether Graph took it; sent: Meta has it.
  status         text NOT NULL CHECK (status IN ('sending', 'sent')),
  -- The latest attempt (a fresh token each) and when it was marked.
  attempt_token  uuid NOT NULL,
  sending_since  timestamptz NOT NULL,
  -- Times it went to Graph again after the grace, nobody having said that it went out.
  resends        integer NOT NULL DEFAULT 0 CHECK (resends >= 0),
  external_id    text,
  -- How Meta's id became known: the sending worker read Graph's answer, or Meta's status or
  -- echo reported the part after its worker died (or got no answer).
  settled_by     text CHECK (settled_by IN ('answer', 'status', 'echo')),
  -- Meta's furthest status for this part (outbound_status_rank), with its error when failed.
  meta_status    text CHECK (meta_status IN ('sent', 'delivered', 'read', 'failed')),
  error_code     text,
  error_message  text,
  -- A worker has counted how this part's doubt ended, so /metrics counts it once.
  doubt_reported boolean NOT NULL DEFAULT false,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message_id, part_no),
  CHECK (status = 'sending' OR (external_id IS NOT NULL AND settled_by IS NOT NULL))
);
-- A Meta id names one part: the echo's lookup by id, and a guard against settling two parts with one id.
CREATE UNIQUE INDEX outbound_parts_external_id_key ON outbound_parts (channel, external_id) WHERE external_id IS NOT NULL;
-- Parts whose fate is unknown are few: an echo looks among them.
CREATE INDEX outbound_parts_sending_idx ON outbound_parts (message_id) WHERE status = 'sending';

