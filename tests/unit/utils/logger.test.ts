import { Writable } from 'node:stream';
import { createLogger } from '../../../src/utils/logger';
import { runWithContext } from '../../../src/utils/context';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines };
}

describe('logger', () => {
  it('when secrets are logged by mistake, then they are redacted', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        headers: { authorization: 'Bearer mca_secret', 'x-hub-signature-256': 'sha256=abc' },
        phoneNumber: { access_token: 'EAAG-token', accessToken: 'EAAG-token2' },
        api_key: 'mca_plain',
        openaiApiKey: 'sk-live',
      },
      'oops',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of ['mca_secret', 'sha256=abc', 'EAAG-token', 'mca_plain', 'sk-live']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('when logging inside a request context, then the line carries the request id and tenant', () => {
    const { logger, lines } = capture();
    runWithContext({ requestId: 'req-7', userId: 'user-1' }, () => logger.info('inside'));
    logger.info('outside');
    expect(lines[0]).toMatchObject({ request_id: 'req-7', user_id: 'user-1', msg: 'inside', level: 'info', service: 'multi-channel-ai-agent' });
    expect(lines[1]).not.toHaveProperty('request_id');
  });
});
