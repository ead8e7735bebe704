/**
 * Records what a verified Meta webhook says, then nudges the workers. Every message is in
 * Postgres before the caller answers Meta 200, so it is answered even if Redis loses every
 * stream entry afterwards (the sweeper re-nudges). Dedupe is Postgres' unique index on the
 * message id, which holds across Meta's whole retry horizon, days or hours apart.
 */
import { logger } from '../utils/logger';
import { AppError } from '../utils/errors';
import { enqueueConversations, type ConversationNudge } from '../utils/queue';
import type { NormalizedEvent, NormalizedMessage } from './metaNormalizer';
import {
  applyOutboundStatus,
  ingestBusinessEcho,
  ingestCustomerMessage,
  markUnsentByCustomer,
  type IngestResult,
} from '../models/MetaEvent';

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

function messageFields(event: NormalizedMessage) {
  return {
    channel: event.channel,
    accountId: event.accountId,
    customerId: event.customerId,
    externalId: event.externalId,
    type: event.type,
    text: event.text,
    payload: { ...event.payload, ...(event.media ? { media: event.media } : {}), ...(event.replyTo ? { reply_to: event.replyTo } : {}) },
    timestamp: event.timestamp,
  };
}

async function recordMessage(event: NormalizedMessage): Promise<IngestResult | null> {
  if (event.isDeleted) {
    await markUnsentByCustomer(event.channel, event.externalId);
    return null;
  }
  if (event.isEcho) return ingestBusinessEcho(messageFields(event));
  return ingestCustomerMessage({
    ...messageFields(event),
    customerName: event.customerName,
    // Standby: another app owns the thread under Handover Protocol, so we must not answer.
    answerable: !event.isStandby && !UNANSWERABLE_TYPES.has(event.type),
  });
}

async function recordEvent(event: NormalizedEvent, summary: IngestSummary, nudges: ConversationNudge[], requestId: string) {
  switch (event.kind) {
    case 'message': {
      const result = await recordMessage(event);
      if (!result) return;
      noteResult(result, event.channel, event.accountId, summary, nudges, requestId);
      return;
    }
    case 'reaction': {
      // Reactions have no id of their own on Instagram, and WhatsApp reuses one for add and
      // remove, so the dedupe key (which includes the emoji and time) serves as the id.
      const result = await ingestCustomerMessage({
        channel: event.channel,
        accountId: event.accountId,
        customerId: event.customerId,
        customerName: null,
        externalId: event.dedupeKey,
        type: 'reaction',
        text: event.emoji,
        payload: { target_external_id: event.targetExternalId, emoji: event.emoji, removed: event.removed },
        timestamp: event.timestamp,
        answerable: false,
      });
      noteResult(result, event.channel, event.accountId, summary, nudges, requestId);
      return;
    }
    case 'status': {
      if (!TRACKED_STATUSES.has(event.status)) {
        summary.ignored++;
        return;
      }
      const error = event.errors[0];
      const moved = await applyOutboundStatus(
        event.channel,
        event.externalId,
        event.status as 'sent' | 'delivered' | 'read' | 'failed',
        error ? { code: String(error.code ?? 'unknown'), message: error.details ?? error.message ?? error.title ?? 'failed' } : null,
      );
      summary.statuses++;
      if (!moved) logger.debug({ external_id: event.externalId, status: event.status }, 'status for an unknown message, or not a step forward');
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
  }
}

function noteResult(
  result: IngestResult,
  channel: string,
  accountId: string,
  summary: IngestSummary,
  nudges: ConversationNudge[],
  requestId: string,
): void {
  switch (result.outcome) {
    case 'unknown_account':
      logger.warn({ channel, account_id: accountId }, 'webhook for an account no tenant registered');
      summary.ignored++;
      return;
    case 'duplicate':
    case 'own_echo':
      summary.duplicates++;
      return;
    case 'recorded':
      summary.recorded++;
      if (result.status === 'pending') {
        nudges.push({ conversationId: result.conversationId!, userId: result.userId!, messageId: result.messageId!, requestId });
      }
  }
}

/**
 * Records every event of a verified body. Throws `unavailable` (503, so Meta retries) when
 * Postgres cannot take them; a failed nudge is only logged, since the sweeper repairs it.
 */
export async function ingestWebhookEvents(events: NormalizedEvent[], requestId: string): Promise<IngestSummary> {
  const summary: IngestSummary = { recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 0 };
  const nudges: ConversationNudge[] = [];
  try {
    // In body order: two messages of one conversation in one body keep their order.
    for (const event of events) await recordEvent(event, summary, nudges, requestId);
  } catch (error) {
    throw new AppError('unavailable', 'The webhook could not be recorded; retry later', undefined, { cause: error });
  }
  try {
    await enqueueConversations(nudges);
    summary.queued = nudges.length;
  } catch (error) {
    logger.warn({ err: { message: (error as Error).message }, nudges: nudges.length }, 'could not queue replies; the sweeper will');
  }
  return summary;
}
