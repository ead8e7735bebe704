-- Tenant events (CONTRACT §3 "Tenant events"): the endpoints a tenant registers, the outbox of
-- events, and one delivery row per event and endpoint. Events and their deliveries are written
-- by emit_tenant_event (R__events.sql) in the transaction that makes the change they report,
-- so a rolled-back change leaves no event and a committed one cannot lose its event.

CREATE TABLE webhook_endpoints (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url                        text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
  events                     text[] NOT NULL CHECK (cardinality(events) > 0),
  -- The signing secret, encrypted (utils/encryption.ts, bound to this row): it must sign, so
  -- it cannot be a hash.
  secret_encrypted           text NOT NULL,
  -- After a rotation the old secret signs too, until previous_secret_expires_at.
  previous_secret_encrypted  text,
  previous_secret_expires_at timestamptz,
  -- The first failed attempt of the current run of failures; cleared by a success.
  failing_since              timestamptz,
  -- Set when the endpoint failed for a day: nothing more is delivered to it, and the tenant reads why.
  disabled_at                timestamptz,
  disabled_reason            text,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, user_id),
  CHECK ((previous_secret_encrypted IS NULL) = (previous_secret_expires_at IS NULL)),
  CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL))
);
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at DESC, id DESC);

-- The outbox: what happened, once, whatever the number of endpoints.
CREATE TABLE tenant_events (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  type            text NOT NULL CHECK (length(type) BETWEEN 1 AND 60),
  -- The conversation it concerns, if any: deliveries keep its events in order.
  conversation_id uuid,
  data            jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_events_user_idx ON tenant_events (user_id, created_at DESC);

CREATE TABLE webhook_deliveries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Emission order: within one endpoint and ordering key, a delivery waits for every earlier one.
  seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  user_id          uuid NOT NULL,
  endpoint_id      uuid NOT NULL,
  event_id         uuid NOT NULL REFERENCES tenant_events (id) ON DELETE CASCADE,
  -- The event's conversation, or the event itself when it has none (nothing to order it after).
  ordering_key     uuid NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_status_code integer,
  last_error       text,
  next_attempt_at  timestamptz,
  -- Past this, a failed attempt makes the delivery `failed` (24 h after the event, or after a redelivery).
  give_up_at       timestamptz NOT NULL,
  -- A dispatcher's hold while it posts; a killed dispatcher's hold expires and another takes over.
  leased_until     timestamptz,
  lease_token      uuid,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (endpoint_id, user_id) REFERENCES webhook_endpoints (id, user_id) ON DELETE CASCADE,
  CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_queue_idx ON webhook_deliveries (endpoint_id, ordering_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, seq DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
