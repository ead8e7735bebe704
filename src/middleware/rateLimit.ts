/**
 * Rate limiting with the counters in Redis, so every API process shares one budget
 * (RATE_LIMIT_PER_MINUTE) per subject. A subject is a valid key (the operator's, or a live
 * tenant key), counted by its hash and never stored in plain; everything else (no key, an
 * unknown or revoked key) is counted against the client's address, so guessing keys spends the
 * guesser's budget rather than buying a fresh one per guess. Which address is the client's is
 * `TRUST_PROXY`'s call (app.ts). If Redis is down the limiter lets requests through: losing the
 * API to protect a counter would be the worse failure.
 */
import type { Request, RequestHandler, Response } from 'express';
import { rateLimit, ipKeyGenerator, type RateLimitRequestHandler } from 'express-rate-limit';
import { RedisStore, type RedisReply, type SendCommandClusterDetails } from 'rate-limit-redis';
import { config } from '../config';
import { getRedis, isCluster } from '../utils/redis';
import { AppError } from '../utils/errors';
import { logger } from '../utils/logger';
import { sendError } from './errorHandler';
import { bearerToken, isOperatorKey, presentedApiKey } from './auth';
import { hashApiKey } from '../models/ApiKey';
import { isApiKeyKnownLive, markApiKeyLive } from '../services/liveApiKeys';

/**
 * The store's commands. Each counter is one key, so its scripts run on a Redis Cluster as they
 * are; but the store loads them (SCRIPT LOAD, which names no key) before calling them by hash,
 * and on a cluster a keyless command reaches one node at random: load them on every master, so
 * whichever holds a counter knows the script (after a failover, NOSCRIPT has the store load again).
 */
async function sendCommand({ command }: SendCommandClusterDetails): Promise<RedisReply> {
  const redis = getRedis();
  const [name, ...args] = command as [string, ...string[]];
  if (isCluster(redis) && name.toUpperCase() === 'SCRIPT') {
    // Through the cluster client first: it waits for the cluster to be connected, so its list
    // of masters is complete for the second step.
    const sha = (await redis.call(name, ...args)) as RedisReply;
    await Promise.all(redis.nodes('master').map((node) => node.call(name, ...args)));
    return sha;
  }
  return redis.call(name, ...args) as Promise<RedisReply>;
}

const keySubject = (token: string) => `key:${hashApiKey(token)}`;
const addressSubject = (req: Request) => `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;

/** The counter a request is charged to, without a lookup: its key's when it presents one. */
export function rateLimitKey(req: Request): string {
  const token = bearerToken(req);
  return token ? keySubject(token) : addressSubject(req);
}

/** Hits counted so far this window; 0 when Redis cannot say (fail open, as the counting does). */
async function hitsOf(counter: RateLimitRequestHandler, subject: string): Promise<{ hits: number; resetTime: Date | undefined }> {
  try {
    const info = await counter.getKey(subject);
    // A counter that does not exist reads as NaN hits from rate-limit-redis.
    const hits = info?.totalHits;
    return { hits: hits !== undefined && Number.isFinite(hits) ? hits : 0, resetTime: info?.resetTime };
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message } }, 'rate-limit counter unreadable; letting the request through');
    return { hits: 0, resetTime: undefined };
  }
}

export function createRateLimiter(limit = config.RATE_LIMIT_PER_MINUTE): RequestHandler {
  const refuse = (req: Request, res: Response) => {
    sendError(res, new AppError('rate_limited', `Too many requests: the limit is ${limit} a minute`), req.requestId);
  };
  const counter = rateLimit({
    windowMs: 60_000,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req) => req.rateLimitSubject ?? rateLimitKey(req),
    // An X-Forwarded-For that TRUST_PROXY does not believe is expected, not a misconfiguration.
    validate: { xForwardedForHeader: false },
    passOnStoreError: true,
    store: new RedisStore({
      prefix: 'ratelimit:',
      sendCommandCluster: sendCommand,
    }),
    handler: refuse,
  });

  return async (req, res, next) => {
    const token = bearerToken(req);
    if (!token || isOperatorKey(token)) {
      req.rateLimitSubject = token ? keySubject(token) : addressSubject(req);
      return counter(req, res, next);
    }
    // Before any lookup: a key over its own budget (it has a counter only if it was valid this
    // window), or a key never seen live presented from an address that has spent its budget,
    // is refused without costing Postgres. A live key from a crowded address is still served.
    const hash = hashApiKey(token);
    const [address, key, known] = await Promise.all([
      hitsOf(counter, addressSubject(req)),
      hitsOf(counter, keySubject(token)),
      isApiKeyKnownLive(hash),
    ]);
    const spent = key.hits >= limit ? key : !known && key.hits === 0 && address.hits >= limit ? address : null;
    if (spent) {
      const seconds = spent.resetTime ? Math.max(1, Math.ceil((spent.resetTime.getTime() - Date.now()) / 1000)) : 60;
      res.setHeader('Retry-After', String(seconds));
      return refuse(req, res);
    }
    const live = await presentedApiKey(req);
    if (live && !known) await markApiKeyLive(hash);
    req.rateLimitSubject = live ? keySubject(token) : addressSubject(req);
    return counter(req, res, next);
  };
}
