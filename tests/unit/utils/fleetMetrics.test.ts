/**
 * The fleet's /metrics text with Redis replaced by ioredis-mock (XINFO, which it lacks, stubbed
 * per test): the API's own series summed with every live worker's published series, each
 * worker's heartbeat age and load, the queue's lag and pending counts, and the API's own series
 * alone when Redis is down. Each test loads the modules afresh: the gauges are process-wide.
 */
import type Redis from 'ioredis';
import client from 'prom-client';
import { closeRedisMock, createRedisMock } from '../../fixtures/redisMock';
import { HEARTBEAT_KEY, workerMetricsKey } from '../../../src/workers/heartbeat';

jest.mock('../../../src/utils/redis', () => ({ getRedis: jest.fn() }));

const NOW = 1_750_000_000_000;

type Modules = {
  fleetMetricsText: typeof import('../../../src/utils/fleetMetrics').fleetMetricsText;
  replyMetrics: typeof import('../../../src/utils/metrics').replyMetrics;
  logger: typeof import('../../../src/utils/logger').logger;
};

let redis: Redis;
let m: Modules;

beforeEach(() => {
  jest.resetModules();
  redis = createRedisMock('fleet-test');
  (jest.requireMock('../../../src/utils/redis') as { getRedis: jest.Mock }).getRedis.mockReturnValue(redis);
  m = {
    fleetMetricsText: (require('../../../src/utils/fleetMetrics') as typeof import('../../../src/utils/fleetMetrics')).fleetMetricsText,
    replyMetrics: (require('../../../src/utils/metrics') as typeof import('../../../src/utils/metrics')).replyMetrics,
    logger: (require('../../../src/utils/logger') as typeof import('../../../src/utils/logger')).logger,
  };
  jest.spyOn(Date, 'now').mockReturnValue(NOW);
  jest.spyOn(redis, 'xinfo').mockRejectedValue(new Error('ERR no such key'));
});

afterEach(async () => {
  jest.restoreAllMocks();
  await closeRedisMock(redis);
});

/** A worker as heartbeat.ts publishes it: its beat in the hash, its series under its own key. */
async function liveWorker(name: string, secondsAgo: number, inFlight: number, replies: number): Promise<void> {
  const own = new client.Registry();
  new client.Counter({ name: 'replies_sent_total', help: 'h', labelNames: ['channel', 'author'], registers: [own] }).inc({ channel: 'whatsapp', author: 'agent' }, replies);
  await redis.hset(HEARTBEAT_KEY, name, JSON.stringify({ kind: 'message', name, pid: 1, at: NOW - secondsAgo * 1000, inFlight, handled: 0 }));
  await redis.set(workerMetricsKey(name), JSON.stringify(await own.getMetricsAsJSON()));
}

/** The value of one sample line, or undefined when the text has no such line. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('fleetMetricsText', () => {
  it('when workers publish series the API also has, then each series is the sum over the API and the workers', async () => {
    m.replyMetrics.replies.inc({ channel: 'whatsapp', author: 'agent' }, 2);
    await liveWorker('w1', 1, 0, 3);
    await liveWorker('w2', 1, 0, 4);

    const text = await m.fleetMetricsText();

    expect(sample(text, 'replies_sent_total{channel="whatsapp",author="agent"}')).toBe(9);
  });

  it('when workers beat, then each one’s heartbeat age and in-flight count are gauges labelled by worker and kind', async () => {
    await liveWorker('w1', 2.5, 3, 0);

    const text = await m.fleetMetricsText();

    expect(sample(text, 'worker_heartbeat_age_seconds{worker="w1",kind="message"}')).toBe(2.5);
    expect(sample(text, 'worker_in_flight{worker="w1",kind="message"}')).toBe(3);
  });

  it('when the consumer group has lag and pending entries, then they are reported for the messages stream only from that group', async () => {
    jest.mocked(redis.xinfo).mockResolvedValue([
      ['name', 'someone-else', 'pending', 100, 'lag', 100],
      ['name', 'message-workers', 'consumers', 2, 'pending', 4, 'lag', 7],
    ] as never);

    const text = await m.fleetMetricsText();

    expect(redis.xinfo).toHaveBeenCalledWith('GROUPS', `${redis.options.keyPrefix}stream:{messages:0}`);
    expect(sample(text, 'queue_lag_entries{stream="stream:{messages:0}"}')).toBe(7);
    expect(sample(text, 'queue_pending_entries{stream="stream:{messages:0}"}')).toBe(4);
  });

  it('when the stream does not exist yet, then no lag is reported and the rest still is', async () => {
    await liveWorker('w1', 1, 0, 0);

    const text = await m.fleetMetricsText();

    expect(sample(text, 'queue_lag_entries{stream="stream:messages"}')).toBeUndefined();
    expect(sample(text, 'worker_in_flight{worker="w1",kind="message"}')).toBe(0);
  });

  it('when a worker stopped beating, then its gauges from an earlier scrape are gone', async () => {
    await liveWorker('w1', 1, 1, 0);
    await m.fleetMetricsText();
    await redis.hdel(HEARTBEAT_KEY, 'w1');

    const text = await m.fleetMetricsText();

    expect(sample(text, 'worker_in_flight{worker="w1",kind="message"}')).toBeUndefined();
  });

  it('when a worker’s series expired but its beat remains, then the rest is still served', async () => {
    await liveWorker('w1', 1, 0, 5);
    await redis.del(workerMetricsKey('w1'));

    const text = await m.fleetMetricsText();

    expect(sample(text, 'replies_sent_total{channel="whatsapp",author="agent"}')).toBeUndefined();
    expect(sample(text, 'worker_in_flight{worker="w1",kind="message"}')).toBe(0);
  });

  it('when Redis is down, then the API’s own series alone, and a warning', async () => {
    m.replyMetrics.replies.inc({ channel: 'instagram', author: 'human' }, 1);
    jest.spyOn(redis, 'hgetall').mockRejectedValue(new Error('connection refused'));
    const warn = jest.spyOn(m.logger, 'warn').mockImplementation(() => undefined);

    const text = await m.fleetMetricsText();

    expect(sample(text, 'replies_sent_total{channel="instagram",author="human"}')).toBe(1);
    expect(warn).toHaveBeenCalledWith({ err: { message: 'connection refused' } }, 'fleet metrics unavailable');
  });
});
