/**
 * Where every Redis connection comes from, with `ioredis` replaced by ioredis-mock (each
 * connection made is recorded with its options): the configured key prefix, one shared
 * connection, blocking connections of their own, errors logged rather than thrown, and closing
 * everything. The same module against Redis runs under the integration tests.
 */
import Redis, { type RedisOptions } from 'ioredis';
import RedisMock from 'ioredis-mock';
import { config } from '../../../src/config';
import { logger } from '../../../src/utils/logger';
import { closeRedis, createBlockingRedis, createRedis, getRedis, isCluster, pingRedis } from '../../../src/utils/redis';
import { loadWithEnv } from '../../fixtures/isolatedModules';

jest.mock('ioredis', () => {
  const Mock = jest.requireActual('ioredis-mock') as new (options?: object) => object;
  // A Cluster client is a mock too: what matters here is which constructor gets which options.
  class Cluster extends Mock {
    readonly isCluster = true;
  }
  return {
    __esModule: true,
    default: jest.fn((_url: string, options: object) => new Mock(options)),
    Cluster: jest.fn((_nodes: object, options: { keyPrefix?: string }) => new Cluster({ keyPrefix: options.keyPrefix })),
  };
});

const RedisConstructor = jest.mocked(Redis);
type Options = RedisOptions & { retryStrategy: (attempt: number) => number };

/** The URL and options of the n-th connection made. */
const made = (index = 0) => RedisConstructor.mock.calls[index] as unknown as [string, Options];
/** The n-th connection made. */
const connection = (index = 0) => RedisConstructor.mock.results[index]!.value as Redis;

beforeEach(() => {
  jest.restoreAllMocks();
  RedisConstructor.mockClear();
});

afterEach(() => closeRedis());

describe('createRedis', () => {
  it('when a connection is made, then it uses the configured URL and key prefix, is named for its purpose, and pipelines commands', () => {
    createRedis('webhook');

    const [url, options] = made();
    expect(url).toBe(config.REDIS_URL);
    expect(options).toMatchObject({
      keyPrefix: config.REDIS_KEY_PREFIX,
      connectionName: 'mca:webhook',
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
    });
  });

  it('when a key is written through it, then the key lands under the configured prefix', async () => {
    const client = createRedis('prefix-test');
    const unprefixed = new RedisMock();

    await client.set('greeting', 'hello');

    await expect(unprefixed.get(`${config.REDIS_KEY_PREFIX}greeting`)).resolves.toBe('hello');
    await expect(unprefixed.get('greeting')).resolves.toBeNull();
    await client.del('greeting');
    unprefixed.disconnect();
  });

  it('when the caller overrides an option, then the override wins and the rest stay', () => {
    createRedis('custom', { connectTimeout: 50, keyPrefix: 'other:' });

    expect(made()[1]).toMatchObject({ connectTimeout: 50, keyPrefix: 'other:', connectionName: 'mca:custom' });
  });

  it('when reconnecting, then the wait grows by 200 ms an attempt up to 2 s', () => {
    createRedis('retry');
    const { retryStrategy } = made()[1];

    expect([1, 2, 5, 10, 50].map(retryStrategy)).toEqual([200, 400, 1000, 2000, 2000]);
  });

  it('when the connection reports an error, then it is logged with its purpose and does not throw', () => {
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const client = createRedis('flaky');

    expect(() => client.emit('error', new Error('connect ECONNREFUSED'))).not.toThrow();
    expect(warn).toHaveBeenCalledWith({ err: { message: 'connect ECONNREFUSED' }, purpose: 'flaky' }, 'Redis connection error');
  });
});

describe('getRedis', () => {
  it('when asked twice, then the same shared connection comes back', () => {
    expect(getRedis()).toBe(getRedis());

    expect(RedisConstructor).toHaveBeenCalledTimes(1);
    expect(made()[1].connectionName).toBe('mca:shared');
  });
});

describe('createBlockingRedis', () => {
  it('when a blocking connection is made, then it is its own, never the shared one, retries without limit and does not pipeline', () => {
    const shared = getRedis();

    const blocking = createBlockingRedis('message-worker');

    expect(blocking).not.toBe(shared);
    expect(made(1)[1]).toMatchObject({
      connectionName: 'mca:message-worker:blocking',
      keyPrefix: config.REDIS_KEY_PREFIX,
      maxRetriesPerRequest: null,
      enableAutoPipelining: false,
    });
  });

  it('when asked twice, then two connections are made', () => {
    expect(createBlockingRedis('a')).not.toBe(createBlockingRedis('a'));
  });
});

describe('pingRedis', () => {
  it('when no connection is given, then the shared one is pinged', async () => {
    const ping = jest.spyOn(getRedis(), 'ping');

    await pingRedis();

    expect(ping).toHaveBeenCalledTimes(1);
  });

  it('when the given connection cannot answer, then the ping rejects', async () => {
    const client = createRedis('down');
    jest.spyOn(client, 'ping').mockRejectedValue(new Error('Connection is closed.'));

    await expect(pingRedis(client)).rejects.toThrow('Connection is closed.');
  });
});

describe('closeRedis', () => {
  it('when closed, then every connection made is quit, blocking ones included, and the next getRedis makes a new one', async () => {
    const shared = getRedis();
    createBlockingRedis('worker');
    const quits = [0, 1].map((i) => jest.spyOn(connection(i), 'quit'));

    await closeRedis();

    for (const quit of quits) expect(quit).toHaveBeenCalledTimes(1);
    expect(getRedis()).not.toBe(shared);
  });

  it('when a connection cannot quit, then it is disconnected instead and the others still quit', async () => {
    const stuck = createRedis('stuck');
    const fine = createRedis('fine');
    jest.spyOn(stuck, 'quit').mockRejectedValue(new Error('Connection is closed.'));
    const disconnect = jest.spyOn(stuck, 'disconnect');
    const quit = jest.spyOn(fine, 'quit');

    await expect(closeRedis()).resolves.toBeUndefined();

    expect(disconnect).toHaveBeenCalledTimes(1);
    expect(quit).toHaveBeenCalledTimes(1);
  });

  it('when closed twice, then the second close has nothing left to quit', async () => {
    const quit = jest.spyOn(createRedis('once'), 'quit');

    await closeRedis();
    await closeRedis();

    expect(quit).toHaveBeenCalledTimes(1);
  });
});

describe('with REDIS_CLUSTER_NODES', () => {
  // A registry of its own: config is parsed at import, and the ioredis mock comes with it.
  const load = () =>
    loadWithEnv({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7001' }, () => ({
      redis: require('../../../src/utils/redis') as typeof import('../../../src/utils/redis'),
      ioredis: jest.requireMock('ioredis') as { default: jest.Mock; Cluster: jest.Mock },
    }));

  it('when connections are made, then they are Cluster clients on those nodes, with the key prefix, named per purpose on every node', async () => {
    const { redis, ioredis } = load();

    const shared = redis.getRedis();
    const blocking = redis.createBlockingRedis('message-worker');

    expect(ioredis.default).not.toHaveBeenCalled();
    expect(redis.isCluster(shared)).toBe(true);
    expect(blocking).not.toBe(shared);
    const [[nodes, sharedOptions], [, blockingOptions]] = ioredis.Cluster.mock.calls as [[unknown, object], [unknown, object]];
    expect(nodes).toEqual([{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }]);
    expect(sharedOptions).toMatchObject({ keyPrefix: config.REDIS_KEY_PREFIX, enableAutoPipelining: true, redisOptions: { connectionName: 'mca:shared', maxRetriesPerRequest: 1 } });
    expect(blockingOptions).toMatchObject({ enableAutoPipelining: false, redisOptions: { connectionName: 'mca:message-worker:blocking', maxRetriesPerRequest: null } });
    await redis.closeRedis();
  });

  it('when no cluster is configured, then connections are standalone', () => {
    expect(isCluster(getRedis())).toBe(false);
  });
});
