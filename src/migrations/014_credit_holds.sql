-- Credits reserved for model calls in flight (CONTRACT guarantee 14): before a reply's model
-- call the turn holds the dearest outcome (hold_credits, R__credits.sql); record_reply settles
-- the hold (deletes it) in the reply's transaction, and a failed turn releases it. A hold is not
-- a ledger entry: the balance stays the ledger's sum, and what a tenant may still spend is the
-- balance minus its unexpired holds. `expires_at` lets a crashed worker's hold lapse.
CREATE TABLE credit_holds (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  conversation_id uuid,
  amount          bigint NOT NULL CHECK (amount >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL
);
CREATE INDEX credit_holds_user_expiry ON credit_holds (user_id, expires_at);

-- record_reply gains the hold it settles (an eighth argument, defaulted): a new signature is a
-- new function for Postgres, so the seven-argument one goes (README.md).
DROP FUNCTION IF EXISTS record_reply(uuid, uuid, uuid[], text, uuid, bigint, integer);
