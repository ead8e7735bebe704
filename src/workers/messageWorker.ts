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
import { CONSUMER_GROUPS, enqueueConversations, isInboxNudge, messageStream, parseNudge, prefixedKey, type ConversationNudge, type Nudge } from '../utils/queue';
import { replyMetrics } from '../utils/metrics';
import { getOpenAIService, type OpenAIService } from '../services/openaiService';
import { graphClient, type GraphClient } from '../services/metaGraphService';
import { RetryLater, serveConversation, WaitForCircuit } from '../services/replyService';
import { fileWaitingMessages } from '../services/inboxService';
import { deadLetter, isPoison, nudgeLog, renudgeLost, retryBackoffMs } from '../services/deliveryPolicy';
import { resumeDueConversations } from '../services/conversationService';
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
  /**
   * Entries read ahead and waiting here beyond those running, to find other tenants behind a
   * flood; default max(16, 4 × concurrency). One room for all shards: the entries waiting, from
   * every shard, plus those the shards' reads have asked for, never exceed it.
   */
  readAhead?: number;
  openai?: OpenAIService;
  graph?: GraphClient;
  /** Back-off after a transient failure: RETRY_BACKOFF_BASE_MS / RETRY_BACKOFF_MAX_MS by default. */
  retryBackoff?: { baseMs: number; maxMs: number };
}

type StreamEntry = [id: string, fields: string[]];
interface WaitingEntry {
  /** The shard whose stream the entry came from: its ack, claim refresh and dead letter go there. */
  shard: number;
  id: string;
  fields: string[];
  /** The nudge's tenant ('' for a malformed entry). */
  tenant: string;
  /** Taken over from a worker that died (XAUTOCLAIM): its delivery count is above one. */
  claimed: boolean;
}

/** A turn waiting on an open circuit is nudged again no sooner than this. */
const MIN_CIRCUIT_WAIT_MS = 250;

const isNoGroup = (error: unknown) => /NOGROUP/.test(String((error as Error)?.message));

/** Conversations whose transient failures in a row are remembered for their back-off; the oldest is forgotten past it. */
const MAX_BACKOFF_ENTRIES = 10_000;

export class MessageWorker implements WorkerProcess {
  readonly consumer: string;
  private readonly concurrency: number;
  private readonly readAhead: number;
  private readonly leaseMs: number;
  private readonly sendInDoubtGraceMs: number;
  private readonly sweepIntervalMs: number;
  private readonly maxDeliveries: number;
  private readonly blockMs: number;
  private readonly openai: OpenAIService;
  private readonly graph: GraphClient;
  private readonly shards: number;
  private readonly retryBackoff: { baseMs: number; maxMs: number };
  /** Transient failures in a row per conversation, for the back-off; cleared by a turn that succeeds. */
  private readonly failuresInARow = new Map<string, number>();
  private readonly redis: Redis = getRedis();
  /** One blocking connection per shard: a blocked read holds its connection (its node's, on a cluster). */
  private blocking: Redis[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  /** Entries read or claimed, from every shard, but not started yet (fair share), oldest first. */
  private readonly waiting: WaitingEntry[] = [];
  /** `shard:id` of the entries waiting here: a claim of one already waiting does not queue it twice. */
  private readonly held = new Set<string>();
  /** Read-ahead room promised to shard reads in progress, so waiting + reserved never exceeds `readAhead`. */
  private reserved = 0;
  /** Shard reads in progress. */
  private reading = 0;
  /** Shard reads waiting for read-ahead room. */
  private readonly readers = new Set<() => void>();
  /** Slots each tenant holds now. */
  private readonly running = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly renudges = new Set<NodeJS.Timeout>();
  private readLoops: Promise<void>[] = [];
  private closing?: Promise<void>;
  private handled = 0;

  constructor(options: MessageWorkerOptions = {}) {
    this.concurrency = options.concurrency ?? config.WORKER_CONCURRENCY;
    this.leaseMs = options.leaseMs ?? config.WORKER_LEASE_MS;
    this.readAhead = Math.max(1, options.readAhead ?? Math.max(16, 4 * this.concurrency));
    this.sendInDoubtGraceMs = options.sendInDoubtGraceMs ?? config.SEND_IN_DOUBT_GRACE_MS;
    this.sweepIntervalMs = options.sweepIntervalMs ?? config.SWEEPER_INTERVAL_MS;
    this.maxDeliveries = options.maxDeliveries ?? config.MESSAGE_MAX_ATTEMPTS;
    this.blockMs = options.blockMs ?? 1_000;
    this.consumer = options.consumerName ?? `${hostname()}-${process.pid}`;
    this.shards = options.shards ?? config.STREAM_SHARDS;
    this.openai = options.openai ?? getOpenAIService();
    this.graph = options.graph ?? graphClient;
    this.retryBackoff = options.retryBackoff ?? { baseMs: config.RETRY_BACKOFF_BASE_MS, maxMs: config.RETRY_BACKOFF_MAX_MS };
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
      for (const timer of this.renudges) clearTimeout(timer);
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

  /** Read-ahead room left for all shards: `readAhead` less the entries waiting and those reads have asked for. */
  private get room(): number {
    return this.readAhead - this.waiting.length - this.reserved;
  }

  private wakeReaders(): void {
    const readers = [...this.readers];
    this.readers.clear();
    for (const wake of readers) wake();
  }

  /**
   * Reads one shard into the one fair-share queue. Reads ahead up to `readAhead` entries beyond
   * those running, so another tenant's entry behind one tenant's flood is seen (on any shard) and
   * served at the next free slot. The room is shared: each read reserves its part of it (split
   * between the shards not reading at the moment, and the reclaim, which gets a part too), so the
   * shards together never hold more than `readAhead` entries waiting, and no shard is starved
   * while another blocks with all the room.
   */
  private async read(shard: number): Promise<void> {
    while (!this.isClosing) {
      this.schedule();
      const room = this.room;
      // The last unit of room is left to the reclaim while another shard's read holds a part.
      if (room <= 0 || (room === 1 && this.reading > 0)) {
        await new Promise<void>((resolve) => this.readers.add(resolve));
        continue;
      }
      const others = Math.max(1, this.shards - this.reading) + 1;
      const count = Math.min(room, Math.max(1, Math.floor(room / others)));
      this.reserved += count;
      this.reading++;
      try {
        const reply = (await this.blocking[shard]!.xreadgroup(
          'GROUP', CONSUMER_GROUPS.messages, this.consumer,
          'COUNT', count, 'BLOCK', this.blockMs,
          'STREAMS', messageStream(shard), '>',
        )) as [string, StreamEntry[]][] | null;
        for (const [, entries] of reply ?? []) for (const entry of entries) this.enqueue(shard, entry);
        this.release(count);
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

  private release(count: number): void {
    this.reserved -= count;
    this.reading--;
    this.wakeReaders();
  }

  /** An entry read or claimed: it waits here until `schedule` gives it a slot. */
  private enqueue(shard: number, [id, fields]: StreamEntry, claimed = false): void {
    const key = `${shard}:${id}`;
    if (this.held.has(key)) return;
    this.held.add(key);
    this.waiting.push({ shard, id, fields, tenant: parseNudge(fields)?.userId ?? '', claimed });
  }

  /**
   * Fair share (guarantee 11): while another tenant's entry waits, a tenant may hold at most
   * max(1, ceil(WORKER_CONCURRENCY / tenants with work running or waiting here)) slots. Entries
   * start in arrival order among those under their share; an entry over its share stays waiting
   * (read, unacknowledged, never dropped) until a slot frees under the share. With no one else
   * waiting a tenant may use every slot, and a free slot is never left idle while work waits.
   */
  private schedule(): void {
    while (!this.isClosing && this.inFlight.size < this.concurrency && this.waiting.length > 0) {
      const tenants = new Set(this.waiting.map((entry) => entry.tenant));
      for (const [tenant, count] of this.running) if (count > 0) tenants.add(tenant);
      const share = Math.max(1, Math.ceil(this.concurrency / tenants.size));
      const holds = (tenant: string) => this.running.get(tenant) ?? 0;
      let index = this.waiting.findIndex(
        (entry) => holds(entry.tenant) < share || this.waiting.every((other) => other.tenant === entry.tenant),
      );
      if (index < 0) {
        // Every waiting tenant is at its share: the slot goes to whoever holds fewest.
        index = 0;
        for (let i = 1; i < this.waiting.length; i++) if (holds(this.waiting[i]!.tenant) < holds(this.waiting[index]!.tenant)) index = i;
      }
      const [entry] = this.waiting.splice(index, 1);
      this.held.delete(`${entry!.shard}:${entry!.id}`);
      this.dispatch(entry!);
    }
  }

  private dispatch({ shard, id, fields, tenant, claimed }: WaitingEntry): void {
    this.running.set(tenant, (this.running.get(tenant) ?? 0) + 1);
    const task = this.handle(shard, id, fields, claimed).finally(() => {
      this.inFlight.delete(task);
      const left = (this.running.get(tenant) ?? 1) - 1;
      if (left > 0) this.running.set(tenant, left);
      else this.running.delete(tenant);
      this.handled++;
      this.schedule();
      this.wakeReaders();
    });
    this.inFlight.add(task);
  }

  private async ack(shard: number, id: string): Promise<void> {
    await this.redis.xack(messageStream(shard), CONSUMER_GROUPS.messages, id);
  }

  private async handle(shard: number, id: string, fields: string[], claimed: boolean): Promise<void> {
    const nudge = parseNudge(fields);
    if (!nudge) {
      logger.warn({ entry: id, shard }, 'malformed stream entry dropped');
      await this.ack(shard, id).catch(() => undefined);
      return;
    }
    replyMetrics.turnLag.observe(Math.max(0, Date.now() - Number(id.split('-')[0])) / 1000);
    await runWithContext({ requestId: nudge.requestId ?? id, userId: nudge.userId }, async () => {
      try {
        // A delivery taken over from a dead worker that gets somewhere is no repeat crash:
        // its count goes back to one (only deliveries that die without progress are poison).
        let progressed = !claimed;
        const onProgress = () => {
          if (progressed) return;
          progressed = true;
          void this.redis
            .xclaim(messageStream(shard), CONSUMER_GROUPS.messages, this.consumer, 0, id, 'RETRYCOUNT', 1, 'JUSTID')
            .catch(() => undefined);
        };
        const done = await this.serveNudge(nudge, onProgress);
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
  private async serveNudge(nudge: Nudge, onProgress: () => void): Promise<boolean> {
    if (!isInboxNudge(nudge)) return this.serve(nudge, onProgress);
    const conversationId = await fileWaitingMessages(nudge);
    if (!conversationId) return true;
    return this.serve({ conversationId, userId: nudge.userId, requestId: nudge.requestId }, onProgress);
  }

  /** Serves the nudged conversation under its lease. False when it must be retried later. */
  private async serve(nudge: ConversationNudge, onProgress: () => void = () => undefined): Promise<boolean> {
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
          onProgress,
        });
        this.failuresInARow.delete(nudge.conversationId);
        const outcome = await lease.release();
        if (outcome !== 'again') return true;
      }
    } catch (error) {
      await lease.abandon().catch(() => undefined);
      if (error instanceof WaitForCircuit) {
        // The tenant's circuit for its model is open: the work waits in Postgres, and this entry
        // is let go (acknowledged) rather than left to be redelivered, so waiting spends neither
        // attempts nor deliveries (guarantee 11). A fresh nudge comes when the circuit lets a call
        // through; if this worker dies first, the sweeper finds the conversation still owed.
        // Jittered, so the conversations that waited on one circuit do not all come back at once.
        this.renudgeAfter(nudge, Math.round(Math.min(Math.max(error.retryAfterMs, MIN_CIRCUIT_WAIT_MS), this.leaseMs * 4) * (1 + Math.random() * 0.2)));
        logger.info({ conversation_id: nudge.conversationId, wait_ms: error.retryAfterMs }, 'turn waits for the model circuit');
        return true;
      }
      if (error instanceof RetryLater) return this.backOff(nudge, error);
      throw error;
    }
  }

  /**
   * A transient failure (guarantee 12): the work stays owed in Postgres, the entry is let go
   * (acknowledged, so its deliveries never add up to poison) and the conversation is nudged
   * again after a capped, jittered back-off that honours the provider's hint. If this worker
   * dies first, the sweeper finds the conversation still owed. Shutting down, it is nudged at
   * once for another worker, or left pending if even that fails.
   */
  private async backOff(nudge: ConversationNudge, error: RetryLater): Promise<boolean> {
    if (this.isClosing) {
      try {
        await enqueueConversations([{ conversationId: nudge.conversationId, userId: nudge.userId, requestId: nudge.requestId ?? 'retry' }], this.redis, this.shards);
        return true;
      } catch {
        return false;
      }
    }
    const failures = (this.failuresInARow.get(nudge.conversationId) ?? 0) + 1;
    this.failuresInARow.delete(nudge.conversationId);
    this.failuresInARow.set(nudge.conversationId, failures);
    if (this.failuresInARow.size > MAX_BACKOFF_ENTRIES) this.failuresInARow.delete(this.failuresInARow.keys().next().value!);
    const waitMs = retryBackoffMs(failures, { ...this.retryBackoff, hintMs: error.retryAfterMs });
    this.renudgeAfter(nudge, waitMs);
    replyMetrics.failures.inc({ reason: 'backed_off' });
    logger.warn({ conversation_id: nudge.conversationId, reason: error.message, failures, wait_ms: waitMs }, 'turn postponed; backing off');
    return true;
  }

  private renudgeAfter(nudge: ConversationNudge, ms: number): void {
    const timer = setTimeout(() => {
      this.renudges.delete(timer);
      if (this.isClosing) return;
      enqueueConversations([{ conversationId: nudge.conversationId, userId: nudge.userId, requestId: nudge.requestId ?? 'circuit' }], this.redis, this.shards).catch(
        (error: unknown) => logger.warn({ err: { message: (error as Error).message } }, 'renudge after the circuit wait failed; the sweeper will'),
      );
    }, ms);
    timer.unref();
    this.renudges.add(timer);
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
    // Entries waiting here for a fair-share slot are ours and alive: reset their idle time
    // (JUSTID counts no delivery) so no worker takes them over or dead-letters them.
    const held = this.waiting.filter((entry) => entry.shard === shard).map((entry) => entry.id);
    if (held.length > 0) {
      await this.redis.xclaim(stream, CONSUMER_GROUPS.messages, this.consumer, 0, ...held, 'JUSTID');
    }
    const pending = (await this.redis.xpending(
      stream, CONSUMER_GROUPS.messages, 'IDLE', this.leaseMs, '-', '+', 100,
    )) as [string, string, number, number][];
    for (const [id, , , deliveries] of pending) {
      if (!isPoison(deliveries, this.maxDeliveries)) continue;
      await deadLetter(shard, id, deliveries, this.redis);
      await this.ack(shard, id);
    }
    // Claims share the read-ahead room with the shards' reads (which always leave it a part).
    const room = Math.min(this.concurrency, this.room);
    if (room <= 0 || this.isClosing) return;
    const [, entries] = (await this.redis.xautoclaim(
      stream, CONSUMER_GROUPS.messages, this.consumer, this.leaseMs, '0-0', 'COUNT', room,
    )) as [string, (StreamEntry | null)[]];
    for (const entry of entries) if (entry) this.enqueue(shard, entry, true);
    this.schedule();
  }

  /**
   * Anything owed and untouched for a lease is nudged again (services/deliveryPolicy.ts). One
   * worker in the fleet sweeps per interval. Every worker also runs the resume timer.
   */
  private async sweep(): Promise<void> {
    // The resume timer needs Postgres only, and concurrent runs skip each other's rows, so every
    // worker runs it, Redis or not: a paused conversation resumes on time whatever has died. Its
    // failure must not cost the re-nudging below its round.
    await resumeDueConversations().catch((error: Error) => logger.warn({ err: { message: error.message } }, 'resume timer failed; next sweep retries'));
    const turn = await this.redis.set('sweeper:messages', this.consumer, 'PX', this.sweepIntervalMs, 'NX');
    if (turn !== 'OK') return;
    await renudgeLost(this.leaseMs, this.redis);
  }
}

export function createMessageWorker(options: MessageWorkerOptions = {}): MessageWorker {
  return new MessageWorker(options);
}
