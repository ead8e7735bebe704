/**
 * Meta's webhook: the subscription handshake (GET) and event delivery (POST). The POST body
 * is read raw, because the signature covers Meta's exact bytes (escaped unicode included);
 * nothing of a body is parsed, stored or logged before its signature checks out.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { Router } from 'express';
import { config } from '../config';
import { AppError } from '../utils/errors';
import { logger } from '../utils/logger';
import { constantTimeEquals } from '../middleware/auth';
import { normalizeWebhook } from '../services/metaNormalizer';
import { ingestWebhookEvents } from '../services/webhookService';

export const WEBHOOK_PATH = '/webhooks/meta';

/** True when `header` is `sha256=<hex HMAC of body>` under the app secret. */
export function isValidSignature(body: Buffer, header: string | undefined, secret = config.META_APP_SECRET): boolean {
  const match = header ? /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim()) : null;
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[1]!, 'hex'));
}

export const webhookRouter = Router();

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
