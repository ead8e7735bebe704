/**
 * The only module that imports `pg`. One pool per process; models call `query` (or take the
 * `Queryable` a transaction hands them) and never see `pg` types beyond that.
 */
import { createHash } from 'node:crypto';
import { Pool, type PoolClient, type QueryResultRow } from 'pg';
import { config } from '../config';
import { logger } from './logger';

export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

type PgQueryable = Pick<PoolClient, 'query'>;

const statementNames = new Map<string, string>();

/**
 * Every statement with parameters runs as a named prepared statement, named after its text:
 * Postgres parses and plans it once per connection instead of on every call, which is most of
 * the cost of the short statements a webhook or a worker turn is made of. Our SQL texts are
 * static (values always travel as parameters), so the set of names stays small.
 */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `s_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name;
}

function adapt(client: PgQueryable): Queryable {
  return {
    query: (text: string, params?: unknown[]) =>
      params && params.length > 0 ? client.query({ name: statementName(text), text, values: params }) : client.query(text),
  } as Queryable;
}

let pool: Pool | undefined;

export function getPool(): Pool {
  if (!pool) {
    pool = new Pool({
      connectionString: config.DATABASE_URL,
      max: config.DATABASE_POOL_SIZE,
      // Workers run more tasks than connections; a task waits its turn rather than failing.
      connectionTimeoutMillis: 30_000,
      idleTimeoutMillis: 30_000,
      // Every statement here is a keyed lookup or write whose best plan does not depend on the
      // values; custom plans re-planned a turn's statements at each call (its history read: 0.2 ms of
      // planning for 0.2 ms of execution, pg_stat_statements in npm run bench -- pipeline).
      // statement_timeout: a runaway statement (a bad plan, a lock held by a stuck session) is
      // cancelled rather than holding its connection, and the request or turn waiting on it,
      // forever. The migrator connects on its own, without it: a migration may rightly run long.
      options: `-c plan_cache_mode=force_generic_plan -c statement_timeout=${config.DATABASE_STATEMENT_TIMEOUT_MS}`,
    });
    // An idle client losing its connection emits here; without a listener it would crash the process.
    pool.on('error', (error) => logger.error({ err: error }, 'idle Postgres client failed'));
  }
  return pool;
}

/** Wraps a client so every statement's text and duration are logged, never its parameters. */
function timed(client: Queryable): Queryable {
  return {
    async query(text, params) {
      const started = process.hrtime.bigint();
      try {
        return await client.query(text, params);
      } finally {
        if (logger.isLevelEnabled('debug')) {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          logger.debug({ sql: text.replace(/\s+/g, ' ').slice(0, 200), ms }, 'query');
        }
      }
    },
  } as Queryable;
}

export const db: Queryable = timed({
  query: (text: string, params?: unknown[]) => adapt(getPool()).query(text, params),
} as Queryable);

/**
 * Runs `fn` inside BEGIN/COMMIT on one client, rolling back on any error. The client is
 * released in `finally` so a failed COMMIT cannot leak it.
 */
export async function withTransaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
  const client: PoolClient = await getPool().connect();
  try {
    await client.query('BEGIN');
    const result = await fn(timed(adapt(client)));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

export async function pingDatabase(): Promise<void> {
  await getPool().query('SELECT 1');
}

export async function closeDatabase(): Promise<void> {
  const current = pool;
  pool = undefined;
  await current?.end();
}
