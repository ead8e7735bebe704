/**
 * The tenant model with a fake database: a tenant's statements are keyed by its own id, the
 * bigint balance maps to a number, a taken email is null (not an error), and the operator's list
 * pages by cursor. What the statements do runs against Postgres in tests/integration/users.test.ts.
 */
import { findUserById, insertUser, listUsers, type User } from '../../../src/models/User';
import * as database from '../../../src/utils/database';
import { answer, expectTenantFirst, fakeDatabaseOf, fakeQueryable, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);
const user: User = { id: USER, name: 'Shoe Shop', email: 'shop@example.com', creditBalance: 250, createdAt: AT };
/** A row as pg hands it over: the bigint balance as a string. */
const row = (overrides: Partial<Record<keyof User, unknown>> = {}) => ({ ...user, creditBalance: String(user.creditBalance), ...overrides });

beforeEach(() => resetFakeDatabase(fake));

describe('insertUser', () => {
  it('when a tenant is created, then its name and email are sent and it comes back with a numeric balance', async () => {
    answer(fake.db, [row({ creditBalance: '0' })]);

    await expect(insertUser('Shoe Shop', 'shop@example.com')).resolves.toEqual({ ...user, creditBalance: 0 });
    expect(paramsOf(fake.db)).toEqual(['Shoe Shop', 'shop@example.com']);
  });

  it('when the email is taken, then it is null rather than an error', async () => {
    await expect(insertUser('Other', 'SHOP@example.com')).resolves.toBeNull();
  });

  it('when a client is given, then the insert runs on it', async () => {
    const tx = fakeQueryable();
    answer(tx, [row()]);

    await insertUser('Shoe Shop', 'shop@example.com', tx);

    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(fake.db.query).not.toHaveBeenCalled();
  });
});

describe('findUserById', () => {
  it('when the tenant exists, then it is looked up by its own id and its balance comes back as a number', async () => {
    answer(fake.db, [row()]);

    await expect(findUserById(USER)).resolves.toEqual(user);
    expectTenantFirst(fake.db, USER);
  });

  it('when there is no such tenant, then it is null', async () => {
    await expect(findUserById(USER)).resolves.toBeNull();
  });
});

describe('listUsers', () => {
  it('when there is no cursor, then only the limit is sent and every balance is mapped', async () => {
    answer(fake.db, [row({ creditBalance: '5' }), row({ id: 'other', creditBalance: '0' })]);

    const users = await listUsers(2, undefined);

    expect(paramsOf(fake.db)).toEqual([2]);
    expect(users.map((u) => u.creditBalance)).toEqual([5, 0]);
  });

  it('when a cursor is given, then it is sent after the limit', async () => {
    await expect(listUsers(2, USER)).resolves.toEqual([]);

    expect(paramsOf(fake.db)).toEqual([2, USER]);
  });
});
