import { config } from '../../../src/config';
import {
  AGENT_DEFAULTS,
  DEFAULT_LEAD_FIELDS,
  archiveAgent,
  createAgent,
  effectiveLeadFields,
  getAgent,
  keywordsSchema,
  leadFieldsSchema,
  listAgents,
  updateAgent,
} from '../../../src/services/agentService';
import { encodeCursor } from '../../../src/utils/pagination';
import { forgetAgent, forgetNumbers } from '../../../src/services/cachedLookups';

// The cache's edge: what each committed write makes every process forget.
jest.mock('../../../src/services/cachedLookups', () => ({ forgetAgent: jest.fn(async () => undefined), forgetNumbers: jest.fn(async () => undefined) }));

interface Call {
  via: 'db' | 'tx';
  text: string;
  params: unknown[];
}
type Handler = (text: string, params: unknown[]) => { rows: unknown[]; rowCount?: number } | undefined;

// The database edge is faked: the real models run, and each test answers their SQL.
const mockDb = { calls: [] as Call[], handler: (() => undefined) as Handler };

jest.mock('../../../src/utils/database', () => {
  const client = (via: 'db' | 'tx') => ({
    query: async (text: string, params: unknown[] = []) => {
      mockDb.calls.push({ via, text, params });
      const result = mockDb.handler(text, params) ?? { rows: [] };
      return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
    },
  });
  const tx = client('tx');
  return { db: client('db'), withTransaction: async (fn: (client: unknown) => Promise<unknown>) => fn(tx) };
});

const USER = '11111111-1111-4111-8111-111111111111';
const AGENT = '22222222-2222-4222-8222-222222222222';

/** A row as Postgres hands it to the model: aliased camelCase, numeric as a string. */
function agentRow(overrides: Record<string, unknown> = {}) {
  return {
    id: AGENT,
    userId: USER,
    name: 'Bot',
    systemPrompt: 'Help.',
    model: 'gpt-4o-mini',
    temperature: '0.70',
    maxTokens: 512,
    historyLimit: 20,
    maxPromptTokens: 8000,
    debounceMs: 0,
    leadFields: null,
    fallbackMessage: null,
    archivedAt: null,
    createdAt: new Date('2026-01-01T00:00:00Z'),
    updatedAt: new Date('2026-01-01T00:00:00Z'),
    ...overrides,
  };
}

const sql = (pattern: RegExp) => mockDb.calls.filter((call) => pattern.test(call.text));

beforeEach(() => {
  mockDb.calls = [];
  mockDb.handler = () => undefined;
});

describe('createAgent', () => {
  it('when only name and prompt are given, then the defaults and the configured model are stored', async () => {
    mockDb.handler = (text) => (/INSERT INTO agents/.test(text) ? { rows: [agentRow()] } : undefined);
    const agent = await createAgent(USER, { name: 'Bot', systemPrompt: 'Help.' });
    const [insert] = sql(/INSERT INTO agents/);
    expect(insert!.params).toEqual([
      USER,
      'Bot',
      'Help.',
      config.OPENAI_MODEL,
      AGENT_DEFAULTS.temperature,
      AGENT_DEFAULTS.maxTokens,
      AGENT_DEFAULTS.historyLimit,
      AGENT_DEFAULTS.debounceMs,
      null,
      null,
      8000,
      null,
      [],
      ['STOP', 'UNSUBSCRIBE'],
      ['START'],
      null,
      // vision: images reach the model unless the agent says otherwise.
      true,
    ]);
    expect(agent.temperature).toBe(0.7);
  });

  it('when lead fields are given, then they are sent as JSON text for the jsonb column', async () => {
    mockDb.handler = (text) => (/INSERT INTO agents/.test(text) ? { rows: [agentRow()] } : undefined);
    const leadFields = [{ name: 'budget', description: 'Budget', type: 'number' as const }];
    await createAgent(USER, { name: 'Bot', systemPrompt: 'Help.', model: 'm', temperature: 0, leadFields, fallbackMessage: 'Away' });
    const params = sql(/INSERT INTO agents/)[0]!.params;
    expect(params[3]).toBe('m');
    expect(params[4]).toBe(0);
    expect(JSON.parse(params[8] as string)).toEqual(leadFields);
    expect(params[9]).toBe('Away');
  });
});

describe('getAgent', () => {
  it('when the tenant has no such agent, then not_found, and the query is tenant-filtered', async () => {
    await expect(getAgent(USER, AGENT)).rejects.toMatchObject({ code: 'not_found' });
    expect(mockDb.calls[0]!.text).toMatch(/user_id = \$1/);
    expect(mockDb.calls[0]!.params).toEqual([USER, AGENT]);
  });
});

describe('listAgents', () => {
  it('when a row beyond the limit comes back, then next_cursor names the last row of the page', async () => {
    const rows = [agentRow({ id: 'a' }), agentRow({ id: 'b' }), agentRow({ id: 'c' })];
    mockDb.handler = () => ({ rows });
    const page = await listAgents(USER, { limit: 2 });
    expect(page.data.map((agent) => agent.id)).toEqual(['a', 'b']);
    expect(page.next_cursor).toBe(encodeCursor('b'));
    expect(mockDb.calls[0]!.params).toEqual([USER, false, null, 3]);
  });

  it('when the cursor is not one we handed out, then validation_error naming cursor', async () => {
    await expect(listAgents(USER, { limit: 2, cursor: 'garbage' })).rejects.toMatchObject({
      code: 'validation_error',
      details: [{ path: 'cursor', message: expect.any(String) }],
    });
    expect(mockDb.calls).toEqual([]);
  });
});

describe('updateAgent', () => {
  it('when some fields change, then only their columns are set, null lead_fields included', async () => {
    mockDb.handler = (text) => (/UPDATE agents/.test(text) ? { rows: [agentRow({ name: 'New' })] } : undefined);
    const agent = await updateAgent(USER, AGENT, { name: 'New', leadFields: null });
    expect(agent.name).toBe('New');
    const [update] = sql(/UPDATE agents/);
    expect(update!.text).toMatch(/name = \$3, lead_fields = \$4::jsonb, updated_at = now\(\)/);
    expect(update!.text).not.toMatch(/system_prompt =/);
    expect(update!.text).toMatch(/archived_at IS NULL/);
    expect(update!.params).toEqual([USER, AGENT, 'New', null]);
  });

  it('when the agent is archived, then conflict', async () => {
    mockDb.handler = (text) => (/SELECT/.test(text) ? { rows: [agentRow({ archivedAt: new Date() })] } : undefined);
    await expect(updateAgent(USER, AGENT, { name: 'x' })).rejects.toMatchObject({ code: 'conflict', status: 409 });
  });

  it('when the agent does not exist for this tenant, then not_found', async () => {
    await expect(updateAgent(USER, AGENT, { name: 'x' })).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });
});

describe('archiveAgent', () => {
  it('when archived, then it is unlinked everywhere and each number’s active conversations are archived, all in the transaction', async () => {
    const numbers = ['n1', 'n2'];
    mockDb.handler = (text, params) => {
      if (/UPDATE agents SET archived_at/.test(text)) return { rows: [agentRow({ archivedAt: new Date() })] };
      if (/UPDATE phone_numbers SET agent_id = NULL/.test(text)) return { rows: numbers.map((id) => ({ id, channel: 'whatsapp', externalId: `acct-${id}` })) };
      if (/UPDATE conversations/.test(text)) return { rows: [], rowCount: params[1] === 'n1' ? 2 : 1 };
      return undefined;
    };
    const result = await archiveAgent(USER, AGENT);
    expect(result).toMatchObject({ unlinkedPhoneNumberIds: numbers, archivedConversations: 3 });
    expect(mockDb.calls.every((call) => call.via === 'tx')).toBe(true);
    // The agent's row lock comes first: lock order agent → number → conversations.
    expect(mockDb.calls.map((call) => call.text.match(/^\s*(\w+ \w+)/)![1])).toEqual([
      'UPDATE agents',
      'UPDATE phone_numbers',
      'UPDATE conversations',
      'UPDATE conversations',
    ]);
    expect(sql(/UPDATE conversations/).map((call) => call.params)).toEqual([
      [USER, 'n1', 'agent_archived'],
      [USER, 'n2', 'agent_archived'],
    ]);
    // Committed: the agent, and the numbers (routes, turn entries) it left, are forgotten everywhere.
    expect(forgetAgent).toHaveBeenCalledWith(USER, AGENT);
    expect(forgetNumbers).toHaveBeenCalledWith([
      { id: 'n1', userId: USER, channel: 'whatsapp', externalId: 'acct-n1' },
      { id: 'n2', userId: USER, channel: 'whatsapp', externalId: 'acct-n2' },
    ]);
  });

  it('when an agent is changed, then it is forgotten after the write; a refused change forgets nothing', async () => {
    jest.mocked(forgetAgent).mockClear();
    mockDb.handler = (text) => (/UPDATE agents/.test(text) ? { rows: [agentRow({ systemPrompt: 'New.' })] } : undefined);
    await updateAgent(USER, AGENT, { systemPrompt: 'New.' });
    expect(forgetAgent).toHaveBeenCalledWith(USER, AGENT);
    jest.mocked(forgetAgent).mockClear();
    mockDb.handler = () => undefined;
    await expect(updateAgent(USER, AGENT, { systemPrompt: 'New.' })).rejects.toMatchObject({ code: 'not_found' });
    expect(forgetAgent).not.toHaveBeenCalled();
  });

  it('when the agent is already archived, then it is returned unchanged and nothing else is written', async () => {
    const archivedAt = new Date('2026-02-01T00:00:00Z');
    mockDb.handler = (text) => (/^\s*SELECT/.test(text) ? { rows: [agentRow({ archivedAt })] } : undefined);
    const result = await archiveAgent(USER, AGENT);
    expect(result.agent.archivedAt).toEqual(archivedAt);
    expect(result.unlinkedPhoneNumberIds).toEqual([]);
    expect(sql(/phone_numbers|conversations/)).toEqual([]);
  });

  it('when the agent does not exist for this tenant, then not_found', async () => {
    await expect(archiveAgent(USER, AGENT)).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('lead fields', () => {
  const field = (overrides: Record<string, unknown> = {}) => ({ name: 'a', description: 'd', type: 'string', ...overrides });
  const paths = (input: unknown) => {
    const result = leadFieldsSchema.safeParse(input);
    return result.success ? [] : result.error.issues.map((issue) => issue.path.join('.'));
  };

  it('when the list is valid, then it parses unchanged', () => {
    const list = [field(), field({ name: 'tier', type: 'enum', values: ['gold', 'silver'] })];
    expect(leadFieldsSchema.parse(list)).toEqual(list);
  });

  it('when names repeat, then the issue points at the later duplicate', () => {
    expect(paths([field({ name: 'x' }), field({ name: 'y' }), field({ name: 'x' })])).toEqual(['2.name']);
  });

  it('when an enum lacks values, has duplicates, or a non-enum has values, then the issue points at values', () => {
    expect(paths([field({ type: 'enum' })])).toEqual(['0.values']);
    expect(paths([field({ type: 'enum', values: [] })])).toEqual(['0.values']);
    expect(paths([field({ type: 'enum', values: ['a', 'b', 'a'] })])).toEqual(['0.values.2']);
    expect(paths([field({ type: 'boolean', values: ['yes'] })])).toEqual(['0.values']);
  });

  it.each(['Name', '_x', '1x', 'a-b', 'a'.repeat(64)])('when the name is %j, then it is refused', (name) => {
    expect(paths([field({ name })])).toEqual(['0.name']);
  });

  it('when there are 31 fields or none, then the list is refused', () => {
    expect(paths(Array.from({ length: 31 }, (_, i) => field({ name: `f${i}` })))).toEqual(['']);
    expect(paths([])).toEqual(['']);
  });

  it('when an agent has no lead fields of its own, then the defaults apply', () => {
    expect(effectiveLeadFields({ leadFields: null }).map((f) => f.name)).toEqual(['name', 'email', 'phone', 'intent', 'summary']);
    expect(effectiveLeadFields({ leadFields: [field() as never] })).toEqual([field()]);
    expect(DEFAULT_LEAD_FIELDS.every((f) => leadFieldsSchema.safeParse([f]).success)).toBe(true);
  });
});

describe('keywordsSchema', () => {
  it('when keywords have spaces around them, then they are kept trimmed', () => {
    expect(keywordsSchema.parse(['  talk to a human ', 'STOP'])).toEqual(['talk to a human', 'STOP']);
  });

  it.each([
    ['a blank keyword', ['  ']],
    ['a keyword over 100 characters', ['x'.repeat(101)]],
    ['the same keyword twice, in other case and spacing', ['Talk to  a human', 'talk to a HUMAN']],
    ['more than 50 keywords', Array.from({ length: 51 }, (_, i) => `k${i}`)],
  ])('when given %s, then it is refused', (_what, keywords) => {
    expect(keywordsSchema.safeParse(keywords).success).toBe(false);
  });

  it('when empty, then it is accepted (no keywords)', () => {
    expect(keywordsSchema.parse([])).toEqual([]);
  });
});
