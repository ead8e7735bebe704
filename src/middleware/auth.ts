/**
 * Bearer authentication. The operator's key is compared in constant time; a tenant key is
 * hashed and looked up through the cache (liveApiKeys → cacheService, Postgres on a miss or when
 * Redis is down). A revoked key still stops at once in every API process: the revoke
 * invalidates the cached lookup before it answers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { config } from '../config';
import { AppError } from '../utils/errors';
import { hashApiKey } from '../models/ApiKey';
import { findLiveApiKey } from '../services/liveApiKeys';
import { currentContext } from '../utils/context';

export function bearerToken(req: Request): string | null {
  const header = req.get('authorization');
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match?.[1] ?? null;
}

/** Compares digests so neither length nor content leaks through timing. */
export function constantTimeEquals(a: string, b: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/** Whether `token` is the operator's key; no lookup. */
export const isOperatorKey = (token: string) => constantTimeEquals(token, config.ADMIN_API_KEY);

/**
 * The live tenant key the request presents, or null. Looked up once per request: the rate
 * limiter needs to know whether the key is valid before it counts it, and the check below
 * reuses that answer.
 */
export async function presentedApiKey(req: Request): Promise<{ id: string; userId: string } | null> {
  if (req.presentedApiKey === undefined) {
    const token = bearerToken(req);
    req.presentedApiKey = token ? await findLiveApiKey(hashApiKey(token)) : null;
  }
  return req.presentedApiKey;
}

const missing = () => new AppError('unauthorized', 'A valid API key is required (Authorization: Bearer <key>)');

export async function requireAdmin(req: Request, _res: Response, next: NextFunction): Promise<void> {
  const token = bearerToken(req);
  if (!token) throw missing();
  if (isOperatorKey(token)) {
    req.isAdmin = true;
    return next();
  }
  if (await presentedApiKey(req)) throw new AppError('forbidden', 'This endpoint needs the operator key');
  throw missing();
}

export async function requireTenant(req: Request, _res: Response, next: NextFunction): Promise<void> {
  const token = bearerToken(req);
  if (!token) throw missing();
  const key = await presentedApiKey(req);
  if (!key) {
    if (isOperatorKey(token)) throw new AppError('forbidden', 'This endpoint needs a tenant key, not the operator key');
    throw missing();
  }
  req.userId = key.userId;
  req.apiKeyId = key.id;
  // Later log lines of this request name the tenant too.
  const context = currentContext();
  if (context) context.userId = key.userId;
  next();
}

/** The authenticated tenant; only valid behind `requireTenant`. */
export function tenantOf(req: Request): string {
  if (!req.userId) throw new AppError('unauthorized', 'A tenant key is required');
  return req.userId;
}
