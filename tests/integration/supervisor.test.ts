import { config } from '../../src/config';
import { closeDatabase, db } from '../../src/utils/database';
import { postSignedWebhook, whatsappTextWebhook } from '../../scripts/simulate';
import { descendantPids, freePort, isRunning, runEntryPoint, productEnv, runNpmScript } from '../fixtures/processes';
import { standinAccessToken, startGraphStandin } from '../fixtures/standins/graphStandin';
import { startOpenAIStandin } from '../fixtures/standins/openaiStandin';
import { dropDatabase, testDatabaseName } from '../fixtures/testDatabase';

describe('npm start supervisor', () => {
  afterAll(async () => {
    await closeDatabase();
    await dropDatabase(testDatabaseName());
  });

  it('when started, then it migrates, runs the API and a message worker, restarts a killed child and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const supervisor = runEntryPoint('src/workers/workerManager.ts', [], productEnv(port));
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

  it('when SIGTERM is sent to the npm start process itself, then the reply in flight is sent and every process is gone within SHUTDOWN_TIMEOUT_MS', async () => {
    const shutdownTimeoutMs = 8_000;
    const openai = await startOpenAIStandin({ latencyMs: 2_000 });
    const graph = await startGraphStandin();
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const npm = runNpmScript('start', [], {
      ...productEnv(port),
      OPENAI_BASE_URL: openai.url,
      META_GRAPH_API_URL: graph.url,
      INSTAGRAM_GRAPH_API_URL: graph.url,
      SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
    });
    try {
      await npm.waitFor((line) => line.msg === 'API listening', 60_000);
      await npm.waitFor((line) => line.msg === 'message worker reading', 60_000);
      const call = async (method: string, route: string, key: string, body?: unknown) => {
        const response = await fetch(`${baseUrl}${route}`, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(response.status).toBeLessThan(300);
        return (await response.json()) as { id: string; api_key: string };
      };
      const { api_key: key } = await call('POST', '/v1/users', 'dev-admin-key', { name: 'Drain', email: 'drain@example.com', credits: 10_000 });
      const agent = await call('POST', '/v1/agents', key, { name: 'Drain', system_prompt: 'Answer.', debounce_ms: 0 });
      const number = await call('POST', '/v1/phone-numbers', key, { channel: 'whatsapp', external_id: '1555000777', access_token: standinAccessToken('whatsapp', '1555000777') });
      await call('PUT', `/v1/phone-numbers/${number.id}/agent`, key, { agent_id: agent.id });
      const body = whatsappTextWebhook({ phoneNumberId: '1555000777', from: '15550001111', text: 'Are you there?' });
      expect((await postSignedWebhook(baseUrl, body, config.META_APP_SECRET)).status).toBe(200);
      await openai.waitFor(() => openai.inFlight() === 1, 20_000);
    } finally {
      const pids = descendantPids(npm.child.pid!);
      const signalled = Date.now();
      npm.child.kill('SIGTERM');
      expect(await npm.exited).toBe(0);
      const deadline = signalled + shutdownTimeoutMs;
      while (pids.some(isRunning) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(pids.filter(isRunning)).toEqual([]);
      expect(pids.length).toBeGreaterThanOrEqual(3);
      await Promise.all([openai.close(), graph.close()]);
    }
    // The model call was in flight when the signal came: the worker drained it, sent the reply, recorded it.
    expect(graph.texts()).toHaveLength(1);
    const { rows } = await db.query<{ direction: string; status: string }>('SELECT direction, status FROM messages ORDER BY sequence_no');
    expect(rows).toEqual([
      { direction: 'inbound', status: 'answered' },
      { direction: 'outbound', status: 'sent' },
    ]);
  }, 120_000);

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
