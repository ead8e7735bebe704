-- The most prompt tokens a reply may send the model (CONTRACT §3, agent settings): the history
-- is cut, oldest turns first, to fit (services/chatPrompt.ts). Bounded so that neither a tiny
-- budget starves every reply nor a huge one outgrows any model's context window.
ALTER TABLE agents
  ADD COLUMN max_prompt_tokens integer NOT NULL DEFAULT 8000 CHECK (max_prompt_tokens BETWEEN 500 AND 1000000);
