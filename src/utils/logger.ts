/**
 * Structured JSON logging. Every line carries the current request id (and tenant, once known)
 * from the async context; secrets are redacted by path so a careless `log.info({ req })` or
 * `log.info({ phoneNumber })` cannot leak them.
 */
import pino from 'pino';
import { config, type Config } from '../config';
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

/**
 * The keys a child logger was bound with (`logger.child({ user_id })`): the mixin leaves them
 * out, or the line would carry the key twice (JSON allows it; log tools keep one at random).
 */
const boundKeys = new WeakMap<object, Set<string>>();
function keysBoundTo(instance: pino.Logger): Set<string> {
  let keys = boundKeys.get(instance);
  if (!keys) {
    keys = new Set(Object.keys(instance.bindings()));
    boundKeys.set(instance, keys);
  }
  return keys;
}

export function createLogger(options: { level?: string; destination?: pino.DestinationStream } = {}) {
  return pino(
    {
      level: options.level ?? config.LOG_LEVEL,
      base: { service: 'multi-channel-ai-agent', version, pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin(_mergeObject, _level, instance) {
        const context = currentContext();
        if (!context) return {};
        const fields: Record<string, string> = { request_id: context.requestId };
        if (context.userId) fields.user_id = context.userId;
        for (const key of keysBoundTo(instance)) delete fields[key];
        return fields;
      },
    },
    options.destination,
  );
}

export const logger = createLogger();
export type Logger = pino.Logger;

/** What an operator should know about the configuration before anything goes wrong. */
export function startupWarnings(settings: Config): Array<{ variable: string; message: string }> {
  const warnings = settings.defaultedSecrets.map((name) => ({ variable: name, message: `${name} is not set: using the public development default` }));
  if (!settings.OPENAI_API_KEY) {
    warnings.push({
      variable: 'OPENAI_API_KEY',
      message:
        'OPENAI_API_KEY is not set: no model can be called, so customer messages end failed (openai_not_configured) and lead extractions are postponed; set it, or run npm run start:offline for a local stand-in',
    });
  }
  return warnings;
}

for (const { variable, message } of startupWarnings(config)) logger.warn({ variable }, message);
