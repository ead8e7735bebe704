/** The X-Signature of tenant events, checked against the documented verifier and by hand. */
import { createHmac } from 'node:crypto';
import { newSigningSecret, signatureHeader, signatureOf } from '../../../src/utils/webhookSignature';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyWebhook } = require('../../../documentation/examples/verify-webhook.js') as {
  verifyWebhook: (rawBody: string, header: string | undefined, secret: string, toleranceSeconds?: number) => boolean;
};

const body = '{"id":"e1","type":"credits.low","created_at":"2026-01-01T00:00:00.000Z","data":{}}';
const now = () => Math.floor(Date.now() / 1000);

describe('signatureHeader', () => {
  it('when one secret signs, then the header is t= and one v1= of HMAC-SHA256("<t>.<body>")', () => {
    const header = signatureHeader(['s1'], 1700000000, body);
    expect(header).toBe(`t=1700000000,v1=${createHmac('sha256', 's1').update(`1700000000.${body}`).digest('hex')}`);
    expect(signatureOf('s1', 1700000000, body)).toBe(header.split('v1=')[1]);
  });

  it('when two secrets sign (a rotation), then either verifies with the documented verifier', () => {
    const header = signatureHeader(['new', 'old'], now(), body);
    expect(header.match(/v1=/g)).toHaveLength(2);
    expect(verifyWebhook(body, header, 'new')).toBe(true);
    expect(verifyWebhook(body, header, 'old')).toBe(true);
    expect(verifyWebhook(body, header, 'other')).toBe(false);
  });

  it('when the timestamp is over 5 minutes old, or the header is missing or malformed, then the verifier refuses', () => {
    expect(verifyWebhook(body, signatureHeader(['s'], now() - 301, body), 's')).toBe(false);
    expect(verifyWebhook(body, signatureHeader(['s'], now() - 299, body), 's')).toBe(true);
    expect(verifyWebhook(body, undefined, 's')).toBe(false);
    expect(verifyWebhook(body, `t=${now()},v1=zz`, 's')).toBe(false);
  });
});

describe('newSigningSecret', () => {
  it('when called twice, then two different 256-bit secrets come back', () => {
    const [a, b] = [newSigningSecret(), newSigningSecret()];
    expect(a).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
  });
});

describe('the documented verifier', () => {
  it('when the webhooks page is read, then it shows the tested verifier file verbatim, in at most 15 lines', () => {
    const { readFileSync } = jest.requireActual<typeof import('node:fs')>('node:fs');
    const { join } = jest.requireActual<typeof import('node:path')>('node:path');
    const root = join(__dirname, '..', '..', '..');
    const verifier = readFileSync(join(root, 'documentation', 'examples', 'verify-webhook.js'), 'utf8');
    const page = readFileSync(join(root, 'documentation', 'webhooks', 'README.md'), 'utf8');
    expect(page).toContain(`\`\`\`js\n${verifier}\`\`\``);
    expect(verifier.trimEnd().split('\n').length).toBeLessThanOrEqual(15);
  });
});
