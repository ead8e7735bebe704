/** Liveness, readiness and metrics: what an orchestrator and Prometheus poll. */
import { Router } from 'express';
import { z } from 'zod';
import { errorResponses, openapiRegistry, responseHeaders } from '../utils/openapi';
import { pingDatabase } from '../utils/database';
import { pingRedis } from '../utils/redis';
import { registry } from '../utils/metrics';
import { fleetMetricsText } from '../utils/fleetMetrics';
import { config } from '../config';
import { AppError } from '../utils/errors';
import { bearerToken, constantTimeEquals } from '../middleware/auth';

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

const TAG = 'Operations';
const headers = responseHeaders({ rateLimited: false });
const readiness = z
  .object({
    status: z.enum(['ready', 'unavailable']),
    checks: z.object({ postgres: z.enum(['ok', 'down']), redis: z.enum(['ok', 'down']) }),
  })
  .meta({ example: { status: 'ready', checks: { postgres: 'ok', redis: 'ok' } } });

openapiRegistry.registerPath({
  method: 'get',
  path: '/healthz',
  summary: 'Liveness: the process is up',
  description: 'Answers 200 as long as the process serves HTTP; checks nothing else (see /readyz). No key needed.',
  tags: [TAG],
  security: [],
  responses: {
    200: { description: 'Alive', headers, content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } },
    ...errorResponses(['internal_error'], { rateLimited: false }),
  },
});
openapiRegistry.registerPath({
  method: 'get',
  path: '/readyz',
  summary: 'Readiness: Postgres and Redis answer',
  description: 'Pings Postgres and Redis, each within 1 s. 503 (same body) names which is down: take the process out of rotation. No key needed.',
  tags: [TAG],
  security: [],
  responses: {
    200: { description: 'Ready', headers, content: { 'application/json': { schema: readiness } } },
    503: { description: 'Postgres or Redis does not answer', headers, content: { 'application/json': { schema: readiness } } },
  },
});
openapiRegistry.registerComponent('securitySchemes', 'metricsToken', {
  type: 'http',
  scheme: 'bearer',
  description: 'METRICS_TOKEN, when the operator set one: /metrics only',
});
openapiRegistry.registerPath({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics of the whole fleet',
  description:
    "Prometheus text format: this API process's series (http_request_duration_seconds by method, route pattern and status), every live worker's series summed, heartbeat ages and the queue's lag. When the operator set METRICS_TOKEN, only with `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise); else no key needed.",
  tags: [TAG],
  // Either form: open, or the metrics token when one is configured.
  security: [{}, { metricsToken: [] }],
  responses: {
    200: {
      description: 'Prometheus exposition text',
      headers,
      content: { 'text/plain': { schema: z.string(), example: 'http_request_duration_seconds_count{method="GET",route="/v1/me",status="200"} 3' } },
    },
    ...errorResponses(['unauthorized', 'internal_error'], { rateLimited: false }),
  },
});

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

healthRouter.get('/metrics', async (req, res) => {
  // The series name tenants' routes and traffic: with a token set, only its holder reads them.
  if (config.METRICS_TOKEN !== undefined) {
    const token = bearerToken(req);
    if (!token || !constantTimeEquals(token, config.METRICS_TOKEN)) {
      throw new AppError('unauthorized', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>');
    }
  }
  res.type(registry.contentType).send(await fleetMetricsText());
});
