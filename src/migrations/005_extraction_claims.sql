-- The extraction worker's bookkeeping on each conversation (CONTRACT §4.7).
-- A worker claims a due conversation in a short transaction (FOR UPDATE SKIP LOCKED), calls the
-- model outside it, then stores the result and settles the claim in one transaction. The claim
-- is a lease: a killed worker's claim expires and another worker takes the conversation over.

ALTER TABLE conversations
  -- Who holds the claim: the worker's name and a random token per claim, so a worker that
  -- lost its lease cannot store over the one that took it over.
  ADD COLUMN extraction_claimed_by    text,
  -- The lease: past this instant the claim is void and the conversation may be claimed again.
  ADD COLUMN extraction_claimed_until timestamptz,
  -- When the latest claim was made. Kept after the claim ends: a request (extraction_requested_at)
  -- not newer than it was seen by that attempt; a newer one is a fresh request.
  ADD COLUMN extraction_claimed_at    timestamptz,
  -- The newest sequence_no the worker has dealt with: extracted, or given up on (no customer
  -- message, unusable model output, too many failures). A newer message makes it due again.
  ADD COLUMN extraction_settled_seq   integer NOT NULL DEFAULT 0 CHECK (extraction_settled_seq >= 0),
  -- Not before: set after a failure (backoff) or when the tenant had no credits, so nothing spins.
  ADD COLUMN extraction_retry_at      timestamptz,
  -- Consecutive failed attempts at the current messages; reset when settled.
  ADD COLUMN extraction_failures      integer NOT NULL DEFAULT 0 CHECK (extraction_failures >= 0),
  ADD CONSTRAINT conversations_extraction_claim_consistent CHECK (
    (extraction_claimed_by IS NULL) = (extraction_claimed_until IS NULL)
  );

-- Conversations that already have an extraction are settled up to what it saw, so deploying
-- this does not extract them again.
UPDATE conversations c
   SET extraction_settled_seq = LEAST(seen.up_to, c.last_sequence_no)
  FROM (SELECT conversation_id, max(up_to_sequence_no) AS up_to FROM extractions GROUP BY conversation_id) seen
 WHERE seen.conversation_id = c.id;

-- The poll only ever walks conversations with unsettled messages, and requested ones: settled
-- conversations (nearly all of them, in time) are not in these indexes at all.
CREATE INDEX conversations_extraction_due_idx ON conversations (last_message_at)
  WHERE last_sequence_no > extraction_settled_seq;
CREATE INDEX conversations_extraction_requested_idx ON conversations (extraction_requested_at)
  WHERE extraction_requested_at IS NOT NULL;
