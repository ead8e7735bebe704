/**
 * Worker heartbeats against ioredis-mock (the shared connection mocked at `getRedis`): what a
 * worker publishes, what the API reads back, and which entries are pruned as long dead.
 */
import RedisMock from 'ioredis-mock';
import { slotOf as calculateSlot } from '../../fixtures/redisCluster';
import type Redis from 'ioredis';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  HEARTBEAT_KEY,
  HEARTBEAT_TTL_MS,
  publishHeartbeat,
  readHeartbeats,
  serveLiveness,
  workerMetricsKey,
  type Heartbeat,
} from '../../../src/workers/heartbeat';
import { getRedis } from '../../../src/utils/redis';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn() }));

let redis: Redis;
const NOW = 1_750_000_000_000;

const beat = (name: string, at: number): Heartbeat => ({ kind: 'message', name, pid: 4242, at, inFlight: 0, handled: 1 });

beforeEach(() => {
  redis = new RedisMock({ keyPrefix: `heartbeat-test:${Math.random().toString(36).slice(2)}:` }) as unknown as Redis;
  (getRedis as jest.Mock).mockReturnValue(redis);
  jest.spyOn(Date, 'now').mockReturnValue(NOW);
});

afterEach(async () => {
  jest.restoreAllMocks();
  await redis.flushall();
  redis.disconnect();
});

describe('publishHeartbeat', () => {
  it('when a worker publishes, then readHeartbeats returns its kind, name, pid, time and stats', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 2, handled: 17 });

    expect(await readHeartbeats()).toEqual([{ kind: 'message', name: 'worker-a', pid: process.pid, at: NOW, inFlight: 2, handled: 17 }]);
  });

  it('when a worker publishes, then its metrics are stored as JSON under its own key with the heartbeat TTL', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 });

    const stored = await redis.get(workerMetricsKey('worker-a'));
    expect(Array.isArray(JSON.parse(stored ?? 'null'))).toBe(true);
    const ttl = await redis.pttl(workerMetricsKey('worker-a'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(HEARTBEAT_TTL_MS);
  });

  it('when the heartbeat and the metrics are written in one MULTI, then their keys hash to one Redis Cluster slot', () => {
    expect(calculateSlot(`mca:${workerMetricsKey('worker-a')}`)).toBe(calculateSlot(`mca:${HEARTBEAT_KEY}`));
    expect(calculateSlot(`other:${workerMetricsKey('worker-b')}`)).toBe(calculateSlot(`mca:${HEARTBEAT_KEY}`));
  });

  it('when the same worker publishes again, then its one entry is replaced, not duplicated', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 1, handled: 1 });
    (Date.now as jest.Mock).mockReturnValue(NOW + 5_000);
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 9 });

    const beats = await readHeartbeats();
    expect(beats).toHaveLength(1);
    expect(beats[0]).toMatchObject({ at: NOW + 5_000, handled: 9 });
  });

  it('when several workers publish, then each is listed', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 });
    await publishHeartbeat('message', 'worker-b', { inFlight: 0, handled: 0 });

    expect((await readHeartbeats()).map((b) => b.name).sort()).toEqual(['worker-a', 'worker-b']);
  });
});

describe('readHeartbeats', () => {
  it('when nobody published, then the list is empty and nothing is deleted', async () => {
    const hdel = jest.spyOn(redis, 'hdel');

    expect(await readHeartbeats()).toEqual([]);
    expect(hdel).not.toHaveBeenCalled();
  });

  it('when an entry is older than ten heartbeat TTLs, then it is left out and deleted from the hash', async () => {
    await redis.hset(HEARTBEAT_KEY, 'alive', JSON.stringify(beat('alive', NOW - 1_000)));
    await redis.hset(HEARTBEAT_KEY, 'dead', JSON.stringify(beat('dead', NOW - HEARTBEAT_TTL_MS * 10 - 1)));
    await redis.hset(HEARTBEAT_KEY, 'long-dead', JSON.stringify(beat('long-dead', 0)));

    const beats = await readHeartbeats();

    expect(beats.map((b) => b.name)).toEqual(['alive']);
    expect(Object.keys(await redis.hgetall(HEARTBEAT_KEY))).toEqual(['alive']);
  });

  it('when an entry is exactly ten TTLs old, then it is still listed (the bound is exclusive)', async () => {
    await redis.hset(HEARTBEAT_KEY, 'edge', JSON.stringify(beat('edge', NOW - HEARTBEAT_TTL_MS * 10)));

    expect((await readHeartbeats()).map((b) => b.name)).toEqual(['edge']);
    expect(await redis.hexists(HEARTBEAT_KEY, 'edge')).toBe(1);
  });

  it('when a worker is silent longer than one TTL but not ten, then it is still listed (only metrics expire)', async () => {
    await redis.hset(HEARTBEAT_KEY, 'quiet', JSON.stringify(beat('quiet', NOW - HEARTBEAT_TTL_MS * 2)));

    expect(await readHeartbeats()).toHaveLength(1);
  });

  it('when a published heartbeat ages past the bound, then the next read prunes it', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 });
    (Date.now as jest.Mock).mockReturnValue(NOW + HEARTBEAT_TTL_MS * 10 + 1);

    expect(await readHeartbeats()).toEqual([]);
    expect(await redis.hlen(HEARTBEAT_KEY)).toBe(0);
  });
});

describe('serveLiveness', () => {
  let server: Server | undefined;
  afterEach(async () => {
    const open = server;
    server = undefined;
    if (open) await new Promise((resolve) => open.close(resolve));
  });

  async function probe(path = '/healthz', serve = serveLiveness): Promise<{ status: number; body: Record<string, unknown> }> {
    server ??= await serve(0, '127.0.0.1');
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('when the process has not beaten yet, then /healthz answers 503', async () => {
    // A fresh copy of the module: the others in this file have beaten already.
    let fresh!: typeof serveLiveness;
    jest.isolateModules(() => {
      fresh = (jest.requireActual('../../../src/workers/heartbeat') as { serveLiveness: typeof serveLiveness }).serveLiveness;
    });

    expect(await probe('/healthz', fresh)).toEqual({ status: 503, body: { status: 'silent', heartbeat_age_ms: null } });
  });

  it('when a heartbeat was published within the TTL, then /healthz answers 200 with its age', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 });
    (Date.now as jest.Mock).mockReturnValue(NOW + HEARTBEAT_TTL_MS - 1);

    expect(await probe()).toEqual({ status: 200, body: { status: 'ok', heartbeat_age_ms: HEARTBEAT_TTL_MS - 1 } });
  });

  it('when the last heartbeat is a TTL old, then /healthz answers 503 so the orchestrator restarts the worker', async () => {
    await publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 });
    (Date.now as jest.Mock).mockReturnValue(NOW + HEARTBEAT_TTL_MS);

    expect((await probe()).status).toBe(503);
  });

  it('when Redis refuses the heartbeat, then the worker still counts as alive (restarting it would not bring Redis back)', async () => {
    jest.spyOn(redis, 'multi').mockImplementation(() => {
      throw new Error('Connection is closed.');
    });
    await expect(publishHeartbeat('message', 'worker-a', { inFlight: 0, handled: 0 })).rejects.toThrow('Connection is closed.');

    expect((await probe()).status).toBe(200);
  });

  it('when another path is asked for, then it answers 404', async () => {
    expect((await probe('/metrics')).status).toBe(404);
  });
});
