/**
 * Structured JSON logging. Every line carries the current request id (and tenant, once known)
 * from the async context; secrets are redacted by path so a careless `log.info({ req })` or
 * `log.info({ phoneNumber })` cannot leak them.
 */
import pino from 'pino';
import { config } from '../config';
import { currentContext } from './context';
import { version } from '../../package.json';

/** Paths pino blanks out wherever they appear (one and two levels deep). */
export const REDACTED_PATHS = [
  'authorization',
  'apiKey',
  'api_key',
  'accessToken',
  'access_token',
  'appSecret',
  'app_secret',
  'secret',
  'password',
  'token',
  'encryptionKey',
  'openaiApiKey',
  'headers.authorization',
  'headers["x-hub-signature-256"]',
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  '*.authorization',
  '*.apiKey',
  '*.api_key',
  '*.accessToken',
  '*.access_token',
  '*.secret',
  '*.token',
];

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}) {
  return pino(
    {
      level: options.level ?? config.LOG_LEVEL,
      base: { service: 'multi-channel-ai-agent', version, pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const context = currentContext();
        if (!context) return {};
        return context.userId ? { request_id: context.requestId, user_id: context.userId } : { request_id: context.requestId };
      },
    },
    options.destination,
  );
}

export const logger = createLogger();
export type Logger = pino.Logger;

for (const name of config.defaultedSecrets) {
  logger.warn({ variable: name }, `${name} is not set: using the public development default`);
}
