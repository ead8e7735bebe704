import { spawn } from 'node:child_process';
import path from 'node:path';
import { descendantPids, freePort, isRunning, ROOT, productEnv, runNpmScript } from '../fixtures/processes';
import { dropDatabase, testDatabaseName } from '../fixtures/testDatabase';

const SHUTDOWN_TIMEOUT_MS = 5_000;

/** Runs a command to its end, collecting what it printed. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('npm run start:offline', () => {
  afterAll(() => dropDatabase(testDatabaseName()));

  it('when the documented cURL session and npm run simulate run against it, then the messages are answered, the replies sent and charged, and SIGTERM to npm stops every process', async () => {
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const product = runNpmScript('start:offline', [], {
      ...productEnv(port),
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      NODE_ENV: 'development',
    });
    try {
      await product.waitFor((line) => line.msg === 'API listening', 60_000);
      await product.waitFor((line) => line.msg === 'worker started' && line.kind === 'message', 60_000);
      await product.waitFor((line) => line.msg === 'worker started' && line.kind === 'extraction', 60_000);

      const session = await run('bash', [path.join(ROOT, 'documentation', 'examples', 'curl-session.sh')], { BASE_URL: baseUrl });
      expect(session.output).toContain('Session complete');
      expect(session.code).toBe(0);
      expect(session.output).toContain("status of the customer's message: answered");
      expect(session.output).toContain('extraction_status: done');
      const tenantKey = /TENANT_KEY=(\S+)/.exec(session.output)![1]!;
      const whatsappId = /WHATSAPP_ID=(\S+)/.exec(session.output)![1]!;

      const simulated = await run('npm', ['run', '--silent', 'simulate', '--', '--to', whatsappId, '--from', '15550009999', '--text', 'Hi', '--url', baseUrl], {});
      expect(simulated.output).toContain('← 200');
      const get = async (route: string) => {
        const response = await fetch(`${baseUrl}${route}`, { headers: { authorization: `Bearer ${tenantKey}` } });
        return (await response.json()) as { data: Array<Record<string, unknown>> };
      };
      const messages = await waitUntil(
        async () => {
          const conversation = (await get('/v1/conversations')).data.find((c) => (c.customer as { external_id: string }).external_id === '15550009999');
          if (!conversation) return undefined;
          const list = (await get(`/v1/conversations/${String(conversation.id)}/messages`)).data;
          return list.some((m) => m.author === 'agent' && m.status === 'sent') ? list : undefined;
        },
        30_000,
        "the simulated customer's reply to be sent",
      );
      expect(messages.map((m) => [m.author, m.status])).toEqual([
        ['customer', 'answered'],
        ['agent', 'sent'],
      ]);
      const ledger = (await get('/v1/credits/ledger')).data;
      expect(ledger.filter((entry) => entry.reason === 'reply')).toHaveLength(2);
    } finally {
      const pids = descendantPids(product.child.pid!);
      const signalled = Date.now();
      product.child.kill('SIGTERM');
      expect(await product.exited).toBe(0);
      await waitUntil(async () => (pids.every((pid) => !isRunning(pid)) ? true : undefined), SHUTDOWN_TIMEOUT_MS, 'every process to exit');
      expect(Date.now() - signalled).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
      expect(pids.length).toBeGreaterThanOrEqual(4);
    }
  }, 150_000);
});
