// Verifies a tenant event: the raw body exactly as received, the X-Signature header, your secret.
const crypto = require('node:crypto');

function verifyWebhook(rawBody, signatureHeader, secret, toleranceSeconds = 300) {
  const parts = String(signatureHeader || '').split(',').map((part) => part.trim().split('='));
  const timestamp = Number((parts.find(([key]) => key === 't') || [])[1]);
  if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = crypto.createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest();
  return parts.some(([key, value]) =>
    key === 'v1' && /^[0-9a-f]{64}$/.test(value) && crypto.timingSafeEqual(Buffer.from(value, 'hex'), expected),
  );
}

module.exports = { verifyWebhook };
