import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MigrationError, checksum, planMigrations, readMigrations } from '../../../src/utils/migrator';

const file = (name: string, sql = `-- ${name}`) => ({ name, sql, checksum: checksum(sql) });

describe('migration planning', () => {
  it('when nothing was applied, then every file is pending in order', () => {
    const files = [file('001_a.sql'), file('002_b.sql')];
    expect(planMigrations(files, []).map((f) => f.name)).toEqual(['001_a.sql', '002_b.sql']);
  });

  it('when some were applied, then only the rest are pending', () => {
    const files = [file('001_a.sql'), file('002_b.sql')];
    expect(planMigrations(files, [{ name: '001_a.sql', checksum: files[0]!.checksum }]).map((f) => f.name)).toEqual(['002_b.sql']);
  });

  it('when an applied file changed, then planning refuses', () => {
    expect(() => planMigrations([file('001_a.sql', 'edited')], [{ name: '001_a.sql', checksum: checksum('original') }])).toThrow(
      new MigrationError('migration 001_a.sql changed after it was applied; add a new migration instead'),
    );
  });

  it('when an applied file is gone, then planning refuses', () => {
    expect(() => planMigrations([], [{ name: '001_a.sql', checksum: 'x' }])).toThrow(/its file is gone/);
  });

  it('when reading a folder, then only numbered .sql files are taken, sorted', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'migrations-'));
    await writeFile(path.join(dir, '002_second.sql'), 'SELECT 2;');
    await writeFile(path.join(dir, '001_first.sql'), 'SELECT 1;');
    await writeFile(path.join(dir, 'README.md'), 'not a migration');
    const files = await readMigrations(dir);
    expect(files.map((f) => f.name)).toEqual(['001_first.sql', '002_second.sql']);
    expect(files[0]!.checksum).toBe(checksum('SELECT 1;'));
  });

  it('then the repository migrations are well-named and in order', async () => {
    const names = (await readMigrations()).map((f) => f.name);
    expect(names.slice(0, 3)).toEqual(['001_initial_schema.sql', '002_add_extractions.sql', '003_conversation_archives.sql']);
  });
});
