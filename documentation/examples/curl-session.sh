#!/usr/bin/env bash
# A first session with the API, from an empty platform to a customer's WhatsApp message stored
# in a conversation. Run it against `npm start` (or `npm run start:api`) with the development
# defaults:
#
#   bash documentation/examples/curl-session.sh
#   BASE_URL=http://localhost:3055 bash documentation/examples/curl-session.sh
#
# or paste it into a terminal block by block. Needs bash, curl, openssl, sed and grep (no jq).
# Every run makes a new tenant with a new email and a new WhatsApp id, so it can run again.

# Stop at the first failure when run as a script; a pasted session keeps your shell open.
[[ $- == *i* ]] || set -euo pipefail

BASE_URL="${BASE_URL:-http://localhost:3000}"
ADMIN_KEY="${ADMIN_KEY:-dev-admin-key}"            # ADMIN_API_KEY's development default
APP_SECRET="${APP_SECRET:-dev-app-secret}"         # META_APP_SECRET's development default
VERIFY_TOKEN="${VERIFY_TOKEN:-dev-verify-token}"   # META_VERIFY_TOKEN's development default
RUN="$(date +%s)$RANDOM"                           # makes this run's email and ids unique

# ---------------------------------------------------------------------------------------------
# Helpers. `call` prints a request and its answer, keeps the answer's body in $BODY and its
# status in $STATUS, and fails unless the status is the one expected. `webhook` does the same
# for a body posted to Meta's webhook with a given signature. `field` reads a string field of
# $BODY (the first one with that name), `number` an integer field.

BODY_FILE="$(mktemp)"

call() { # call EXPECTED_STATUS METHOD PATH KEY [JSON_BODY]
  local expected="$1" method="$2" path="$3" key="$4" data="${5:-}"
  local args=(-sS -o "$BODY_FILE" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $key")
  if [[ -n "$data" ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$data"); fi
  echo "> $method $path $data"
  STATUS="$(curl "${args[@]}" "$BASE_URL$path")"
  BODY="$(cat "$BODY_FILE")"
  echo "< $STATUS $BODY"
  echo
  if [[ "$STATUS" != "$expected" ]]; then echo "!! expected HTTP $expected" >&2; return 1; fi
}

webhook() { # webhook EXPECTED_STATUS SIGNATURE_HEADER JSON_BODY
  local expected="$1" signature="$2" data="$3"
  echo "> POST /webhooks/meta  X-Hub-Signature-256: $signature"
  STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' -X POST "$BASE_URL/webhooks/meta" \
    -H 'Content-Type: application/json' -H "X-Hub-Signature-256: $signature" --data-binary "$data")"
  BODY="$(cat "$BODY_FILE")"
  echo "< $STATUS $BODY"
  echo
  if [[ "$STATUS" != "$expected" ]]; then echo "!! expected HTTP $expected" >&2; return 1; fi
}

field() { grep -o "\"$1\":\"[^\"]*\"" <<<"$BODY" | head -n 1 | cut -d '"' -f 4; }
number() { grep -o "\"$1\":-\{0,1\}[0-9]*" <<<"$BODY" | head -n 1 | cut -d ':' -f 2; }

# ---------------------------------------------------------------------------------------------
# 0. Is the API up? /readyz checks Postgres and Redis.
curl -sS "$BASE_URL/readyz"; echo; echo

# 1. The operator creates a tenant with 1000 opening credits. The answer carries the tenant's
#    API key: it is shown this once and stored only as a hash.
call 201 POST /v1/users "$ADMIN_KEY" "{\"name\":\"Acme Shoes\",\"email\":\"owner+$RUN@acme.example\",\"credits\":1000}"
TENANT_ID="$(field id)"
TENANT_KEY="$(field api_key)"
echo "TENANT_ID=$TENANT_ID"
echo "TENANT_KEY=$TENANT_KEY"
echo

# 2. From here on the tenant's key does the work. /v1/me says who the key belongs to.
call 200 GET /v1/me "$TENANT_KEY"

# 3. Register a WhatsApp number. external_id is the number's phone_number_id from Meta's
#    dashboard (here a made-up one); the access token is stored encrypted and never returned.
WHATSAPP_ID="1555$RUN"
call 201 POST /v1/phone-numbers "$TENANT_KEY" \
  "{\"channel\":\"whatsapp\",\"external_id\":\"$WHATSAPP_ID\",\"display_name\":\"Acme support\",\"access_token\":\"EAAG-not-a-real-token\"}"
NUMBER_ID="$(field id)"

# 4. Create an agent: a system prompt, a few settings, and the lead fields to extract.
call 201 POST /v1/agents "$TENANT_KEY" '{
  "name": "Shoe shop assistant",
  "system_prompt": "You answer customers of Acme Shoes briefly and kindly.",
  "temperature": 0.3,
  "debounce_ms": 2000,
  "fallback_message": "We will get back to you shortly.",
  "lead_fields": [
    { "name": "name", "description": "The customer name", "type": "string" },
    { "name": "shoe_size", "description": "EU shoe size asked for", "type": "number" },
    { "name": "intent", "description": "What the customer wants", "type": "enum", "values": ["buy", "return", "question"] }
  ]
}'
AGENT_ID="$(field id)"

# 5. Link the agent to the number: from now on the agent answers messages to that number.
call 200 PUT "/v1/phone-numbers/$NUMBER_ID/agent" "$TENANT_KEY" "{\"agent_id\":\"$AGENT_ID\"}"

# 6. Meta's subscription handshake: with the right verify token the answer is the challenge,
#    as plain text.
echo "> GET /webhooks/meta?hub.mode=subscribe&hub.verify_token=$VERIFY_TOKEN&hub.challenge=challenge-$RUN"
CHALLENGE="$(curl -sS "$BASE_URL/webhooks/meta?hub.mode=subscribe&hub.verify_token=$VERIFY_TOKEN&hub.challenge=challenge-$RUN")"
echo "< $CHALLENGE"
echo
if [[ "$CHALLENGE" != "challenge-$RUN" ]]; then echo "!! the handshake did not echo the challenge" >&2; false; fi

# 7. A customer writes to the number: the webhook Meta would send, signed the way Meta signs
#    it (HMAC-SHA256 of the exact body bytes with the app secret, as hex).
WEBHOOK_BODY="{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"2109876$RUN\",\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550001234\",\"phone_number_id\":\"$WHATSAPP_ID\"},\"contacts\":[{\"profile\":{\"name\":\"Maria\"},\"wa_id\":\"15550102030\"}],\"messages\":[{\"from\":\"15550102030\",\"id\":\"wamid.session-$RUN\",\"timestamp\":\"$(date +%s)\",\"type\":\"text\",\"text\":{\"body\":\"Hi! Do you have the red sneakers in size 39?\"}}]}}]}]}"
SIGNATURE="sha256=$(printf '%s' "$WEBHOOK_BODY" | openssl dgst -sha256 -hmac "$APP_SECRET" | sed 's/^.*= //')"
webhook 200 "$SIGNATURE" "$WEBHOOK_BODY"

#    Meta retries deliveries: the same body again is answered 200 and stored only once.
webhook 200 "$SIGNATURE" "$WEBHOOK_BODY"

#    A wrong signature is refused (401 invalid_signature) and nothing of the body is stored.
webhook 401 "sha256=$(printf '0%.0s' {1..64})" "$WEBHOOK_BODY"

# 8. The message opened a conversation on the number, handled by the linked agent.
call 200 GET "/v1/conversations?phone_number_id=$NUMBER_ID" "$TENANT_KEY"
CONVERSATION_ID="$(field id)"

# 9. Its messages, in order: the customer's message is there once, despite the second delivery.
#    It is `pending` until a message worker answers it: with `npm start` and OPENAI_API_KEY set
#    it becomes `answered` and the reply follows as an outbound message (`queued`, then `sent`,
#    `delivered`, `read`); without OPENAI_API_KEY the worker marks it `failed` with the error
#    code `openai_not_configured`; with the API alone (`npm run start:api`) it stays `pending`.
call 200 GET "/v1/conversations/$CONVERSATION_ID/messages" "$TENANT_KEY"
echo "customer messages stored: $(grep -o '"direction":"inbound"' <<<"$BODY" | wc -l | tr -d ' ')"
echo "status of the first message: $(field status)"
echo

# 10. Human takeover: pause the bot for this conversation, then hand it back.
#     (POST /v1/conversations/$CONVERSATION_ID/messages with {"text": "..."} would send a
#     human's message through WhatsApp and pause the bot too; it needs a real access token.)
call 200 POST "/v1/conversations/$CONVERSATION_ID/pause" "$TENANT_KEY"
call 200 POST "/v1/conversations/$CONVERSATION_ID/resume" "$TENANT_KEY"

# 11. Ask for a lead extraction now (the extraction worker runs it), and look for it. Until a
#     worker has run it, the extraction is a 404.
call 202 POST "/v1/conversations/$CONVERSATION_ID/extract" "$TENANT_KEY"
echo "> GET /v1/conversations/$CONVERSATION_ID/extraction"
curl -sS "$BASE_URL/v1/conversations/$CONVERSATION_ID/extraction" -H "Authorization: Bearer $TENANT_KEY"
echo; echo

# 12. Credits: the balance, and the ledger (newest first; charges are negative).
call 200 GET /v1/me "$TENANT_KEY"
echo "credit balance: $(number credit_balance)"
echo
call 200 GET /v1/credits/ledger "$TENANT_KEY"

# 13. The operator tops the tenant up.
call 201 POST "/v1/users/$TENANT_ID/credits" "$ADMIN_KEY" '{"amount":500,"reason":"welcome bonus"}'
echo "credit balance after the top-up: $(number credit_balance)"
echo

# 14. Keys are walled: the operator key is refused on tenant routes, and a tenant key on
#     operator routes (both 403 forbidden).
call 403 GET /v1/me "$ADMIN_KEY"
call 403 GET /v1/users "$TENANT_KEY"

rm -f "$BODY_FILE"
echo "Session complete. Keep these to explore further:"
echo "  TENANT_KEY=$TENANT_KEY NUMBER_ID=$NUMBER_ID AGENT_ID=$AGENT_ID CONVERSATION_ID=$CONVERSATION_ID"
