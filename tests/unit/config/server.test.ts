import { z } from 'zod';
import { serverSection, trustProxy } from '../../../src/config/server';

const parse = (env: Record<string, string>) => z.object(serverSection.shape).safeParse(env);

describe('server config section', () => {
  it('when nothing is set, then the contract defaults apply', () => {
    expect(parse({}).data).toEqual({
      NODE_ENV: 'development',
      PORT: 3000,
      RATE_LIMIT_PER_MINUTE: 600,
      TRUST_PROXY: false,
      SHUTDOWN_TIMEOUT_MS: 10_000,
      BODY_LIMIT: '3mb',
      LOG_LEVEL: 'info',
    });
  });

  it('when values are out of range or malformed, then each is refused by name', () => {
    const result = parse({ NODE_ENV: 'staging', PORT: '70000', BODY_LIMIT: '3 gigabytes', LOG_LEVEL: 'loud', METRICS_TOKEN: 'short' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['BODY_LIMIT', 'LOG_LEVEL', 'METRICS_TOKEN', 'NODE_ENV', 'PORT']);
  });

  it("when TRUST_PROXY is a flag, a hop count or addresses, then it is Express's trust proxy value", () => {
    expect(trustProxy.parse('0')).toBe(false);
    expect(trustProxy.parse('true')).toBe(true);
    expect(trustProxy.parse('3')).toBe(3);
    expect(trustProxy.parse('uniquelocal,192.168.0.0/16')).toEqual(['uniquelocal', '192.168.0.0/16']);
    expect(trustProxy.safeParse('proxy.example').success).toBe(false);
  });
});
