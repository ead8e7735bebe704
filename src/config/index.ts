/**
 * The one place that reads `process.env`. Each section file (server, security, database, redis,
 * meta, openai, workers, credits, events) declares its variables; this module merges them into one
 * schema, parses the environment once at import, and every other module imports the frozen,
 * typed `config` object. Names and defaults follow CONTRACT §2.
 */
import { z } from 'zod';
import dotenv from 'dotenv';
import type { RawEnvironment } from './parsers';
import { serverSection } from './server';
import { securitySection } from './security';
import { databaseSection } from './database';
import { redisSection } from './redis';
import { metaSection } from './meta';
import { openaiSection } from './openai';
import { workersSection } from './workers';
import { creditsSection } from './credits';
import { eventsSection } from './events';

/** In this order their problems are listed and their variables documented. */
const SECTIONS = [serverSection, securitySection, databaseSection, redisSection, metaSection, openaiSection, workersSection, creditsSection, eventsSection] as const;

const schema = z.object({
  ...serverSection.shape,
  ...securitySection.shape,
  ...databaseSection.shape,
  ...redisSection.shape,
  ...metaSection.shape,
  ...openaiSection.shape,
  ...workersSection.shape,
  ...creditsSection.shape,
  ...eventsSection.shape,
});

/** Secrets that `NODE_ENV=production` refuses to default, with their public development values. */
const DEV_SECRETS: ReadonlyArray<readonly [string, string]> = SECTIONS.flatMap((section) =>
  Object.entries((section as { devSecrets?: Record<string, string> }).devSecrets ?? {}),
);

/** Every variable the product reads; `.env.example` documents each. */
export const CONFIG_VARIABLES = Object.keys(schema.shape);

export type Config = Readonly<Omit<z.infer<typeof schema>, 'WEBHOOK_ALLOW_PRIVATE_URLS'>> & {
  /** Resolved: the variable, else `NODE_ENV !== 'production'`. */
  readonly WEBHOOK_ALLOW_PRIVATE_URLS: boolean;
  /** Secrets that fell back to public development values; the logger warns about each. */
  readonly defaultedSecrets: readonly string[];
};

/** Raised with every bad variable named at once, so an operator fixes them in one go. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Pure: parses an environment into a config, or throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const source: Record<string, string | undefined> = {};
  // An empty variable means "not set": `.env.example` copies leave blanks behind.
  for (const key of CONFIG_VARIABLES) source[key] = env[key] === '' ? undefined : env[key];

  const production = (source.NODE_ENV ?? 'development') === 'production';
  const problems: string[] = [];
  const named = (name: string) => problems.some((p) => p.startsWith(`${name}:`));
  const defaultedSecrets: string[] = [];
  for (const [name, devValue] of DEV_SECRETS) {
    if (source[name] !== undefined) continue;
    if (production) problems.push(`${name}: required when NODE_ENV=production`);
    else {
      source[name] = devValue;
      defaultedSecrets.push(name);
    }
  }

  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      const given = source[name] === undefined ? 'missing' : 'invalid';
      if (!named(name)) problems.push(`${name}: ${given} (${issue.message})`);
    }
  }
  const raw: RawEnvironment = source;
  for (const section of SECTIONS) {
    for (const problem of section.check?.(raw, production) ?? []) {
      if (!named(problem.slice(0, problem.indexOf(':')))) problems.push(problem);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    ...parsed.data!,
    // A production server must not post tenant events into its own network unless told to.
    WEBHOOK_ALLOW_PRIVATE_URLS: parsed.data!.WEBHOOK_ALLOW_PRIVATE_URLS ?? !production,
    defaultedSecrets: Object.freeze(defaultedSecrets),
  });
}

function loadFromProcess(): Config {
  // `.env` is optional; real deployments set the environment directly.
  if (process.env.NODE_ENV !== 'test') dotenv.config({ quiet: true });
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Before the logger exists, so plain stderr; one line an operator can act on.
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

export const config: Config = loadFromProcess();
