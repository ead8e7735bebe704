/**
 * One delivery attempt of a tenant event (CONTRACT §3): the body `{ id, type, created_at,
 * data }`, signed with every secret that signs for the endpoint, posted to the address the URL
 * resolves to after the address is checked again (`utils/urlSafety.ts`), and recorded: a 2xx
 * within the timeout is delivered; anything else is retried after about `firstRetryMs`, then
 * doubling with jitter up to `maxRetryMs`, until the delivery's 24 h are over (`failed`). An
 * endpoint that fails for `disableAfterMs` is disabled.
 */
import type { Logger } from 'pino';
import * as deliveries from '../models/WebhookDelivery';
import type { DeliveryClaim } from '../models/WebhookDelivery';
import { postToAddress, resolveAllowedAddress, checkUrlForm, configuredUrlPolicy, type UrlPolicy, type Resolver } from '../utils/urlSafety';
import { signatureHeader } from '../utils/webhookSignature';
import { signingSecrets } from './webhookEndpointService';

export interface DeliveryPolicy {
  timeoutMs: number;
  firstRetryMs: number;
  maxRetryMs: number;
  disableAfterMs: number;
  urlPolicy: UrlPolicy;
  random: () => number;
  resolve?: Resolver;
}

export const DELIVERY_DEFAULTS = Object.freeze({
  timeoutMs: 10_000,
  firstRetryMs: 5_000,
  maxRetryMs: 3_600_000,
  disableAfterMs: 24 * 3_600_000,
});

export const defaultDeliveryPolicy = (): DeliveryPolicy => ({ ...DELIVERY_DEFAULTS, urlPolicy: configuredUrlPolicy(), random: Math.random });

/**
 * The wait before attempt `failures + 1`: `firstRetryMs` after the first failure, doubling
 * after each further one, ±20% jitter (so endpoints that failed together do not retry in step),
 * never above `maxRetryMs`.
 */
export function retryDelayMs(failures: number, policy: Pick<DeliveryPolicy, 'firstRetryMs' | 'maxRetryMs' | 'random'>): number {
  const base = policy.firstRetryMs * 2 ** Math.min(Math.max(failures - 1, 0), 30);
  const jittered = base * (0.8 + 0.4 * policy.random());
  return Math.round(Math.min(jittered, policy.maxRetryMs));
}

/** The body posted, exactly as it is signed. */
export const eventBody = (event: { id: string; type: string; createdAt: Date; data: Record<string, unknown> }): string =>
  JSON.stringify({ id: event.id, type: event.type, created_at: event.createdAt.toISOString(), data: event.data });

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type AttemptOutcome = 'delivered' | 'retrying' | 'failed' | 'gone' | 'lease_lost';

/** Makes one attempt at a claimed delivery and records it. Never throws for the endpoint's faults. */
export async function attemptDelivery(claim: DeliveryClaim, policy: DeliveryPolicy, log: Logger): Promise<AttemptOutcome> {
  const work = await deliveries.loadDeliveryWork(claim);
  if (!work) return 'gone';
  const body = eventBody(work.event);
  let statusCode: number | null = null;
  let error: string | null = null;
  const startedAt = Date.now();
  try {
    const url = checkUrlForm(work.url, policy.urlPolicy);
    // DNS counts against the attempt's timeout: the lease is sized for it, not for a resolver that hangs.
    const address = await withTimeout(resolveAllowedAddress(url, policy.urlPolicy, policy.resolve), policy.timeoutMs, 'resolving the host');
    const timestamp = Math.floor(Date.now() / 1000);
    const result = await postToAddress(
      url,
      address,
      {
        'Content-Type': 'application/json',
        'User-Agent': 'multi-channel-ai-agent-events/1',
        'X-Event-Id': work.event.id,
        'X-Event-Type': work.event.type,
        'X-Signature': signatureHeader(signingSecrets(claim.endpointId, work), timestamp, body),
      },
      body,
      Math.max(1, policy.timeoutMs - (Date.now() - startedAt)),
    );
    statusCode = result.status;
    if (statusCode < 200 || statusCode > 299) error = `the endpoint answered ${statusCode}`;
  } catch (caught) {
    error = (caught as Error).message || String(caught);
  }
  if (error === null) {
    return (await deliveries.recordDelivered(claim, statusCode!)) ? 'delivered' : 'lease_lost';
  }
  const failures = claim.attempts + 1;
  const recorded = await deliveries.recordFailedAttempt(claim, {
    statusCode,
    error,
    nextAttemptAt: new Date(Date.now() + retryDelayMs(failures, policy)),
    disableAfterMs: policy.disableAfterMs,
  });
  if (!recorded) return 'lease_lost';
  if (recorded.endpointDisabled) {
    const reason = `endpoint disabled after failing for a day; last error: ${error}`;
    await deliveries.failPendingDeliveries(claim.userId, claim.endpointId, reason);
    log.warn({ endpoint_id: claim.endpointId, user_id: claim.userId }, 'webhook endpoint disabled after failing for a day');
  }
  log.info({ delivery_id: claim.id, event_id: claim.eventId, status_code: statusCode, err: { message: error }, outcome: recorded.status }, 'event delivery failed');
  return recorded.status === 'failed' ? 'failed' : 'retrying';
}
