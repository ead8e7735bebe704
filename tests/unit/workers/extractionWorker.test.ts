/**
 * The extraction worker with its edges mocked (the claim model, the extraction itself,
 * heartbeats), and the queue policy it applies through extractionService: what each outcome
 * does to the conversation's bookkeeping, how far apart retries are, and that it never runs
 * more than `concurrency` extractions at once.
 */
import * as extractionModel from '../../../src/models/Extraction';
import * as extractionService from '../../../src/services/extractionService';
import type { ExtractionClaim } from '../../../src/models/Extraction';
import type { ExtractionOutcome } from '../../../src/services/extractionService';
import type { OpenAIService } from '../../../src/services/openaiService';
import { publishHeartbeat } from '../../../src/workers/heartbeat';
import { extractionRetryDelay } from '../../../src/services/extractionService';
import { ExtractionWorker, type ExtractionWorkerOptions } from '../../../src/workers/extractionWorker';

jest.mock('../../../src/models/Extraction');
// The outcome policy is the service's real code; only the extraction itself is faked.
jest.mock('../../../src/services/extractionService', () => ({
  ...jest.requireActual('../../../src/services/extractionService'),
  extractConversation: jest.fn(),
}));
jest.mock('../../../src/workers/heartbeat');

const models = jest.mocked(extractionModel);
const service = jest.mocked(extractionService);
const openai = {} as OpenAIService;

let claimSeq = 0;
function claim(overrides: Partial<ExtractionClaim> = {}): ExtractionClaim {
  claimSeq++;
  return { conversationId: `conversation-${claimSeq}`, userId: 'user-1', token: `w:${claimSeq}`, requested: false, failures: 0, ...overrides };
}

const workers: ExtractionWorker[] = [];

/** Starts a worker whose first poll claims `claims`, and waits until it has handled all of them. */
async function runOnce(claims: ExtractionClaim[], options: ExtractionWorkerOptions = {}): Promise<void> {
  models.claimDueConversations.mockResolvedValueOnce(claims).mockResolvedValue([]);
  const worker = new ExtractionWorker({ openai, pollIntervalMs: 10, requestPollMs: 10, random: () => 0.5, ...options });
  workers.push(worker);
  await worker.start();
  const deadline = Date.now() + 2_000;
  while (service.extractConversation.mock.calls.length < claims.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await worker.close();
}

beforeEach(() => {
  jest.resetAllMocks();
  models.claimDueConversations.mockResolvedValue([]);
  models.settleExtraction.mockResolvedValue(true);
  models.postponeExtraction.mockResolvedValue(true);
  models.extendExtractionClaim.mockResolvedValue(true);
  models.releaseExtractionClaim.mockResolvedValue(undefined);
  jest.mocked(publishHeartbeat).mockResolvedValue(undefined);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
});

describe('extractionRetryDelay', () => {
  it('when failures pile up, then the wait doubles from the base up to the cap, between half and all of it', () => {
    expect(extractionRetryDelay(1, 1_000, 60_000, () => 0)).toBe(500);
    expect(extractionRetryDelay(1, 1_000, 60_000, () => 1)).toBe(1_000);
    expect(extractionRetryDelay(3, 1_000, 60_000, () => 1)).toBe(4_000);
    expect(extractionRetryDelay(30, 1_000, 60_000, () => 1)).toBe(60_000);
    expect(extractionRetryDelay(30, 1_000, 60_000, () => 0)).toBe(30_000);
  });
});

describe('ExtractionWorker outcomes', () => {
  const cases: Array<[string, ExtractionOutcome, (c: ExtractionClaim) => void]> = [
    [
      'nothing to extract, then it is settled up to the newest message',
      { status: 'nothing_to_extract', reason: 'no_customer_messages', upToSequenceNo: 4 },
      (c) => expect(models.settleExtraction).toHaveBeenCalledWith('user-1', c.conversationId, { token: c.token, upToSequenceNo: 4 }),
    ],
    [
      'no credits, then it is postponed without counting a failure',
      { status: 'no_credits', upToSequenceNo: 4 },
      (c) => expect(models.postponeExtraction).toHaveBeenCalledWith(c, { delayMs: 600_000, countFailure: false }),
    ],
    [
      'the provider failed, then it is postponed with a backoff, counting a failure',
      { status: 'failed', retryable: true, code: 'model_unavailable', message: 'down', upToSequenceNo: 4 },
      (c) => expect(models.postponeExtraction).toHaveBeenCalledWith(c, { delayMs: 15_000, countFailure: true }),
    ],
    [
      'no OPENAI_API_KEY is set, then it is postponed like a tenant without credits',
      { status: 'failed', retryable: false, code: 'openai_not_configured', message: 'no key', upToSequenceNo: 4 },
      (c) => expect(models.postponeExtraction).toHaveBeenCalledWith(c, { delayMs: 600_000, countFailure: false }),
    ],
    [
      'the model output was unusable, then it is settled (given up until new messages)',
      { status: 'failed', retryable: false, code: 'model_invalid_json', message: 'not JSON', upToSequenceNo: 4 },
      (c) => expect(models.settleExtraction).toHaveBeenCalledWith('user-1', c.conversationId, { token: c.token, upToSequenceNo: 4 }),
    ],
  ];

  it.each(cases)('when %s', async (_name, outcome, check) => {
    service.extractConversation.mockResolvedValue(outcome);
    const c = claim({ failures: 1 });
    await runOnce([c], { retryBaseMs: 10_000, noCreditsRetryMs: 600_000 });
    check(c);
  });

  it('when a failing conversation reaches maxFailures, then it is settled instead of postponed again', async () => {
    service.extractConversation.mockResolvedValue({ status: 'failed', retryable: true, code: 'model_timeout', message: 'slow', upToSequenceNo: 7 });
    const c = claim({ failures: 2 });
    await runOnce([c], { maxFailures: 3 });
    expect(models.settleExtraction).toHaveBeenCalledWith('user-1', c.conversationId, { token: c.token, upToSequenceNo: 7 });
    expect(models.postponeExtraction).not.toHaveBeenCalled();
  });

  it('when extracted or the claim was lost, then the worker leaves the bookkeeping alone', async () => {
    service.extractConversation.mockResolvedValueOnce({ status: 'claim_lost' });
    await runOnce([claim()]);
    expect(models.settleExtraction).not.toHaveBeenCalled();
    expect(models.postponeExtraction).not.toHaveBeenCalled();
  });

  it('when the service throws, then the worker survives and backs the conversation off', async () => {
    service.extractConversation.mockRejectedValue(new Error('connection terminated'));
    const c = claim();
    await runOnce([c], { retryBaseMs: 1_000 });
    expect(models.postponeExtraction).toHaveBeenCalledWith(c, { delayMs: 750, countFailure: true });
  });

  it('when a request is claimed, then the service is told to extract even if nothing changed, under the claim', async () => {
    service.extractConversation.mockResolvedValue({ status: 'claim_lost' });
    const c = claim({ requested: true });
    await runOnce([c]);
    expect(service.extractConversation).toHaveBeenCalledWith('user-1', c.conversationId, expect.objectContaining({ force: true, claimToken: c.token, openai }));
  });
});

describe('ExtractionWorker polling', () => {
  it('when more is due than its concurrency, then it claims only free slots and never runs more at once', async () => {
    // Each extraction runs until the test lets it finish, so "at once" does not depend on timing.
    const finishers: Array<() => void> = [];
    let running = 0;
    let peak = 0;
    service.extractConversation.mockImplementation(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((resolve) => finishers.push(resolve));
      running--;
      return { status: 'claim_lost' };
    });
    const queue = Array.from({ length: 7 }, () => claim());
    models.claimDueConversations.mockImplementation(async ({ limit }) => queue.splice(0, limit));
    const worker = new ExtractionWorker({ openai, concurrency: 2, pollIntervalMs: 10, requestPollMs: 5 });
    workers.push(worker);
    await worker.start();
    const started = async (count: number) => {
      const deadline = Date.now() + 3_000;
      while (service.extractConversation.mock.calls.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(service.extractConversation).toHaveBeenCalledTimes(count);
    };
    // Two slots fill; then each finished extraction frees one, and the next start (the signal
    // that the worker polled again) finds at most two running.
    await started(2);
    for (let next = 3; next <= 7; next++) {
      finishers.shift()!();
      await started(next);
    }
    for (const finish of finishers.splice(0)) finish();
    await worker.close();
    expect(service.extractConversation).toHaveBeenCalledTimes(7);
    expect(peak).toBe(2);
    for (const [options] of models.claimDueConversations.mock.calls) expect(options.limit).toBeLessThanOrEqual(2);
  });

  it('when closed while a poll is claiming, then the claims are handed back rather than started', async () => {
    let release: (claims: ExtractionClaim[]) => void = () => undefined;
    models.claimDueConversations.mockImplementationOnce(() => new Promise((resolve) => (release = resolve)));
    const worker = new ExtractionWorker({ openai, pollIntervalMs: 10, requestPollMs: 10 });
    workers.push(worker);
    await worker.start();
    const closed = worker.close();
    const c = claim();
    release([c]);
    await closed;
    expect(models.releaseExtractionClaim).toHaveBeenCalledWith(c);
    expect(service.extractConversation).not.toHaveBeenCalled();
  });
});
