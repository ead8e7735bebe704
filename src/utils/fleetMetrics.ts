/**
 * /metrics for the whole fleet: the API's own series, every live worker's series (published to
 * Redis with its heartbeat, summed by prom-client's aggregator, as for a Node cluster), and
 * gauges read at scrape time: each worker's heartbeat age and load, and the queue's lag.
 */
import client, { AggregatorRegistry } from 'prom-client';
import { getRedis } from './redis';
import { registry } from './metrics';
import { readGroupBacklog } from './queue';
import { readHeartbeats, workerMetricsKey } from '../workers/heartbeat';
import { logger } from './logger';

type MetricsJson = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>;

const fleet = new client.Registry();
const heartbeatAge = new client.Gauge({
  name: 'worker_heartbeat_age_seconds',
  help: 'Seconds since each worker last reported',
  labelNames: ['worker', 'kind'] as const,
  registers: [fleet],
});
const workerInFlight = new client.Gauge({
  name: 'worker_in_flight',
  help: 'Conversations a worker is serving right now',
  labelNames: ['worker', 'kind'] as const,
  registers: [fleet],
});
const streamLag = new client.Gauge({
  name: 'queue_lag_entries',
  help: 'Stream entries not yet delivered to any worker of the group',
  labelNames: ['stream'] as const,
  registers: [fleet],
});
const streamPending = new client.Gauge({
  name: 'queue_pending_entries',
  help: 'Entries delivered to a worker and not yet acknowledged',
  labelNames: ['stream'] as const,
  registers: [fleet],
});

async function readFleet(): Promise<MetricsJson[]> {
  heartbeatAge.reset();
  workerInFlight.reset();
  const redis = getRedis();
  const beats = await readHeartbeats();
  for (const beat of beats) {
    heartbeatAge.set({ worker: beat.name, kind: beat.kind }, (Date.now() - beat.at) / 1000);
    workerInFlight.set({ worker: beat.name, kind: beat.kind }, beat.inFlight);
  }
  // No stream yet: nothing to report. And the workers' series are still worth serving if only
  // the queue's figures cannot be read.
  const backlog = await readGroupBacklog(redis).catch(() => null);
  // One series per shard: a lagging shard is a hot conversation or a slow Redis node.
  for (const shard of backlog?.shards ?? []) {
    streamLag.set({ stream: shard.stream }, shard.lag);
    streamPending.set({ stream: shard.stream }, shard.pending);
  }
  if (beats.length === 0) return [];
  const published = await redis.mget(...beats.map((beat) => workerMetricsKey(beat.name)));
  return published.filter((json): json is string => json !== null).map((json) => JSON.parse(json) as MetricsJson);
}

/** Prometheus text for the fleet; with Redis down, the API's own series alone. */
export async function fleetMetricsText(): Promise<string> {
  const own = await registry.getMetricsAsJSON();
  let workers: MetricsJson[] = [];
  try {
    workers = await readFleet();
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'fleet metrics unavailable');
  }
  const merged = AggregatorRegistry.aggregate([own, ...workers]);
  return `${await merged.metrics()}\n${await fleet.metrics()}`;
}
