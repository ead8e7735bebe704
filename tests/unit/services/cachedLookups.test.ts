/** cachedLookups with ioredis-mock for Redis and the models mocked: what is cached, under which key, and what forgetting drops. */
import type Redis from 'ioredis';
import {
  findAccountRoute,
  findCachedTurnAgent,
  findCachedTurnNumber,
  forgetAgent,
  forgetCredits,
  forgetNumbers,
  forgetTurnNumbers,
  hasCreditsCached,
  loadTurnWork,
} from '../../../src/services/cachedLookups';
import { findLiveByExternalId } from '../../../src/models/PhoneNumber';
import { findTurnAgent, findTurnNumber, loadOwedConversation, type TurnAgent } from '../../../src/models/ReplyTurn';
import { findBalance } from '../../../src/models/CreditLedger';
import { getRedis } from '../../../src/utils/redis';

jest.mock('../../../src/utils/redis', () => {
  const redis = jest.requireActual('../../fixtures/redisMock').createRedisMock('lookups');
  return { getRedis: jest.fn(() => redis) };
});
jest.mock('../../../src/models/PhoneNumber', () => ({ findLiveByExternalId: jest.fn() }));
jest.mock('../../../src/models/ReplyTurn', () => ({ findTurnAgent: jest.fn(), findTurnNumber: jest.fn(), loadOwedConversation: jest.fn() }));
jest.mock('../../../src/models/CreditLedger', () => ({ findBalance: jest.fn() }));

const redis = (getRedis as jest.Mock)() as Redis;
const TENANT_A = '11111111-1111-4111-8111-111111111111';
const TENANT_B = '22222222-2222-4222-8222-222222222222';
const AGENT = '33333333-3333-4333-8333-333333333333';
const NUMBER = '44444444-4444-4444-8444-444444444444';
const CONVERSATION = '55555555-5555-4555-8555-555555555555';

const agent = (systemPrompt: string, archivedAt: Date | null = null): TurnAgent => ({
  id: AGENT,
  systemPrompt,
  model: 'm',
  temperature: 0.5,
  maxTokens: 100,
  historyLimit: 10,
  maxPromptTokens: 1000,
  debounceMs: 0,
  fallbackMessage: null,
  archivedAt,
  vision: true,
});

beforeEach(async () => {
  await redis.flushall();
  jest.mocked(findLiveByExternalId).mockReset();
  jest.mocked(findTurnAgent).mockReset();
  jest.mocked(findTurnNumber).mockReset();
  jest.mocked(findBalance).mockReset();
  jest.mocked(loadOwedConversation).mockReset();
});

describe('account routes', () => {
  it('when an account is routed twice, then Postgres is asked once; unknown accounts are remembered too, until a number is registered', async () => {
    const lookup = jest.mocked(findLiveByExternalId);
    lookup.mockResolvedValueOnce(null);
    await expect(findAccountRoute('whatsapp', '1555')).resolves.toBeNull();
    await expect(findAccountRoute('whatsapp', '1555')).resolves.toBeNull();
    expect(lookup).toHaveBeenCalledTimes(1);

    await forgetNumbers([{ id: NUMBER, userId: TENANT_A, channel: 'whatsapp', externalId: '1555' }]);
    lookup.mockResolvedValueOnce({ id: NUMBER, userId: TENANT_A, agentId: AGENT, channel: 'whatsapp', externalId: '1555' });
    await expect(findAccountRoute('whatsapp', '1555')).resolves.toEqual({ userId: TENANT_A, phoneNumberId: NUMBER, agentId: AGENT });
    await expect(findAccountRoute('whatsapp', '1555')).resolves.toEqual({ userId: TENANT_A, phoneNumberId: NUMBER, agentId: AGENT });
    expect(lookup).toHaveBeenCalledTimes(2);
  });

  it('when the same account id exists on two channels, then each channel has its own route', async () => {
    jest.mocked(findLiveByExternalId).mockImplementation(async (channel) =>
      channel === 'whatsapp' ? { id: NUMBER, userId: TENANT_A, agentId: null, channel, externalId: 'X' } : { id: 'other', userId: TENANT_B, agentId: null, channel, externalId: 'X' },
    );
    await expect(findAccountRoute('whatsapp', 'X')).resolves.toMatchObject({ userId: TENANT_A });
    await expect(findAccountRoute('instagram', 'X')).resolves.toMatchObject({ userId: TENANT_B });
    await expect(findAccountRoute('whatsapp', 'X')).resolves.toMatchObject({ userId: TENANT_A });
  });
});

describe("a turn's agent and number", () => {
  it("when two tenants' entries share an id, then each tenant gets its own (keys are tenant-scoped)", async () => {
    jest.mocked(findTurnAgent).mockImplementation(async (userId) => agent(`prompt of ${userId}`));
    await findCachedTurnAgent(TENANT_A, AGENT);
    await findCachedTurnAgent(TENANT_B, AGENT);
    await expect(findCachedTurnAgent(TENANT_A, AGENT)).resolves.toMatchObject({ systemPrompt: `prompt of ${TENANT_A}` });
    await expect(findCachedTurnAgent(TENANT_B, AGENT)).resolves.toMatchObject({ systemPrompt: `prompt of ${TENANT_B}` });
    expect(findTurnAgent).toHaveBeenCalledTimes(2);
  });

  it('when an agent is forgotten, then the next turn reads the change; archived_at comes back a Date', async () => {
    const archivedAt = new Date('2026-03-01T00:00:00Z');
    jest.mocked(findTurnAgent).mockResolvedValueOnce(agent('old')).mockResolvedValueOnce(agent('new', archivedAt));
    await expect(findCachedTurnAgent(TENANT_A, AGENT)).resolves.toMatchObject({ systemPrompt: 'old' });
    await forgetAgent(TENANT_A, AGENT);
    const changed = await findCachedTurnAgent(TENANT_A, AGENT);
    expect(changed).toMatchObject({ systemPrompt: 'new' });
    expect(changed?.archivedAt).toEqual(archivedAt);
    await expect(findCachedTurnAgent(TENANT_A, AGENT)).resolves.toMatchObject({ archivedAt });
  });

  it('when a number is forgotten (deleted), then its turn entry is gone: the next read says null', async () => {
    jest.mocked(findTurnNumber).mockResolvedValueOnce({ id: NUMBER, externalId: '1555', agentId: AGENT, accessTokenEncrypted: 'v2:x' }).mockResolvedValueOnce(null);
    await expect(findCachedTurnNumber(TENANT_A, NUMBER)).resolves.toMatchObject({ id: NUMBER });
    await forgetNumbers([{ id: NUMBER, userId: TENANT_A, channel: 'whatsapp', externalId: '1555' }]);
    await expect(findCachedTurnNumber(TENANT_A, NUMBER)).resolves.toBeNull();
  });

  it('when numbers are forgotten after a key rotation, then their turn entries are read again', async () => {
    jest.mocked(findTurnNumber).mockResolvedValueOnce({ id: NUMBER, externalId: '1555', agentId: null, accessTokenEncrypted: 'v2:old' }).mockResolvedValueOnce({ id: NUMBER, externalId: '1555', agentId: null, accessTokenEncrypted: 'v2:new' });
    await findCachedTurnNumber(TENANT_A, NUMBER);
    await forgetTurnNumbers([{ id: NUMBER, userId: TENANT_A }]);
    await expect(findCachedTurnNumber(TENANT_A, NUMBER)).resolves.toMatchObject({ accessTokenEncrypted: 'v2:new' });
    await forgetTurnNumbers([]);
  });

  it('when a turn starts, then the conversation comes from Postgres and its agent, number and credits from the cache', async () => {
    jest.mocked(loadOwedConversation).mockResolvedValue({
      reasonNotToAnswer: null,
      conversation: { id: CONVERSATION, userId: TENANT_A, channel: 'whatsapp', customerExternalId: 'c', isActive: true, botPaused: false, agentId: AGENT, windowOpen: true, optedOut: false },
      phoneNumberId: NUMBER,
      owed: [],
      history: [],
    });
    jest.mocked(findTurnAgent).mockResolvedValue(agent('p'));
    jest.mocked(findTurnNumber).mockResolvedValue({ id: NUMBER, externalId: '1555', agentId: AGENT, accessTokenEncrypted: 'v2:x' });
    jest.mocked(findBalance).mockResolvedValue(5);
    const work = await loadTurnWork(TENANT_A, CONVERSATION);
    expect(work).toMatchObject({ hasCredits: true, owed: [], history: [], context: { agent: { systemPrompt: 'p' }, phoneNumber: { id: NUMBER }, reasonNotToAnswer: null } });
    expect(findTurnAgent).toHaveBeenCalledWith(TENANT_A, AGENT);
    expect(findTurnNumber).toHaveBeenCalledWith(TENANT_A, NUMBER);

    jest.mocked(loadOwedConversation).mockResolvedValue(null);
    await expect(loadTurnWork(TENANT_B, CONVERSATION)).resolves.toBeNull();
  });
});

describe('the credits pre-check', () => {
  it('when the balance is zero, then no; after a top-up forgets it, yes; an unknown tenant has none', async () => {
    jest.mocked(findBalance).mockResolvedValueOnce(0).mockResolvedValueOnce(50).mockResolvedValueOnce(null);
    await expect(hasCreditsCached(TENANT_A)).resolves.toBe(false);
    await expect(hasCreditsCached(TENANT_A)).resolves.toBe(false);
    await forgetCredits(TENANT_A);
    await expect(hasCreditsCached(TENANT_A)).resolves.toBe(true);
    await expect(hasCreditsCached(TENANT_B)).resolves.toBe(false);
    expect(findBalance).toHaveBeenCalledTimes(3);
  });
});

describe('Redis down', () => {
  it('when Redis cannot be read, then every lookup asks Postgres and answers correctly', async () => {
    const broken = { mget: jest.fn().mockRejectedValue(new Error('ECONNREFUSED')), eval: jest.fn() };
    (getRedis as jest.Mock).mockImplementation(() => broken);
    try {
      jest.mocked(findBalance).mockResolvedValue(7);
      jest.mocked(findLiveByExternalId).mockResolvedValue(null);
      await expect(hasCreditsCached(TENANT_A)).resolves.toBe(true);
      await expect(hasCreditsCached(TENANT_A)).resolves.toBe(true);
      await expect(findAccountRoute('whatsapp', 'gone')).resolves.toBeNull();
      expect(findBalance).toHaveBeenCalledTimes(2);
      expect(broken.eval).not.toHaveBeenCalled();
    } finally {
      (getRedis as jest.Mock).mockImplementation(() => redis);
    }
  });
});
