-- ingest_business_echo takes SEND_IN_DOUBT_GRACE_MS now (R__filing.sql): an echo settles only
-- a part in doubt within the grace. A new signature is a new function for Postgres, so the old
-- one goes, or it would stay beside the new one.
DROP FUNCTION IF EXISTS ingest_business_echo(text, text, text, text, text, text, jsonb, timestamptz);
