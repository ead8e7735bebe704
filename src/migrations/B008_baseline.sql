-- The schema as migrations 001-008 left it, in one file: a database created from here on starts
-- with it. Databases migrated before it keep their rows 001-008 in schema_migrations, which
-- this baseline covers, and skip it (see utils/migrator.ts). Functions and triggers are not
-- here: they live in the R__*.sql files, re-applied whenever they change.
--
-- Never edit this file: it is an applied migration. Change the schema in a new numbered file.

-- Tenants, their keys, credits, channels, agents, conversations and messages.
-- Rules that protect data live here as constraints, so no code path can break them.
-- Composite foreign keys (x_id, user_id) make cross-tenant references impossible:
-- a tenant's row can only point at rows of the same tenant.

CREATE TABLE users (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  -- Kept equal to SUM(credit_ledger.amount) by the ledger's trigger (R__credits.sql); never negative.
  credit_balance bigint NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);

CREATE TABLE api_keys (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- SHA-256 of the key: keys carry 256 bits of entropy, so a fast hash is enough and the
  -- plain key is never stored.
  key_hash   text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  -- The first characters, to tell keys apart in a listing without revealing them.
  key_prefix text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE agents (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  system_prompt    text NOT NULL CHECK (length(system_prompt) BETWEEN 1 AND 32000),
  model            text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
  temperature      numeric(3, 2) NOT NULL DEFAULT 0.7 CHECK (temperature BETWEEN 0 AND 2),
  max_tokens       integer NOT NULL DEFAULT 512 CHECK (max_tokens BETWEEN 1 AND 16384),
  history_limit    integer NOT NULL DEFAULT 20 CHECK (history_limit BETWEEN 1 AND 200),
  debounce_ms      integer NOT NULL DEFAULT 0 CHECK (debounce_ms BETWEEN 0 AND 30000),
  -- NULL means the default fields (name, email, phone, intent, summary).
  lead_fields      jsonb CHECK (lead_fields IS NULL OR jsonb_typeof(lead_fields) = 'array'),
  fallback_message text CHECK (length(fallback_message) BETWEEN 1 AND 4096),
  archived_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, user_id)
);
CREATE INDEX agents_user_created_idx ON agents (user_id, created_at DESC, id DESC);

CREATE TABLE phone_numbers (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  channel                text NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
  -- WhatsApp phone_number_id or Instagram account id: what Meta's webhooks route by.
  external_id            text NOT NULL CHECK (external_id ~ '^[A-Za-z0-9._-]{1,64}$'),
  display_name           text CHECK (length(display_name) <= 200),
  -- AES-256-GCM with a random IV ("v1:iv:tag:ciphertext", base64); never the plain token.
  access_token_encrypted text NOT NULL CHECK (access_token_encrypted LIKE 'v1:%'),
  -- One agent per number is structural: a single column. The composite key makes the
  -- database refuse another tenant's agent.
  agent_id               uuid,
  deleted_at             timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, user_id),
  FOREIGN KEY (agent_id, user_id) REFERENCES agents (id, user_id)
);
-- Any tenant's live registration of an account blocks another; a deleted one frees it.
CREATE UNIQUE INDEX phone_numbers_external_key ON phone_numbers (channel, external_id) WHERE deleted_at IS NULL;
CREATE INDEX phone_numbers_user_created_idx ON phone_numbers (user_id, created_at DESC, id DESC);
CREATE INDEX phone_numbers_agent_idx ON phone_numbers (agent_id) WHERE agent_id IS NOT NULL;

CREATE TABLE conversations (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  phone_number_id      uuid NOT NULL,
  agent_id             uuid,
  channel              text NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
  -- wa_id (or BSUID when the phone is withheld) on WhatsApp, IGSID on Instagram.
  customer_external_id text NOT NULL CHECK (length(customer_external_id) BETWEEN 1 AND 200),
  customer_name        text,
  is_active            boolean NOT NULL DEFAULT true,
  bot_paused           boolean NOT NULL DEFAULT false,
  -- The counter messages take their sequence_no from (UPDATE … RETURNING, under the row lock).
  last_sequence_no     integer NOT NULL DEFAULT 0 CHECK (last_sequence_no >= 0),
  last_message_at      timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  -- Set by `POST /v1/conversations/:id/extract`; the extraction worker clears the mark when it
  -- stores the result. A column, not a queue entry, so the request survives a Redis restart.
  extraction_requested_at timestamptz,
  -- Relinking a number archives its open conversations: kept and readable, never answered again.
  archived_at          timestamptz,
  archive_reason       text CHECK (archive_reason IN ('agent_relinked', 'agent_unlinked', 'agent_archived', 'phone_number_deleted')),
  -- Who holds the claim: the worker's name and a random token per claim, so a worker that
  -- lost its lease cannot store over the one that took it over.
  extraction_claimed_by    text,
  -- The lease: past this instant the claim is void and the conversation may be claimed again.
  extraction_claimed_until timestamptz,
  -- When the latest claim was made. Kept after the claim ends: a request (extraction_requested_at)
  -- not newer than it was seen by that attempt; a newer one is a fresh request.
  extraction_claimed_at    timestamptz,
  -- The newest sequence_no the worker has dealt with: extracted, or given up on (no customer
  -- message, unusable model output, too many failures). A newer message makes it due again.
  extraction_settled_seq   integer NOT NULL DEFAULT 0 CHECK (extraction_settled_seq >= 0),
  -- Not before: set after a failure (backoff) or when the tenant had no credits, so nothing spins.
  extraction_retry_at      timestamptz,
  -- Consecutive failed attempts at the current messages; reset when settled.
  extraction_failures      integer NOT NULL DEFAULT 0 CHECK (extraction_failures >= 0),
  UNIQUE (id, user_id),
  FOREIGN KEY (phone_number_id, user_id) REFERENCES phone_numbers (id, user_id),
  FOREIGN KEY (agent_id, user_id) REFERENCES agents (id, user_id),
  -- An archived conversation says when and why; an active one has neither.
  CONSTRAINT conversations_archive_consistent CHECK (
    (is_active AND archived_at IS NULL AND archive_reason IS NULL)
    OR (NOT is_active AND archived_at IS NOT NULL AND archive_reason IS NOT NULL)
  ),
  CONSTRAINT conversations_extraction_claim_consistent CHECK (
    (extraction_claimed_by IS NULL) = (extraction_claimed_until IS NULL)
  )
);
-- At most one open conversation per customer per number; archived ones pile up beside it.
CREATE UNIQUE INDEX conversations_one_active_idx ON conversations (phone_number_id, customer_external_id) WHERE is_active;
CREATE INDEX conversations_user_created_idx ON conversations (user_id, created_at DESC, id DESC);
-- The extraction poll only ever walks conversations with unsettled messages, and requested
-- ones: settled conversations (nearly all of them, in time) are not in these indexes at all.
CREATE INDEX conversations_extraction_due_idx ON conversations (last_message_at)
  WHERE last_sequence_no > extraction_settled_seq;
CREATE INDEX conversations_extraction_requested_idx ON conversations (extraction_requested_at)
  WHERE extraction_requested_at IS NOT NULL;

CREATE TABLE messages (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- No key of its own to users: the composite key to conversations pins the tenant, and a
  -- second key would KEY SHARE-lock the tenant's row (the row every charge updates) on each insert.
  user_id             uuid NOT NULL,
  conversation_id     uuid NOT NULL,
  sequence_no         integer NOT NULL CHECK (sequence_no > 0),
  direction           text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  author              text NOT NULL CHECK (author IN ('customer', 'agent', 'human')),
  channel             text NOT NULL CHECK (channel IN ('whatsapp', 'instagram')),
  type                text NOT NULL CHECK (length(type) BETWEEN 1 AND 40),
  text                text,
  -- Media reference, location, contacts, reply context: whatever the type carries.
  payload             jsonb,
  -- inbound: pending → answered | failed | insufficient_credits | ignored
  -- outbound: queued → sent → delivered → read, or failed (terminal)
  status              text NOT NULL CHECK (status IN ('pending', 'answered', 'ignored', 'insufficient_credits',
                                                      'queued', 'sent', 'delivered', 'read', 'failed')),
  -- Meta's id (wamid / mid): the dedupe key across Meta's whole retry horizon.
  external_id         text,
  -- An outbound reply names the newest inbound message it answers.
  reply_to_message_id uuid REFERENCES messages (id),
  error_code          text,
  error_message       text,
  attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  external_timestamp  timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (conversation_id, sequence_no),
  -- Deleting a tenant deletes its conversations, and so their messages.
  FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id) ON DELETE CASCADE,
  CHECK ((direction = 'inbound' AND author = 'customer') OR (direction = 'outbound' AND author IN ('agent', 'human'))),
  CHECK (status <> 'failed' OR error_code IS NOT NULL)
);
CREATE UNIQUE INDEX messages_external_id_key ON messages (channel, external_id) WHERE external_id IS NOT NULL;
-- The sweeper and the workers look for unanswered customer messages.
CREATE INDEX messages_pending_idx ON messages (conversation_id, sequence_no) WHERE status IN ('pending', 'queued');
CREATE INDEX messages_user_idx ON messages (user_id, created_at DESC);

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

CREATE TABLE credit_ledger (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- Negative = charge. A charge clamped at an empty balance may be zero.
  amount          bigint NOT NULL,
  reason          text NOT NULL CHECK (reason IN ('top_up', 'reply', 'extraction', 'adjustment')),
  description     text CHECK (length(description) <= 500),
  message_id      uuid REFERENCES messages (id),
  conversation_id uuid REFERENCES conversations (id),
  tokens          integer CHECK (tokens >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  extraction_id   uuid REFERENCES extractions (id),
  CHECK (reason <> 'top_up' OR amount > 0),
  CHECK (reason NOT IN ('reply', 'extraction') OR amount <= 0),
  CHECK (reason <> 'reply' OR message_id IS NOT NULL)
);
-- A reply is charged once, whatever retries happen around it.
CREATE UNIQUE INDEX credit_ledger_reply_once_idx ON credit_ledger (message_id) WHERE reason = 'reply';
CREATE INDEX credit_ledger_user_created_idx ON credit_ledger (user_id, created_at DESC, id DESC);
-- An extraction is charged once.
CREATE UNIQUE INDEX credit_ledger_extraction_once_idx ON credit_ledger (extraction_id) WHERE reason = 'extraction';

-- The webhook's durable acceptance: one narrow insert per customer message. A message worker
-- files inbox rows into conversations (file_inbox, R__filing.sql) and answers them; a row
-- leaves the inbox only in the transaction that files it.
CREATE TABLE inbox (
  -- Arrival order, which filing keeps within a conversation. Not a key: no index of its own.
  id              bigint GENERATED ALWAYS AS IDENTITY,
  channel         text NOT NULL,
  -- Meta's message id: the dedupe key while the message waits here (messages' own unique
  -- index takes over once it is filed).
  external_id     text NOT NULL,
  -- Routing resolved at acceptance, from the number Meta's account id named then.
  user_id         uuid NOT NULL,
  phone_number_id uuid NOT NULL,
  customer_id     text NOT NULL,
  -- The normalised event: what ingest_customer_message takes, as the webhook built it.
  event           jsonb NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  -- Filing attempts the database refused (a constraint, a bug), with the last reason. Rows
  -- refused too often stay here for inspection instead of blocking their conversation.
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  PRIMARY KEY (channel, external_id)
);
CREATE INDEX inbox_conversation_idx ON inbox (phone_number_id, customer_id, id);
