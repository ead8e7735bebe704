-- Structured leads pulled from conversations. Every extraction is kept; the API shows the newest.

CREATE TABLE extractions (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  conversation_id   uuid NOT NULL,
  agent_id          uuid,
  fields            jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'object'),
  summary           text,
  -- The newest message the extraction saw: a newer message means it is stale.
  up_to_sequence_no integer NOT NULL CHECK (up_to_sequence_no >= 0),
  model             text NOT NULL,
  prompt_tokens     integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
  completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
  created_at        timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id),
  FOREIGN KEY (agent_id, user_id) REFERENCES agents (id, user_id)
);
CREATE INDEX extractions_conversation_idx ON extractions (conversation_id, created_at DESC, id DESC);
CREATE INDEX extractions_user_created_idx ON extractions (user_id, created_at DESC, id DESC);

ALTER TABLE credit_ledger ADD COLUMN extraction_id uuid REFERENCES extractions (id);
-- An extraction is charged once.
CREATE UNIQUE INDEX credit_ledger_extraction_once_idx ON credit_ledger (extraction_id) WHERE reason = 'extraction';

-- `POST /v1/conversations/:id/extract` marks the conversation; the extraction worker clears
-- the mark when it stores the result. A column, not a queue entry, so the request survives
-- a Redis restart.
ALTER TABLE conversations ADD COLUMN extraction_requested_at timestamptz;
