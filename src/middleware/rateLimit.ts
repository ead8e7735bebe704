/**
 * Per-key rate limiting with the counters in Redis, so every API process shares one budget per
 * key (RATE_LIMIT_PER_MINUTE). Keys are counted by their hash, never stored in plain; callers
 * without a key are counted by IP. If Redis is down the limiter lets requests through: losing
 * the API to protect a counter would be the worse failure.
 */
import type { Request, RequestHandler } from 'express';
import { rateLimit, ipKeyGenerator } from 'express-rate-limit';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { config } from '../config';
import { getRedis } from '../utils/redis';
import { AppError } from '../utils/errors';
import { sendError } from './errorHandler';
import { bearerToken } from './auth';
import { hashApiKey } from '../models/ApiKey';

export function rateLimitKey(req: Request): string {
  const token = bearerToken(req);
  return token ? `key:${hashApiKey(token)}` : `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;
}

export function createRateLimiter(limit = config.RATE_LIMIT_PER_MINUTE): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: rateLimitKey,
    passOnStoreError: true,
    store: new RedisStore({
      prefix: 'ratelimit:',
      sendCommand: (command: string, ...args: string[]) => getRedis().call(command, ...args) as Promise<RedisReply>,
    }),
    handler: (req, res) => {
      sendError(res, new AppError('rate_limited', `Too many requests: the limit is ${limit} a minute`), req.requestId);
    },
  });
}
