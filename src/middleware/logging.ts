/**
 * Correlation: reads the caller's X-Request-Id (or makes one), echoes it, and runs the rest of
 * the request inside an async context so every log line carries it. Logs one line per request.
 */
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { runWithContext } from '../utils/context';
import { logger } from '../utils/logger';
import { httpRequestDuration } from '../utils/metrics';

// Accept a caller's id only if it is tame: it ends up in logs and stream entries.
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestContext(req: Request, res: Response, next: NextFunction): void {
  const given = req.get('x-request-id');
  const requestId = given && ACCEPTABLE_ID.test(given) ? given : randomUUID();
  req.requestId = requestId;
  res.setHeader('X-Request-Id', requestId);
  const started = process.hrtime.bigint();
  res.on('finish', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // Label by route pattern, not URL, so ids do not explode the series count.
    const route = req.routePattern ?? (req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched');
    httpRequestDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
    const level = res.statusCode >= 500 ? 'error' : 'info';
    logger[level]({ request_id: requestId, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
  });
  runWithContext({ requestId }, next);
}
