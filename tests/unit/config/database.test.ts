import { z } from 'zod';
import { databaseSection } from '../../../src/config/database';

const parse = (env: Record<string, string>) => z.object(databaseSection.shape).safeParse(env);

describe('database config section', () => {
  it('when nothing is set, then the local database, a 20-connection pool, a 30 s statement limit and migrations at start apply', () => {
    expect(parse({}).data).toEqual({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/multichannel_agent',
      DATABASE_POOL_SIZE: 20,
      DATABASE_STATEMENT_TIMEOUT_MS: 30_000,
      MIGRATE_ON_START: true,
    });
  });

  it('when the URL is not Postgres or the pool is empty, then each is refused by name', () => {
    const result = parse({ DATABASE_URL: 'mysql://db/x', DATABASE_POOL_SIZE: '0', MIGRATE_ON_START: 'maybe' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['DATABASE_POOL_SIZE', 'DATABASE_URL', 'MIGRATE_ON_START']);
  });

  it('when statements are unbounded on purpose (0) and migrations off, then both are kept', () => {
    expect(parse({ DATABASE_STATEMENT_TIMEOUT_MS: '0', MIGRATE_ON_START: 'false', DATABASE_URL: 'postgresql://h/db' }).data).toMatchObject({
      DATABASE_STATEMENT_TIMEOUT_MS: 0,
      MIGRATE_ON_START: false,
      DATABASE_URL: 'postgresql://h/db',
    });
  });
});
