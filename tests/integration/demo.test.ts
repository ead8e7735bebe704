/**
 * `npm run demo` end to end: the real product as OS processes, stand-ins for OpenAI and Meta,
 * customers on WhatsApp and Instagram. The assertions read the transcripts the demo fetched
 * through the API, not the demo's own verdicts, so a demo that only claimed success would fail.
 */
import { rm } from 'node:fs/promises';
import { Client } from 'pg';
import Redis from 'ioredis';
import { config } from '../../src/config';
import { runDemo } from '../../scripts/demo';
import type { DemoResult, Transcript, TranscriptMessage } from '../../scripts/demo/result';

// The demo itself takes about 20 s; the rest is slack for a busy machine running other suites.
jest.setTimeout(90_000);

let result: DemoResult;
const output: string[] = [];

beforeAll(async () => {
  result = await runDemo({ log: (line) => output.push(line) });
});
// The demo keeps the product's log for a person to read; a test run has no reader.
afterAll(() => rm(result.logFile, { force: true }));

const all = () => result.transcripts.flatMap((t) => t.messages);

function transcriptOf(externalId: string | undefined): Transcript {
  const found = result.transcripts.find((t) => t.messages.some((m) => m.direction === 'inbound' && m.externalId === externalId));
  if (!found) throw new Error(`no conversation holds ${externalId}\n${output.join('\n')}`);
  return found;
}

/** The agent's messages between the customer message `externalId` and the customer's next one. */
function botRepliesTo(externalId: string | undefined): TranscriptMessage[] {
  const { messages } = transcriptOf(externalId);
  const index = messages.findIndex((m) => m.direction === 'inbound' && m.externalId === externalId);
  const next = messages.findIndex((m, i) => i > index && m.direction === 'inbound');
  return messages.slice(index + 1, next < 0 ? undefined : next).filter((m) => m.author === 'agent');
}

describe('npm run demo', () => {
  it('when run, then it finishes without an error, with numbered steps, and every check it prints passes', () => {
    if (!result.ok) throw new Error(`the demo failed: ${result.error ?? 'a check failed'}\n${output.join('\n')}`);
    expect(output.some((line) => /^ 1\. /.test(line))).toBe(true);
    expect(output.filter((line) => line.includes('✓')).length).toBeGreaterThan(10);
    expect(output.some((line) => line.includes('✗'))).toBe(false);
    expect(result.elapsedMs).toBeLessThan(60_000);
  });

  it("then the customer's first question got exactly one agent reply", () => {
    expect(botRepliesTo(result.scenes.firstQuestion)).toHaveLength(1);
  });

  it('then the burst of three messages got one reply that contains all their words', () => {
    const burst = result.scenes.burst ?? [];
    expect(burst).toHaveLength(3);
    expect(botRepliesTo(burst[0])).toHaveLength(0);
    expect(botRepliesTo(burst[1])).toHaveLength(0);
    const replies = botRepliesTo(burst[2]);
    expect(replies).toHaveLength(1);
    const reply = (replies[0]!.text ?? '').toLowerCase();
    for (const id of burst) {
      const text = all().find((m) => m.externalId === id)!.text!;
      for (const word of text.toLowerCase().split(/\s+/)) expect(reply).toContain(word);
    }
  });

  it('then the message Meta delivered twice is stored once and answered once', () => {
    expect(all().filter((m) => m.direction === 'inbound' && m.externalId === result.scenes.duplicate)).toHaveLength(1);
    expect(botRepliesTo(result.scenes.duplicate)).toHaveLength(1);
  });

  it("then the first reply's status reached read", () => {
    expect(botRepliesTo(result.scenes.firstQuestion)[0]?.status).toBe('read');
  });

  it('then the Instagram customer got a reply on Instagram', () => {
    expect(transcriptOf(result.scenes.instagram).channel).toBe('instagram');
    const replies = botRepliesTo(result.scenes.instagram);
    expect(replies).toHaveLength(1);
    expect(['sent', 'delivered', 'read']).toContain(replies[0]!.status);
  });

  it("then after the human took over the customer's next message got no bot reply, until the bot was resumed", () => {
    const { messages } = transcriptOf(result.scenes.benWhilePaused);
    const human = messages.find((m) => m.author === 'human');
    expect(human?.status).toBe('sent');
    const paused = messages.find((m) => m.externalId === result.scenes.benWhilePaused)!;
    expect(paused.sequenceNo).toBeGreaterThan(human!.sequenceNo);
    expect(paused.status).toBe('ignored');
    expect(botRepliesTo(result.scenes.benWhilePaused)).toHaveLength(0);
    expect(botRepliesTo(result.scenes.benAfterResume)).toHaveLength(1);
  });

  it('then a handoff keyword paused the bot without a reply, and after the hand-back the bot answered again', () => {
    const keyword = all().find((m) => m.externalId === result.scenes.caraHandoff)!;
    expect(keyword.status).toBe('ignored');
    expect(botRepliesTo(result.scenes.caraHandoff)).toHaveLength(0);
    const { messages } = transcriptOf(result.scenes.caraHandoff);
    expect(messages.some((m) => m.author === 'human')).toBe(true);
    expect(botRepliesTo(result.scenes.caraAfterHandBack)).toHaveLength(1);
    expect(output.some((line) => line.includes('paused_by "keyword"'))).toBe(true);
  });

  it('then the customer who sent STOP got one confirmation, nothing more, and the shop was refused with 409 opted_out', () => {
    const { messages } = transcriptOf(result.scenes.optOut);
    const confirmation = botRepliesTo(result.scenes.optOut);
    expect(confirmation).toHaveLength(1);
    expect(['sent', 'delivered', 'read']).toContain(confirmation[0]!.status);
    expect(messages.at(-1)).toBe(confirmation[0]);
    expect(messages.filter((m) => m.author === 'human')).toHaveLength(0);
    expect(output.some((line) => line.includes('409 opted_out'))).toBe(true);
  });

  it('then credits were charged and the balance equals the sum of the ledger', () => {
    const credits = result.credits!;
    expect(credits.charged).toBeGreaterThan(0);
    expect(credits.balance).toBe(credits.entries.reduce((sum, entry) => sum + entry.amount, 0));
    // The opt-out confirmation is the agent's message but free.
    const replies = all().filter((m) => m.author === 'agent').length - botRepliesTo(result.scenes.optOut).length;
    expect(credits.entries.filter((entry) => entry.reason === 'reply')).toHaveLength(replies);
    expect(output.some((line) => line.startsWith('Credits'))).toBe(true);
  });

  it('then the lead is printed, or a notice that the extraction worker is not available', () => {
    if (result.extractionAvailable) {
      expect(result.lead.status).toBe('extracted');
      if (result.lead.status !== 'extracted') return;
      expect(result.lead.conversationId).toBe(transcriptOf(result.scenes.firstQuestion).conversationId);
      expect(Object.values(result.lead.fields).some((value) => value !== null && value !== '')).toBe(true);
      expect(output.some((line) => line.startsWith('Lead ('))).toBe(true);
    } else {
      expect(result.lead.status).toBe('unavailable');
      expect(output.some((line) => line.includes('extraction worker is not available'))).toBe(true);
    }
  });

  it('then everything it made is gone: processes stopped with exit 0, database dropped, Redis keys deleted', async () => {
    expect(result.supervisorExitCode).toBe(0);
    const admin = new URL(config.DATABASE_URL);
    admin.pathname = '/postgres';
    const client = new Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [result.database]);
      expect(rowCount).toBe(0);
    } finally {
      await client.end();
    }
    const redisUrl = new URL(config.REDIS_URL);
    redisUrl.pathname = '/11';
    const redis = new Redis(redisUrl.toString(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      const [, keys] = await redis.scan('0', 'MATCH', `${result.redisPrefix}*`, 'COUNT', 10_000);
      expect(keys).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
