/** Liveness, readiness and metrics: what an orchestrator and Prometheus poll. */
import { Router } from 'express';
import { pingDatabase } from '../utils/database';
import { pingRedis } from '../utils/redis';
import { registry } from '../utils/metrics';
import { fleetMetricsText } from '../utils/fleetMetrics';

/** Resolves to whether `probe` answered within `ms`; a hung connection must not hang readyz. */
async function answers(probe: () => Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([probe().then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const healthRouter = Router();

healthRouter.get('/healthz', (_req, res) => {
  res.json({ status: 'ok' });
});

healthRouter.get('/readyz', async (_req, res) => {
  const [postgres, redis] = await Promise.all([answers(pingDatabase, 1_000), answers(() => pingRedis(), 1_000)]);
  const ready = postgres && redis;
  res.status(ready ? 200 : 503).json({
    status: ready ? 'ready' : 'unavailable',
    checks: { postgres: postgres ? 'ok' : 'down', redis: redis ? 'ok' : 'down' },
  });
});

healthRouter.get('/metrics', async (_req, res) => {
  res.type(registry.contentType).send(await fleetMetricsText());
});
