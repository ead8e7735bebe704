/**
 * Brings a database's schema to what `src/migrations/` says, in three kinds of files:
 *
 * - `NNN_name.sql`, numbered: a schema change, applied once, in number order. An applied one is
 *   never edited: its checksum is recorded and a changed or vanished file is refused. Add a new
 *   numbered file instead.
 * - `BNNN_name.sql`, the baseline: the schema as migrations 001..NNN left it, applied only to an
 *   empty database. A database that applied those numbered files (recorded in
 *   `schema_migrations`, their files gone) is covered by it and skips it.
 * - `R__name.sql`, repeatable: every SQL function and trigger, each in exactly one such file as
 *   `CREATE OR REPLACE`. Applied after the numbered files, in name order, and again whenever the
 *   file's checksum changes (recorded in `schema_repeatables`): edit the function in place. A
 *   function no file defines any more is dropped by a numbered migration.
 *
 * Safe to run from several processes at once: a session advisory lock serialises them, and each
 * file commits together with its bookkeeping row, so a crash leaves either all of a file or none
 * of it. src/migrations/README.md says the same for whoever adds the next file.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';

export const MIGRATIONS_DIR = path.join(__dirname, '..', 'migrations');

/** An arbitrary constant shared by every migrating process: the advisory lock's name. */
const MIGRATION_LOCK_KEY = 4_271_337;

export type MigrationKind = 'baseline' | 'numbered' | 'repeatable';

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
  kind: MigrationKind;
  /** NNN of a numbered file or of the baseline; null for a repeatable. */
  version: number | null;
}

export interface AppliedMigration {
  name: string;
  checksum: string;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export const checksum = (sql: string) => createHash('sha256').update(sql).digest('hex');

const FILE_KINDS: [MigrationKind, RegExp][] = [
  ['numbered', /^(\d{3})_[a-z0-9_]+\.sql$/],
  ['baseline', /^B(\d{3})_[a-z0-9_]+\.sql$/],
  ['repeatable', /^R__[a-z0-9_]+\.sql$/],
];

function kindOf(name: string): { kind: MigrationKind; version: number | null } | null {
  for (const [kind, pattern] of FILE_KINDS) {
    const match = pattern.exec(name);
    if (match) return { kind, version: match[1] === undefined ? null : Number(match[1]) };
  }
  return null;
}

/** The version of a numbered file's name (also of one whose file is gone), else null. */
const numberedVersion = (name: string): number | null => {
  const kind = kindOf(name);
  return kind?.kind === 'numbered' ? kind.version : null;
};

/** The order files apply in: the baseline, numbered files by number, then repeatables by name. */
const APPLY_ORDER: Record<MigrationKind, number> = { baseline: 0, numbered: 1, repeatable: 2 };

/** The migration files of `dir` in the order they apply; other files (README.md) are skipped. */
export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const named = (await readdir(dir)).flatMap((name) => {
    const kind = kindOf(name);
    return kind ? [{ name, ...kind }] : [];
  });
  named.sort((a, b) => APPLY_ORDER[a.kind] - APPLY_ORDER[b.kind] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Promise.all(
    named.map(async (file) => {
      const sql = await readFile(path.join(dir, file.name), 'utf8');
      return { ...file, sql, checksum: checksum(sql) };
    }),
  );
}

/**
 * Pure: which baseline and numbered files still need applying, in order. Refuses when an
 * applied file was edited or deleted (the database would no longer match what the repository
 * says it is), except numbered files the baseline covers, whose rows stay as the record of how
 * an older database got its schema.
 */
export function planMigrations(files: MigrationFile[], applied: AppliedMigration[]): MigrationFile[] {
  const baselines = files.filter((file) => file.kind === 'baseline');
  if (baselines.length > 1) throw new MigrationError(`only one baseline may exist, found ${baselines.map((file) => file.name).join(', ')}`);
  const baseline = baselines[0];
  const numbered = files.filter((file) => file.kind === 'numbered');
  const covered = (version: number | null) => baseline !== undefined && version !== null && version <= baseline.version!;
  for (const file of numbered) {
    if (covered(file.version)) throw new MigrationError(`migration ${file.name} is covered by the baseline ${baseline!.name}; remove it`);
  }

  const byName = new Map([...baselines, ...numbered].map((file) => [file.name, file]));
  for (const done of applied) {
    const file = byName.get(done.name);
    if (!file && covered(numberedVersion(done.name))) continue;
    if (!file) throw new MigrationError(`migration ${done.name} was applied but its file is gone`);
    if (file.checksum !== done.checksum) {
      throw new MigrationError(`migration ${done.name} changed after it was applied; add a new migration instead`);
    }
  }

  const appliedNames = new Set(applied.map((done) => done.name));
  const pending = numbered.filter((file) => !appliedNames.has(file.name));
  if (!baseline || appliedNames.has(baseline.name)) return pending;
  const coveredVersions = applied.map((done) => numberedVersion(done.name)).filter((version) => covered(version));
  if (coveredVersions.length > 0) {
    const reached = Math.max(...(coveredVersions as number[]));
    if (reached < baseline.version!) {
      throw new MigrationError(
        `the database was migrated up to ${String(reached).padStart(3, '0')}, short of the baseline ${baseline.name}: ` +
          'migrate it first with a release that still holds the numbered files up to the baseline',
      );
    }
    return pending;
  }
  if (applied.length > 0) throw new MigrationError(`the database has migrations applied but neither the baseline ${baseline.name} nor what it covers`);
  return [baseline, ...pending];
}

/** Pure: the repeatable files never applied, or changed since they last were, in name order. */
export function planRepeatables(files: MigrationFile[], applied: AppliedMigration[]): MigrationFile[] {
  const appliedChecksums = new Map(applied.map((done) => [done.name, done.checksum]));
  return files.filter((file) => file.kind === 'repeatable' && appliedChecksums.get(file.name) !== file.checksum);
}

/** Creates the database named in `databaseUrl` if it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  if (!name) throw new MigrationError('DATABASE_URL names no database');
  url.pathname = '/postgres';
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    try {
      await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      return true;
    } catch (error) {
      // Another process created it between our check and our CREATE: that is what we wanted.
      const code = (error as { code?: string }).code;
      if (code === '42P04' || code === '23505') return false;
      throw error;
    }
  } finally {
    await admin.end();
  }
}

export interface MigrateResult {
  created: boolean;
  applied: string[];
}

/** Runs one file's SQL and its bookkeeping row in one transaction. */
async function applyFile(client: Client, file: MigrationFile, record: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(file.sql);
    await client.query(record, [file.name, file.checksum]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw new MigrationError(`migration ${file.name} failed: ${(error as Error).message}`);
  }
}

/**
 * Creates the database if missing, then applies what is pending: the baseline (empty database
 * only), numbered files, then repeatables that are new or changed. `applied` names them in
 * the order they ran.
 */
export async function migrate(databaseUrl: string, options: { dir?: string; log?: (line: string) => void } = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const created = await ensureDatabase(databaseUrl);
  if (created) log('created the database');
  const files = await readMigrations(options.dir);
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_repeatables (
      name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows: migrations } = await client.query<AppliedMigration>('SELECT name, checksum FROM schema_migrations ORDER BY name');
    const { rows: repeatables } = await client.query<AppliedMigration>('SELECT name, checksum FROM schema_repeatables ORDER BY name');
    const pending = planMigrations(files, migrations);
    // Planned before anything runs, so a refused plan changes nothing.
    const changed = planRepeatables(files, repeatables);
    for (const file of pending) {
      await applyFile(client, file, 'INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)');
      log(`applied ${file.name}`);
    }
    for (const file of changed) {
      await applyFile(
        client,
        file,
        `INSERT INTO schema_repeatables (name, checksum) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()`,
      );
      log(`applied ${file.name}`);
    }
    const applied = [...pending, ...changed].map((file) => file.name);
    if (applied.length === 0) log('schema is up to date');
    return { created, applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}
