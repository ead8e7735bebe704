import { shopAssistantReply } from '../../../scripts/demo/cast';
import { agentRepliesAfter, computeChecks } from '../../../scripts/demo/checks';
import type { DemoResult, Transcript } from '../../../scripts/demo/result';

const message = (sequenceNo: number, author: 'customer' | 'agent' | 'human', externalId: string | null, status = 'sent') => ({
  sequenceNo,
  direction: author === 'customer' ? ('inbound' as const) : ('outbound' as const),
  author,
  text: `${author} ${sequenceNo}`,
  status,
  externalId,
});

describe('demo: the stand-in shop assistant', () => {
  it('when a customer sends a burst, then the reply quotes every message since the last answer', () => {
    const reply = shopAssistantReply({
      messages: [
        { role: 'system', content: 'You are a shop assistant.' },
        { role: 'user', content: 'old question' },
        { role: 'assistant', content: 'old answer' },
        { role: 'user', content: "I'd like to order two" },
        { role: 'user', content: 'and can you deliver?' },
      ],
    });
    expect(reply).toContain(`"I'd like to order two / and can you deliver?"`);
    expect(reply).not.toContain('old question');
    expect(reply).toMatch(/reserve/);
    expect(reply).toMatch(/deliver in/);
  });

  it('when the customer gives a name, then it greets them by it; and a long message still fits an Instagram reply', () => {
    expect(shopAssistantReply({ messages: [{ role: 'user', content: 'My name is Ana Silva' }] })).toMatch(/^Nice to meet you, Ana!/);
    const long = shopAssistantReply({ messages: [{ role: 'user', content: 'bag '.repeat(500) }] });
    expect(Buffer.byteLength(long, 'utf8')).toBeLessThanOrEqual(1000);
  });
});

describe('demo: reading transcripts', () => {
  const transcript: Transcript = {
    conversationId: 'c1',
    channel: 'whatsapp',
    customer: { externalId: '1555', name: 'Ana' },
    botPaused: false,
    messages: [message(1, 'customer', 'w1', 'answered'), message(2, 'agent', 'o1'), message(3, 'customer', 'w2', 'ignored'), message(4, 'human', 'o2'), message(5, 'customer', 'w3', 'answered'), message(6, 'agent', 'o3')],
  };

  it("when a customer message is followed by the agent's, then those are its replies, up to the customer's next message", () => {
    expect(agentRepliesAfter(transcript, 'w1').map((m) => m.sequenceNo)).toEqual([2]);
    expect(agentRepliesAfter(transcript, 'w2')).toEqual([]);
    expect(agentRepliesAfter(transcript, 'w3').map((m) => m.sequenceNo)).toEqual([6]);
    expect(agentRepliesAfter(transcript, 'unknown')).toEqual([]);
  });

  it('when the extraction worker is absent, then the lead check passes on the notice alone; a timed-out lead fails', () => {
    const base: DemoResult = {
      ok: false,
      elapsedMs: 0,
      database: 'd',
      redisPrefix: 'p',
      logFile: 'f',
      extractionAvailable: false,
      scenes: {},
      transcripts: [transcript],
      credits: null,
      lead: { status: 'unavailable', reason: 'no extraction kind' },
      graphTextSends: 0,
      supervisorExitCode: 0,
      checks: [],
    };
    const lead = (result: DemoResult) => computeChecks(result).find((check) => check.name.includes('lead'))!;
    expect(lead(base)).toMatchObject({ passed: true, detail: 'no extraction kind' });
    expect(lead({ ...base, extractionAvailable: true, lead: { status: 'timeout', waitedMs: 25_000 } })).toMatchObject({ passed: false });
  });

  it('when the demo failed before reading anything back, then the one check says why', () => {
    const checks = computeChecks({
      ok: false,
      error: 'Redis is not reachable',
      elapsedMs: 0,
      database: 'd',
      redisPrefix: 'p',
      logFile: 'f',
      extractionAvailable: true,
      scenes: {},
      transcripts: [],
      credits: null,
      lead: { status: 'not_reached' },
      graphTextSends: 0,
      supervisorExitCode: undefined,
      checks: [],
    });
    expect(checks).toEqual([{ name: 'the demo ran to the end', passed: false, detail: 'Redis is not reachable' }]);
  });
});
