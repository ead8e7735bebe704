/**
 * An extraction worker (CONTRACT §4.7): finds conversations due a lead extraction and runs
 * `extractConversation` on a few of them at once.
 *
 * Due means asked for (POST …/extract, looked for every `requestPollMs`, so a request never
 * waits for the idle time), or idle for `idleSeconds` with messages newer than the last
 * extraction saw. Postgres is the whole queue: a conversation is claimed with
 * `FOR NO KEY UPDATE SKIP LOCKED` in one short statement that writes a lease on its row, so
 * workers (threads or processes) never take the same one and a killed worker's claims expire
 * and are taken over. The model is called outside any transaction; the result, its charge and
 * the end of the claim commit together, and only while the claim is still this worker's.
 *
 * Nothing spins: a tenant without credits, or a provider failing, postpones the conversation
 * (`extraction_retry_at`); unusable model output and conversations with nothing to extract are
 * settled until a newer message arrives.
 */
import { hostname } from 'node:os';
import { config } from '../config';
import { logger } from '../utils/logger';
import { runWithContext } from '../utils/context';
import { getOpenAIService, type OpenAIService } from '../services/openaiService';
import {
  backOffExtraction,
  claimDueConversations,
  concludeExtraction,
  extendExtractionClaim,
  extractConversation,
  releaseExtractionClaim,
  type ExtractionClaim,
  type ExtractionRetryPolicy,
} from '../services/extractionService';
import { HEARTBEAT_INTERVAL_MS, heartbeatFailed, publishHeartbeat } from './heartbeat';
import type { WorkerProcess } from './kinds';

export interface ExtractionWorkerOptions {
  /** How often idle conversations are looked for. Default 5 s. */
  pollIntervalMs?: number;
  /** How often requested conversations (POST …/extract) are looked for. Default 500 ms. */
  requestPollMs?: number;
  /** Quiet time before a conversation is due. Default `EXTRACTION_IDLE_SECONDS`; fractions allowed. */
  idleSeconds?: number;
  /** Conversations extracted at once by this worker. Default 4. */
  concurrency?: number;
  /** A claim's lease, renewed every third of it while the model works. Default 60 s. */
  leaseMs?: number;
  /** First wait after a failed attempt; doubles with each further failure. Default 30 s. */
  retryBaseMs?: number;
  /** Longest wait between failed attempts. Default 30 min. */
  retryMaxMs?: number;
  /** Consecutive failures after which the current messages are given up on. Default 6. */
  maxFailures?: number;
  /** Wait before trying again for a tenant without credits, or without a configured provider. Default 10 min. */
  noCreditsRetryMs?: number;
  consumerName?: string;
  openai?: OpenAIService;
  random?: () => number;
}

export const EXTRACTION_WORKER_DEFAULTS = Object.freeze({
  pollIntervalMs: 5_000,
  requestPollMs: 500,
  concurrency: 4,
  leaseMs: 60_000,
  retryBaseMs: 30_000,
  retryMaxMs: 30 * 60_000,
  maxFailures: 6,
  noCreditsRetryMs: 10 * 60_000,
});

export class ExtractionWorker implements WorkerProcess {
  readonly consumer: string;
  private readonly pollIntervalMs: number;
  private readonly requestPollMs: number;
  private readonly idleSeconds: number;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly retryPolicy: ExtractionRetryPolicy;
  private readonly openai: OpenAIService;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private filling?: Promise<void>;
  private lastFullPoll = 0;
  /** The last full poll claimed all it asked for: more may be due, so poll again as slots free up. */
  private backlog = false;
  private closing?: Promise<void>;
  private handled = 0;

  constructor(options: ExtractionWorkerOptions = {}) {
    const defaults = EXTRACTION_WORKER_DEFAULTS;
    this.pollIntervalMs = options.pollIntervalMs ?? defaults.pollIntervalMs;
    this.requestPollMs = options.requestPollMs ?? defaults.requestPollMs;
    this.idleSeconds = options.idleSeconds ?? config.EXTRACTION_IDLE_SECONDS;
    this.concurrency = Math.max(1, options.concurrency ?? defaults.concurrency);
    this.leaseMs = options.leaseMs ?? defaults.leaseMs;
    this.retryPolicy = {
      retryBaseMs: options.retryBaseMs ?? defaults.retryBaseMs,
      retryMaxMs: options.retryMaxMs ?? defaults.retryMaxMs,
      maxFailures: options.maxFailures ?? defaults.maxFailures,
      noCreditsRetryMs: options.noCreditsRetryMs ?? defaults.noCreditsRetryMs,
      random: options.random ?? Math.random,
    };
    this.consumer = options.consumerName ?? `${hostname()}-${process.pid}`;
    this.openai = options.openai ?? getOpenAIService();
  }

  async start(): Promise<void> {
    const tick = setInterval(() => this.fill(), Math.min(this.requestPollMs, this.pollIntervalMs));
    this.timers.push(tick);
    this.timers.push(
      setInterval(() => {
        publishHeartbeat('extraction', this.consumer, { inFlight: this.inFlight.size, handled: this.handled }).catch(heartbeatFailed);
      }, HEARTBEAT_INTERVAL_MS),
    );
    void publishHeartbeat('extraction', this.consumer, { inFlight: 0, handled: 0 }).catch(heartbeatFailed);
    this.fill();
    logger.info({ consumer: this.consumer, concurrency: this.concurrency, idle_seconds: this.idleSeconds }, 'extraction worker polling');
  }

  /** Idempotent: stops claiming, lets in-flight extractions finish, then stops the timers. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      await this.filling;
      // Tasks do not start new polls once closing, so this set only shrinks.
      await Promise.allSettled([...this.inFlight]);
      logger.info({ consumer: this.consumer, handled: this.handled }, 'extraction worker closed');
    })();
    return this.closing;
  }

  private get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /** One poll, unless one is running: a slow database must not pile polls up behind each other. */
  private fill(): void {
    if (this.filling || this.isClosing) return;
    this.filling = this.poll()
      .catch((error) => logger.warn({ err: { message: (error as Error).message } }, 'extraction poll failed'))
      .finally(() => (this.filling = undefined));
  }

  private async poll(): Promise<void> {
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0) return;
    const full = this.backlog || Date.now() - this.lastFullPoll >= this.pollIntervalMs;
    if (full) this.lastFullPoll = Date.now();
    const claims = await claimDueConversations({
      claimant: this.consumer,
      limit: free,
      leaseMs: this.leaseMs,
      idleSeconds: this.idleSeconds,
      requestsOnly: !full,
    });
    if (full) this.backlog = claims.length === free;
    for (const claim of claims) {
      // Closed while claiming: hand the conversations straight back rather than start on them.
      if (this.isClosing) await releaseExtractionClaim(claim).catch(() => undefined);
      else this.dispatch(claim);
    }
  }

  private dispatch(claim: ExtractionClaim): void {
    const context = { requestId: `extraction:${claim.conversationId}`, userId: claim.userId };
    const task = runWithContext(context, () => this.handle(claim)).finally(() => {
      this.inFlight.delete(task);
      this.handled++;
      if (this.backlog) this.fill();
    });
    this.inFlight.add(task);
  }

  private async handle(claim: ExtractionClaim): Promise<void> {
    const log = logger.child({ conversation_id: claim.conversationId, user_id: claim.userId });
    const controller = new AbortController();
    const keepAlive = setInterval(() => {
      extendExtractionClaim(claim, this.leaseMs).then(
        (held) => {
          if (held || controller.signal.aborted) return;
          log.warn('extraction claim lost mid-extraction');
          controller.abort();
        },
        // A database blip is not a lost claim; the next tick tries again before the lease ends.
        () => undefined,
      );
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    try {
      const outcome = await extractConversation(claim.userId, claim.conversationId, {
        openai: this.openai,
        signal: controller.signal,
        claimToken: claim.token,
        force: claim.requested,
      });
      // A lost claim belongs to whoever took it over: leave its bookkeeping alone.
      if (controller.signal.aborted) return;
      await concludeExtraction(claim, outcome, this.retryPolicy, log);
    } catch (error) {
      // Our own trouble (the database went away, a bug): back off like any failure, so one
      // conversation cannot make the worker loop on it.
      log.error({ err: error }, 'extraction failed unexpectedly; will retry later');
      await backOffExtraction(claim, this.retryPolicy, log).catch(() => undefined);
    } finally {
      clearInterval(keepAlive);
    }
  }
}

export function createExtractionWorker(options: ExtractionWorkerOptions = {}): ExtractionWorker {
  return new ExtractionWorker(options);
}
