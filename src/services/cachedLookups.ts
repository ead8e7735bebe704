/**
 * The tenant data the hot paths read on every webhook and every turn, through the cache
 * (cacheService: TTL, single flight, Redis down → Postgres), and the invalidation each write
 * that changes it calls after its commit. Postgres stays the authority wherever it decides:
 * acceptance routes by account in the same statement that stores the message (guarantee 10),
 * `reason_not_to_answer` and `record_reply` judge the conversation under its lock (guarantee 8),
 * and holds and charges lock the tenant's balance (guarantee 14). What is cached here only
 * spares lookups, or stops early what Postgres would refuse anyway.
 *
 * Keys (cacheService.cacheKeys): the account's route is scoped by channel and account, the one
 * lookup that finds a tenant; everything else is under its tenant (`cache:{t:<user id>:…}`), so
 * one tenant's entry can never answer for another's, even for the same id.
 */
import { cacheKeys, getOrLoad, invalidate } from './cacheService';
import { findLiveByExternalId } from '../models/PhoneNumber';
import { findTurnAgent, findTurnNumber, loadOwedConversation, type OwedWork, type TurnAgent, type TurnNumber } from '../models/ReplyTurn';
import { findBalance } from '../models/CreditLedger';
import type { Channel } from '../models/types';

/** Where a channel's account routes: its tenant, live number and linked agent. */
export interface AccountRoute {
  userId: string;
  phoneNumberId: string;
  agentId: string | null;
}

/**
 * The live number registered for a Meta account, or null. Misses are cached too: a webhook's
 * accounts come signed by Meta, not guessed, and a number registered later invalidates it.
 */
export function findAccountRoute(channel: Channel, accountId: string): Promise<AccountRoute | null> {
  return getOrLoad(
    cacheKeys.account(channel, accountId),
    async () => {
      const found = await findLiveByExternalId(channel, accountId);
      return found ? { userId: found.userId, phoneNumberId: found.id, agentId: found.agentId } : null;
    },
    { cacheNull: true },
  );
}

/** A number as its account's route and the turn read it; what a number write must forget. */
export interface NumberIdentity {
  id: string;
  userId: string;
  channel: Channel;
  externalId: string;
}

/**
 * After a committed write that changed numbers (registered, deleted, linked, unlinked, token
 * replaced): their routes and their turn entries are dropped in every process. Throws
 * `unavailable` when Redis cannot be told (the write stands; the caller answers 503).
 */
export async function forgetNumbers(numbers: readonly NumberIdentity[]): Promise<void> {
  if (numbers.length === 0) return;
  await invalidate(...numbers.flatMap((n) => [cacheKeys.account(n.channel, n.externalId), cacheKeys.tenant(n.userId, 'number', n.id)]));
}

/** After committed token changes that leave routes alone (key rotation): the turn entries only. */
export async function forgetTurnNumbers(numbers: readonly { id: string; userId: string }[]): Promise<void> {
  if (numbers.length === 0) return;
  await invalidate(...numbers.map((n) => cacheKeys.tenant(n.userId, 'number', n.id)));
}

/** The tenant's agent as a turn reads it, or null. */
export async function findCachedTurnAgent(userId: string, agentId: string): Promise<TurnAgent | null> {
  const agent = await getOrLoad(cacheKeys.tenant(userId, 'agent', agentId), () => findTurnAgent(userId, agentId), { cacheNull: true });
  // JSON has no dates: archived_at comes back from Redis as text.
  return agent && { ...agent, archivedAt: agent.archivedAt === null ? null : new Date(agent.archivedAt) };
}

/** The tenant's live number as a turn reads it (token encrypted), or null when deleted. */
export function findCachedTurnNumber(userId: string, phoneNumberId: string): Promise<TurnNumber | null> {
  return getOrLoad(cacheKeys.tenant(userId, 'number', phoneNumberId), () => findTurnNumber(userId, phoneNumberId), { cacheNull: true });
}

/** After a committed change to an agent (changed, archived): its turn entry is dropped everywhere. */
export async function forgetAgent(userId: string, agentId: string): Promise<void> {
  await invalidate(cacheKeys.tenant(userId, 'agent', agentId));
}

/**
 * Whether the tenant has any credits: the pre-check before a turn spends a round trip on its
 * history and hold. Cached is only this yes/no, which changes far more rarely than the
 * balance: to yes by a top-up (which forgets it), to no by a charge that empties the balance
 * (which forgets it too). A stale yes costs one hold that Postgres refuses; no stale no is left.
 */
export async function hasCreditsCached(userId: string): Promise<boolean> {
  const positive = await getOrLoad(cacheKeys.tenant(userId, 'credits', 'positive'), async () => ((await findBalance(userId)) ?? 0) > 0, { cacheNull: true });
  return positive === true;
}

/** After a committed top-up, or a charge that left the balance at zero. */
export async function forgetCredits(userId: string): Promise<void> {
  await invalidate(cacheKeys.tenant(userId, 'credits', 'positive'));
}

/** What a turn starts from: its context and what it owes, and whether the tenant has credits (cached). */
export interface TurnWork extends OwedWork {
  hasCredits: boolean;
}

/**
 * The start of a turn: the conversation, Postgres's verdict on answering it, what it owes and
 * the history the model reads from Postgres, in one query; its agent, its number and the credits pre-check from the cache, in
 * one more round trip (to Redis). Null when the conversation is not the tenant's.
 */
export async function loadTurnWork(userId: string, conversationId: string): Promise<TurnWork | null> {
  const owed = await loadOwedConversation(userId, conversationId);
  if (!owed) return null;
  const { conversation } = owed;
  const [agent, phoneNumber, hasCredits] = await Promise.all([
    conversation.agentId ? findCachedTurnAgent(userId, conversation.agentId) : null,
    findCachedTurnNumber(userId, owed.phoneNumberId),
    hasCreditsCached(userId),
  ]);
  return { context: { reasonNotToAnswer: owed.reasonNotToAnswer, conversation, agent, phoneNumber }, owed: owed.owed, history: owed.history, hasCredits };
}
