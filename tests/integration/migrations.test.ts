import { Client } from 'pg';
import { config } from '../../src/config';
import { migrate, readMigrations } from '../../src/utils/migrator';
import { dropDatabase } from '../fixtures/testDatabase';

/** A database of this test's own, distinct from the file's shared one. */
function databaseUrl(suffix: string): { url: string; name: string } {
  const url = new URL(config.DATABASE_URL);
  const name = `${url.pathname.slice(1)}_${suffix}`;
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

async function appliedNames(url: string): Promise<string[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
    return rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

describe('migrations on a real Postgres', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const name of created) await dropDatabase(name);
  });

  it('when the database is missing, then migrate creates it, applies all files, and a second run applies nothing', async () => {
    const { url, name } = databaseUrl('fresh');
    created.push(name);
    const first = await migrate(url);
    const all = (await readMigrations()).map((f) => f.name);
    expect(first).toEqual({ created: true, applied: all });
    expect(await migrate(url)).toEqual({ created: false, applied: [] });
    expect(await appliedNames(url)).toEqual(all);
  });

  it('when two processes migrate at once, then both succeed and each file is applied once', async () => {
    const { url, name } = databaseUrl('race');
    created.push(name);
    const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
    const all = (await readMigrations()).map((f) => f.name);
    expect(results.flatMap((r) => r.applied).sort()).toEqual(all);
    expect(await appliedNames(url)).toEqual(all);
  });

  it('when an applied file was edited, then migrate refuses and names it', async () => {
    const { url, name } = databaseUrl('edited');
    created.push(name);
    await migrate(url);
    const client = new Client({ connectionString: url });
    await client.connect();
    await client.query(`UPDATE schema_migrations SET checksum = 'tampered' WHERE name = '001_initial_schema.sql'`);
    await client.end();
    await expect(migrate(url)).rejects.toThrow('migration 001_initial_schema.sql changed after it was applied');
  });
});
