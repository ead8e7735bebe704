/**
 * Guarantee 12 with real `npm run start:worker -- message` processes: an OpenAI or Graph outage
 * of any length short of STALE_MESSAGE_SECONDS fails nothing. Transient failures back off and
 * try again; they count toward neither MESSAGE_MAX_ATTEMPTS nor poison (only crashes do).
 * Leases are shortened (WORKER_LEASE_MS) so that an outage of many leases takes seconds.
 */
import { getRedis } from '../../src/utils/redis';
import { deadLetterStream } from '../../src/utils/queue';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import type { RunningProcess } from '../fixtures/processes';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, startPipeline, type Pipeline } from '../fixtures/pipeline';

let pipeline: Pipeline;
const running: RunningProcess[] = [];
let customerSeq = 0;
const newCustomer = () => `1557${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

function workerProcess(env: NodeJS.ProcessEnv): RunningProcess {
  const worker = pipeline.spawnMessageWorker({
    SHUTDOWN_TIMEOUT_MS: '8000',
    // Two crashes and the work is poison, two counted attempts and a message fails: an outage
    // spans far more tries than that, and must spend none of them.
    MESSAGE_MAX_ATTEMPTS: '2',
    ...env,
  });
  running.push(worker);
  return worker;
}

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
});
afterEach(async () => {
  for (const worker of running.splice(0)) {
    worker.child.kill('SIGKILL');
    await worker.exited;
  }
  pipeline.openai.reset();
  pipeline.graph.reset();
});
afterAll(async () => {
  await pipeline.close();
  await teardownTestDatabase();
});

async function expectAnsweredOnce(userId: string, customer: string): Promise<void> {
  const rows = await eventually(async () => {
    const r = await messagesOf(userId, customer);
    return r[1]?.status === 'sent' ? r : null;
  }, 30_000, 'the reply sent');
  expect(rows.map((m) => [m.direction, m.status])).toEqual([['inbound', 'answered'], ['outbound', 'sent']]);
  expect(pipeline.graph.texts(customer).filter((s) => s.ok)).toHaveLength(1);
  const ledger = await ledgerOf(userId);
  expect(ledger.entries.filter((e) => e.reason === 'reply').map((e) => e.message_id)).toEqual([rows[1].id]);
  expect(ledger.balance).toBe(ledger.sum);
  expect(await getRedis().xlen(deadLetterStream(0))).toBe(0);
}

describe('outages never poison (guarantee 12)', () => {
  it('when OpenAI fails for far more tries than MESSAGE_MAX_ATTEMPTS and leases than poison allows, then the message is answered once it recovers', async () => {
    const { app, openai } = pipeline;
    const business = await createBusiness(app);
    openai.setFault({ status: 503 });
    const worker = workerProcess({ WORKER_LEASE_MS: '400', SWEEPER_INTERVAL_MS: '400', RETRY_BACKOFF_BASE_MS: '50', RETRY_BACKOFF_MAX_MS: '400', OPENAI_TIMEOUT_MS: '1000' });
    await worker.waitFor((line) => line.msg === 'message worker reading');
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'anyone home?');
    // Many turns, each with its own retries, spread over many leases.
    await eventually(async () => worker.lines.filter((line) => line.msg === 'turn postponed; backing off' || line.msg === 'turn waits for the model circuit').length >= 12, 30_000, 'a dozen postponed turns');
    expect((await messagesOf(business.tenant.userId, customer))[0]).toMatchObject({ status: 'pending' });

    openai.setFault(null);
    await expectAnsweredOnce(business.tenant.userId, customer);
  }, 60_000);

  it('when Graph is down for 60 s after the reply was recorded, with 3 s leases, then the reply goes out once when it is back', async () => {
    const { app, graph } = pipeline;
    const business = await createBusiness(app);
    graph.setFault({ code: 2, kind: 'text' });
    const worker = workerProcess({ WORKER_LEASE_MS: '3000', SWEEPER_INTERVAL_MS: '1000', RETRY_BACKOFF_BASE_MS: '500', RETRY_BACKOFF_MAX_MS: '4000' });
    await worker.waitFor((line) => line.msg === 'message worker reading');
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'please answer eventually');
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[1]?.status === 'queued', 15_000, 'the reply recorded');
    const outageEnds = Date.now() + 60_000;
    await eventually(async () => Date.now() > outageEnds, 70_000, 'the outage to last 60 s');
    // It kept trying the whole time: far more sends than poison or attempts would have allowed.
    expect(graph.sends.filter((s) => s.kind === 'text' && s.to === customer && !s.ok).length).toBeGreaterThan(6);
    expect((await messagesOf(business.tenant.userId, customer)).map((m) => m.status)).toEqual(['answered', 'queued']);

    graph.clearFaults();
    await expectAnsweredOnce(business.tenant.userId, customer);
  }, 120_000);
});
