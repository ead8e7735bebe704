/**
 * Guarantee 1 through kill -9 (issue 19): real message worker processes, many conversations in
 * flight, and workers SIGKILLed while replies go to Graph. A kill between Graph's acceptance
 * and our record of it is the dangerous instant: Meta has the reply, Postgres does not know.
 * The stand-in Graph plays Meta's webhooks back to the app (statuses with
 * `biz_opaque_callback_data`, Instagram echoes), as Meta would, so the product can learn what
 * its dead worker sent.
 *
 * What is checked comes from Graph's record (what the customer got) and Postgres: every
 * customer message answered, every reply accepted by Graph exactly once, in order.
 */
import { appendFileSync } from 'node:fs';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import type { RunningProcess } from '../fixtures/processes';
import {
  createBusiness,
  customerWrites,
  customerWritesOnInstagram,
  eventually,
  messagesOf,
  startPipeline,
  type Business,
  type Pipeline,
} from '../fixtures/pipeline';
import type { RecordedSend } from '../fixtures/standins/graphStandin';

jest.setTimeout(180_000);

let pipeline: Pipeline;
const alive = new Set<RunningProcess>();
/** Every worker of the file, dead or alive, for what their logs say. */
const started: RunningProcess[] = [];

/** Short lease and grace so a dead worker's turn is taken over, and a doubt settled, in seconds. */
const WORKER_ENV = {
  WORKER_LEASE_MS: '1000',
  SWEEPER_INTERVAL_MS: '500',
  SEND_IN_DOUBT_GRACE_MS: '2000',
  SHUTDOWN_TIMEOUT_MS: '5000',
};

/** A real `npm run start:worker -- message` process on this file's database, Redis prefix and stand-ins. */
async function startWorker(): Promise<RunningProcess> {
  const worker = pipeline.spawnMessageWorker({
    ...WORKER_ENV,
  });
  alive.add(worker);
  started.push(worker);
  void worker.exited.then(() => alive.delete(worker));
  await worker.waitFor((line) => line.msg === 'message worker reading', 30_000);
  return worker;
}

async function kill(worker: RunningProcess): Promise<void> {
  worker.child.kill('SIGKILL');
  await worker.exited;
}

beforeAll(async () => {
  await setupTestDatabase();
  pipeline = await startPipeline();
  // Meta's status webhooks and echoes come back to the app, as Meta would post them.
  await pipeline.serveMetaWebhooks(30);
});
afterEach(async () => {
  await Promise.all([...alive].map(kill));
});
afterAll(async () => {
  await pipeline.close();
  await teardownTestDatabase();
});

interface Customer {
  channel: 'whatsapp' | 'instagram';
  id: string;
}

let customerCounter = 0;
function customers(channel: Customer['channel'], count: number): Customer[] {
  return Array.from({ length: count }, () => ({ channel, id: `${channel === 'whatsapp' ? '1555' : '6021'}${process.pid}${String(++customerCounter).padStart(4, '0')}` }));
}

function write(business: Business, customer: Customer, text: string): Promise<unknown> {
  return customer.channel === 'whatsapp'
    ? customerWrites(pipeline.app, business, customer.id, text)
    : customerWritesOnInstagram(pipeline.app, business, customer.id, text);
}

const sentinelText = (customer: Customer) => `last from ${customer.id}`;

/**
 * Every customer writes a last message and its reply is awaited. A conversation sends oldest
 * first, so once that reply is out nothing earlier of it (a resend) can still come: what is
 * recorded then is final, without a bare sleep.
 */
async function writeLastAndWait(business: Business, all: Customer[]): Promise<void> {
  await Promise.all(all.map((customer) => write(business, customer, sentinelText(customer))));
  await pipeline.graph
    .waitFor(
      () => all.every((customer) => pipeline.graph.texts(customer.id).some((send) => send.text?.includes(`${sentinelText(customer)}"`))),
      60_000,
    )
    // Not thrown: the check that follows names what is missing, which says more than a timeout.
    .catch(() => undefined);
  // Graph answers before the worker records it: wait for the record too.
  await eventually(
    async () => {
      for (const customer of all) {
        const rows = await messagesOf(business.tenant.userId, customer.id);
        if (rows.some((row) => row.status === 'queued' || row.status === 'pending')) return false;
      }
      return true;
    },
    30_000,
  ).catch(() => undefined);
}

/** What a customer got, as far as Graph knows: one key per reply part. */
const partKey = (send: RecordedSend) => send.bizOpaqueCallbackData ?? `text:${send.text}`;

interface Tally {
  /** Everything wrong, one line each, so a failure lists them all. */
  problems: string[];
  /** Accepted sends beyond the first of each reply part: what customers got twice. */
  duplicates: number;
  /** Customer messages left unanswered, and replies Graph never accepted. */
  lost: number;
}

/**
 * Every customer message answered, every reply accepted by Graph exactly once (no two
 * accepted sends of one reply part), none lost, in order, and Meta's id stored for each.
 */
async function tally(business: Business, all: Customer[]): Promise<Tally> {
  const result: Tally = { problems: [], duplicates: 0, lost: 0 };
  const { problems } = result;
  for (const customer of all) {
    const rows = await messagesOf(business.tenant.userId, customer.id);
    const sends = pipeline.graph.texts(customer.id);
    for (const row of rows) {
      if (row.direction === 'inbound' && row.status !== 'answered') {
        result.lost++;
        problems.push(`${customer.id}: "${row.text}" is ${row.status}`);
      }
      if (row.direction === 'outbound' && !['sent', 'delivered', 'read'].includes(row.status)) {
        problems.push(`${customer.id}: reply "${row.text}" is ${row.status}${row.error_code ? ` (${row.error_code}: ${row.error_message})` : ''}`);
      }
      // Our own echo taken for a human's message pauses the bot: what follows goes unanswered.
      if (row.author === 'human') problems.push(`${customer.id}: "${row.text}" recorded as a human's message`);
    }
    const byPart = new Map<string, RecordedSend[]>();
    for (const send of sends) byPart.set(partKey(send), [...(byPart.get(partKey(send)) ?? []), send]);
    for (const [, copies] of byPart) {
      if (copies.length === 1) continue;
      result.duplicates += copies.length - 1;
      problems.push(`duplicate: ${customer.id} got "${copies[0]!.text}" ${copies.length} times`);
    }
    const replies = rows.filter((row) => row.direction === 'outbound');
    const got = [...byPart.values()].map((copies) => copies[0]!.text);
    const recorded = replies.map((row) => row.text);
    result.lost += recorded.filter((text) => !got.includes(text)).length;
    if (JSON.stringify(got) !== JSON.stringify(recorded)) {
      problems.push(`${customer.id}: Graph got ${JSON.stringify(got)}, Postgres has replies ${JSON.stringify(recorded)}`);
    }
    for (const row of replies) {
      const accepted = sends.filter((send) => send.text === row.text).map((send) => send.externalId);
      if (!accepted.includes(row.external_id)) {
        problems.push(`${customer.id}: reply "${row.text}" records ${row.external_id}, Graph accepted it as ${JSON.stringify(accepted)}`);
      }
    }
  }
  return result;
}

/**
 * `KILL_REPORT=<file>` appends each run's figures as a JSON line, for
 * `tests/load/kill-window.sh`, which counts duplicates per 1,000 kills over many runs.
 */
function report(variant: string, kills: number, result: Tally): void {
  const file = process.env.KILL_REPORT;
  if (!file) return;
  appendFileSync(file, `${JSON.stringify({ variant, kills, duplicates: result.duplicates, lost: result.lost, problems: result.problems.length })}\n`);
}

/** The random variant's size; the defaults keep the suite quick, the loop script asks for more. */
const RANDOM_KILLS = Number(process.env.KILL_TEST_KILLS ?? 4);
const RANDOM_MESSAGES = Number(process.env.KILL_TEST_MESSAGES ?? 3);

describe('replies through kill -9 of message workers', () => {
  it('when the only worker is SIGKILLed the instant Graph has accepted its sends and not yet answered, then every message is answered exactly once, in order', async () => {
    const { graph } = pipeline;
    const business = await createBusiness(pipeline.app);
    const all = [...customers('whatsapp', 8), ...customers('instagram', 4)];
    // Graph holds its answers back: a kill on acceptance lands before the worker knows.
    graph.setAnswerDelay(1_000);
    try {
      for (let round = 1; round <= 3; round++) {
        const worker = await startWorker();
        // Killed once Graph holds a reply of this round (not a resend of an earlier one) on each
        // channel, so both ways Meta settles a doubt are needed: the held answers are far longer
        // than the conversations of a round take to reach Graph.
        const killedOnAcceptance = new Promise<void>((resolve) => {
          const held = new Set<string>();
          const killNow = () => {
            unsubscribe();
            worker.child.kill('SIGKILL');
            resolve();
          };
          const unsubscribe = graph.onAccepted((send) => {
            if (send.kind !== 'text' || !send.text?.includes(`round ${round} from`)) return;
            held.add(send.channel);
            if (held.size === 2) killNow();
          });
        });
        await Promise.all(all.map((customer) => write(business, customer, `round ${round} from ${customer.id}`)));
        await killedOnAcceptance;
        await worker.exited;
      }
      await startWorker();
      await writeLastAndWait(business, all);
    } finally {
      graph.setAnswerDelay(0);
    }
    const result = await tally(business, all);
    report('worst_instant', 3, result);
    expect(result.problems).toEqual([]);
    // Each kill left sends in doubt, and Meta settled them: by status on WhatsApp, by echo on Instagram.
    const settled = started.flatMap((worker) => worker.lines).filter((line) => line.msg === 'send in doubt settled by Meta');
    expect(new Set(settled.map((line) => line.outcome))).toEqual(new Set(['settled_by_status', 'settled_by_echo']));
  });

  it('when workers are SIGKILLed at random moments while many conversations are in flight, then every message is answered exactly once, in order', async () => {
    const { graph, openai } = pipeline;
    const business = await createBusiness(pipeline.app);
    const all = [...customers('whatsapp', 24), ...customers('instagram', 6)];
    openai.setLatency(20);
    const ready = await Promise.all([startWorker(), startWorker(), startWorker()]);
    const booting: Array<Promise<unknown>> = [];
    let writing = true;
    let kills = 0;

    // Customers write a few messages each, spread over seconds; Graph answers at once.
    const writes = Promise.all(
      all.map(async (customer) => {
        for (let n = 1; n <= RANDOM_MESSAGES; n++) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 2_500));
          await write(business, customer, `message ${n} from ${customer.id}`);
        }
      }),
    ).finally(() => (writing = false));
    // Meanwhile a random worker dies at a random moment while replies are going out (a few
    // sends after the last kill, plus a random instant), and a fresh one takes its place.
    const killing = (async () => {
      while (writing && kills < RANDOM_KILLS) {
        const target = graph.texts().length + 1 + Math.floor(Math.random() * 8);
        await graph.waitFor(() => graph.texts().length >= target || !writing, 20_000).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        if (ready.length < 2) continue;
        const victim = ready.splice(Math.floor(Math.random() * ready.length), 1)[0]!;
        await kill(victim);
        kills++;
        booting.push(startWorker().then((worker) => ready.push(worker)));
      }
    })();
    await Promise.all([writes, killing]);
    await Promise.all(booting);
    await writeLastAndWait(business, all);
    const result = await tally(business, all);
    report('random', kills, result);
    expect(kills).toBeGreaterThanOrEqual(1);
    expect(result.problems).toEqual([]);
  });
});
