import { Writable } from 'node:stream';
import { loadConfig } from '../../../src/config';
import { createLogger, startupWarnings } from '../../../src/utils/logger';
import { runWithContext } from '../../../src/utils/context';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      raw.push(String(chunk));
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination }), lines, raw };
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

  it('when a child logger bound the tenant inside a request context, then the line carries each key once', () => {
    const { logger, raw } = capture();
    runWithContext({ requestId: 'req-8', userId: 'user-2' }, () => {
      logger.child({ conversation_id: 'c-1', user_id: 'user-2' }).info('turn');
      logger.child({ request_id: 'req-8' }).info('bound request id');
    });
    for (const line of raw) {
      expect(line.match(/"user_id"/g) ?? []).toHaveLength(1);
      expect(line.match(/"request_id"/g)).toHaveLength(1);
    }
    expect(JSON.parse(raw[0]!)).toMatchObject({ request_id: 'req-8', user_id: 'user-2', conversation_id: 'c-1' });
  });

  it('when OPENAI_API_KEY is missing, then a startup warning names it and what fails without it', () => {
    const withoutKey = startupWarnings(loadConfig({}));
    expect(withoutKey.map((w) => w.variable)).toEqual(['ADMIN_API_KEY', 'ENCRYPTION_KEY', 'META_APP_SECRET', 'META_VERIFY_TOKEN', 'OPENAI_API_KEY']);
    expect(withoutKey.at(-1)!.message).toMatch(/^OPENAI_API_KEY is not set: .*failed \(openai_not_configured\).*postponed.*start:offline/);
    expect(startupWarnings(loadConfig({ OPENAI_API_KEY: 'sk-x' })).map((w) => w.variable)).not.toContain('OPENAI_API_KEY');
  });
});
