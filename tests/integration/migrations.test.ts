import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { config } from '../../src/config';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../../src/utils/migrator';
import { dropDatabase } from '../fixtures/testDatabase';
import { schemaSnapshot } from '../fixtures/schemaSnapshot';

/** The migrations of main at c7967e3, byte for byte: what databases out there were migrated with. */
const MAIN_C7967E3 = path.join(__dirname, '..', 'fixtures', 'migrations-main-c7967e3');

/** A database of this test's own, distinct from the file's shared one. */
function databaseUrl(suffix: string): { url: string; name: string } {
  const url = new URL(config.DATABASE_URL);
  const name = `${url.pathname.slice(1)}_${suffix}`;
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const appliedNames = (url: string) =>
  withClient(url, async (client) => (await client.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name')).rows.map((row) => row.name));

/** A copy of the repository's migrations to edit, as a developer would. */
async function migrationsCopy(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

describe('migrations on a real Postgres', () => {
  const created: string[] = [];
  const database = (suffix: string) => {
    const db = databaseUrl(suffix);
    created.push(db.name);
    return db;
  };
  afterAll(async () => {
    for (const name of created) await dropDatabase(name);
  });

  it('when the database is missing, then migrate creates it, applies all files, and a second run applies nothing', async () => {
    const { url } = database('fresh');
    const first = await migrate(url);
    const all = (await readMigrations()).map((f) => f.name);
    expect(first).toEqual({ created: true, applied: all });
    expect(await migrate(url)).toEqual({ created: false, applied: [] });
    expect(await appliedNames(url)).toEqual(all.filter((name) => !name.startsWith('R__')).sort());
  });

  it('when two processes migrate at once, then both succeed and each file is applied once', async () => {
    const { url } = database('race');
    const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
    const all = (await readMigrations()).map((f) => f.name);
    expect(results.flatMap((r) => r.applied).sort()).toEqual([...all].sort());
  });

  it('when an applied numbered file was edited, then migrate refuses, names it, and applies nothing', async () => {
    const { url } = database('edited');
    const dir = await migrationsCopy();
    await migrate(url, { dir });
    const numbered = (await readMigrations(dir)).find((f) => f.kind === 'numbered')!;
    await writeFile(path.join(dir, numbered.name), `${numbered.sql}\n-- an edit after the fact\n`);
    await writeFile(path.join(dir, 'R__statuses.sql'), `${await readFile(path.join(dir, 'R__statuses.sql'), 'utf8')}\n-- edited too\n`);
    await expect(migrate(url, { dir })).rejects.toThrow(`migration ${numbered.name} changed after it was applied`);
    const repeatables = await withClient(url, async (client) => (await client.query(`SELECT checksum FROM schema_repeatables WHERE name = 'R__statuses.sql'`)).rows);
    expect(repeatables).toEqual([{ checksum: (await readMigrations()).find((f) => f.name === 'R__statuses.sql')!.checksum }]);
  });

  it('when the baseline was edited after it was applied, then migrate refuses', async () => {
    const { url } = database('edited_baseline');
    await migrate(url);
    await withClient(url, (client) => client.query(`UPDATE schema_migrations SET checksum = 'tampered' WHERE name = 'B008_baseline.sql'`));
    await expect(migrate(url)).rejects.toThrow('migration B008_baseline.sql changed after it was applied');
  });

  it('when a repeatable file changed, then only it is applied again and the database runs its new text', async () => {
    const { url } = database('repeatable');
    const dir = await migrationsCopy();
    await migrate(url, { dir });
    const edited = (await readFile(path.join(dir, 'R__statuses.sql'), 'utf8')).replace("WHEN 'failed' THEN 4", "WHEN 'failed' THEN 40");
    await writeFile(path.join(dir, 'R__statuses.sql'), edited);

    expect(await migrate(url, { dir })).toEqual({ created: false, applied: ['R__statuses.sql'] });
    const rank = await withClient(url, async (client) => (await client.query(`SELECT outbound_status_rank('failed') AS rank`)).rows[0].rank);
    expect(rank).toBe(40);
    expect(await migrate(url, { dir })).toEqual({ created: false, applied: [] });
  });

  describe('a database migrated at main c7967e3 (files 001-008)', () => {
    const upgraded = database('upgraded');
    const fresh = database('baseline');
    const ids = {
      user: '10000000-0000-4000-8000-000000000001',
      agent: '10000000-0000-4000-8000-000000000002',
      number: '10000000-0000-4000-8000-000000000003',
      conversation: '10000000-0000-4000-8000-000000000004',
      question: '10000000-0000-4000-8000-000000000005',
    };

    beforeAll(async () => {
      await migrate(upgraded.url, { dir: MAIN_C7967E3 });
      // Data as the old functions' callers left it: a tenant with credits, its agent on a
      // number, a conversation holding one answered exchange and one pending question.
      await withClient(upgraded.url, async (client) => {
        await client.query(`INSERT INTO users (id, name, email) VALUES ($1, 'Old tenant', 'old@example.com')`, [ids.user]);
        await client.query(`INSERT INTO credit_ledger (user_id, amount, reason) VALUES ($1, 100, 'top_up')`, [ids.user]);
        await client.query(`INSERT INTO agents (id, user_id, name, system_prompt, model) VALUES ($1, $2, 'Shop', 'You sell shoes.', 'gpt-test')`, [ids.agent, ids.user]);
        await client.query(
          `INSERT INTO phone_numbers (id, user_id, channel, external_id, access_token_encrypted, agent_id)
           VALUES ($1, $2, 'whatsapp', 'PNID-OLD', 'v1:iv:tag:ciphertext', $3)`,
          [ids.number, ids.user, ids.agent],
        );
        await client.query(
          `INSERT INTO conversations (id, user_id, phone_number_id, agent_id, channel, customer_external_id, last_sequence_no, last_message_at)
           VALUES ($1, $2, $3, $4, 'whatsapp', '15550001111', 3, now())`,
          [ids.conversation, ids.user, ids.number, ids.agent],
        );
        await client.query(
          `INSERT INTO messages (id, user_id, conversation_id, sequence_no, direction, author, channel, type, text, status, external_id)
           VALUES (gen_random_uuid(), $1, $2, 1, 'inbound', 'customer', 'whatsapp', 'text', 'Hi', 'answered', 'wamid.OLD1'),
                  (gen_random_uuid(), $1, $2, 2, 'outbound', 'agent', 'whatsapp', 'text', 'Hello!', 'read', 'wamid.OLD2'),
                  ($3, $1, $2, 3, 'inbound', 'customer', 'whatsapp', 'text', 'Any boots?', 'pending', 'wamid.OLD3')`,
          [ids.user, ids.conversation, ids.question],
        );
      });
    });

    it('when migrated at this commit, then it upgrades without the baseline and keeps its data', async () => {
      const result = await migrate(upgraded.url);
      expect(result.applied).not.toContain('B008_baseline.sql');
      expect(result.applied).toEqual((await readMigrations()).filter((f) => f.kind !== 'baseline').map((f) => f.name));
      expect(await migrate(upgraded.url)).toEqual({ created: false, applied: [] });

      await withClient(upgraded.url, async (client) => {
        const { rows: messages } = await client.query(`SELECT sequence_no, status FROM messages WHERE conversation_id = $1 ORDER BY sequence_no`, [ids.conversation]);
        expect(messages).toEqual([{ sequence_no: 1, status: 'answered' }, { sequence_no: 2, status: 'read' }, { sequence_no: 3, status: 'pending' }]);
        const { rows: balance } = await client.query(`SELECT credit_balance::int AS balance FROM users WHERE id = $1`, [ids.user]);
        expect(balance).toEqual([{ balance: 100 }]);
      });
    });

    it('when upgraded, then the new functions work on the old data: filing continues the sequence and a reply is recorded and charged', async () => {
      await withClient(upgraded.url, async (client) => {
        const { rows: filed } = await client.query(
          `SELECT outcome, conversation_id, status, sequence_no FROM ingest_customer_message(
             'whatsapp', 'PNID-OLD', '15550001111', 'Ann', 'wamid.NEW4', 'text', 'Size 40?', NULL, now(), true)`,
        );
        expect(filed).toEqual([{ outcome: 'recorded', conversation_id: ids.conversation, status: 'pending', sequence_no: 4 }]);
        const { rows: reply } = await client.query(
          `SELECT r.outcome, r.charged::int, (r.reply).sequence_no FROM record_reply($1, $2, ARRAY[$3, (SELECT id FROM messages WHERE external_id = 'wamid.NEW4')]::uuid[], 'Yes', $3, 7, 70) r`,
          [ids.user, ids.conversation, ids.question],
        );
        expect(reply).toEqual([{ outcome: 'recorded', charged: 7, sequence_no: 5 }]);
        const { rows: balance } = await client.query(`SELECT credit_balance::int AS balance FROM users WHERE id = $1`, [ids.user]);
        expect(balance).toEqual([{ balance: 93 }]);
      });
    });

    it('when upgraded, then its schema equals a freshly migrated one: columns, constraints, indexes, triggers, functions', async () => {
      await migrate(fresh.url);
      const [before, after] = [await schemaSnapshot(upgraded.url), await schemaSnapshot(fresh.url)];
      expect(before).toEqual(after);
      expect(after.functions.map((line) => line.split(' | ')[0])).toEqual(expect.arrayContaining(['append_message', 'find_or_create_conversation', 'record_reply']));
      expect(after.functions.map((line) => line.split(' | ')[0])).not.toEqual(expect.arrayContaining(['lock_active_conversation']));
    });
  });
});
