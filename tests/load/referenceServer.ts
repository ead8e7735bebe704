/**
 * The floor the webhook benchmark compares the real app against: the least a correct
 * webhook endpoint can do on this stack. Express 5, the raw body, a constant-time
 * HMAC-SHA256 check of X-Hub-Signature-256, one XADD (MAXLEN ~) to a Redis stream, 200.
 * No JSON parsing, no Postgres, no logging, no middleware.
 *
 * Env: PORT (required), REDIS_URL, REDIS_KEY_PREFIX, META_APP_SECRET, REFERENCE_STREAM.
 * Listens on 127.0.0.1. Run as a process of its own; importing it starts a server.
 * GET /healthz answers 200 once Redis answers. SIGTERM/SIGINT close it.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import express from 'express';
import Redis from 'ioredis';

const REFERENCE_STREAM = process.env.REFERENCE_STREAM ?? 'stream:webhooks';
const STREAM_MAX_LENGTH = '100000';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('referenceServer: PORT must be set\n');
  process.exit(1);
}
const secret = process.env.META_APP_SECRET ?? 'dev-app-secret';
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0', {
  keyPrefix: process.env.REDIS_KEY_PREFIX ?? 'bench:reference:',
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
});
redis.on('error', (error) => process.stderr.write(`redis: ${error.message}\n`));

function validSignature(body: Buffer, header: string | undefined): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const given = Buffer.from(header.slice('sha256='.length), 'hex');
  const expected = createHmac('sha256', secret).update(body).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const app = express();
app.disable('x-powered-by');

app.get('/healthz', async (_req, res) => {
  await redis.ping();
  res.json({ status: 'ok' });
});

app.post('/webhooks/meta', express.raw({ type: () => true, limit: '3mb' }), async (req, res) => {
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!validSignature(body, req.get('x-hub-signature-256'))) {
    res.status(401).json({ error: 'invalid_signature' });
    return;
  }
  await redis.xadd(REFERENCE_STREAM, 'MAXLEN', '~', STREAM_MAX_LENGTH, '*', 'request_id', randomUUID(), 'bytes', String(body.length));
  res.status(200).json({ status: 'ok' });
});

const server = app.listen(port, '127.0.0.1', (error?: Error) => {
  if (error) {
    process.stderr.write(`referenceServer: ${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ msg: 'reference listening', port })}\n`);
});
server.keepAliveTimeout = 5_000;

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close(() => {
      redis.quit().finally(() => process.exit(0));
    });
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5_000).unref();
  });
}
