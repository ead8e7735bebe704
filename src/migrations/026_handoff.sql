-- Handoff and hand-back (CONTRACT §3, agent settings and conversations; issue 16 item 5).
-- An agent's handoff_keywords: a customer message equal to one (ignoring case and surrounding
-- spaces) pauses the bot. resume_after_minutes: a conversation a human paused (by writing)
-- resumes by itself after that long without another human message. NULL: never by itself.
ALTER TABLE agents
  ADD COLUMN resume_after_minutes integer CHECK (resume_after_minutes BETWEEN 1 AND 43200),
  ADD COLUMN handoff_keywords text[] NOT NULL DEFAULT '{}' CHECK (cardinality(handoff_keywords) <= 50);

-- Who paused the bot ('human': a human wrote from the business side; 'api': POST …/pause;
-- 'keyword': the customer asked for a human), and when a human's pause ends by itself. Only
-- pause_bot and resume_bot (R__conversations.sql) write them. resumes_at belongs to a human's
-- pause only: an API pause is deliberate and a keyword handoff waits for a human.
ALTER TABLE conversations
  ADD COLUMN paused_by text CHECK (paused_by IN ('human', 'api', 'keyword')),
  ADD COLUMN resumes_at timestamptz;

-- Conversations paused before this migration: by a human if one wrote there, else by the API.
UPDATE conversations c
   SET paused_by = CASE WHEN EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.author = 'human')
                        THEN 'human' ELSE 'api' END
 WHERE c.bot_paused;

ALTER TABLE conversations ADD CONSTRAINT conversations_pause_consistent CHECK (
  (paused_by IS NULL OR bot_paused) AND (resumes_at IS NULL OR paused_by = 'human')
);

-- The resume timer's look-up (resume_due_conversations): only conversations with a timer running.
CREATE INDEX conversations_resumes_at_idx ON conversations (resumes_at) WHERE resumes_at IS NOT NULL;
