import { config } from '../../src/config';
import { closeDatabase, db } from '../../src/utils/database';
import { postSignedWebhook, whatsappTextWebhook } from '../../scripts/simulate';
import { descendantPids, freePort, isRunning, runEntryPoint, productEnv, runNpmScript } from '../fixtures/processes';
import { standinAccessToken, startGraphStandin } from '../fixtures/standins/graphStandin';
import { startOpenAIStandin } from '../fixtures/standins/openaiStandin';
import { dropDatabase, testDatabaseName } from '../fixtures/testDatabase';

/** A tenant, through the API of a running supervisor, whose agent answers on WhatsApp number `externalId`. */
async function linkedNumber(baseUrl: string, externalId: string, credits: number): Promise<{ userId: string }> {
  const call = async (method: string, route: string, key: string, body?: unknown) => {
    const response = await fetch(`${baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(response.status).toBeLessThan(300);
    return (await response.json()) as { id: string; api_key: string; user: { id: string } };
  };
  const tenant = await call('POST', '/v1/users', 'dev-admin-key', { name: `T ${externalId}`, email: `t${externalId}@example.com`, credits });
  const agent = await call('POST', '/v1/agents', tenant.api_key, { name: 'Agent', system_prompt: 'Answer.', debounce_ms: 0 });
  const number = await call('POST', '/v1/phone-numbers', tenant.api_key, { channel: 'whatsapp', external_id: externalId, access_token: standinAccessToken('whatsapp', externalId) });
  await call('PUT', `/v1/phone-numbers/${number.id}/agent`, tenant.api_key, { agent_id: agent.id });
  return { userId: tenant.user.id };
}

/**
 * Scrapes the API's /metrics until `pattern` shows (the supervisor's series arrive with its
 * heartbeat, every WORKER_HEARTBEAT_MS), or fails with the last scrape.
 */
async function waitForMetrics(baseUrl: string, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    text = await (await fetch(`${baseUrl}/metrics`)).text();
    if (pattern.test(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`/metrics never matched ${pattern}:\n${text.split('\n').filter((l) => l.startsWith('worker_')).join('\n')}`);
}

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
      await linkedNumber(baseUrl, '1555000777', 10_000);
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

  it('when a backlog builds up, then message workers are added up to MESSAGE_WORKERS_MAX, every message is answered once, and idle workers are drained back to MESSAGE_WORKERS', async () => {
    const customers = 30;
    // Slow model, two turns per worker: one worker would take customers × 1.5 s / 2.
    const openai = await startOpenAIStandin({ latencyMs: 1_500 });
    const graph = await startGraphStandin();
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const supervisor = runEntryPoint('src/workers/workerManager.ts', [], {
      ...productEnv(port),
      // Heartbeats and stream of this test alone: no earlier test's worker counts in the fleet.
      REDIS_KEY_PREFIX: `${config.REDIS_KEY_PREFIX}scale:`,
      OPENAI_BASE_URL: openai.url,
      META_GRAPH_API_URL: graph.url,
      INSTAGRAM_GRAPH_API_URL: graph.url,
      MESSAGE_WORKERS: '1',
      MESSAGE_WORKERS_MAX: '3',
      EXTRACTION_WORKERS: '0',
      EVENT_WORKERS: '0',
      WORKER_CONCURRENCY: '2',
      SUPERVISOR_CHECK_MS: '200',
      WORKER_HEARTBEAT_MS: '500',
    });
    const scaled = (msg: string, to: number) => (line: Record<string, unknown>) => line.msg === msg && line.to === to;
    try {
      await supervisor.waitFor((line) => line.msg === 'message worker reading', 60_000);
      await supervisor.waitFor((line) => line.msg === 'API listening', 60_000);
      const { userId } = await linkedNumber(baseUrl, '1555000888', 1_000_000);
      for (let i = 0; i < customers; i++) {
        const body = whatsappTextWebhook({ phoneNumberId: '1555000888', from: `1555100${String(i).padStart(4, '0')}`, text: `Hello ${i}` });
        expect((await postSignedWebhook(baseUrl, body, config.META_APP_SECRET)).status).toBe(200);
      }

      await supervisor.waitFor(scaled('scaling up', 2), 30_000);
      await supervisor.waitFor(scaled('scaling up', 3), 30_000);
      await graph.waitFor(() => graph.texts().length >= customers, 90_000);
      await supervisor.waitFor(scaled('scaling down', 2), 30_000);
      await supervisor.waitFor(scaled('scaling down', 1), 30_000);
      await supervisor.waitFor((line) => line.msg === 'worker drained and stopped' && line.code === 0, 30_000);

      const text = await waitForMetrics(baseUrl, /worker_scale_events_total\{kind="message",direction="down"\} 2\b/);
      expect(text).toMatch(/worker_scale_events_total\{kind="message",direction="up"\} 2\b/);
      await waitForMetrics(baseUrl, /worker_processes\{kind="message"\} 1\b/);
      const { rows } = await db.query<{ status: string; count: string }>(
        `SELECT status, count(*) FROM messages WHERE user_id = $1 AND direction = 'inbound' GROUP BY status`,
        [userId],
      );
      expect(rows).toEqual([{ status: 'answered', count: String(customers) }]);
    } finally {
      supervisor.child.kill('SIGTERM');
      expect(await supervisor.exited).toBe(0);
      await Promise.all([openai.close(), graph.close()]);
    }
    // One reply per customer: no turn was lost or repeated as workers came and went.
    expect(new Set(graph.texts().map((send) => send.to)).size).toBe(customers);
    expect(graph.texts()).toHaveLength(customers);
    const ups = supervisor.lines.filter((line) => line.msg === 'scaling up').map((line) => line.to);
    expect(ups).toEqual([2, 3]);
    expect(supervisor.lines.filter((line) => String(line.msg).startsWith('worker stuck'))).toEqual([]);
  }, 180_000);

  it('when a message worker is SIGSTOPped after its first heartbeat, then the supervisor SIGKILLs it and starts a replacement', async () => {
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const supervisor = runEntryPoint('src/workers/workerManager.ts', [], {
      ...productEnv(port),
      REDIS_KEY_PREFIX: `${config.REDIS_KEY_PREFIX}stuck:`,
      MESSAGE_WORKERS: '1',
      EXTRACTION_WORKERS: '0',
      EVENT_WORKERS: '0',
      SUPERVISOR_CHECK_MS: '200',
      // Silent for 6 beats (1.8 s) is stuck.
      WORKER_HEARTBEAT_MS: '300',
    });
    let stopped: number | undefined;
    try {
      const first = await supervisor.waitFor((line) => line.msg === 'child started' && line.child === 'message-1', 60_000);
      await supervisor.waitFor((line) => line.msg === 'worker heartbeating' && line.pid === first.pid, 60_000);
      await supervisor.waitFor((line) => line.msg === 'API listening', 60_000);
      stopped = first.pid as number;
      process.kill(stopped, 'SIGSTOP');

      await supervisor.waitFor((line) => String(line.msg).startsWith('worker stuck') && line.pid === stopped);
      await supervisor.waitFor((line) => line.msg === 'child exited unexpectedly; restarting' && line.signal === 'SIGKILL' && line.stuck === true);
      const second = await supervisor.waitFor((line) => line.msg === 'child started' && line.child === 'message-1' && line.pid !== stopped);
      await supervisor.waitFor((line) => line.msg === 'message worker reading' && line.pid === second.pid, 60_000);
      expect(isRunning(stopped)).toBe(false);
      await waitForMetrics(baseUrl, /worker_stuck_replaced_total\{kind="message"\} 1\b/);
    } finally {
      // Should the test fail before the supervisor killed it, a stopped process must not outlive it.
      if (stopped !== undefined && isRunning(stopped)) process.kill(stopped, 'SIGKILL');
      supervisor.child.kill('SIGTERM');
      expect(await supervisor.exited).toBe(0);
    }
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
