/**
 * Workers report liveness and their Prometheus series through Redis, so the API process can
 * serve one /metrics for the whole fleet (prom-client's aggregation of per-process registries).
 */
import { getRedis } from '../utils/redis';
import { registry } from '../utils/metrics';
import { logger } from '../utils/logger';
import { config } from '../config';

export const HEARTBEAT_KEY = 'workers:heartbeat';
export const workerMetricsKey = (name: string) => `workers:metrics:${name}`;
/** How often every worker (and the supervisor) publishes a heartbeat. */
export const HEARTBEAT_INTERVAL_MS = config.WORKER_HEARTBEAT_MS;
/**
 * A worker silent this long is gone (its metrics stop being served) or, if its process lives,
 * stuck (the supervisor replaces it). Six beats: one slow Redis round trip or GC pause is no death.
 */
export const HEARTBEAT_TTL_MS = 6 * HEARTBEAT_INTERVAL_MS;

export interface Heartbeat {
  kind: string;
  name: string;
  pid: number;
  at: number;
  inFlight: number;
  handled: number;
}

/** Publishes one heartbeat: liveness and this process's metrics. Rejects when Redis does. */
export async function publishHeartbeat(kind: string, name: string, stats: { inFlight: number; handled: number }): Promise<void> {
  const redis = getRedis();
  const beat: Heartbeat = { kind, name, pid: process.pid, at: Date.now(), ...stats };
  const metrics = JSON.stringify(await registry.getMetricsAsJSON());
  await redis
    .multi()
    .hset(HEARTBEAT_KEY, name, JSON.stringify(beat))
    .set(workerMetricsKey(name), metrics, 'PX', HEARTBEAT_TTL_MS)
    .exec();
}

/**
 * The `.catch` of every heartbeat a worker publishes: a failure is logged and the next beat
 * tries again. A Redis hiccup (at start-up, say) must not end the process.
 */
export function heartbeatFailed(error: unknown): void {
  logger.warn({ err: { message: (error as Error)?.message } }, 'heartbeat failed');
}

/** Live workers' heartbeats; entries silent for ten TTLs are pruned. */
export async function readHeartbeats(): Promise<Heartbeat[]> {
  const all = await getRedis().hgetall(HEARTBEAT_KEY);
  const now = Date.now();
  const beats: Heartbeat[] = [];
  const stale: string[] = [];
  for (const [name, json] of Object.entries(all)) {
    let beat: Heartbeat | null = null;
    try {
      beat = JSON.parse(json) as Heartbeat;
    } catch {
      // A garbled entry must not take the fleet's /metrics down with it; it is pruned below.
    }
    if (!beat || typeof beat.at !== 'number' || now - beat.at > HEARTBEAT_TTL_MS * 10) stale.push(name);
    else beats.push(beat);
  }
  // Long-dead workers (restarted under a new pid) would otherwise be listed forever.
  if (stale.length > 0) await getRedis().hdel(HEARTBEAT_KEY, ...stale);
  return beats;
}
