-- Tenants, their keys, credits, channels, agents, conversations and messages.
-- Rules that protect data live here as constraints, so no code path can break them.
-- Composite foreign keys (x_id, user_id) make cross-tenant references impossible:
-- a tenant's row can only point at rows of the same tenant.

CREATE TABLE users (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  -- Kept equal to SUM(credit_ledger.amount) by the trigger below; never negative.
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
  UNIQUE (id, user_id),
  FOREIGN KEY (phone_number_id, user_id) REFERENCES phone_numbers (id, user_id),
  FOREIGN KEY (agent_id, user_id) REFERENCES agents (id, user_id)
);
-- At most one open conversation per customer per number; archived ones pile up beside it.
CREATE UNIQUE INDEX conversations_one_active_idx ON conversations (phone_number_id, customer_external_id) WHERE is_active;
CREATE INDEX conversations_user_created_idx ON conversations (user_id, created_at DESC, id DESC);

CREATE TABLE messages (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
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
  FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id),
  CHECK ((direction = 'inbound' AND author = 'customer') OR (direction = 'outbound' AND author IN ('agent', 'human'))),
  CHECK (status <> 'failed' OR error_code IS NOT NULL)
);
CREATE UNIQUE INDEX messages_external_id_key ON messages (channel, external_id) WHERE external_id IS NOT NULL;
-- The sweeper and the workers look for unanswered customer messages.
CREATE INDEX messages_pending_idx ON messages (conversation_id, sequence_no) WHERE status IN ('pending', 'queued');
CREATE INDEX messages_user_idx ON messages (user_id, created_at DESC);

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
  CHECK (reason <> 'top_up' OR amount > 0),
  CHECK (reason NOT IN ('reply', 'extraction') OR amount <= 0),
  CHECK (reason <> 'reply' OR message_id IS NOT NULL)
);
-- A reply is charged once, whatever retries happen around it.
CREATE UNIQUE INDEX credit_ledger_reply_once_idx ON credit_ledger (message_id) WHERE reason = 'reply';
CREATE INDEX credit_ledger_user_created_idx ON credit_ledger (user_id, created_at DESC, id DESC);

-- The balance is the ledger's sum by construction: every entry moves it, in the inserting
-- transaction, under the user's row lock. The CHECK on users refuses a negative result.
CREATE FUNCTION credit_ledger_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users SET credit_balance = credit_balance + NEW.amount WHERE id = NEW.user_id;
  RETURN NEW;
END $$;
CREATE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger FOR EACH ROW EXECUTE FUNCTION credit_ledger_apply();

-- The ledger is append-only: corrections are new 'adjustment' entries.
CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_ledger is append-only';
END $$;
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
  FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();
