import { config } from '../../src/config';
import { freePort, runEntryPoint } from '../fixtures/processes';
import { dropDatabase, testDatabaseName } from '../fixtures/testDatabase';

describe('npm start supervisor', () => {
  afterAll(() => dropDatabase(testDatabaseName()));

  it('when started, then it migrates, runs the API and a message worker, restarts a killed child and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const supervisor = runEntryPoint('src/workers/workerManager.ts', [], {
      PORT: String(port),
      DATABASE_URL: config.DATABASE_URL,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
    });
    try {
      const first = await supervisor.waitFor((line) => line.msg === 'child started' && line.child === 'api');
      await supervisor.waitFor((line) => line.msg === 'API listening');
      await supervisor.waitFor((line) => line.msg === 'message worker reading');
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

      process.kill(first.pid as number, 'SIGKILL');
      await supervisor.waitFor((line) => line.msg === 'child exited unexpectedly; restarting' && line.signal === 'SIGKILL');
      const second = await supervisor.waitFor((line) => line.msg === 'child started' && line.child === 'api' && line.pid !== first.pid);
      await supervisor.waitFor((line) => line.msg === 'API listening' && line.pid === second.pid);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      supervisor.child.kill('SIGTERM');
    }
    expect(await supervisor.exited).toBe(0);
    expect(supervisor.lines.some((line) => line.msg === 'API stopped')).toBe(true);
  });

  it('when NODE_ENV=production lacks a secret, then the API exits non-zero naming it', async () => {
    const api = runEntryPoint('src/server.ts', [], {
      NODE_ENV: 'production',
      ADMIN_API_KEY: 'an-admin-key-1234',
      ENCRYPTION_KEY: 'ab'.repeat(32),
      META_VERIFY_TOKEN: 'verify-token-1',
      META_APP_SECRET: '',
    });
    expect(await api.exited).toBe(1);
    expect(api.lines.map((line) => line.stderr).join('')).toContain('META_APP_SECRET: required when NODE_ENV=production');
  });
});
