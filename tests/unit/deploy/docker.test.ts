/**
 * The Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker engine: what
 * they run exists in the build or package.json, what they set the config schema reads, and
 * ports, health checks and grace periods agree with the code's settings.
 */
import { parse } from 'yaml';
import { loadConfig } from '../../../src/config';
import { commandProblem, KNOWN_VARIABLES, readRepoFile, TEST_SECRETS, withDefaults } from '../../fixtures/deploy';

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
  deploy?: { replicas?: number };
  healthcheck?: { disable?: boolean; test?: string[] };
}

// Compose resolves YAML merge keys (`<<: *product`); so must the parser.
const compose = parse(readRepoFile('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
const services = compose.services;
const product = Object.entries(services).filter(([, service]) => service.build !== undefined);

/** The Dockerfile's instructions, continuation lines joined, comments dropped, split by stage. */
function dockerfileStages(): Array<{ from: string; lines: string[] }> {
  const text = readRepoFile('Dockerfile').replace(/\\\n\s*/g, '');
  const stages: Array<{ from: string; lines: string[] }> = [];
  for (const line of text.split('\n').map((l) => l.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    if (/^FROM\s/i.test(line)) stages.push({ from: line, lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

/** A service's environment as Compose gives it with nothing set in the shell. */
const resolvedEnv = (service: ComposeService) =>
  Object.fromEntries(Object.entries(service.environment ?? {}).map(([name, value]) => [name, withDefaults(String(value))]));

const seconds = (duration: string) => {
  const match = /^(\d+)(ms|s|m)$/.exec(duration);
  if (!match) throw new Error(`unreadable duration ${duration}`);
  return Number(match[1]) / (match[2] === 'ms' ? 1000 : 1) * (match[2] === 'm' ? 60 : 1);
};

describe('Dockerfile', () => {
  const stages = dockerfileStages();
  const runtime = stages.at(-1)!;
  const instruction = (name: string) => runtime.lines.filter((line) => line.toUpperCase().startsWith(`${name} `));

  it('when read, then a build stage compiles with npm run build and the runtime stage is separate', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.some((stage) => stage.lines.includes('RUN npm run build'))).toBe(true);
    expect(runtime.lines.some((line) => line.includes('npm run build'))).toBe(false);
  });

  it('when the build stage copies sources, then it copies every input of tsconfig.build.json and of the build script', () => {
    const build = stages.find((stage) => stage.lines.includes('RUN npm run build'))!;
    const copied = build.lines.filter((line) => line.startsWith('COPY ')).flatMap((line) => line.split(/\s+/).slice(1, -1));
    const include = (JSON.parse(readRepoFile('tsconfig.build.json')) as { include: string[] }).include;
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts', ...include];
    for (const input of needed) expect(copied.some((source) => input === source || input.startsWith(`${source}/`))).toBe(true);
  });

  it('when the runtime installs dependencies, then they are production ones only, and it holds dist/ but no sources', () => {
    const installs = stages.flatMap((stage) => stage.lines).filter((line) => /npm ci/.test(line) && line.includes('--omit=dev'));
    expect(installs).toHaveLength(1);
    const copies = instruction('COPY');
    expect(copies.some((line) => /--from=\w+ \/app\/node_modules/.test(line))).toBe(true);
    expect(copies.some((line) => /--from=build \/app\/dist/.test(line))).toBe(true);
    expect(copies.some((line) => /\bsrc\b/.test(line))).toBe(false);
  });

  it('when it runs, then it runs as a non-root user, with a HEALTHCHECK on /healthz, and its CMD is a built entry point', () => {
    const user = instruction('USER');
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/\broot\b|\b0\b/);
    const healthcheck = instruction('HEALTHCHECK').join(' ');
    expect(healthcheck).toContain('/healthz');
    expect(healthcheck).toContain('WORKER_HEALTH_PORT');
    expect(healthcheck).toContain('PORT');
    const cmd = JSON.parse(instruction('CMD')[0]!.slice('CMD '.length)) as string[];
    expect(commandProblem(cmd)).toBeNull();
  });

  it('when it exposes a port, then it is the API port the config defaults to', () => {
    const exposed = instruction('EXPOSE').map((line) => Number(line.split(/\s+/)[1]));
    expect(exposed).toEqual([loadConfig({}).PORT]);
  });
});

describe('.dockerignore', () => {
  const ignored = readRepoFile('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('when the context is sent, then local installs, builds and secrets stay out', () => {
    for (const entry of ['node_modules', 'dist', '.env', '.git']) expect(ignored).toContain(entry);
  });

  it('when the build stage copies its inputs, then none of them is ignored', () => {
    // Docker's patterns as this file uses them: a name, or `*` standing for any characters.
    const matches = (entry: string, file: string) =>
      new RegExp(`^${entry.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}(/|$)`).test(file);
    for (const input of ['src', 'src/server.ts', 'scripts/build.mjs', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(ignored.filter((entry) => matches(entry, input))).toEqual([]);
    }
    expect(ignored.filter((entry) => matches(entry, 'npm-debug.log'))).toEqual(['*.log']);
  });
});

describe('docker-compose.yml', () => {
  it('when read, then it runs Postgres, Redis, a migration, the API, message workers (replicas), an extraction worker and an event worker', () => {
    expect(Object.keys(services).sort()).toEqual(['api', 'event-worker', 'extraction-worker', 'message-worker', 'migrate', 'postgres', 'redis']);
    expect(services['message-worker']!.deploy?.replicas).toBeGreaterThanOrEqual(2);
  });

  it.each(product)('when %s runs, then its command is a built entry point or an npm script', (_, service) => {
    expect(service.command).toBeDefined();
    expect(commandProblem(service.command!)).toBeNull();
  });

  it.each(product)('when %s gets its environment, then every name is one the product reads and the values parse', (_, service) => {
    const environment = service.environment ?? {};
    expect(Object.keys(environment).filter((name) => !KNOWN_VARIABLES.has(name))).toEqual([]);
    const resolved = resolvedEnv(service);
    expect(() => loadConfig(resolved)).not.toThrow();
    expect(() => loadConfig({ ...resolved, NODE_ENV: 'production', ...TEST_SECRETS })).not.toThrow();
  });

  it('when the migration runs, then it is the migrate entry point, and every other product service waits for it to succeed', () => {
    expect(services.migrate!.command).toEqual(['node', 'dist/scripts/migrate.js']);
    for (const [name, service] of product) {
      if (name === 'migrate') continue;
      expect(service.depends_on?.migrate).toEqual({ condition: 'service_completed_successfully' });
    }
  });

  it("when the API is published, then the container port is the API's PORT", () => {
    const api = services.api!;
    const port = loadConfig(resolvedEnv(api)).PORT;
    expect(api.ports?.map((mapping) => Number(mapping.split(':').at(-1)))).toEqual([port]);
  });

  it("when a worker runs, then it sets WORKER_HEALTH_PORT, so the image's HEALTHCHECK has something to ask", () => {
    for (const name of ['message-worker', 'extraction-worker', 'event-worker']) {
      expect(loadConfig(resolvedEnv(services[name]!)).WORKER_HEALTH_PORT).toBeGreaterThan(0);
    }
  });

  it('when a product container is stopped, then Docker waits longer than SHUTDOWN_TIMEOUT_MS before killing it', () => {
    for (const [name, service] of product) {
      if (name === 'migrate') continue;
      const shutdownMs = loadConfig(resolvedEnv(service)).SHUTDOWN_TIMEOUT_MS;
      expect(seconds(service.stop_grace_period ?? '10s') * 1000).toBeGreaterThan(shutdownMs);
    }
  });

  it('when used for development alone, then Postgres and Redis publish their default local ports', () => {
    expect(services.postgres!.ports).toEqual(['5432:5432']);
    expect(services.redis!.ports).toEqual(['6379:6379']);
  });
});
