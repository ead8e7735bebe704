/**
 * The whole pipeline on a real Redis Cluster (three masters, tests/fixtures/redisCluster.ts)
 * with the message stream in four shards: webhook → inbox → nudge → worker → reply, leases
 * and their dirty flags, the dead-letter path, heartbeats and the queue's backlog. Every
 * multi-key script or command would fail with CROSSSLOT here if its keys did not share a slot.
 * The app and workers are loaded in a registry of their own, with REDIS_CLUSTER_NODES set.
 */
import request from 'supertest';
import { loadWithEnv } from '../fixtures/isolatedModules';
import { startRedisCluster, slotOf, type RedisCluster } from '../fixtures/redisCluster';

const SHARDS = 4;

type Modules = {
  pipeline: typeof import('../fixtures/pipeline');
  testDatabase: typeof import('../fixtures/testDatabase');
  redis: typeof import('../../src/utils/redis');
  queue: typeof import('../../src/utils/queue');
  locks: typeof import('../../src/utils/locks');
  database: typeof import('../../src/utils/database');
  heartbeat: typeof import('../../src/workers/heartbeat');
  config: typeof import('../../src/config');
  apiKey: typeof import('../../src/models/ApiKey');
  cache: typeof import('../../src/services/cacheService');
};

let cluster: RedisCluster;
let m: Modules;
let pipeline: import('../fixtures/pipeline').Pipeline;
let customerSeq = 0;
const newCustomer = () => `1556${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

beforeAll(async () => {
  cluster = await startRedisCluster();
  m = loadWithEnv({ REDIS_CLUSTER_NODES: cluster.nodes, STREAM_SHARDS: String(SHARDS) }, () => ({
    pipeline: require('../fixtures/pipeline') as Modules['pipeline'],
    testDatabase: require('../fixtures/testDatabase') as Modules['testDatabase'],
    redis: require('../../src/utils/redis') as Modules['redis'],
    queue: require('../../src/utils/queue') as Modules['queue'],
    locks: require('../../src/utils/locks') as Modules['locks'],
    database: require('../../src/utils/database') as Modules['database'],
    heartbeat: require('../../src/workers/heartbeat') as Modules['heartbeat'],
    config: require('../../src/config') as Modules['config'],
    apiKey: require('../../src/models/ApiKey') as Modules['apiKey'],
    cache: require('../../src/services/cacheService') as Modules['cache'],
  }));
  await m.testDatabase.setupTestDatabase();
  pipeline = await m.pipeline.startPipeline();
}, 60_000);

afterAll(async () => {
  await pipeline?.close();
  await m?.testDatabase.teardownTestDatabase();
  await cluster?.stop();
});

afterEach(() => pipeline.reset());

describe('on a Redis Cluster with the message stream in shards', () => {
  it('when the app runs on the cluster, then its connections are Cluster clients and the shards sit in different slots', () => {
    expect(m.config.config.STREAM_SHARDS).toBe(SHARDS);
    expect(m.redis.isCluster(m.redis.getRedis())).toBe(true);
    const slots = m.queue.messageStreams().map((stream) => slotOf(`${m.config.config.REDIS_KEY_PREFIX}${stream}`));
    expect(new Set(slots).size).toBe(SHARDS);
  });

  it('when many customers write several times to two workers, then each message is answered once, in order, through several shards', async () => {
    const { app, graph, openai } = pipeline;
    const business = await m.pipeline.createBusiness(app);
    openai.setLatency(50);
    await Promise.all([pipeline.startWorker(), pipeline.startWorker()]);
    const customers = Array.from({ length: 8 }, newCustomer);
    for (const text of ['first', 'second']) {
      await Promise.all(customers.map((customer) => m.pipeline.customerWrites(app, business, customer, `${text} from ${customer}`)));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await m.pipeline.eventually(
      async () => {
        const all = await Promise.all(customers.map((c) => m.pipeline.messagesOf(business.tenant.userId, c)));
        return all.every((rows) => rows.some((r) => r.direction === 'outbound') && rows.every((r) => (r.direction === 'inbound' ? r.status === 'answered' : r.status === 'sent')));
      },
      20_000,
      'every customer answered',
    );
    expect(openai.maxConcurrentPerKey()).toBe(1);
    for (const customer of customers) {
      const rows = await m.pipeline.messagesOf(business.tenant.userId, customer);
      const replies = rows.filter((r) => r.direction === 'outbound').map((r) => r.text);
      // Each reply sent once, in the order they were made; the last answers the last message.
      expect(graph.texts(customer).map((s) => s.text)).toEqual(replies);
      expect(replies[replies.length - 1]).toContain(`second from ${customer}`);
    }
    const redis = m.redis.getRedis();
    const lengths = await Promise.all(m.queue.messageStreams().map((stream) => redis.xlen(stream)));
    expect(lengths.filter((length) => length > 0).length).toBeGreaterThan(1);
    // Nothing left unacknowledged, and the backlog sums every shard.
    const backlog = await m.queue.readGroupBacklog();
    expect(backlog).toMatchObject({ lag: 0, pending: 0 });
    expect(backlog!.shards).toHaveLength(SHARDS);
  });

  it('when two workers contend for one conversation, then one holds the lease, the other marks it dirty and the owner goes round again', async () => {
    const conversation = `cluster-lease-${customerSeq++}`;
    const first = m.locks.conversationLease(conversation, 5_000);
    const second = m.locks.conversationLease(conversation, 5_000);

    expect(await first.acquire()).toBe(true);
    expect(await second.acquire()).toBe(false);
    await m.locks.markConversationDirty(conversation, 5_000);

    expect(await first.release()).toBe('again');
    expect(await first.release()).toBe('released');
    expect(await second.acquire()).toBe(true);
    await second.abandon();
  });

  it('when a conversation keeps crashing its worker, then it is dead-lettered in its shard and what it owed fails', async () => {
    const { app } = pipeline;
    const business = await m.pipeline.createBusiness(app);
    await m.database.db.query(`UPDATE phone_numbers SET access_token_encrypted = 'v1:AAAA:AAAA:AAAA' WHERE id = $1`, [business.whatsapp.id]);
    await pipeline.startWorker({ leaseMs: 300, maxDeliveries: 3, sweepIntervalMs: 60_000 });
    const customer = newCustomer();
    await m.pipeline.customerWrites(app, business, customer, 'this will not work');
    const rows = await m.pipeline.eventually(async () => {
      const r = await m.pipeline.messagesOf(business.tenant.userId, customer);
      return r[0]?.status === 'failed' ? r : null;
    }, 20_000, 'the message failed as poison');
    expect(rows.map((r) => [r.direction, r.status, r.error_code])).toEqual([['inbound', 'failed', 'poison']]);
    const shard = m.queue.shardOf({ userId: business.tenant.userId, phoneNumberId: business.whatsapp.id, customerId: customer });
    const dead = await m.redis.getRedis().xrange(m.queue.deadLetterStream(shard), '-', '+');
    expect(dead.map(([, fields]) => fields)).toContainEqual(expect.arrayContaining(['customer_id', customer]));
  });

  it("when a tenant calls the API, then its rate-limit counter lives on the cluster (the store's scripts loaded on every master)", async () => {
    const business = await m.pipeline.createBusiness(pipeline.app);
    const apiKey = business.tenant.auth.Authorization.slice('Bearer '.length);

    const hits = await m.redis.getRedis().get(`ratelimit:key:${m.apiKey.hashApiKey(apiKey)}`);

    expect(Number(hits)).toBeGreaterThanOrEqual(3);
  });

  it('when a tenant is looked up and a number changes, then the cache is filled and invalidated on the cluster (entry and generation in one slot)', async () => {
    const business = await m.pipeline.createBusiness(pipeline.app);
    const apiKey = business.tenant.auth.Authorization.slice('Bearer '.length);
    const cached = m.cache.cacheKeys.apiKey(m.apiKey.hashApiKey(apiKey));
    expect(await m.redis.getRedis().exists(cached)).toBe(1);

    const renamed = await request(pipeline.app).patch(`/v1/phone-numbers/${business.whatsapp.id}`).set(business.tenant.auth).send({ display_name: 'Renamed' });
    expect(renamed.status).toBe(200);
    await m.cache.invalidate(cached, m.cache.cacheKeys.account('whatsapp', business.whatsapp.externalId));
    expect(await m.redis.getRedis().exists(cached)).toBe(0);
  });

  it('when a worker beats, then its heartbeat and metrics are written together and read back', async () => {
    await m.heartbeat.publishHeartbeat('message', 'cluster-worker', { inFlight: 1, handled: 2 });

    expect(await m.heartbeat.readHeartbeats()).toContainEqual(expect.objectContaining({ name: 'cluster-worker', inFlight: 1, handled: 2 }));
    expect(await m.redis.getRedis().exists(m.heartbeat.workerMetricsKey('cluster-worker'))).toBe(1);
  });
});
