/**
 * The event worker (`npm run start:worker -- events`, CONTRACT §3 "Tenant events"): delivers
 * the outbox's deliveries to tenants' endpoints. Postgres is the queue (models/WebhookDelivery.ts):
 * a delivery is claimed with a lease on its row, posted, and recorded; a killed worker's lease
 * expires and another worker posts it again (at least once). Only the head of each
 * conversation's queue per endpoint is claimable, so one conversation's events arrive in order
 * while other conversations go on; at most `perEndpoint` posts to one endpoint run at once, so
 * a slow or dead endpoint holds a few slots for `timeoutMs` each and never the whole worker.
 * It runs in its own process: replies never wait for it.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { config } from '../config';
import { logger } from '../utils/logger';
import { claimDueDeliveries, type DeliveryClaim } from '../models/WebhookDelivery';
import { attemptDelivery, defaultDeliveryPolicy, type DeliveryPolicy } from '../services/eventDeliveryService';
import { HEARTBEAT_INTERVAL_MS, heartbeatFailed, publishHeartbeat } from './heartbeat';
import type { WorkerProcess } from './kinds';

export interface EventWorkerOptions extends Partial<DeliveryPolicy> {
  /** How often due deliveries are looked for. Default 250 ms. */
  pollIntervalMs?: number;
  /** Posts in flight at once. Default 32. */
  concurrency?: number;
  /** Posts in flight to one endpoint at once, across workers. Default 4. */
  perEndpoint?: number;
  /** A claim's lease: past it another worker may post the delivery. Default max(WORKER_LEASE_MS, timeout + 5 s). */
  leaseMs?: number;
  consumerName?: string;
}

export class EventWorker implements WorkerProcess {
  readonly consumer: string;
  private readonly pollIntervalMs: number;
  private readonly concurrency: number;
  private readonly perEndpoint: number;
  private readonly leaseMs: number;
  private readonly policy: DeliveryPolicy;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private filling?: Promise<void>;
  private closing?: Promise<void>;
  private handled = 0;

  constructor(options: EventWorkerOptions = {}) {
    const { pollIntervalMs, concurrency, perEndpoint, leaseMs, consumerName, ...policy } = options;
    this.policy = { ...defaultDeliveryPolicy(), ...policy };
    this.pollIntervalMs = pollIntervalMs ?? 250;
    this.concurrency = Math.max(1, concurrency ?? 32);
    this.perEndpoint = Math.max(1, perEndpoint ?? 4);
    // The lease must outlast a post, or a second worker would post while the first still waits.
    this.leaseMs = leaseMs ?? Math.max(config.WORKER_LEASE_MS, this.policy.timeoutMs + 5_000);
    this.consumer = consumerName ?? `${hostname()}-${process.pid}`;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    this.timers.push(setInterval(() => this.fill(), this.pollIntervalMs));
    this.timers.push(
      setInterval(() => {
        publishHeartbeat('events', this.consumer, { inFlight: this.inFlight.size, handled: this.handled }).catch(heartbeatFailed);
      }, HEARTBEAT_INTERVAL_MS),
    );
    void publishHeartbeat('events', this.consumer, { inFlight: 0, handled: 0 }).catch(heartbeatFailed);
    this.fill();
    logger.info({ consumer: this.consumer, concurrency: this.concurrency }, 'event worker polling');
  }

  /** Idempotent: stops claiming, lets posts in flight finish (each ends within its timeout). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      await this.filling;
      await Promise.allSettled([...this.inFlight]);
      logger.info({ consumer: this.consumer, handled: this.handled }, 'event worker closed');
    })();
    return this.closing;
  }

  /** One poll at a time: a slow database must not pile polls up. */
  private fill(): void {
    if (this.filling || this.closing) return;
    this.filling = this.poll()
      .catch((error) => logger.warn({ err: { message: (error as Error).message } }, 'event poll failed'))
      .finally(() => (this.filling = undefined));
  }

  private async poll(): Promise<void> {
    const free = this.concurrency - this.inFlight.size;
    if (free <= 0) return;
    const claims = await claimDueDeliveries({ limit: free, perEndpoint: this.perEndpoint, leaseMs: this.leaseMs, leaseToken: randomUUID() });
    for (const claim of claims) this.dispatch(claim);
    // A full batch: more may be due now, without waiting for the next tick.
    if (claims.length === free && !this.closing) setImmediate(() => this.fill());
  }

  private dispatch(claim: DeliveryClaim): void {
    const log = logger.child({ delivery_id: claim.id, user_id: claim.userId });
    const task = attemptDelivery(claim, this.policy, log)
      .then(() => undefined)
      // Our own trouble (the database went away): the lease expires and the delivery is tried again.
      .catch((error) => log.error({ err: error }, 'event delivery could not be recorded'))
      .finally(() => {
        this.inFlight.delete(task);
        this.handled++;
        this.fill();
      });
    this.inFlight.add(task);
  }
}
