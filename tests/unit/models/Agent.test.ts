/**
 * The agent model with a fake database: the parameters each function sends (tenant first, lead
 * fields as JSON text), how a row maps back (numeric temperature as a number) and what "no row"
 * means. What the statements do runs against Postgres in tests/integration/agents.test.ts.
 */
import { findAgent, insertAgent, listAgents, markAgentArchived, updateAgent, type NewAgent } from '../../../src/models/Agent';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AGENT, AT, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const settings: NewAgent = {
  name: 'Shoes',
  systemPrompt: 'You sell shoes.',
  model: 'gpt-test',
  temperature: 0.4,
  maxTokens: 300,
  historyLimit: 20,
  maxPromptTokens: 6000,
  debounceMs: 1500,
  leadFields: [{ name: 'size', description: 'Shoe size', type: 'enum', values: ['38', '39'] }],
  fallbackMessage: 'Back soon',
  resumeAfterMinutes: 30,
  handoffKeywords: ['human'],
  optOutKeywords: ['STOP'],
  optInKeywords: ['START'],
  optOutMessage: 'Bye',
};

/** A row as pg hands it over: numeric(3,2) as a string. */
const row = (overrides: Record<string, unknown> = {}) => ({
  ...settings,
  id: AGENT,
  userId: USER,
  temperature: '0.40',
  archivedAt: null,
  createdAt: AT,
  updatedAt: AT,
  ...overrides,
});

beforeEach(() => resetFakeDatabase(fake));

describe('every statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertAgent', call: (client) => insertAgent(USER, settings, client), rows: [row()] },
    { name: 'findAgent', call: (client) => findAgent(USER, AGENT, client, { lock: 'share' }) },
    { name: 'listAgents', call: (client) => listAgents(USER, { limit: 10, includeArchived: false }, client) },
    { name: 'updateAgent', call: (client) => updateAgent(USER, AGENT, { name: 'New' }, client) },
    { name: 'markAgentArchived', call: (client) => markAgentArchived(USER, AGENT, client) },
  ]);
});

describe('insertAgent', () => {
  it('when an agent is inserted, then every setting goes as a parameter, lead fields as JSON text, and the row comes back with a numeric temperature', async () => {
    answer(fake.db, [row()]);

    const agent = await insertAgent(USER, settings);

    expect(paramsOf(fake.db)).toEqual([USER, 'Shoes', 'You sell shoes.', 'gpt-test', 0.4, 300, 20, 1500, JSON.stringify(settings.leadFields), 'Back soon', 6000, 30, ['human'], ['STOP'], ['START'], 'Bye']);
    expect(agent).toEqual({ ...settings, id: AGENT, userId: USER, temperature: 0.4, archivedAt: null, createdAt: AT, updatedAt: AT });
  });

  it('when the agent has no lead fields of its own, then null goes as is, not as the text "null"', async () => {
    answer(fake.db, [row({ leadFields: null })]);

    const agent = await insertAgent(USER, { ...settings, leadFields: null });

    expect(paramsOf(fake.db)[8]).toBeNull();
    expect(agent.leadFields).toBeNull();
  });

  it('when Postgres refuses the insert, then its error reaches the caller unchanged', async () => {
    const refused = Object.assign(new Error('new row violates check constraint'), { code: '23514' });
    answer(fake.db, refused);

    await expect(insertAgent(USER, settings)).rejects.toBe(refused);
  });
});

describe('findAgent', () => {
  it('when the tenant has the agent, then it comes back mapped', async () => {
    answer(fake.db, [row({ temperature: '1.25', archivedAt: AT })]);

    await expect(findAgent(USER, AGENT)).resolves.toMatchObject({ id: AGENT, temperature: 1.25, archivedAt: AT });
    expect(paramsOf(fake.db)).toEqual([USER, AGENT]);
  });

  it('when the tenant has no such agent, then it is null', async () => {
    await expect(findAgent(USER, AGENT, undefined, { lock: 'update' })).resolves.toBeNull();
  });
});

describe('listAgents', () => {
  it('when a page is asked for, then one row more than the limit is fetched, after the cursor, and every row is mapped', async () => {
    answer(fake.db, [row({ temperature: '0.10' }), row({ id: 'other', temperature: '0.20' })]);

    const agents = await listAgents(USER, { limit: 1, afterId: AGENT, includeArchived: true });

    expect(paramsOf(fake.db)).toEqual([USER, true, AGENT, 2]);
    expect(agents.map((agent) => agent.temperature)).toEqual([0.1, 0.2]);
  });

  it('when there is no cursor, then null stands for it', async () => {
    await expect(listAgents(USER, { limit: 5, includeArchived: false })).resolves.toEqual([]);

    expect(paramsOf(fake.db)).toEqual([USER, false, null, 6]);
  });
});

describe('updateAgent', () => {
  it('when some settings change, then only those are sent after the tenant and the agent, in a fixed order', async () => {
    answer(fake.db, [row({ name: 'New', temperature: '0.90' })]);

    const agent = await updateAgent(USER, AGENT, { temperature: 0.9, name: 'New', leadFields: [], fallbackMessage: null, maxTokens: undefined });

    expect(paramsOf(fake.db)).toEqual([USER, AGENT, 'New', 0.9, '[]', null]);
    expect(agent).toMatchObject({ name: 'New', temperature: 0.9 });
  });

  it('when nothing changes, then only the tenant and the agent are sent', async () => {
    await updateAgent(USER, AGENT, {});

    expect(paramsOf(fake.db)).toEqual([USER, AGENT]);
  });

  it('when the tenant has no such unarchived agent, then it is null', async () => {
    await expect(updateAgent(USER, AGENT, { name: 'New' })).resolves.toBeNull();
  });
});

describe('markAgentArchived', () => {
  it('when the agent is archived, then the archived row comes back mapped', async () => {
    answer(fake.db, [row({ archivedAt: AT })]);

    await expect(markAgentArchived(USER, AGENT)).resolves.toMatchObject({ id: AGENT, archivedAt: AT, temperature: 0.4 });
    expect(paramsOf(fake.db)).toEqual([USER, AGENT]);
  });

  it('when the tenant has no such agent left to archive, then it is null', async () => {
    await expect(markAgentArchived(USER, AGENT)).resolves.toBeNull();
  });
});
