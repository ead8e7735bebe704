#!/usr/bin/env bash
# A first session with the API, from an empty platform to a customer's WhatsApp message answered
# by the agent, the reply sent and charged, and the lead extracted. Run it against
# `npm run start:offline` (the product with local stand-ins for OpenAI and Meta) with the
# development defaults:
#
#   npm run start:offline                       # in one terminal
#   bash documentation/examples/curl-session.sh # in another
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
# for a body posted to Meta's webhook with a given signature. `poll` repeats a GET until the
# answer shows what the step waits for (the workers run in the background). `field` reads a string field of
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

poll() { # poll SECONDS PATH PATTERN [GIVE_UP_PATTERN]: GET PATH (tenant key) until its body matches
  local seconds="$1" path="$2" pattern="$3" give_up="${4:-}" deadline=$((SECONDS + $1))
  echo "> GET $path   (every second until it matches, up to $seconds s)"
  while :; do
    STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' -H "Authorization: Bearer $TENANT_KEY" "$BASE_URL$path")"
    BODY="$(cat "$BODY_FILE")"
    if grep -Eq "$pattern" <<<"$BODY"; then break; fi
    if [[ -n "$give_up" ]] && grep -Eq "$give_up" <<<"$BODY" || (( SECONDS >= deadline )); then
      echo "< $STATUS $BODY"; echo
      echo "!! expected an answer matching $pattern" >&2; return 1
    fi
    sleep 1
  done
  echo "< $STATUS $BODY"
  echo
}

field() { grep -o "\"$1\":\"[^\"]*\"" <<<"$BODY" | head -n 1 | cut -d '"' -f 4; }
number() { grep -o "\"$1\":-\{0,1\}[0-9]*" <<<"$BODY" | head -n 1 | cut -d ':' -f 2; }

# ---------------------------------------------------------------------------------------------
# 1. Is the API up? /readyz checks Postgres and Redis.
echo "> GET /readyz"
READY="$(curl -sS "$BASE_URL/readyz")"
echo "< $READY"
echo
if [[ "$READY" != *'"status":"ready"'* ]]; then echo "!! the API is not ready (is it running at $BASE_URL?)" >&2; false; fi

# 2. The operator creates a tenant with 1000 opening credits. The answer carries the tenant's
#    API key: it is shown this once and stored only as a hash.
call 201 POST /v1/users "$ADMIN_KEY" "{\"name\":\"Acme Shoes\",\"email\":\"owner+$RUN@acme.example\",\"credits\":1000}"
TENANT_ID="$(field id)"
TENANT_KEY="$(field api_key)"
echo "TENANT_ID=$TENANT_ID"
echo "TENANT_KEY=$TENANT_KEY"
echo

# 3. From here on the tenant's key does the work. /v1/me says who the key belongs to.
call 200 GET /v1/me "$TENANT_KEY"

# 4. Register a WhatsApp number. external_id is the number's phone_number_id from Meta's
#    dashboard (here a made-up one). The API first asks Graph whether the access token may act
#    for that number (a token for another number is a 422 with Graph's reason); it is then
#    stored encrypted and never returned. The offline Graph stand-in accepts
#    EAAG-standin.<phone_number_id>.<anything> for that number only; with Meta, use the real token.
WHATSAPP_ID="1555$RUN"
ACCESS_TOKEN="EAAG-standin.$WHATSAPP_ID.session$RUN"
call 201 POST /v1/phone-numbers "$TENANT_KEY" \
  "{\"channel\":\"whatsapp\",\"external_id\":\"$WHATSAPP_ID\",\"display_name\":\"Acme support\",\"access_token\":\"$ACCESS_TOKEN\"}"
NUMBER_ID="$(field id)"

# 5. Create an agent: a system prompt, a few settings, and the lead fields to extract.
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

# 6. Link the agent to the number: from now on the agent answers messages to that number.
call 200 PUT "/v1/phone-numbers/$NUMBER_ID/agent" "$TENANT_KEY" "{\"agent_id\":\"$AGENT_ID\"}"

# 7. Meta's subscription handshake: with the right verify token the answer is the challenge,
#    as plain text.
echo "> GET /webhooks/meta?hub.mode=subscribe&hub.verify_token=$VERIFY_TOKEN&hub.challenge=challenge-$RUN"
CHALLENGE="$(curl -sS "$BASE_URL/webhooks/meta?hub.mode=subscribe&hub.verify_token=$VERIFY_TOKEN&hub.challenge=challenge-$RUN")"
echo "< $CHALLENGE"
echo
if [[ "$CHALLENGE" != "challenge-$RUN" ]]; then echo "!! the handshake did not echo the challenge" >&2; false; fi

# 8. A customer writes to the number: the webhook Meta would send, signed the way Meta signs
#    it (HMAC-SHA256 of the exact body bytes with the app secret, as hex).
WEBHOOK_BODY="{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"2109876$RUN\",\"changes\":[{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550001234\",\"phone_number_id\":\"$WHATSAPP_ID\"},\"contacts\":[{\"profile\":{\"name\":\"Maria\"},\"wa_id\":\"15550102030\"}],\"messages\":[{\"from\":\"15550102030\",\"id\":\"wamid.session-$RUN\",\"timestamp\":\"$(date +%s)\",\"type\":\"text\",\"text\":{\"body\":\"Hi! Do you have the red sneakers in size 39?\"}}]}}]}]}"
SIGNATURE="sha256=$(printf '%s' "$WEBHOOK_BODY" | openssl dgst -sha256 -hmac "$APP_SECRET" | sed 's/^.*= //')"
webhook 200 "$SIGNATURE" "$WEBHOOK_BODY"

#    Meta retries deliveries: the same body again is answered 200 and stored only once.
webhook 200 "$SIGNATURE" "$WEBHOOK_BODY"

#    A wrong signature is refused (401 invalid_signature) and nothing of the body is stored.
webhook 401 "sha256=$(printf '0%.0s' {1..64})" "$WEBHOOK_BODY"

# 9. The message opened a conversation on the number, handled by the linked agent. The webhook
#    only accepts the message into the inbox; a worker files it into its conversation a moment
#    later, so this polls.
poll 30 "/v1/conversations?phone_number_id=$NUMBER_ID" '"data":\[\{"id":"'
CONVERSATION_ID="$(field id)"

# 10. Its messages, in order: the customer's message is there once, despite the second delivery.
#     A message worker answers it: the customer's message becomes `answered` and the agent's
#     reply follows as an outbound message (`queued`, then `sent`; `delivered` and `read` when
#     Meta reports them). The agent waits for its `debounce_ms` (2 s here) of quiet first, so
#     this polls. Under `npm start` without OPENAI_API_KEY the message ends `failed` with
#     `openai_not_configured`, and with the API alone (`npm run start:api`) it stays `pending`.
poll 30 "/v1/conversations/$CONVERSATION_ID/messages" '"author":"agent"[^{}]*"status":"(sent|delivered|read)"' '"status":"failed"'
echo "customer messages stored: $(grep -o '"direction":"inbound"' <<<"$BODY" | wc -l | tr -d ' ')"
echo "status of the customer's message: $(field status)"
echo
if [[ "$(field status)" != "answered" ]]; then echo "!! expected the customer's message to be answered" >&2; false; fi

# 11. Human takeover: pause the bot for this conversation, then hand it back.
#     (POST /v1/conversations/$CONVERSATION_ID/messages with {"text": "..."} would send a
#     human's message through WhatsApp and pause the bot too; it needs a real access token.)
call 200 POST "/v1/conversations/$CONVERSATION_ID/pause" "$TENANT_KEY"
call 200 POST "/v1/conversations/$CONVERSATION_ID/resume" "$TENANT_KEY"

# 12. Ask for a lead extraction now; the extraction worker runs it within a second or so. Until
#     then the extraction is a 404 whose message says where it stands (the conversation's
#     `extraction_status`: `due`, or `postponed` and why, e.g. no credits or no OPENAI_API_KEY).
call 202 POST "/v1/conversations/$CONVERSATION_ID/extract" "$TENANT_KEY"
poll 30 "/v1/conversations/$CONVERSATION_ID/extraction" '"fields"' 'postponed'
call 200 GET "/v1/conversations/$CONVERSATION_ID" "$TENANT_KEY"
echo "extraction_status: $(field extraction_status)"
echo

# 13. Credits: the balance, and the ledger (newest first; charges are negative): the reply and
#     the extraction were each charged once, from the tokens the model reported.
call 200 GET /v1/me "$TENANT_KEY"
echo "credit balance: $(number credit_balance)"
echo
call 200 GET /v1/credits/ledger "$TENANT_KEY"
if [[ "$BODY" != *'"reason":"reply"'* ]]; then echo "!! expected a reply charge in the ledger" >&2; false; fi

# 14. The operator tops the tenant up.
call 201 POST "/v1/users/$TENANT_ID/credits" "$ADMIN_KEY" '{"amount":500,"reason":"welcome bonus"}'
echo "credit balance after the top-up: $(number credit_balance)"
echo

# 15. Keys are walled: the operator key is refused on tenant routes, and a tenant key on
#     operator routes (both 403 forbidden).
call 403 GET /v1/me "$ADMIN_KEY"
call 403 GET /v1/users "$TENANT_KEY"

rm -f "$BODY_FILE"
echo "Session complete. Keep these to explore further:"
echo "  TENANT_KEY=$TENANT_KEY NUMBER_ID=$NUMBER_ID AGENT_ID=$AGENT_ID CONVERSATION_ID=$CONVERSATION_ID"
echo "  WHATSAPP_ID=$WHATSAPP_ID (Meta's phone_number_id: what npm run simulate -- --to takes)"
