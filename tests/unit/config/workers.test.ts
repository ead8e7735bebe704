import { z } from 'zod';
import { workersSection } from '../../../src/config/workers';

const parse = (env: Record<string, string>) => z.object(workersSection.shape).safeParse(env);

describe('workers config section', () => {
  it('when nothing is set, then the contract defaults apply and no health port is opened', () => {
    const config = parse({}).data!;
    expect(config).toMatchObject({
      EXTRACTION_IDLE_SECONDS: 600,
      MESSAGE_WORKERS: 1,
      EXTRACTION_WORKERS: 1,
      MESSAGE_WORKERS_MAX: 4,
      WORKER_CONCURRENCY: 50,
      WORKER_LEASE_MS: 30_000,
      SEND_IN_DOUBT_GRACE_MS: 15_000,
      MESSAGE_MAX_ATTEMPTS: 8,
      STALE_MESSAGE_SECONDS: 86_400,
      RETRY_BACKOFF_BASE_MS: 1_000,
      RETRY_BACKOFF_MAX_MS: 60_000,
    });
    expect(config.WORKER_HEALTH_PORT).toBeUndefined();
  });

  it('when concurrency is 0, a lease is shorter than 200 ms or attempts exceed 100, then each is refused by name', () => {
    const result = parse({ WORKER_CONCURRENCY: '0', WORKER_LEASE_MS: '199', MESSAGE_MAX_ATTEMPTS: '101' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['MESSAGE_MAX_ATTEMPTS', 'WORKER_CONCURRENCY', 'WORKER_LEASE_MS']);
  });

  it('when zero message workers are asked for, then that is allowed (an API-only host)', () => {
    expect(parse({ MESSAGE_WORKERS: '0', EXTRACTION_WORKERS: '0' }).data).toMatchObject({ MESSAGE_WORKERS: 0, EXTRACTION_WORKERS: 0 });
  });
});
