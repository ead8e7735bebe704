/**
 * A message worker: one member of the `message-workers` consumer group on every shard of the
 * message stream (STREAM_SHARDS; one blocking read per shard, as one XREADGROUP cannot span
 * the hash slots of a Redis Cluster).
 * It serves up to WORKER_CONCURRENCY conversations at once (async I/O, one task each), never one
 * conversation twice at once (a Redis lease per conversation), and loses nothing when killed:
 * an entry is acknowledged only once its conversation owes nothing, so a dead worker's entries
 * are claimed by a live one after the lease (XAUTOCLAIM), and the sweeper re-queues anything
 * Postgres says is owed but Redis forgot. Customer messages arrive in the inbox (the webhook
 * accepts them there); the worker a nudge reaches files them into their conversation first.
 */
import { hostname } from 'node:os';
import type { RedisClient as Redis } from '../utils/redis';
import { config } from '../config';
import { logger } from '../utils/logger';
import { runWithContext } from '../utils/context';
import { createBlockingRedis, getRedis } from '../utils/redis';
import { conversationLease, markConversationDirty } from '../utils/locks';
import { CONSUMER_GROUPS, isInboxNudge, messageStream, parseNudge, prefixedKey, type ConversationNudge, type Nudge } from '../utils/queue';
import { replyMetrics } from '../utils/metrics';
import { getOpenAIService, type OpenAIService } from '../services/openaiService';
import { graphClient, type GraphClient } from '../services/metaGraphService';
import { RetryLater, serveConversation } from '../services/replyService';
import { fileWaitingMessages } from '../services/inboxService';
import { deadLetter, isPoison, nudgeLog, renudgeLost } from '../services/deliveryPolicy';
import { HEARTBEAT_INTERVAL_MS, heartbeatFailed, publishHeartbeat } from './heartbeat';
import type { WorkerProcess } from './kinds';

export interface MessageWorkerOptions {
  concurrency?: number;
  leaseMs?: number;
  sweepIntervalMs?: number;
  /** How long a send in doubt waits for Meta's status or echo; SEND_IN_DOUBT_GRACE_MS by default. */
  sendInDoubtGraceMs?: number;
  maxDeliveries?: number;
  /** How long one XREADGROUP blocks; bounds how fast `close()` stops intake. */
  blockMs?: number;
  consumerName?: string;
  /** How many shards the message stream has (STREAM_SHARDS). */
  shards?: number;
  openai?: OpenAIService;
  graph?: GraphClient;
}

type StreamEntry = [id: string, fields: string[]];

const isNoGroup = (error: unknown) => /NOGROUP/.test(String((error as Error)?.message));

export class MessageWorker implements WorkerProcess {
  readonly consumer: string;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly sendInDoubtGraceMs: number;
  private readonly sweepIntervalMs: number;
  private readonly maxDeliveries: number;
  private readonly blockMs: number;
  private readonly openai: OpenAIService;
  private readonly graph: GraphClient;
  private readonly shards: number;
  private readonly redis: Redis = getRedis();
  /** One blocking connection per shard: a blocked read holds its connection (its node's, on a cluster). */
  private blocking: Redis[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readLoops: Promise<void>[] = [];
  private closing?: Promise<void>;
  private handled = 0;
  /** Slots promised to reads in progress, so the shards' reads together never exceed `concurrency`. */
  private reserved = 0;
  /** Shard reads waiting for a free slot. */
  private waiting = new Set<() => void>();

  constructor(options: MessageWorkerOptions = {}) {
    this.concurrency = options.concurrency ?? config.WORKER_CONCURRENCY;
    this.leaseMs = options.leaseMs ?? config.WORKER_LEASE_MS;
    this.sendInDoubtGraceMs = options.sendInDoubtGraceMs ?? config.SEND_IN_DOUBT_GRACE_MS;
    this.sweepIntervalMs = options.sweepIntervalMs ?? config.SWEEPER_INTERVAL_MS;
    this.maxDeliveries = options.maxDeliveries ?? config.MESSAGE_MAX_ATTEMPTS;
    this.blockMs = options.blockMs ?? 1_000;
    this.consumer = options.consumerName ?? `${hostname()}-${process.pid}`;
    this.shards = options.shards ?? config.STREAM_SHARDS;
    this.openai = options.openai ?? getOpenAIService();
    this.graph = options.graph ?? graphClient;
  }

  async start(): Promise<void> {
    const shards = Array.from({ length: this.shards }, (_, shard) => shard);
    this.blocking = shards.map((shard) => createBlockingRedis(`message-worker:${this.consumer}:${shard}`));
    await Promise.all(shards.map((shard) => this.ensureGroup(shard)));
    this.readLoops = shards.map((shard) => this.read(shard));
    this.every(Math.max(100, Math.floor(this.leaseMs / 2)), () => this.reclaim());
    this.every(this.sweepIntervalMs, () => this.sweep());
    this.every(HEARTBEAT_INTERVAL_MS, () => publishHeartbeat('message', this.consumer, { inFlight: this.inFlight.size, handled: this.handled }));
    void publishHeartbeat('message', this.consumer, { inFlight: 0, handled: 0 }).catch(heartbeatFailed);
    logger.info({ consumer: this.consumer, concurrency: this.concurrency, shards: this.shards }, 'message worker reading');
  }

  /**
   * Idempotent: stops the timers and reading, lets in-flight conversations finish. The blocking
   * connections are disconnected first: a read blocked in XREADGROUP then fails at once (and the
   * loop, seeing the worker closing, stops) instead of holding shutdown for up to `blockMs`.
   * In-flight turns use the shared connection, so they drain unaffected.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      for (const connection of this.blocking) connection.disconnect();
      this.wakeReaders();
      await Promise.all(this.readLoops);
      await Promise.allSettled([...this.inFlight]);
      logger.info({ consumer: this.consumer, handled: this.handled }, 'message worker closed');
    })();
    return this.closing;
  }

  private get isClosing(): boolean {
    return this.closing !== undefined;
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let running = false;
    const timer = setInterval(() => {
      // A slow round (Redis or Postgres struggling) must not pile up behind itself.
      if (running || this.isClosing) return;
      running = true;
      task()
        .catch((error) => logger.warn({ err: { message: (error as Error).message } }, 'worker housekeeping failed'))
        .finally(() => (running = false));
    }, ms);
    this.timers.push(timer);
  }

  private async ensureGroup(shard: number): Promise<void> {
    try {
      // From the start of the stream: nudges written before any worker existed still count.
      await this.redis.xgroup('CREATE', prefixedKey(this.redis, messageStream(shard)), CONSUMER_GROUPS.messages, '0', 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test(String((error as Error).message))) throw error;
    }
  }

  private get free(): number {
    return this.concurrency - this.inFlight.size - this.reserved;
  }

  private wakeReaders(): void {
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const wake of waiting) wake();
  }

  /**
   * Reads one shard. Each read takes its share of the free slots (split between the shards not
   * reading at the moment), so the shards together never hand this worker more than
   * `concurrency` conversations, and no shard is starved while another blocks with every slot.
   */
  private async read(shard: number): Promise<void> {
    while (!this.isClosing) {
      if (this.free <= 0) {
        await new Promise<void>((resolve) => this.waiting.add(resolve));
        continue;
      }
      const idleShards = Math.max(1, this.shards - this.reading);
      const count = Math.max(1, Math.floor(this.free / idleShards));
      this.reserved += count;
      this.reading++;
      try {
        const reply = (await this.blocking[shard]!.xreadgroup(
          'GROUP', CONSUMER_GROUPS.messages, this.consumer,
          'COUNT', count, 'BLOCK', this.blockMs,
          'STREAMS', messageStream(shard), '>',
        )) as [string, StreamEntry[]][] | null;
        this.release(count);
        for (const [, entries] of reply ?? []) for (const entry of entries) this.dispatch(shard, entry);
      } catch (error) {
        this.release(count);
        if (this.isClosing) break;
        // Redis restarted empty: the group is gone with the stream. Recreate and carry on;
        // the sweeper re-queues what the lost entries named.
        if (isNoGroup(error)) await this.ensureGroup(shard).catch(() => undefined);
        else {
          logger.warn({ err: { message: (error as Error).message }, shard }, 'stream read failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
      }
    }
  }

  /** Shard reads in progress. */
  private reading = 0;

  private release(count: number): void {
    this.reserved -= count;
    this.reading--;
    this.wakeReaders();
  }

  private dispatch(shard: number, [id, fields]: StreamEntry): void {
    const task = this.handle(shard, id, fields).finally(() => {
      this.inFlight.delete(task);
      this.handled++;
      this.wakeReaders();
    });
    this.inFlight.add(task);
  }

  private async ack(shard: number, id: string): Promise<void> {
    await this.redis.xack(messageStream(shard), CONSUMER_GROUPS.messages, id);
  }

  private async handle(shard: number, id: string, fields: string[]): Promise<void> {
    const nudge = parseNudge(fields);
    if (!nudge) {
      logger.warn({ entry: id }, 'malformed stream entry dropped');
      await this.ack(shard, id).catch(() => undefined);
      return;
    }
    replyMetrics.turnLag.observe(Math.max(0, Date.now() - Number(id.split('-')[0])) / 1000);
    await runWithContext({ requestId: nudge.requestId ?? id, userId: nudge.userId }, async () => {
      try {
        const done = await this.serveNudge(nudge);
        if (done) await this.ack(shard, id);
      } catch (error) {
        // Left unacknowledged: XAUTOCLAIM hands it to a worker again after the lease.
        logger.error({ err: error, ...nudgeLog(nudge) }, 'conversation failed unexpectedly; will retry');
      }
    });
  }

  /**
   * An inbox nudge first files the customer's waiting messages into their conversation, then
   * serves it like a conversation nudge. Filed by another worker already, or by an earlier
   * delivery of this entry whose turn failed: the conversation is served all the same (a turn
   * that finds nothing owed stops at its first query).
   */
  private async serveNudge(nudge: Nudge): Promise<boolean> {
    if (!isInboxNudge(nudge)) return this.serve(nudge);
    const conversationId = await fileWaitingMessages(nudge);
    if (!conversationId) return true;
    return this.serve({ conversationId, userId: nudge.userId, requestId: nudge.requestId });
  }

  /** Serves the nudged conversation under its lease. False when it must be retried later. */
  private async serve(nudge: ConversationNudge): Promise<boolean> {
    const lease = conversationLease(nudge.conversationId, this.leaseMs, this.redis);
    if (!(await lease.acquire())) {
      // Busy: ask the owner for another round. If the owner let go between our two tries,
      // the second try wins and we serve it ourselves.
      await markConversationDirty(nudge.conversationId, this.leaseMs, this.redis);
      if (!(await lease.acquire())) return true;
    }
    const controller = new AbortController();
    lease.keepAlive(() => {
      logger.warn({ conversation_id: nudge.conversationId }, 'conversation lease lost mid-turn');
      controller.abort();
    });
    try {
      for (;;) {
        await serveConversation(nudge.userId, nudge.conversationId, {
          openai: this.openai,
          graph: this.graph,
          signal: controller.signal,
          sendInDoubtGraceMs: this.sendInDoubtGraceMs,
        });
        const outcome = await lease.release();
        if (outcome !== 'again') return true;
      }
    } catch (error) {
      await lease.abandon().catch(() => undefined);
      if (error instanceof RetryLater) {
        logger.warn({ conversation_id: nudge.conversationId, reason: error.message }, 'turn postponed');
        return false;
      }
      throw error;
    }
  }

  /**
   * Takes over entries whose worker died or stalled past the lease; entries delivered too
   * often are dead-lettered instead (services/deliveryPolicy.ts).
   */
  private async reclaim(): Promise<void> {
    for (let shard = 0; shard < this.shards; shard++) await this.reclaimShard(shard);
  }

  private async reclaimShard(shard: number): Promise<void> {
    const stream = messageStream(shard);
    const pending = (await this.redis.xpending(
      stream, CONSUMER_GROUPS.messages, 'IDLE', this.leaseMs, '-', '+', 100,
    )) as [string, string, number, number][];
    for (const [id, , , deliveries] of pending) {
      if (!isPoison(deliveries, this.maxDeliveries)) continue;
      await deadLetter(shard, id, deliveries, this.redis);
      await this.ack(shard, id);
    }
    // Slots reserved by blocked reads do not count: those reads may well return nothing, and a
    // claim waiting on them would wait forever while the shards are quiet.
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0 || this.isClosing) return;
    const [, entries] = (await this.redis.xautoclaim(
      stream, CONSUMER_GROUPS.messages, this.consumer, this.leaseMs, '0-0', 'COUNT', free,
    )) as [string, (StreamEntry | null)[]];
    for (const entry of entries) if (entry) this.dispatch(shard, entry);
  }

  /**
   * Anything owed and untouched for a lease is nudged again (services/deliveryPolicy.ts). One
   * worker in the fleet sweeps per interval.
   */
  private async sweep(): Promise<void> {
    const turn = await this.redis.set('sweeper:messages', this.consumer, 'PX', this.sweepIntervalMs, 'NX');
    if (turn !== 'OK') return;
    await renudgeLost(this.leaseMs, this.redis);
  }
}

export function createMessageWorker(options: MessageWorkerOptions = {}): MessageWorker {
  return new MessageWorker(options);
}
