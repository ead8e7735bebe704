/**
 * Meta's webhook: the subscription handshake (GET) and event delivery (POST). The POST body
 * is read raw, because the signature covers Meta's exact bytes (escaped unicode included);
 * nothing of a body is parsed, stored or logged before its signature checks out.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { Router } from 'express';
import { z } from 'zod';
import { config } from '../config';
import { AppError } from '../utils/errors';
import { logger } from '../utils/logger';
import { constantTimeEquals } from '../middleware/auth';
import { normalizeWebhook } from '../services/metaNormalizer';
import { ingestWebhookEvents } from '../services/webhookService';
import { errorResponses, openapiRegistry, responseHeaders } from '../utils/openapi';

export const WEBHOOK_PATH = '/webhooks/meta';

/** True when `header` is `sha256=<hex HMAC of body>` under the app secret. */
export function isValidSignature(body: Buffer, header: string | undefined, secret = config.META_APP_SECRET): boolean {
  const match = header ? /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim()) : null;
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[1]!, 'hex'));
}

export const webhookRouter = Router();

const headers = responseHeaders({ rateLimited: false });
openapiRegistry.registerPath({
  method: 'get',
  path: WEBHOOK_PATH,
  summary: "Meta's subscription handshake",
  description: "Meta calls it when the webhook is set up in the app dashboard: with hub.mode=subscribe and the right META_VERIFY_TOKEN the answer is hub.challenge as plain text, else 403. Not rate limited; no key.",
  tags: ['Meta webhook'],
  security: [],
  request: {
    query: z.object({
      'hub.mode': z.literal('subscribe'),
      'hub.verify_token': z.string().meta({ description: 'META_VERIFY_TOKEN', example: 'dev-verify-token' }),
      'hub.challenge': z.string().meta({ example: '1158201444' }),
    }),
  },
  responses: {
    200: { description: 'The challenge, echoed', headers, content: { 'text/plain': { schema: z.string(), example: '1158201444' } } },
    ...errorResponses(['forbidden', 'internal_error'], { rateLimited: false }),
  },
});
openapiRegistry.registerPath({
  method: 'post',
  path: WEBHOOK_PATH,
  summary: "Meta's event delivery (WhatsApp and Instagram)",
  description:
    "Takes `whatsapp_business_account` and `instagram` bodies, every entry, change, message and status of a batch. X-Hub-Signature-256 (sha256=<hex HMAC-SHA256 of the raw body with META_APP_SECRET>) is checked in constant time first: missing or wrong is 401 and nothing is stored. 200 only once every message is durably accepted; 503 when it cannot be (Meta retries). Unknown accounts and unsupported types are answered 200 and logged. Not rate limited; no key.",
  tags: ['Meta webhook'],
  security: [],
  request: {
    headers: z.object({ 'x-hub-signature-256': z.string().meta({ example: 'sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' }) }),
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z.object({ object: z.enum(['whatsapp_business_account', 'instagram']), entry: z.array(z.record(z.string(), z.unknown())) }).loose(),
          example: {
            object: 'whatsapp_business_account',
            entry: [
              {
                id: '210987654321098',
                changes: [
                  {
                    field: 'messages',
                    value: {
                      messaging_product: 'whatsapp',
                      metadata: { display_phone_number: '15550001234', phone_number_id: '109876543210123' },
                      contacts: [{ profile: { name: 'Ana' }, wa_id: '15550001111' }],
                      messages: [{ from: '15550001111', id: 'wamid.HBgL', timestamp: '1767225600', type: 'text', text: { body: 'Hi!' } }],
                    },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  },
  responses: {
    200: { description: 'Every event of the body is accepted', headers, content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } },
    ...errorResponses(['invalid_json', 'invalid_signature', 'payload_too_large', 'internal_error', 'unavailable'], { rateLimited: false }),
  },
});

webhookRouter.get(WEBHOOK_PATH, (req, res) => {
  const mode = req.query['hub.mode'];
  const token = req.query['hub.verify_token'];
  const challenge = req.query['hub.challenge'];
  if (mode === 'subscribe' && typeof token === 'string' && typeof challenge === 'string' && constantTimeEquals(token, config.META_VERIFY_TOKEN)) {
    res.status(200).type('text/plain').send(challenge);
    return;
  }
  logger.warn({ mode }, 'webhook verification refused');
  throw new AppError('forbidden', 'Verification token mismatch');
});

webhookRouter.post(WEBHOOK_PATH, express.raw({ type: () => true, limit: config.BODY_LIMIT }), async (req, res) => {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!isValidSignature(body, req.get('x-hub-signature-256'))) {
    logger.warn({ bytes: body.length }, 'webhook rejected: bad or missing signature');
    throw new AppError('invalid_signature', 'X-Hub-Signature-256 is missing or does not match');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new AppError('invalid_json', 'The webhook body is not valid JSON');
  }
  const events = normalizeWebhook(parsed);
  const summary = await ingestWebhookEvents(events, req.requestId);
  logger.info({ events: events.length, ...summary }, 'webhook accepted');
  res.status(200).json({ status: 'ok' });
});
