import {
  createPhoneNumber,
  deletePhoneNumber,
  getPhoneNumber,
  linkAgent,
  listPhoneNumbers,
  unlinkAgent,
  updatePhoneNumber,
} from '../../../src/services/phoneNumberService';
import { decryptSecret } from '../../../src/utils/encryption';
import { accessTokenContext } from '../../../src/models/PhoneNumber';
import { GraphError, type AccountVerifier, type VerifyAccountInput } from '../../../src/services/metaGraphService';
import { forgetNumbers } from '../../../src/services/cachedLookups';

// The cache's edge: which numbers each write makes every process forget (routes and turn entries).
jest.mock('../../../src/services/cachedLookups', () => ({ forgetNumbers: jest.fn(async () => undefined) }));
const forgotten = jest.mocked(forgetNumbers);

/** Graph's side is faked too: what it was asked, and its verdict. */
const asked: VerifyAccountInput[] = [];
let verdict: Awaited<ReturnType<AccountVerifier>> | Error = { ok: true, name: null };
const verify: AccountVerifier = async (input) => {
  asked.push(input);
  if (verdict instanceof Error) throw verdict;
  return verdict;
};

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
      const result = mockDb.handler(text, params);
      if (result instanceof Error) throw result;
      const answer = result ?? { rows: [] };
      return { rows: answer.rows, rowCount: answer.rowCount ?? answer.rows.length };
    },
  });
  const tx = client('tx');
  return { db: client('db'), withTransaction: async (fn: (client: unknown) => Promise<unknown>) => fn(tx) };
});

const USER = '11111111-1111-4111-8111-111111111111';
const NUMBER = '33333333-3333-4333-8333-333333333333';
const AGENT = '22222222-2222-4222-8222-222222222222';
const OTHER_AGENT = '44444444-4444-4444-8444-444444444444';

function numberRow(overrides: Record<string, unknown> = {}) {
  return {
    id: NUMBER,
    userId: USER,
    channel: 'whatsapp',
    externalId: '1234567890',
    displayName: null,
    agentId: null,
    createdAt: new Date('2026-01-01T00:00:00Z'),
    updatedAt: new Date('2026-01-01T00:00:00Z'),
    ...overrides,
  };
}

function agentRow(overrides: Record<string, unknown> = {}) {
  return {
    id: AGENT,
    userId: USER,
    name: 'Bot',
    systemPrompt: 'Help.',
    model: 'm',
    temperature: '0.70',
    maxTokens: 512,
    historyLimit: 20,
    maxPromptTokens: 8000,
    debounceMs: 0,
    leadFields: null,
    fallbackMessage: null,
    archivedAt: null,
    createdAt: new Date(),
    updatedAt: new Date(),
    ...overrides,
  };
}

const sql = (pattern: RegExp) => mockDb.calls.filter((call) => pattern.test(call.text));
const uniqueViolation = (constraint: string) => Object.assign(new Error('duplicate key'), { code: '23505', constraint });

/** Answers a link/unlink transaction: the number currently linked to `current`, the agent `agent`. */
function linkWorld(options: { current: string | null; agent?: Record<string, unknown> | null; conversations?: number }) {
  mockDb.handler = (text, params) => {
    if (/FROM phone_numbers/.test(text) && /^\s*SELECT/.test(text)) return { rows: [numberRow({ agentId: options.current })] };
    if (/FROM agents/.test(text)) return { rows: options.agent === null ? [] : [agentRow({ id: params[1], ...options.agent })] };
    if (/UPDATE conversations/.test(text)) return { rows: [], rowCount: options.conversations ?? 0 };
    if (/UPDATE phone_numbers SET agent_id/.test(text)) return { rows: [numberRow({ agentId: params[2] })] };
    return undefined;
  };
}

beforeEach(() => {
  forgotten.mockClear();
  mockDb.calls = [];
  mockDb.handler = () => undefined;
  asked.length = 0;
  verdict = { ok: true, name: null };
});

describe('createPhoneNumber', () => {
  it('when created, then the stored value is the encrypted token, which decrypts back to it', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    await createPhoneNumber(USER, { channel: 'whatsapp', externalId: '1234567890', accessToken: 'EAAG-secret' }, verify);
    expect(asked).toEqual([{ channel: 'whatsapp', accountId: '1234567890', accessToken: 'EAAG-secret' }]);
    const params = sql(/INSERT INTO phone_numbers/)[0]!.params;
    expect(params.slice(0, 4)).toEqual([USER, 'whatsapp', '1234567890', null]);
    const stored = params[4] as string;
    const id = params[5] as string;
    expect(stored).toMatch(/^v2:/);
    expect(stored).not.toContain('EAAG-secret');
    // Bound to the row it is inserted as: the id is chosen before the insert for that.
    expect(decryptSecret(stored, accessTokenContext(id))).toBe('EAAG-secret');
  });

  it('when the account is already live for any tenant, then conflict', async () => {
    mockDb.handler = () => uniqueViolation('phone_numbers_external_key') as never;
    await expect(
      createPhoneNumber(USER, { channel: 'instagram', externalId: '17841400000000000', accessToken: 't' }, verify),
    ).rejects.toMatchObject({ code: 'conflict', status: 409, message: 'This instagram account is already registered' });
  });

  it('when another constraint or error fails, then it propagates unchanged', async () => {
    const other = uniqueViolation('some_other_key');
    mockDb.handler = () => other as never;
    await expect(createPhoneNumber(USER, { channel: 'whatsapp', externalId: '1', accessToken: 't' }, verify)).rejects.toBe(other);
  });
});

describe('createPhoneNumber: the token is verified first', () => {
  it("when Graph refuses the token, then account_verification_failed (422) with Graph's reason, and nothing is written", async () => {
    verdict = { ok: false, reason: 'Invalid OAuth access token (code 190)' };
    await expect(createPhoneNumber(USER, { channel: 'whatsapp', externalId: '42', accessToken: 'EAAG-secret' }, verify)).rejects.toMatchObject({
      code: 'account_verification_failed',
      status: 422,
      message: 'Graph does not let this token act for whatsapp account 42: Invalid OAuth access token (code 190)',
    });
    expect(mockDb.calls).toEqual([]);
  });

  it('when Graph gives no verdict (unreachable, 5xx), then unavailable (503), and nothing is written', async () => {
    verdict = new GraphError('Graph whatsapp account lookup failed: connect ECONNREFUSED', { kind: 'network', channel: 'whatsapp' });
    const error = await createPhoneNumber(USER, { channel: 'whatsapp', externalId: '42', accessToken: 'EAAG-secret' }, verify).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'unavailable', status: 503 });
    expect((error as Error).message).not.toContain('EAAG-secret');
    expect(mockDb.calls).toEqual([]);
  });
});

describe('cache invalidation after each committed write', () => {
  const identity = { id: NUMBER, userId: USER, channel: 'whatsapp', externalId: '1234567890' };

  it('when a number is registered, then its account (maybe cached as unknown) is forgotten; on a 409 too, so a retry after a 503 repairs it', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    await createPhoneNumber(USER, { channel: 'whatsapp', externalId: '1234567890', accessToken: 't' }, verify);
    expect(forgotten).toHaveBeenCalledWith([expect.objectContaining({ userId: USER, channel: 'whatsapp', externalId: '1234567890' })]);

    forgotten.mockClear();
    mockDb.handler = () => uniqueViolation('phone_numbers_external_key') as never;
    await expect(createPhoneNumber(USER, { channel: 'whatsapp', externalId: '1234567890', accessToken: 't' }, verify)).rejects.toMatchObject({ status: 409 });
    expect(forgotten).toHaveBeenCalledTimes(1);
  });

  it('when Redis cannot be told after a registration, then unavailable (the number stands)', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    forgotten.mockRejectedValueOnce(Object.assign(new Error('down'), { code: 'unavailable' }));
    await expect(createPhoneNumber(USER, { channel: 'whatsapp', externalId: '1234567890', accessToken: 't' }, verify)).rejects.toMatchObject({ code: 'unavailable' });
    expect(sql(/INSERT INTO phone_numbers/)).toHaveLength(1);
  });

  it('when a token is replaced, then the number is forgotten; a display name alone changes nothing cached', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    await updatePhoneNumber(USER, NUMBER, { accessToken: 'new-token' }, verify);
    expect(forgotten).toHaveBeenCalledWith([expect.objectContaining(identity)]);
    forgotten.mockClear();
    await updatePhoneNumber(USER, NUMBER, { displayName: 'Shop' }, verify);
    expect(forgotten).not.toHaveBeenCalled();
  });

  it('when a number is deleted, then it is forgotten after the transaction; a 404 forgets nothing', async () => {
    mockDb.handler = (text) => (/^\s*SELECT/.test(text) ? { rows: [numberRow({ agentId: AGENT })] } : { rows: [], rowCount: 1 });
    await deletePhoneNumber(USER, NUMBER);
    expect(forgotten).toHaveBeenCalledWith([expect.objectContaining(identity)]);
    forgotten.mockClear();
    mockDb.handler = () => undefined;
    await expect(deletePhoneNumber(USER, NUMBER)).rejects.toMatchObject({ code: 'not_found' });
    expect(forgotten).not.toHaveBeenCalled();
  });

  it('when an agent is linked or unlinked, then the number is forgotten (also when nothing changed: a retry repairs a 503)', async () => {
    linkWorld({ current: OTHER_AGENT });
    await linkAgent(USER, NUMBER, AGENT);
    expect(forgotten).toHaveBeenCalledWith([expect.objectContaining(identity)]);
    forgotten.mockClear();
    linkWorld({ current: AGENT });
    await unlinkAgent(USER, NUMBER);
    expect(forgotten).toHaveBeenCalledTimes(1);
    forgotten.mockClear();
    linkWorld({ current: AGENT });
    await linkAgent(USER, NUMBER, AGENT);
    expect(forgotten).toHaveBeenCalledTimes(1);
  });
});

describe('getPhoneNumber / listPhoneNumbers', () => {
  it('when the tenant has no such live number, then not_found; the query filters tenant and deleted rows', async () => {
    await expect(getPhoneNumber(USER, NUMBER)).rejects.toMatchObject({ code: 'not_found' });
    expect(mockDb.calls[0]!.text).toMatch(/user_id = \$1 AND id = \$2 AND deleted_at IS NULL/);
  });

  it('when a cursor is given, then the page starts after the row it names', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    const first = await listPhoneNumbers(USER, { limit: 1 });
    expect(first.next_cursor).toBeNull();
    mockDb.handler = () => ({ rows: [numberRow({ id: NUMBER }), numberRow({ id: AGENT })] });
    const page = await listPhoneNumbers(USER, { limit: 1 });
    await listPhoneNumbers(USER, { limit: 1, cursor: page.next_cursor! });
    expect(mockDb.calls[2]!.params).toEqual([USER, NUMBER, 2]);
  });
});

describe('updatePhoneNumber', () => {
  it('when the token changes, then the new one is encrypted; an untouched display name is not cleared', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    await updatePhoneNumber(USER, NUMBER, { accessToken: 'new-token' }, verify);
    expect(asked).toEqual([{ channel: 'whatsapp', accountId: '1234567890', accessToken: 'new-token' }]);
    const params = sql(/UPDATE phone_numbers/)[0]!.params;
    expect(params.slice(0, 4)).toEqual([USER, NUMBER, false, null]);
    expect(decryptSecret(params[4] as string, accessTokenContext(NUMBER))).toBe('new-token');
  });

  it('when Graph refuses the new token, then 422 and nothing is updated', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    verdict = { ok: false, reason: 'no' };
    await expect(updatePhoneNumber(USER, NUMBER, { accessToken: 'new-token', displayName: 'x' }, verify)).rejects.toMatchObject({ status: 422 });
    expect(sql(/UPDATE phone_numbers/)).toEqual([]);
  });

  it('when display_name is null, then it is cleared and the token kept, and Graph is not asked', async () => {
    mockDb.handler = () => ({ rows: [numberRow()] });
    await updatePhoneNumber(USER, NUMBER, { displayName: null }, verify);
    expect(asked).toEqual([]);
    expect(sql(/UPDATE phone_numbers/)[0]!.params).toEqual([USER, NUMBER, true, null, null]);
  });

  it('when the number is not the tenant’s, then not_found', async () => {
    await expect(updatePhoneNumber(USER, NUMBER, { displayName: 'x' })).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('deletePhoneNumber', () => {
  it('when deleted, then under the row lock its conversations are archived before the soft delete', async () => {
    mockDb.handler = (text) => (/^\s*SELECT/.test(text) ? { rows: [numberRow({ agentId: AGENT })] } : { rows: [], rowCount: 1 });
    await deletePhoneNumber(USER, NUMBER);
    expect(mockDb.calls.every((call) => call.via === 'tx')).toBe(true);
    expect(mockDb.calls[0]!.text).toMatch(/FOR UPDATE/);
    expect(mockDb.calls[1]!.params).toEqual([USER, NUMBER, 'phone_number_deleted']);
    expect(mockDb.calls[2]!.text).toMatch(/SET deleted_at = now\(\), agent_id = NULL/);
  });

  it('when the number is not live for the tenant, then not_found and nothing is written', async () => {
    await expect(deletePhoneNumber(USER, NUMBER)).rejects.toMatchObject({ code: 'not_found' });
    expect(sql(/^\s*UPDATE/)).toEqual([]);
  });
});

describe('linkAgent', () => {
  it('when another agent was linked, then conversations are archived (agent_relinked) and the link changes, in one transaction', async () => {
    linkWorld({ current: OTHER_AGENT, conversations: 3 });
    const result = await linkAgent(USER, NUMBER, AGENT);
    expect(result).toMatchObject({ changed: true, archivedConversations: 3, phoneNumber: { agentId: AGENT } });
    expect(mockDb.calls.every((call) => call.via === 'tx')).toBe(true);
    expect(sql(/UPDATE conversations/)[0]!.params).toEqual([USER, NUMBER, 'agent_relinked']);
    expect(sql(/UPDATE phone_numbers SET agent_id/)[0]!.params).toEqual([USER, NUMBER, AGENT]);
  });

  it('when linking, then the agent is held FOR SHARE before the number is locked FOR UPDATE', async () => {
    linkWorld({ current: null });
    await linkAgent(USER, NUMBER, AGENT);
    const share = mockDb.calls.findIndex((call) => /FROM agents[\s\S]*FOR SHARE/.test(call.text));
    const update = mockDb.calls.findIndex((call) => /FROM phone_numbers[\s\S]*FOR UPDATE/.test(call.text));
    expect(share).toBeGreaterThanOrEqual(0);
    expect(update).toBeGreaterThan(share);
    expect(mockDb.calls[update]!.params).toEqual([USER, NUMBER]);
  });

  it('when no agent was linked, then conversations opened meanwhile are archived too', async () => {
    linkWorld({ current: null, conversations: 1 });
    expect(await linkAgent(USER, NUMBER, AGENT)).toMatchObject({ changed: true, archivedConversations: 1 });
  });

  it('when the same agent is already linked, then nothing is written', async () => {
    linkWorld({ current: AGENT, conversations: 5 });
    const result = await linkAgent(USER, NUMBER, AGENT);
    expect(result).toMatchObject({ changed: false, archivedConversations: 0, phoneNumber: { agentId: AGENT } });
    expect(sql(/^\s*UPDATE/)).toEqual([]);
  });

  it('when the agent is archived, then conflict and nothing is written', async () => {
    linkWorld({ current: OTHER_AGENT, agent: { archivedAt: new Date() } });
    await expect(linkAgent(USER, NUMBER, AGENT)).rejects.toMatchObject({ code: 'conflict', status: 409 });
    expect(sql(/^\s*UPDATE/)).toEqual([]);
  });

  it('when the agent is not the tenant’s, then not_found and nothing is written', async () => {
    linkWorld({ current: OTHER_AGENT, agent: null });
    await expect(linkAgent(USER, NUMBER, AGENT)).rejects.toMatchObject({ code: 'not_found', message: 'Agent not found' });
    expect(sql(/FROM agents/)[0]!.params).toEqual([USER, AGENT]);
    expect(sql(/^\s*UPDATE/)).toEqual([]);
  });

  it('when the number is not the tenant’s, then not_found before the agent is even looked at', async () => {
    await expect(linkAgent(USER, NUMBER, AGENT)).rejects.toMatchObject({ code: 'not_found', message: 'Phone number not found' });
    expect(sql(/FROM agents/)).toEqual([]);
  });
});

describe('unlinkAgent', () => {
  it('when an agent is linked, then conversations are archived (agent_unlinked) and the link cleared under the row lock', async () => {
    linkWorld({ current: AGENT, conversations: 2 });
    const result = await unlinkAgent(USER, NUMBER);
    expect(result).toMatchObject({ changed: true, archivedConversations: 2, phoneNumber: { agentId: null } });
    expect(mockDb.calls[0]!.text).toMatch(/FOR UPDATE/);
    expect(sql(/UPDATE conversations/)[0]!.params).toEqual([USER, NUMBER, 'agent_unlinked']);
    expect(sql(/UPDATE phone_numbers SET agent_id/)[0]!.params).toEqual([USER, NUMBER, null]);
  });

  it('when no agent is linked, then it is a no-op', async () => {
    linkWorld({ current: null });
    expect(await unlinkAgent(USER, NUMBER)).toMatchObject({ changed: false, archivedConversations: 0 });
    expect(sql(/^\s*UPDATE/)).toEqual([]);
  });

  it('when the number is not the tenant’s, then not_found', async () => {
    await expect(unlinkAgent(USER, NUMBER)).rejects.toMatchObject({ code: 'not_found' });
  });
});
