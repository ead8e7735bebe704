/**
 * The one module that owns `pg`, with `pg`'s Pool mocked: one pool per process with an error
 * listener, statements with parameters prepared under a name of their text, query timing that
 * logs text but never parameters, and transactions that commit, roll back and always release.
 * The same module against Postgres runs under every integration test.
 */
import { Pool } from 'pg';
import { config } from '../../../src/config';
import { closeDatabase, db, getPool, pingDatabase, withTransaction } from '../../../src/utils/database';
import { logger } from '../../../src/utils/logger';

jest.mock('pg', () => ({ Pool: jest.fn() }));

const PoolMock = jest.mocked(Pool);
const answered = { rows: [{ one: 1 }], rowCount: 1 };

/** What `new Pool()` gives here: a client to hand out, listeners kept, every call recorded. */
interface FakePool {
  query: jest.Mock;
  connect: jest.Mock;
  end: jest.Mock;
  on: jest.Mock;
  client: { query: jest.Mock; release: jest.Mock };
  /** The texts (or prepared statements) the transaction's client ran, in order. */
  statements: unknown[];
}

let pools: FakePool[];

function fakePool(): FakePool {
  const statements: unknown[] = [];
  const client = {
    query: jest.fn(async (statement: unknown) => {
      statements.push(typeof statement === 'string' ? statement : (statement as { text: string }).text);
      return answered;
    }),
    release: jest.fn(),
  };
  return { query: jest.fn(async () => answered), connect: jest.fn(async () => client), end: jest.fn(async () => undefined), on: jest.fn(), client, statements };
}

/** The pool the module made (the first, unless told otherwise). */
const pool = (index = 0) => pools[index]!;

beforeEach(() => {
  jest.restoreAllMocks();
  pools = [];
  PoolMock.mockReset().mockImplementation(function (this: unknown) {
    const created = fakePool();
    pools.push(created);
    return created as unknown as Pool;
  } as unknown as () => Pool);
});

afterEach(() => closeDatabase());

describe('getPool', () => {
  it('when asked twice, then one pool is made, from the configured URL and size, with generic plans and the statement timeout', () => {
    expect(getPool()).toBe(getPool());

    expect(PoolMock).toHaveBeenCalledTimes(1);
    expect(PoolMock).toHaveBeenCalledWith(
      expect.objectContaining({
        connectionString: config.DATABASE_URL,
        max: config.DATABASE_POOL_SIZE,
        options: `-c plan_cache_mode=force_generic_plan -c statement_timeout=${config.DATABASE_STATEMENT_TIMEOUT_MS}`,
      }),
    );
  });

  it('when an idle client fails, then the pool\'s error listener logs it instead of crashing the process', () => {
    const error = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
    getPool();
    const [event, listener] = pool().on.mock.calls[0] as [string, (error: Error) => void];
    const lost = new Error('terminating connection due to administrator command');

    listener(lost);

    expect(event).toBe('error');
    expect(error).toHaveBeenCalledWith({ err: lost }, expect.any(String));
  });
});

describe('db.query', () => {
  it('when a statement has parameters, then it runs as a prepared statement named after its text, the same name every time', async () => {
    await expect(db.query('SELECT $1::int AS one', [1])).resolves.toEqual(answered);
    await db.query('SELECT $1::int AS one', [2]);
    await db.query('SELECT $1::int AS two', [3]);

    const [first, second, other] = pool().query.mock.calls.map(([statement]) => statement as { name: string; text: string; values: unknown[] });
    expect(first).toEqual({ name: expect.stringMatching(/^s_[0-9a-f]{20}$/), text: 'SELECT $1::int AS one', values: [1] });
    expect(second!.name).toBe(first!.name);
    expect(other!.name).not.toBe(first!.name);
  });

  it('when a statement has no parameters, then its text runs as is, unprepared', async () => {
    await db.query('SELECT 1');
    await db.query('SELECT 2', []);

    expect(pool().query.mock.calls).toEqual([['SELECT 1'], ['SELECT 2']]);
  });

  it('when debug logging is on, then each statement logs its text, whitespace collapsed, and its duration, never its parameters', async () => {
    jest.spyOn(logger, 'isLevelEnabled').mockReturnValue(true);
    const debug = jest.spyOn(logger, 'debug').mockImplementation(() => undefined);

    await db.query('SELECT *\n    FROM users   WHERE email = $1', ['secret@example.com']);

    expect(debug).toHaveBeenCalledWith({ sql: 'SELECT * FROM users WHERE email = $1', ms: expect.any(Number) }, 'query');
    expect(JSON.stringify(debug.mock.calls)).not.toContain('secret@example.com');
  });

  it('when a statement is long, then the logged text is cut at 200 characters', async () => {
    jest.spyOn(logger, 'isLevelEnabled').mockReturnValue(true);
    const debug = jest.spyOn(logger, 'debug').mockImplementation(() => undefined);

    await db.query(`SELECT ${'x, '.repeat(100)}1`);

    expect((debug.mock.calls[0]![0] as { sql: string }).sql).toHaveLength(200);
  });

  it('when a statement fails, then it is still timed and its error reaches the caller', async () => {
    jest.spyOn(logger, 'isLevelEnabled').mockReturnValue(true);
    const debug = jest.spyOn(logger, 'debug').mockImplementation(() => undefined);
    getPool();
    const refused = Object.assign(new Error('duplicate key value'), { code: '23505' });
    pool().query.mockRejectedValueOnce(refused);

    await expect(db.query('INSERT INTO t VALUES ($1)', [1])).rejects.toBe(refused);
    expect(debug).toHaveBeenCalledTimes(1);
  });

  it('when debug logging is off, then nothing is logged', async () => {
    jest.spyOn(logger, 'isLevelEnabled').mockReturnValue(false);
    const debug = jest.spyOn(logger, 'debug');

    await db.query('SELECT 1');

    expect(debug).not.toHaveBeenCalled();
  });
});

describe('withTransaction', () => {
  it('when the body succeeds, then it runs between BEGIN and COMMIT on one client, its result comes back and the client is released', async () => {
    const result = await withTransaction(async (tx) => {
      await tx.query('UPDATE a SET x = $1', [1]);
      await tx.query('UPDATE b SET y = 2');
      return 'done';
    });

    expect(result).toBe('done');
    expect(pool().statements).toEqual(['BEGIN', 'UPDATE a SET x = $1', 'UPDATE b SET y = 2', 'COMMIT']);
    expect(pool().query).not.toHaveBeenCalled();
    expect(pool().client.release).toHaveBeenCalledTimes(1);
  });

  it('when the body throws, then the transaction rolls back, the client is released and the error passes through', async () => {
    const failure = new Error('not enough credits');

    await expect(withTransaction(async () => Promise.reject(failure))).rejects.toBe(failure);

    expect(pool().statements).toEqual(['BEGIN', 'ROLLBACK']);
    expect(pool().client.release).toHaveBeenCalledTimes(1);
  });

  it('when COMMIT fails, then it rolls back, still releases the client, and the commit\'s error comes back', async () => {
    getPool();
    const serialization = Object.assign(new Error('could not serialize access'), { code: '40001' });
    pool().client.query.mockImplementation(async (text: string) => {
      pool().statements.push(text);
      if (text === 'COMMIT') throw serialization;
      return answered;
    });

    await expect(withTransaction(async () => 'never returned')).rejects.toBe(serialization);

    expect(pool().statements).toEqual(['BEGIN', 'COMMIT', 'ROLLBACK']);
    expect(pool().client.release).toHaveBeenCalledTimes(1);
  });

  it('when ROLLBACK fails too (connection gone), then the body\'s error is what comes back, and the client is released', async () => {
    getPool();
    const failure = new Error('body failed');
    pool().client.query.mockImplementation(async (text: string) => {
      if (text === 'ROLLBACK') throw new Error('Connection terminated');
      return answered;
    });

    await expect(withTransaction(async () => Promise.reject(failure))).rejects.toBe(failure);
    expect(pool().client.release).toHaveBeenCalledTimes(1);
  });

  it('when no client can be had, then the error comes back and nothing is released', async () => {
    getPool();
    pool().connect.mockRejectedValueOnce(new Error('timeout exceeded when trying to connect'));
    const body = jest.fn();

    await expect(withTransaction(body)).rejects.toThrow('timeout exceeded');
    expect(body).not.toHaveBeenCalled();
    expect(pool().client.release).not.toHaveBeenCalled();
  });
});

describe('pingDatabase', () => {
  it('when pinged, then the pool runs SELECT 1', async () => {
    await pingDatabase();

    expect(pool().query).toHaveBeenCalledWith('SELECT 1');
  });

  it('when Postgres is down, then the ping rejects', async () => {
    getPool();
    pool().query.mockRejectedValueOnce(new Error('connect ECONNREFUSED'));

    await expect(pingDatabase()).rejects.toThrow('ECONNREFUSED');
  });
});

describe('closeDatabase', () => {
  it('when closed, then the pool ends and the next use makes a new one', async () => {
    getPool();

    await closeDatabase();
    await closeDatabase();
    getPool();

    expect(pool(0).end).toHaveBeenCalledTimes(1);
    expect(PoolMock).toHaveBeenCalledTimes(2);
  });

  it('when no pool was made, then closing does nothing', async () => {
    await expect(closeDatabase()).resolves.toBeUndefined();
    expect(PoolMock).not.toHaveBeenCalled();
  });
});
