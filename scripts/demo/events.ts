/**
 * The business's own systems, in the demo: a local HTTP receiver registered as the tenant's
 * event endpoint (POST /v1/webhook-endpoints) for every event type, and the events it received,
 * each checked with the verifier the documentation gives (documentation/examples/verify-webhook.js).
 */
import { startEventReceiver, type EventReceiver } from '../../tests/fixtures/eventReceiver';
import { TENANT_EVENT_TYPES } from '../../src/models/TenantEvent';
import { waitUntil, type Progress } from './progress';
import type { Shop } from './scenes';
import type { EventsReport } from './result';

// The documented verifier itself, as a business would paste it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { verifyWebhook } = require('../../documentation/examples/verify-webhook.js') as {
  verifyWebhook: (rawBody: string, header: string | undefined, secret: string) => boolean;
};

export interface Subscription {
  receiver: EventReceiver;
  secret: string;
  endpointId: string;
}

/** Starts the business's receiver and registers it for every event type; the secret is kept to verify. */
export async function subscribeTheBusiness(progress: Progress, shop: Shop): Promise<Subscription> {
  return progress.step(
    "Start the business's own event receiver (127.0.0.1) and register it: POST /v1/webhook-endpoints",
    async () => {
      const receiver = await startEventReceiver();
      try {
        const endpoint = await shop.api.post<{ id: string; secret: string }>('/v1/webhook-endpoints', shop.tenant.apiKey, {
          url: receiver.url,
          events: TENANT_EVENT_TYPES,
        });
        return { receiver, secret: endpoint.secret, endpointId: endpoint.id };
      } catch (error) {
        await receiver.close();
        throw error;
      }
    },
    (s) => `${s.receiver.url} takes ${TENANT_EVENT_TYPES.length} event types; its secret was shown once`,
  );
}

/**
 * Waits until the events of what happened have arrived (each conversation's messages received
 * and answered, the handoff and resume, the lead if one was extracted), then reports them.
 */
export async function collectEvents(progress: Progress, shop: Shop, subscription: Subscription, expected: string[]): Promise<EventsReport> {
  return progress.step(
    'Read the events the business received (signed webhooks, verified with the documented verifier)',
    async () => {
      const { receiver, secret } = subscription;
      await waitUntil(
        `events ${expected.join(', ')}`,
        async () => (expected.every((type) => receiver.accepted().some((e) => e.body.type === type)) ? true : undefined),
        20_000,
        shop.signal,
      );
      return receiver.accepted().map((event) => {
        const data = event.body.data as { customer?: { external_id?: string }; conversation?: { channel?: string } };
        return {
          id: event.body.id,
          type: event.body.type,
          createdAt: event.body.created_at,
          channel: data.conversation?.channel ?? null,
          customer: data.customer?.external_id ?? null,
          verified: verifyWebhook(event.rawBody, event.headers['x-signature'] as string | undefined, secret),
        };
      });
    },
    (events) => `${events.length} events, ${events.filter((e) => e.verified).length} with a valid signature`,
  );
}
