/** Live API keys with ioredis-mock for Redis and the key model mocked: the cached lookup and the hint. */
import type Redis from 'ioredis';
import { findLiveApiKey, forgetApiKey, isApiKeyKnownLive, markApiKeyLive } from '../../../src/services/liveApiKeys';
import { findActiveKeyByHash } from '../../../src/models/ApiKey';
import { getRedis } from '../../../src/utils/redis';

jest.mock('../../../src/utils/redis', () => {
  const redis = jest.requireActual('../../fixtures/redisMock').createRedisMock('live');
  return { getRedis: jest.fn(() => redis) };
});
jest.mock('../../../src/models/ApiKey', () => ({ findActiveKeyByHash: jest.fn() }));

const redis = (getRedis as jest.Mock)() as Redis;
const lookup = jest.mocked(findActiveKeyByHash);
const KEY = { id: 'key-1', userId: '11111111-1111-4111-8111-111111111111' };

beforeEach(async () => {
  await redis.flushall();
  lookup.mockReset();
  (getRedis as jest.Mock).mockImplementation(() => redis);
});

describe('findLiveApiKey', () => {
  it('when a live key is looked up twice, then Postgres is asked once', async () => {
    lookup.mockResolvedValue(KEY);
    await expect(findLiveApiKey('h')).resolves.toEqual(KEY);
    await expect(findLiveApiKey('h')).resolves.toEqual(KEY);
    expect(lookup).toHaveBeenCalledTimes(1);
    expect(lookup).toHaveBeenCalledWith('h');
  });

  it('when two keys belong to two tenants, then each hash answers its own tenant', async () => {
    lookup.mockImplementation(async (hash) => ({ id: `id-${hash}`, userId: `tenant-${hash}` }));
    await findLiveApiKey('a');
    await findLiveApiKey('b');
    await expect(findLiveApiKey('a')).resolves.toEqual({ id: 'id-a', userId: 'tenant-a' });
    await expect(findLiveApiKey('b')).resolves.toEqual({ id: 'id-b', userId: 'tenant-b' });
  });
});

describe('forgetApiKey', () => {
  it('when a cached key is forgotten (revoked), then the next lookup asks Postgres and the hint is gone', async () => {
    lookup.mockResolvedValueOnce(KEY).mockResolvedValueOnce(null);
    await markApiKeyLive('h');
    await findLiveApiKey('h');
    await forgetApiKey('h');
    await expect(findLiveApiKey('h')).resolves.toBeNull();
    await expect(isApiKeyKnownLive('h')).resolves.toBe(false);
  });

  it('when Redis cannot be told, then it throws unavailable', async () => {
    const multi = { set: jest.fn().mockReturnThis(), del: jest.fn().mockReturnThis(), exec: jest.fn().mockRejectedValue(new Error('down')) };
    (getRedis as jest.Mock).mockImplementation(() => ({ multi: () => multi }));
    await expect(forgetApiKey('h')).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('the live hint', () => {
  it('when a key is marked live, then it is known; when Redis fails, it is not known and marking does not throw', async () => {
    await markApiKeyLive('m');
    await expect(isApiKeyKnownLive('m')).resolves.toBe(true);
    (getRedis as jest.Mock).mockImplementation(() => ({ set: jest.fn().mockRejectedValue(new Error('down')), exists: jest.fn().mockRejectedValue(new Error('down')) }));
    await expect(markApiKeyLive('n')).resolves.toBeUndefined();
    await expect(isApiKeyKnownLive('m')).resolves.toBe(false);
  });
});
