/** The HTTP server and process: port, proxies, limits, logging, shutdown. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { defineSection, integer } from './parsers';

/** Names Express's `trust proxy` accepts besides addresses and subnets. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Express's `trust proxy` setting: `false`, `true`, a number of proxy hops, or a comma-separated
 * list of proxy addresses, subnets and the names above.
 */
export const trustProxy = z.string().transform((value, ctx): boolean | number | string[] => {
  if (value === 'false' || value === '0') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) return Number(value);
  const entries = value.split(',').map((item) => item.trim());
  const valid = (entry: string) => {
    if (PROXY_NAMES.has(entry)) return true;
    const [address, prefix, ...rest] = entry.split('/');
    return rest.length === 0 && isIP(address ?? '') !== 0 && (prefix === undefined || /^\d{1,3}$/.test(prefix));
  };
  if (!entries.every(valid)) {
    ctx.addIssue({ code: 'custom', message: 'must be true, false, a hop count, or proxy addresses/subnets separated by commas' });
    return z.NEVER;
  }
  return entries;
});

export const serverSection = defineSection({
  shape: {
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: integer(0, 65535).default(3000),
    RATE_LIMIT_PER_MINUTE: integer(1, 1_000_000).default(600),
    /** Whether (and which) `X-Forwarded-For` entries name the client: Express's `trust proxy`. */
    TRUST_PROXY: trustProxy.default(false),
    /** When set, `/metrics` answers only `Authorization: Bearer <METRICS_TOKEN>`. */
    METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    SHUTDOWN_TIMEOUT_MS: integer(100, 600_000).default(10_000),
    BODY_LIMIT: z.string().regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb or 3mb').default('3mb'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  },
});
