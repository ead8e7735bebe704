/**
 * What happens to the message stream's nudges that keep failing or were lost. Redis only
 * carries nudges; Postgres knows what is owed. So a nudge delivered too often is poison (it is
 * set aside for inspection and its messages are failed, so one bad conversation cannot crash
 * workers forever), and anything owed that no nudge served for a while is nudged again.
 */
import type { RedisClient as Redis } from '../utils/redis';
import { logger } from '../utils/logger';
import { replyMetrics } from '../utils/metrics';
import { deadLetterStream, enqueueConversations, messageStream, isInboxNudge, parseNudge, type Nudge } from '../utils/queue';
import { findWaitingInbox, setInboxAside } from '../models/Inbox';
import { failPendingInbound, findStaleConversations } from '../models/ReplyTurn';

/** Scans are bounded; what is left is found by the next sweep. */
const SWEEP_LIMIT = 500;
/** Bounds memory: the dead-letter stream keeps about this many entries. */
const DEAD_LETTER_MAX_LENGTH = '10000';

/** The longest a provider's own hint (`Retry-After`) may make a turn wait. */
const MAX_HINT_MS = 3_600_000;

/**
 * How long a conversation waits before its next try after `failures` transient failures in a
 * row (the model or Graph down, throttled, or its circuit open): `baseMs` doubled per failure,
 * capped at `maxMs`, with jitter (between half and all of it) so a fleet that failed together
 * does not come back together; never less than the provider's hint, which may ask longer than
 * the cap (up to an hour). Guarantee 12: it waits, for as long as STALE_MESSAGE_SECONDS allows.
 */
export function retryBackoffMs(
  failures: number,
  options: { baseMs: number; maxMs: number; hintMs?: number | undefined },
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  const jittered = Math.round(ceiling * (0.5 + random() * 0.5));
  return Math.max(jittered, Math.min(options.hintMs ?? 0, MAX_HINT_MS));
}

/**
 * Whether an entry delivered this often is poison. Only deliveries that ended in a crash count:
 * a transient failure acknowledges its entry and nudges again after a back-off, and a delivery
 * that recorded progress resets its count, so what reaches `maxDeliveries` died that often on
 * the same work.
 */
export function isPoison(deliveries: number, maxDeliveries: number): boolean {
  return deliveries >= maxDeliveries;
}

/**
 * Dead-letters a poison entry of shard `shard`: copies it to the shard's dead-letter stream, sets its customer's inbox
 * rows aside and fails what its conversation owes (`poison`), so the API says why. The caller
 * acknowledges the entry afterwards.
 */
export async function deadLetter(shard: number, entryId: string, deliveries: number, redis: Redis): Promise<void> {
  const [entry] = (await redis.xrange(messageStream(shard), entryId, entryId)) as [string, string[]][];
  const fields = entry?.[1] ?? [];
  const nudge = entry ? parseNudge(fields) : null;
  await redis.xadd(deadLetterStream(shard), 'MAXLEN', '~', DEAD_LETTER_MAX_LENGTH, '*', 'entry_id', entryId, 'deliveries', String(deliveries), ...fields);
  if (nudge) await failOwed(nudge);
  replyMetrics.failures.inc({ reason: 'poison' });
  logger.error({ entry: entryId, deliveries, ...(nudge ? nudgeLog(nudge) : {}) }, 'poison entry dead-lettered');
}

async function failOwed(nudge: Nudge): Promise<void> {
  const conversationId = isInboxNudge(nudge)
    ? (await setInboxAside(nudge, 'poison: moved to the dead-letter queue')).conversationId
    : nudge.conversationId;
  if (conversationId) {
    await failPendingInbound(nudge.userId, conversationId, { code: 'poison', message: 'Processing kept failing; moved to the dead-letter queue' });
  }
}

/**
 * Nudges again what Postgres says is owed and untouched for `idleMs` (a nudge lost to a Redis
 * restart, a trimmed stream, a failed XADD): customers whose inbox rows wait to be filed, and
 * conversations owing a reply or a send.
 */
export async function renudgeLost(idleMs: number, redis: Redis): Promise<void> {
  const waiting = await findWaitingInbox(idleMs, SWEEP_LIMIT);
  const stale = await findStaleConversations(idleMs, SWEEP_LIMIT);
  if (waiting.length + stale.length === 0) return;
  await enqueueConversations(
    [
      ...waiting.map((key) => ({ ...key, requestId: 'sweeper' })),
      ...stale.map((s) => ({ conversationId: s.conversationId, userId: s.userId, requestId: 'sweeper' })),
    ],
    redis,
  );
  logger.info({ inbox: waiting.length, conversations: stale.length }, 'sweeper re-queued customers waiting to be filed and conversations owed a reply');
}

/** What a log line may say of a nudge. */
export function nudgeLog(nudge: Nudge) {
  return isInboxNudge(nudge)
    ? // The customer's id is their phone number on WhatsApp: kept out of logs.
      { phone_number_id: nudge.phoneNumberId }
    : { conversation_id: nudge.conversationId };
}
