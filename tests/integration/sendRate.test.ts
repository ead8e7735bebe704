/**
 * Issue 16 item 7: at most META_SEND_RATE_PER_SECOND sends per channel account per second across
 * every worker, from one bucket in Redis; a send that finds it empty waits. Shown with the
 * bucket taken from two OS processes at once, and with two real message worker processes
 * replying from one number to a Graph stand-in that enforces Meta's throughput (130429).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { config } from '../../src/config';
import { whatsappTextBody } from '../fixtures/meta';
import { ROOT, type RunningProcess } from '../fixtures/processes';
import { createBusiness, eventually, messagesOf, pipelineForFile, postWebhook } from '../fixtures/pipeline';

const pipeline = pipelineForFile();
const processes: RunningProcess[] = [];

afterAll(async () => {
  for (const running of processes) running.child.kill('SIGKILL');
  await Promise.all(processes.map((running) => running.exited));
});

/** Runs tests/fixtures/sendRateTaker.ts; resolves with its grants once `go` was written to it. */
function taker(env: NodeJS.ProcessEnv): { go: () => void; grants: Promise<number[]> } {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tests/fixtures/sendRateTaker.ts')], {
    cwd: ROOT,
    env: { ...process.env, REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX, LOG_LEVEL: 'silent', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const grants = new Promise<number[]>((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve((JSON.parse(out.trim()) as { grants: number[] }).grants) : reject(new Error(`taker exited ${code}: ${err}`))));
  });
  // Loading tsx and the modules takes a while; the line is buffered until the child reads it.
  return { go: () => child.stdin.write('go\n'), grants };
}

describe('the send rate, shared by every worker process', () => {
  it('when two processes take turns from one account’s bucket at once, then no second of Redis time holds more than the rate', async () => {
    const RATE = 5;
    const env = { RATE: String(RATE), COUNT: '8', ACCOUNT: `acct-${process.pid}` };
    const a = taker(env);
    const b = taker(env);
    a.go();
    b.go();
    const [fromA, fromB] = await Promise.all([a.grants, b.grants]);
    const all = [...fromA, ...fromB].sort((x, y) => x - y);
    expect(all).toHaveLength(16);
    // Any RATE + 1 consecutive grants span a full second or more: no one-second window holds more than RATE.
    for (let i = 0; i + RATE < all.length; i++) expect(all[i + RATE]! - all[i]!).toBeGreaterThanOrEqual(1_000_000);
    // Both processes drew from the same bucket, turn by turn (neither ran alone at its own pace).
    expect(Math.max(...fromA)).toBeGreaterThan(Math.min(...fromB));
    expect(Math.max(...fromB)).toBeGreaterThan(Math.min(...fromA));
  }, 30_000);

  it('when two message worker processes reply from one number faster than Meta takes, then every reply waits its turn: all sent, none refused with 130429', async () => {
    const { app, graph } = pipeline();
    const RATE = 4;
    // Meta's side: one send more than our rate per second is refused (a margin for network jitter).
    graph.setThroughputLimit(RATE + 1);
    const business = await createBusiness(app);
    for (let i = 0; i < 2; i++) {
      const worker = pipeline().spawnMessageWorker({
        META_SEND_RATE_PER_SECOND: String(RATE),
        WORKER_CONCURRENCY: '4',
        WORKER_LEASE_MS: '5000',
        SWEEPER_INTERVAL_MS: '1000',
      });
      processes.push(worker);
      await worker.waitFor((line) => line.msg === 'message worker reading', 30_000);
    }
    const customers = Array.from({ length: 12 }, (_, i) => `1558${String(process.pid).slice(-3)}${String(i).padStart(4, '0')}`);
    for (const customer of customers) {
      await postWebhook(app, whatsappTextBody({ phoneNumberId: business.whatsapp.externalId, from: customer, text: `hello from ${customer}` }));
    }

    await eventually(
      async () => {
        const rows = await Promise.all(customers.map((c) => messagesOf(business.tenant.userId, c)));
        return rows.every((r) => r.some((m) => m.direction === 'outbound' && m.status === 'sent'));
      },
      30_000,
      'every reply sent',
    );
    const texts = graph.sends.filter((s) => s.kind === 'text' && s.accountId === business.whatsapp.externalId);
    expect(texts.filter((s) => s.errorCode === 130429)).toEqual([]);
    expect(texts.filter((s) => s.ok)).toHaveLength(12);
    // Both processes replied (each logs its sends).
    for (const worker of processes) expect(worker.lines.some((line) => line.msg === 'message sent')).toBe(true);
  }, 60_000);
});
