import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import type { RunningProcess } from '../fixtures/processes';
import { createBusiness, customerWrites, eventually, messagesOf, startPipeline, type Pipeline } from '../fixtures/pipeline';
import { getRedis } from '../../src/utils/redis';
import { CONSUMER_GROUPS, messageStream } from '../../src/utils/queue';

let pipeline: Pipeline;
const running: RunningProcess[] = [];

/** A real `npm run start:worker -- message` process, pointed at this file's database and stand-ins. */
function workerProcess(): RunningProcess {
  const worker = pipeline.spawnMessageWorker({
    WORKER_LEASE_MS: '1000',
    SWEEPER_INTERVAL_MS: '500',
    SHUTDOWN_TIMEOUT_MS: '8000',
  });
  running.push(worker);
  return worker;
}

/** Entries of the message stream delivered to a worker and not yet acknowledged. */
async function pendingEntries(): Promise<number> {
  const [count] = (await getRedis().xpending(messageStream(0), CONSUMER_GROUPS.messages)) as [number, ...unknown[]];
  return Number(count);
}

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
});
afterAll(async () => {
  for (const worker of running) worker.child.kill('SIGKILL');
  await pipeline.close();
  await teardownTestDatabase();
});

describe('message worker processes', () => {
  it('when a worker is killed with SIGKILL mid-reply, then another answers the message exactly once', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setLatency(2_000);
    const first = workerProcess();
    await first.waitFor((line) => line.msg === 'message worker reading');
    const customer = '15557770001';
    await customerWrites(app, business, customer, 'are you still there?');
    await openai.waitFor((requests) => requests.some((r) => r.path.endsWith('/chat/completions')), 10_000);
    first.child.kill('SIGKILL');
    await first.exited;

    openai.setLatency(0);
    const second = workerProcess();
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer), 20_000);
    // The signals that everything the killed worker left behind has been dealt with: every
    // stream entry delivered so far (its own included, claimed after the lease) is acknowledged,
    // and a later message is answered, which a resend of the first reply would have preceded.
    await eventually(async () => (await pendingEntries()) === 0, 20_000, 'every delivered entry acknowledged');
    await customerWrites(app, business, customer, 'and one more thing');
    await graph.waitFor((sends) => sends.filter((s) => s.kind === 'text' && s.to === customer).length >= 2, 20_000);
    expect(graph.texts(customer).map((s) => s.text)).toEqual(['Thanks! You said: "are you still there?"', 'Thanks! You said: "and one more thing"']);
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r[3]?.status === 'sent' ? r : null;
    });
    expect(rows.map((m) => [m.direction, m.status])).toEqual([['inbound', 'answered'], ['outbound', 'sent'], ['inbound', 'answered'], ['outbound', 'sent']]);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('when a worker gets SIGTERM mid-reply, then it finishes that reply and exits 0', async () => {
    const { app, graph, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setLatency(1_000);
    const worker = workerProcess();
    await worker.waitFor((line) => line.msg === 'message worker reading');
    const customer = '15557770002';
    await customerWrites(app, business, customer, 'one more thing');
    await openai.waitFor((requests) => requests.some((r) => r.path.endsWith('/chat/completions')), 10_000);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(graph.texts(customer)).toHaveLength(1);
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[1]?.status === 'sent');
  });
});
