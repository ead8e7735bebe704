-- Inbound media (issue 16): a voice note's transcription is charged as its own ledger entry
-- (CONTRACT §3 lists `transcription`, and `refund` beside it), at most once per message; and an
-- agent may turn image input off for a text-only model (`vision`, default true).
ALTER TABLE credit_ledger DROP CONSTRAINT IF EXISTS credit_ledger_reason_check;
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_reason_check
  CHECK (reason IN ('top_up', 'reply', 'extraction', 'transcription', 'refund', 'adjustment'));
ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_transcription_charge
  CHECK (reason <> 'transcription' OR (amount <= 0 AND message_id IS NOT NULL));
CREATE UNIQUE INDEX credit_ledger_transcription_once_idx ON credit_ledger (message_id) WHERE reason = 'transcription';

ALTER TABLE agents ADD COLUMN vision boolean NOT NULL DEFAULT true;
