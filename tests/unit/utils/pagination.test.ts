/** Cursor pagination helpers: the query schema, opaque cursors, and cutting a page from limit+1 rows. */
import { decodeCursor, encodeCursor, pageQuery, toPage } from '../../../src/utils/pagination';
import { AppError } from '../../../src/utils/errors';

const UUID = '0b9d7c2e-8f3a-4b1c-9d2e-3f4a5b6c7d8e';

describe('pageQuery', () => {
  it('when nothing is given, then limit defaults to 20 and there is no cursor', () => {
    expect(pageQuery.parse({})).toEqual({ limit: 20 });
  });

  it('when limit comes as a query string, then it is coerced to a number', () => {
    expect(pageQuery.parse({ limit: '5', cursor: 'abc' })).toEqual({ limit: 5, cursor: 'abc' });
  });

  it('when limit is outside 1–100 or not an integer, then it fails on the limit path', () => {
    for (const limit of ['0', '101', '2.5', 'ten', '-1']) {
      const result = pageQuery.safeParse({ limit });
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.path).toEqual(['limit']);
    }
  });

  it('when the cursor is absurdly long, then it fails on the cursor path', () => {
    const result = pageQuery.safeParse({ cursor: 'x'.repeat(201) });
    expect(result.error?.issues[0]?.path).toEqual(['cursor']);
  });
});

describe('encodeCursor / decodeCursor', () => {
  it('when a uuid is encoded, then it decodes back and the cursor is URL-safe', () => {
    const cursor = encodeCursor(UUID);
    expect(cursor).toMatch(/^[A-Za-z0-9_.-]+$/);
    expect(cursor).not.toContain(UUID);
    expect(decodeCursor<string>(cursor, 'uuid')).toBe(UUID);
  });

  it('when an integer is encoded, then it decodes back', () => {
    expect(decodeCursor<number>(encodeCursor(42), 'integer')).toBe(42);
  });

  it('when a cursor was not issued here (unsigned, its value or its MAC changed, or cut short), then a validation_error naming cursor', () => {
    const issued = encodeCursor(7);
    const [payload, mac] = issued.split('.') as [string, string];
    const forged = [
      'WzMwMDAwMDAwMDBd', // [3000000000], unsigned: once a 500 from Postgres' integer
      `${Buffer.from('[3000000000]').toString('base64url')}.${mac}`,
      `${Buffer.from('[8]').toString('base64url')}.${mac}`,
      `${payload}.${mac.slice(0, -2)}`,
      `${payload}.${mac}.${mac}`,
      `${payload}.`,
      '.',
      '',
    ];
    for (const cursor of forged) {
      expect(() => decodeCursor(cursor, 'integer')).toThrow(expect.objectContaining({ code: 'validation_error', details: [expect.objectContaining({ path: 'cursor' })] }));
    }
    expect(decodeCursor<number>(issued, 'integer')).toBe(7);
  });

  it('when the cursor is garbage, of the wrong kind or not a uuid, then a validation_error naming cursor', () => {
    const bad = [
      'not base64 json',
      Buffer.from('{"a":1}').toString('base64url'),
      encodeCursor(42), // an integer where a uuid is expected
      encodeCursor('not-a-uuid'),
      Buffer.from('[1.5]').toString('base64url'),
    ];
    for (const cursor of bad) {
      let error: unknown;
      try {
        decodeCursor(cursor, cursor === bad[4] ? 'integer' : 'uuid');
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({ code: 'validation_error', details: [{ path: 'cursor', message: expect.any(String) }] });
    }
  });

  it('when a uuid cursor is decoded as an integer, then it is refused', () => {
    expect(() => decodeCursor(encodeCursor(UUID), 'integer')).toThrow(AppError);
  });
});

describe('toPage', () => {
  const rows = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];

  it('when the model returned limit + 1 rows, then the extra row is dropped and the cursor names the last kept row', () => {
    const page = toPage(rows, 2, (row) => row.id);
    expect(page.data).toEqual([{ id: 'a' }, { id: 'b' }]);
    expect(page.next_cursor).toBe(encodeCursor('b'));
  });

  it('when it returned exactly limit rows or fewer, then there is no next page', () => {
    expect(toPage(rows, 3, (row) => row.id)).toEqual({ data: rows, next_cursor: null });
    expect(toPage(rows.slice(0, 1), 3, (row) => row.id)).toEqual({ data: [{ id: 'a' }], next_cursor: null });
  });

  it('when there are no rows, then an empty page', () => {
    expect(toPage([], 20, (row: { id: string }) => row.id)).toEqual({ data: [], next_cursor: null });
  });
});
