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

/** 32 characters: the shortest operator key production accepts. */
const PRODUCTION_ADMIN_KEY = 'an-operator-key-of-32-characters';

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
    const problems = problemsOf({ NODE_ENV: 'production', ADMIN_API_KEY: PRODUCTION_ADMIN_KEY });
    expect(problems).toEqual([
      'ENCRYPTION_KEY: required when NODE_ENV=production',
      'META_APP_SECRET: required when NODE_ENV=production',
      'META_VERIFY_TOKEN: required when NODE_ENV=production',
    ]);
  });

  it('when values are malformed, then each bad variable is named once and no value is echoed', () => {
    const problems = problemsOf({ PORT: 'eighty', REDIS_URL: 'not a url', ENCRYPTION_KEY: 'c2hvcnQ=', RATE_LIMIT_PER_MINUTE: '-1' });
    // The variables sit in different section files; one message still names them all.
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['ENCRYPTION_KEY', 'PORT', 'RATE_LIMIT_PER_MINUTE', 'REDIS_URL']);
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
      ADMIN_API_KEY: PRODUCTION_ADMIN_KEY,
      ENCRYPTION_KEY: 'ab'.repeat(32),
      META_APP_SECRET: 'app-secret-1',
      META_VERIFY_TOKEN: 'verify-token-1',
      MIGRATE_ON_START: 'false',
    });
    expect(config.defaultedSecrets).toEqual([]);
    expect(config.MIGRATE_ON_START).toBe(false);
  });

  it('when production has an operator key shorter than 32 characters, then startup is refused naming ADMIN_API_KEY, not echoing it', () => {
    const production = { NODE_ENV: 'production', ENCRYPTION_KEY: 'ab'.repeat(32), META_APP_SECRET: 'app-secret-1', META_VERIFY_TOKEN: 'verify-token-1' };
    const problems = problemsOf({ ...production, ADMIN_API_KEY: PRODUCTION_ADMIN_KEY.slice(1) });
    expect(problems).toEqual(['ADMIN_API_KEY: invalid (must be at least 32 characters when NODE_ENV=production)']);
    expect(problems.join(' ')).not.toContain(PRODUCTION_ADMIN_KEY.slice(1));
    expect(problemsOf({ ...production, ADMIN_API_KEY: PRODUCTION_ADMIN_KEY })).toEqual([]);
  });

  it('when outside production, then a short operator key is still accepted', () => {
    expect(loadConfig({ ADMIN_API_KEY: 'short-but-12' }).ADMIN_API_KEY).toBe('short-but-12');
  });

  it('when TRUST_PROXY is unset, then X-Forwarded-For is not believed', () => {
    expect(loadConfig({}).TRUST_PROXY).toBe(false);
  });

  it("when TRUST_PROXY is given, then it becomes Express's trust proxy value", () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'false' }).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8,::1' }).TRUST_PROXY).toEqual(['loopback', '10.0.0.0/8', '::1']);
  });

  it('when TRUST_PROXY is neither a flag, a count nor addresses, then it is named', () => {
    expect(problemsOf({ TRUST_PROXY: 'yes please' }).map((p) => p.split(':')[0])).toEqual(['TRUST_PROXY']);
    expect(problemsOf({ TRUST_PROXY: '10.0.0.0/8/1' }).map((p) => p.split(':')[0])).toEqual(['TRUST_PROXY']);
  });

  it('when ENCRYPTION_KEYS_PREVIOUS lists keys, then each is parsed like ENCRYPTION_KEY; a bad one is named, not echoed', () => {
    const base64 = Buffer.alloc(32, 9).toString('base64');
    expect(loadConfig({ ENCRYPTION_KEYS_PREVIOUS: `${'cd'.repeat(32)}, ${base64}` }).ENCRYPTION_KEYS_PREVIOUS).toEqual([Buffer.alloc(32, 0xcd), Buffer.alloc(32, 9)]);
    expect(loadConfig({}).ENCRYPTION_KEYS_PREVIOUS).toEqual([]);
    const problems = problemsOf({ ENCRYPTION_KEYS_PREVIOUS: `${'cd'.repeat(32)},c2hvcnQ=` });
    expect(problems).toEqual(['ENCRYPTION_KEYS_PREVIOUS: invalid (key 2 must be 32 bytes, as 64 hex digits or base64)']);
  });

  it('when METRICS_TOKEN is short, then it is named; unset, /metrics stays open', () => {
    expect(problemsOf({ METRICS_TOKEN: 'short' }).map((p) => p.split(':')[0])).toEqual(['METRICS_TOKEN']);
    expect(loadConfig({}).METRICS_TOKEN).toBeUndefined();
  });

  it('when nothing bounds statements, then the API and workers still get a 30 s statement timeout', () => {
    expect(loadConfig({}).DATABASE_STATEMENT_TIMEOUT_MS).toBe(30_000);
    expect(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '0' }).DATABASE_STATEMENT_TIMEOUT_MS).toBe(0);
  });

  it('when production lacks secrets and has bad values in several sections, then one error lists them all', () => {
    const problems = problemsOf({ NODE_ENV: 'production', DATABASE_POOL_SIZE: '0', OPENAI_TIMEOUT_MS: 'soon', WORKER_CONCURRENCY: '0', MODEL_PRICES: '[]' });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(
      ['ADMIN_API_KEY', 'DATABASE_POOL_SIZE', 'ENCRYPTION_KEY', 'META_APP_SECRET', 'META_VERIFY_TOKEN', 'MODEL_PRICES', 'OPENAI_TIMEOUT_MS', 'WORKER_CONCURRENCY'].sort(),
    );
  });

  it('when every section is composed, then each variable is read by exactly one section', async () => {
    const { readdir } = await import('node:fs/promises');
    // Every file beside index.ts and parsers.ts is a section, so a new one is checked by being there.
    const files = (await readdir(require.resolve('../../../src/config').replace(/index\.ts$/, ''))).filter((file) => !['index.ts', 'parsers.ts'].includes(file));
    const sections = await Promise.all(
      files.map((file) => file.replace(/\.ts$/, '')).map(async (name) => Object.values(await import(`../../../src/config/${name}`)).find((value) => typeof value === 'object' && value !== null && 'shape' in value) as { shape: object }),
    );
    const names = sections.flatMap((section) => Object.keys(section.shape));
    const { CONFIG_VARIABLES } = await import('../../../src/config');
    expect(names.sort()).toEqual([...CONFIG_VARIABLES].sort());
    expect(new Set(names).size).toBe(names.length);
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

  it('when MODEL_PRICES is JSON of per-model input/output prices, then it is parsed; unset, it is empty', () => {
    expect(loadConfig({}).MODEL_PRICES).toEqual({});
    expect(loadConfig({ MODEL_PRICES: '{"gpt-4o-mini":{"input":150,"output":600}}' }).MODEL_PRICES).toEqual({ 'gpt-4o-mini': { input: 150, output: 600 } });
  });

  it.each(['not json', '[]', '{"m":{"input":1}}', '{"m":{"input":-1,"output":1}}', '{"m":{"input":1,"output":1,"extra":2}}', '{"m":5}'])(
    'when MODEL_PRICES is %s, then it is refused by name',
    (value) => {
      expect(() => loadConfig({ MODEL_PRICES: value })).toThrow(/MODEL_PRICES/);
    },
  );

  // --- Tenant events (issue 17)
  it('when EVENT_WORKERS is unset, then one event worker runs; a bad count is named', () => {
    expect(loadConfig({}).EVENT_WORKERS).toBe(1);
    expect(loadConfig({ EVENT_WORKERS: '3' }).EVENT_WORKERS).toBe(3);
    expect(problemsOf({ EVENT_WORKERS: 'many' }).map((p) => p.split(':')[0])).toEqual(['EVENT_WORKERS']);
  });

  it('when WEBHOOK_ALLOW_PRIVATE_URLS is unset, then private endpoints are allowed in development and refused in production', () => {
    const production = {
      NODE_ENV: 'production',
      ADMIN_API_KEY: PRODUCTION_ADMIN_KEY,
      ENCRYPTION_KEY: 'ab'.repeat(32),
      META_APP_SECRET: 'app-secret-1',
      META_VERIFY_TOKEN: 'verify-token-1',
    };
    expect(loadConfig({}).WEBHOOK_ALLOW_PRIVATE_URLS).toBe(true);
    expect(loadConfig(production).WEBHOOK_ALLOW_PRIVATE_URLS).toBe(false);
    expect(loadConfig({ ...production, WEBHOOK_ALLOW_PRIVATE_URLS: 'true' }).WEBHOOK_ALLOW_PRIVATE_URLS).toBe(true);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE_URLS: 'false' }).WEBHOOK_ALLOW_PRIVATE_URLS).toBe(false);
    expect(problemsOf({ WEBHOOK_ALLOW_PRIVATE_URLS: 'maybe' }).map((p) => p.split(':')[0])).toEqual(['WEBHOOK_ALLOW_PRIVATE_URLS']);
  });
});
