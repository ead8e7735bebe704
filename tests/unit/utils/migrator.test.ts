import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MigrationError, checksum, planMigrations, planRepeatables, readMigrations, type MigrationFile } from '../../../src/utils/migrator';

function file(name: string, sql = `-- ${name}`): MigrationFile {
  const kind = name.startsWith('R__') ? 'repeatable' : name.startsWith('B') ? 'baseline' : 'numbered';
  return { name, sql, checksum: checksum(sql), kind, version: kind === 'repeatable' ? null : Number(/\d{3}/.exec(name)![0]) };
}
const done = (f: MigrationFile) => ({ name: f.name, checksum: f.checksum });
const names = (files: MigrationFile[]) => files.map((f) => f.name);

describe('migration planning', () => {
  it('when nothing was applied, then every file is pending in order', () => {
    const files = [file('001_a.sql'), file('002_b.sql')];
    expect(names(planMigrations(files, []))).toEqual(['001_a.sql', '002_b.sql']);
  });

  it('when some were applied, then only the rest are pending', () => {
    const files = [file('001_a.sql'), file('002_b.sql')];
    expect(names(planMigrations(files, [done(files[0]!)]))).toEqual(['002_b.sql']);
  });

  it('when an applied file changed, then planning refuses', () => {
    expect(() => planMigrations([file('001_a.sql', 'edited')], [{ name: '001_a.sql', checksum: checksum('original') }])).toThrow(
      new MigrationError('migration 001_a.sql changed after it was applied; add a new migration instead'),
    );
  });

  it('when an applied file is gone, then planning refuses', () => {
    expect(() => planMigrations([], [{ name: '001_a.sql', checksum: 'x' }])).toThrow(/its file is gone/);
  });

  it('when planning, then repeatables are left to planRepeatables', () => {
    expect(names(planMigrations([file('001_a.sql'), file('R__f.sql')], []))).toEqual(['001_a.sql']);
  });
});

describe('migration planning with a baseline', () => {
  const baseline = file('B003_baseline.sql');
  const later = file('004_d.sql');
  const files = [baseline, later];

  it('when the database is empty, then the baseline applies first, then the files after it', () => {
    expect(names(planMigrations(files, []))).toEqual(['B003_baseline.sql', '004_d.sql']);
  });

  it('when the baseline was applied, then only later files are pending', () => {
    expect(names(planMigrations(files, [done(baseline)]))).toEqual(['004_d.sql']);
    expect(planMigrations(files, [done(baseline), done(later)])).toEqual([]);
  });

  it('when the database applied the files the baseline covers, then their rows are accepted without their files and the baseline is skipped', () => {
    const old = ['001_a.sql', '002_b.sql', '003_c.sql'].map((name) => ({ name, checksum: 'whatever they were' }));
    expect(names(planMigrations(files, old))).toEqual(['004_d.sql']);
    expect(planMigrations(files, [...old, done(later)])).toEqual([]);
  });

  it('when the database stopped short of the baseline, then planning refuses rather than skip what it lacks', () => {
    expect(() => planMigrations(files, [{ name: '001_a.sql', checksum: 'x' }])).toThrow(/migrated up to 001, short of the baseline B003_baseline.sql/);
  });

  it('when a numbered file the baseline covers is still in the folder, then planning refuses', () => {
    expect(() => planMigrations([...files, file('002_b.sql')], [])).toThrow('migration 002_b.sql is covered by the baseline B003_baseline.sql; remove it');
  });

  it('when the applied baseline or a later applied file changed or vanished, then planning still refuses', () => {
    expect(() => planMigrations(files, [{ name: baseline.name, checksum: 'other' }])).toThrow(/B003_baseline.sql changed after it was applied/);
    expect(() => planMigrations(files, [done(baseline), { name: '004_d.sql', checksum: 'other' }])).toThrow(/004_d.sql changed/);
    expect(() => planMigrations(files, [done(baseline), { name: '005_e.sql', checksum: 'x' }])).toThrow(/005_e.sql was applied but its file is gone/);
  });

  it('when rows exist that neither are nor precede the baseline, then planning refuses', () => {
    expect(() => planMigrations(files, [done(later)])).toThrow(/neither the baseline B003_baseline.sql nor what it covers/);
  });

  it('when there are two baselines, then planning refuses', () => {
    expect(() => planMigrations([file('B002_one.sql'), baseline], [])).toThrow(/only one baseline/);
  });
});

describe('repeatable planning', () => {
  const [a, b] = [file('R__a.sql'), file('R__b.sql')];

  it('when none was applied, then all are pending, in name order', () => {
    expect(names(planRepeatables([file('001_x.sql'), a, b], []))).toEqual(['R__a.sql', 'R__b.sql']);
  });

  it('when one changed since it was applied, then only that one is pending', () => {
    expect(names(planRepeatables([a, b], [done(a), { name: 'R__b.sql', checksum: 'before the edit' }]))).toEqual(['R__b.sql']);
    expect(planRepeatables([a, b], [done(a), done(b)])).toEqual([]);
  });
});

describe('reading a folder', () => {
  it('when reading, then the baseline, numbered files and repeatables are taken in apply order, the rest skipped', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'migrations-'));
    await writeFile(path.join(dir, '005_second.sql'), 'SELECT 2;');
    await writeFile(path.join(dir, '004_first.sql'), 'SELECT 1;');
    await writeFile(path.join(dir, 'B003_baseline.sql'), 'SELECT 0;');
    await writeFile(path.join(dir, 'R__b.sql'), 'SELECT 4;');
    await writeFile(path.join(dir, 'R__a.sql'), 'SELECT 3;');
    await writeFile(path.join(dir, 'README.md'), 'not a migration');
    const files = await readMigrations(dir);
    expect(files.map((f) => [f.name, f.kind, f.version])).toEqual([
      ['B003_baseline.sql', 'baseline', 3],
      ['004_first.sql', 'numbered', 4],
      ['005_second.sql', 'numbered', 5],
      ['R__a.sql', 'repeatable', null],
      ['R__b.sql', 'repeatable', null],
    ]);
    expect(files[1]!.checksum).toBe(checksum('SELECT 1;'));
  });

  it('then the repository holds the baseline, numbered files after it, and functions only in repeatables', async () => {
    const files = await readMigrations();
    expect(files[0]!.name).toBe('B008_baseline.sql');
    for (const f of files.filter((f) => f.kind !== 'repeatable')) expect(f.sql).not.toMatch(/CREATE (OR REPLACE )?(FUNCTION|TRIGGER)/i);
    expect(files.filter((f) => f.kind === 'numbered').every((f) => f.version! > 8)).toBe(true);
  });

  it('then each function and trigger is defined in exactly one repeatable file', async () => {
    const definitions = new Map<string, string[]>();
    for (const f of await readMigrations()) {
      for (const [, what, name] of f.sql.matchAll(/CREATE OR REPLACE (FUNCTION|TRIGGER) (\w+)/g)) {
        const key = `${what} ${name}`;
        definitions.set(key, [...(definitions.get(key) ?? []), f.name]);
      }
    }
    expect(definitions.size).toBeGreaterThan(10);
    for (const [name, where] of definitions) expect([name, where.length]).toEqual([name, 1]);
  });
});
