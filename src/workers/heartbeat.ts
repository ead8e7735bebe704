/**
 * Workers report liveness and their Prometheus series through Redis, so the API process can
 * serve one /metrics for the whole fleet (prom-client's aggregation of per-process registries).
 */
import { createServer, type Server } from 'node:http';
import { getRedis } from '../utils/redis';
import { registry } from '../utils/metrics';
import { logger } from '../utils/logger';
import { config } from '../config';

// One MULTI writes both, and /metrics reads every worker's metrics in one MGET: on a Redis
// Cluster they must share a slot, hence the `{workers}` hash tag (a few writes a second at most).
export const HEARTBEAT_KEY = '{workers}:heartbeat';
export const workerMetricsKey = (name: string) => `{workers}:metrics:${name}`;
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

/** When this process last set out to publish a heartbeat; what its local liveness endpoint reports. */
let lastAttemptAt: number | undefined;

/** Publishes one heartbeat: liveness and this process's metrics. Rejects when Redis does. */
export async function publishHeartbeat(kind: string, name: string, stats: { inFlight: number; handled: number }): Promise<void> {
  lastAttemptAt = Date.now();
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

/**
 * A worker's liveness for an orchestrator (Kubernetes' livenessProbe, compose's healthcheck),
 * which cannot read Redis: `GET /healthz` answers 200 while the worker's heartbeat keeps
 * beating, 503 (and the orchestrator restarts the process) once it has been silent for
 * HEARTBEAT_TTL_MS, as the API's /metrics would stop counting it. A beat counts when it is
 * attempted, not when Redis takes it: an outage of Redis must not get every worker restarted,
 * which would not bring Redis back; a wedged event loop or a worker that never started beating
 * is what this catches.
 */
export function serveLiveness(port: number, host = '0.0.0.0'): Promise<Server> {
  const server = createServer((request, response) => {
    const ageMs = lastAttemptAt === undefined ? undefined : Date.now() - lastAttemptAt;
    const alive = ageMs !== undefined && ageMs < HEARTBEAT_TTL_MS;
    const found = request.url === '/healthz';
    response.writeHead(found ? (alive ? 200 : 503) : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify(found ? { status: alive ? 'ok' : 'silent', heartbeat_age_ms: ageMs ?? null } : { error: 'not_found' }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
