/**
 * Records what a verified Meta webhook says, then nudges the workers. Every customer message
 * is in Postgres (the `inbox` table) before the caller answers Meta 200, so it is
 * filed and answered even if Redis loses every stream entry afterwards (the sweeper
 * re-nudges). Dedupe is Postgres' unique indexes on the message id (inbox, then messages),
 * which hold across Meta's whole retry horizon, days or hours apart.
 */
import { logger } from '../utils/logger';
import { AppError } from '../utils/errors';
import { enqueueConversations, type Nudge } from '../utils/queue';
import type { NormalizedEvent, NormalizedMessage } from './metaNormalizer';
import { Batcher } from '../utils/batcher';
import { config } from '../config';
import {
  acceptCustomerMessages,
  fileInbox,
  markUnsentByCustomer,
  type AcceptResult,
  type InboxEvent,
  type InboxKey,
} from '../models/Inbox';
import { ingestBusinessEcho, type BusinessEchoFields, type IngestResult } from '../models/BusinessEcho';
import { applyOutboundStatus, settlePartByStatus } from '../models/OutboundStatus';
import { parsePartCallbackData } from './metaGraphService';
import { findAccountRoute } from './cachedLookups';
import type { Channel } from '../models/types';

/** Message types the agent can say something useful to; the rest are stored only. */
const UNANSWERABLE_TYPES = new Set(['reaction', 'unsupported', 'system', 'deleted', 'ephemeral', 'unknown']);

const TRACKED_STATUSES = new Set(['sent', 'delivered', 'read', 'failed']);

export interface IngestSummary {
  recorded: number;
  duplicates: number;
  queued: number;
  statuses: number;
  ignored: number;
}

function messageFields(event: NormalizedMessage): BusinessEchoFields {
  return {
    channel: event.channel,
    account_id: event.accountId,
    customer_id: event.customerId,
    external_id: event.externalId,
    type: event.type,
    text: event.text,
    payload: { ...event.payload, ...(event.media ? { media: event.media } : {}), ...(event.replyTo ? { reply_to: event.replyTo } : {}) },
    timestamp: event.timestamp.toISOString(),
  };
}

/**
 * Customer messages and reactions of concurrent webhooks are written together (see
 * utils/batcher.ts): one statement and one commit for many requests under load, and no added
 * wait when idle. Each webhook still answers only once its own messages are committed. When
 * Postgres stalls, at most WEBHOOK_QUEUE_MAX messages wait; later webhooks get 503 at once and
 * Meta retries them, instead of the process holding every body in memory.
 */
const customerMessages = new Batcher<InboxEvent, AcceptResult | Error>(acceptCustomerMessages, {
  maxBatch: 100,
  maxInFlight: 4,
  maxWaiting: config.WEBHOOK_QUEUE_MAX,
});

/** The customer-side row an event stores, or null when the event is handled otherwise. */
function customerFields(event: NormalizedEvent): InboxEvent | null {
  if (event.kind === 'message' && !event.isEcho && !event.isDeleted) {
    return {
      ...messageFields(event),
      customer_name: event.customerName,
      // Standby: another app owns the thread under Handover Protocol, so we must not answer.
      answerable: !event.isStandby && !UNANSWERABLE_TYPES.has(event.type),
    };
  }
  if (event.kind === 'reaction') {
    // Reactions have no id of their own on Instagram, and WhatsApp reuses one for add and
    // remove, so the dedupe key (which includes the emoji and time) serves as the id.
    return {
      channel: event.channel,
      account_id: event.accountId,
      customer_id: event.customerId,
      customer_name: null,
      external_id: event.dedupeKey,
      type: 'reaction',
      text: event.emoji,
      payload: { target_external_id: event.targetExternalId, emoji: event.emoji, removed: event.removed },
      timestamp: event.timestamp.toISOString(),
      answerable: false,
    };
  }
  return null;
}

/** Everything that is not a customer's own message: echoes, unsends, statuses, reads, errors. */
async function recordOther(event: NormalizedEvent, summary: IngestSummary) {
  switch (event.kind) {
    case 'message':
      if (event.isDeleted) await markUnsentByCustomer(event.channel, event.externalId);
      else if (event.isEcho) {
        if (!(await findAccountRoute(event.channel, event.accountId))) {
          noteUnknownAccount(event.channel, event.accountId, summary);
          return;
        }
        const result = await ingestBusinessEcho(messageFields(event), config.SEND_IN_DOUBT_GRACE_MS);
        noteEcho(result, event.channel, event.accountId, summary);
      }
      return;
    case 'status': {
      if (!TRACKED_STATUSES.has(event.status)) {
        summary.ignored++;
        return;
      }
      const status = event.status as 'sent' | 'delivered' | 'read' | 'failed';
      const error = event.errors[0];
      const failure = error
        ? { code: String(error.code ?? 'unknown'), message: error.details ?? error.message ?? error.title ?? 'failed' }
        : // A failed message always says why (a schema CHECK), even when Meta did not.
          status === 'failed'
          ? { code: 'unknown', message: 'Meta reported the message failed without saying why' }
          : null;
      // Our sends name their part: the status settles it even if its worker died before
      // storing Meta's id, so the part is not sent twice (outbound_parts, R__sending.sql).
      const part = parsePartCallbackData(event.bizOpaqueCallbackData);
      const settled = part ? await settlePartByStatus(event.channel, event.accountId, part, event.externalId, status, failure) : false;
      const moved = await applyOutboundStatus(event.channel, event.externalId, status, failure);
      summary.statuses++;
      if (!moved && !settled) logger.debug({ external_id: event.externalId, status: event.status }, 'status for an unknown message, or not a step forward');
      return;
    }
    case 'read':
      // Instagram says the customer saw our message: the same fact as WhatsApp's `read`.
      await applyOutboundStatus(event.channel, event.externalId, 'read', null);
      summary.statuses++;
      return;
    case 'error':
      logger.warn({ channel: event.channel, account_id: event.accountId, code: event.code, title: event.title, details: event.details }, 'Meta reported an error');
      summary.ignored++;
      return;
    case 'ignored':
      logger.info({ channel: event.channel, account_id: event.accountId, reason: event.reason, detail: event.detail, path: event.path }, 'webhook item ignored');
      summary.ignored++;
      return;
    case 'reaction':
      return;
  }
}

/**
 * Accepts a body's customer messages together, in body order; throws if any was not stored.
 * One nudge per customer and number with newly accepted messages: the worker files them all.
 * A number with no agent owes no reply, so its messages are filed here instead, and nothing
 * is queued for them.
 */
async function recordCustomerMessages(events: NormalizedEvent[], summary: IngestSummary, nudges: Nudge[], requestId: string) {
  const candidates = events.map(customerFields).filter((fields): fields is InboxEvent => fields !== null);
  const known = await knownAccounts(candidates);
  const rows: InboxEvent[] = [];
  for (const row of candidates) {
    if (known.has(accountOf(row))) rows.push(row);
    else noteUnknownAccount(row.channel, row.account_id, summary);
  }
  if (rows.length === 0) return;
  const results = await customerMessages.submit(rows);
  const customers = new Map<string, { key: InboxKey; hasAgent: boolean }>();
  results.forEach((result, i) => {
    if (result instanceof Error) throw result;
    if (result.outcome === 'unknown_account') {
      noteUnknownAccount(rows[i]!.channel, rows[i]!.account_id, summary);
    } else if (result.outcome === 'duplicate') {
      summary.duplicates++;
    } else {
      summary.recorded++;
      customers.set(`${result.key!.phoneNumberId}:${result.key!.customerId}`, { key: result.key!, hasAgent: result.hasAgent });
    }
  });
  for (const { key, hasAgent } of customers.values()) {
    if (hasAgent) nudges.push({ ...key, requestId });
    else await fileWithoutAgent(key);
  }
}

const accountOf = (row: { channel: string; account_id: string }) => `${row.channel}\u0000${row.account_id}`;

/**
 * The accounts among `rows` that some tenant has registered, from the cached routes (Postgres
 * when Redis is away): messages for the others stop here, without a write. Only a filter: the
 * statement that accepts a message still routes it by account itself, so it is filed under the
 * tenant that has the account at that moment (guarantee 10), whatever the cache holds.
 */
async function knownAccounts(rows: { channel: string; account_id: string }[]): Promise<Set<string>> {
  const accounts = new Map(rows.map((row) => [accountOf(row), row]));
  const known = new Set<string>();
  await Promise.all(
    [...accounts].map(async ([account, row]) => {
      if (await findAccountRoute(row.channel as Channel, row.account_id)) known.add(account);
    }),
  );
  return known;
}

/** Accepted is stored: if filing fails now, the sweeper files the rows later. */
async function fileWithoutAgent(key: InboxKey): Promise<void> {
  try {
    await fileInbox(key);
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message }, phone_number_id: key.phoneNumberId }, 'could not file messages to a number without agent; the sweeper will');
  }
}

function noteUnknownAccount(channel: string, accountId: string, summary: IngestSummary): void {
  logger.warn({ channel, account_id: accountId }, 'webhook for an account no tenant registered');
  summary.ignored++;
}

/** A business echo is recorded as sent by a human (or recognised as ours): nothing to answer. */
function noteEcho(result: IngestResult, channel: string, accountId: string, summary: IngestSummary): void {
  if (result.outcome === 'unknown_account') noteUnknownAccount(channel, accountId, summary);
  else if (result.outcome === 'recorded') summary.recorded++;
  else summary.duplicates++;
}

/**
 * Records every event of a verified body. Throws `unavailable` (503, so Meta retries) when
 * Postgres cannot take them. The nudges are written to Redis before this returns but their
 * acknowledgement is not awaited: Meta's 200 depends on Postgres alone, and a nudge that
 * fails (or a crash before it lands) is only logged, since the sweeper repairs it. Waiting
 * for Redis's answer cost the webhook a tenth of its throughput (npm run bench -- webhook).
 */
export async function ingestWebhookEvents(events: NormalizedEvent[], requestId: string): Promise<IngestSummary> {
  const summary: IngestSummary = { recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 0 };
  const nudges: Nudge[] = [];
  try {
    // Customers' messages first, together and in body order (their sequence follows it),
    // then what refers to them or to our replies.
    await recordCustomerMessages(events, summary, nudges, requestId);
    for (const event of events) await recordOther(event, summary);
  } catch (error) {
    throw new AppError('unavailable', 'The webhook could not be recorded; retry later', undefined, { cause: error });
  }
  if (nudges.length > 0) {
    enqueueConversations(nudges).catch((error: Error) => {
      logger.warn({ err: { message: error.message }, nudges: nudges.length }, 'could not queue replies; the sweeper will');
    });
  }
  summary.queued = nudges.length;
  return summary;
}
