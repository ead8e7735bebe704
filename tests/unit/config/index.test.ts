import { ConfigError, loadConfig } from '../../../src/config';

const problemsOf = (env: NodeJS.ProcessEnv): string[] => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('loadConfig', () => {
  it('when nothing is set in development, then every contract default applies and dev secrets are flagged', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.NODE_ENV).toBe('development');
    expect(config.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/multichannel_agent');
    expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379/0');
    expect(config.ADMIN_API_KEY).toBe('dev-admin-key');
    expect(config.META_APP_SECRET).toBe('dev-app-secret');
    expect(config.META_VERIFY_TOKEN).toBe('dev-verify-token');
    expect(config.ENCRYPTION_KEY).toHaveLength(32);
    expect(config.META_GRAPH_API_URL).toBe('https://graph.facebook.com');
    expect(config.INSTAGRAM_GRAPH_API_URL).toBe('https://graph.instagram.com');
    expect(config.OPENAI_BASE_URL).toBe('https://api.openai.com/v1');
    expect(config.OPENAI_MODEL).toBe('gpt-4o-mini');
    expect(config.OPENAI_API_KEY).toBeUndefined();
    expect(config.EXTRACTION_IDLE_SECONDS).toBe(600);
    expect(config.MESSAGE_WORKERS).toBe(1);
    expect(config.EXTRACTION_WORKERS).toBe(1);
    expect(config.WORKER_CONCURRENCY).toBe(50);
    expect(config.SEND_IN_DOUBT_GRACE_MS).toBe(15_000);
    expect(config.CREDITS_PER_1K_TOKENS).toBe(1000);
    expect(config.RATE_LIMIT_PER_MINUTE).toBe(600);
    expect(config.MIGRATE_ON_START).toBe(true);
    expect(config.LOG_LEVEL).toBe('info');
    expect(config.defaultedSecrets).toEqual(['ADMIN_API_KEY', 'ENCRYPTION_KEY', 'META_APP_SECRET', 'META_VERIFY_TOKEN']);
  });

  it('when NODE_ENV=production lacks secrets, then one error names every missing one', () => {
    const problems = problemsOf({ NODE_ENV: 'production', ADMIN_API_KEY: 'a-long-admin-key' });
    expect(problems).toEqual([
      'ENCRYPTION_KEY: required when NODE_ENV=production',
      'META_APP_SECRET: required when NODE_ENV=production',
      'META_VERIFY_TOKEN: required when NODE_ENV=production',
    ]);
  });

  it('when values are malformed, then each bad variable is named once and no value is echoed', () => {
    const problems = problemsOf({ PORT: 'eighty', REDIS_URL: 'not a url', ENCRYPTION_KEY: 'c2hvcnQ=', RATE_LIMIT_PER_MINUTE: '-1' });
    expect(problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'REDIS_URL', 'ENCRYPTION_KEY', 'RATE_LIMIT_PER_MINUTE']);
    expect(problems.join(' ')).not.toContain('c2hvcnQ=');
  });

  it('when the encryption key is 32 bytes of base64 or hex, then it is accepted', () => {
    const base64 = Buffer.alloc(32, 7).toString('base64');
    expect(loadConfig({ ENCRYPTION_KEY: base64 }).ENCRYPTION_KEY).toEqual(Buffer.alloc(32, 7));
    expect(loadConfig({ ENCRYPTION_KEY: 'ab'.repeat(32) }).ENCRYPTION_KEY).toEqual(Buffer.alloc(32, 0xab));
  });

  it('when a variable is set but empty, then it counts as unset', () => {
    expect(loadConfig({ PORT: '', OPENAI_API_KEY: '' }).PORT).toBe(3000);
  });

  it('when production has every secret, then it starts and nothing is defaulted', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      ADMIN_API_KEY: 'a-long-admin-key',
      ENCRYPTION_KEY: 'ab'.repeat(32),
      META_APP_SECRET: 'app-secret-1',
      META_VERIFY_TOKEN: 'verify-token-1',
      MIGRATE_ON_START: 'false',
    });
    expect(config.defaultedSecrets).toEqual([]);
    expect(config.MIGRATE_ON_START).toBe(false);
  });

  it('then the returned config is frozen', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });
});

describe('.env.example', () => {
  it('then it documents every variable the config reads, each with a comment above', async () => {
    const { readFile } = await import('node:fs/promises');
    const { CONFIG_VARIABLES } = await import('../../../src/config');
    const text = await readFile(require.resolve('../../../.env.example'), 'utf8');
    const documented = [...text.matchAll(/^([A-Z0-9_]+)=/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...CONFIG_VARIABLES].sort());
  });
});
