import { z } from 'zod';
import { eventsSection } from '../../../src/config/events';

const parse = (env: Record<string, string>) => z.object(eventsSection.shape).safeParse(env);

describe('events config section', () => {
  it('when nothing is set, then one events worker runs and private URLs are left for index.ts to resolve by NODE_ENV', () => {
    const config = parse({}).data!;
    expect(config.EVENT_WORKERS).toBe(1);
    expect(config.WEBHOOK_ALLOW_PRIVATE_URLS).toBeUndefined();
  });

  it('when private URLs are allowed or refused explicitly, then the flag says so', () => {
    expect(parse({ WEBHOOK_ALLOW_PRIVATE_URLS: 'true' }).data?.WEBHOOK_ALLOW_PRIVATE_URLS).toBe(true);
    expect(parse({ WEBHOOK_ALLOW_PRIVATE_URLS: '0' }).data?.WEBHOOK_ALLOW_PRIVATE_URLS).toBe(false);
  });

  it('when the worker count is negative or the flag is not a boolean, then each is refused by name', () => {
    const result = parse({ EVENT_WORKERS: '-1', WEBHOOK_ALLOW_PRIVATE_URLS: 'maybe' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['EVENT_WORKERS', 'WEBHOOK_ALLOW_PRIVATE_URLS']);
  });
});
