/**
 * Credits (CONTRACT §4.4): top-ups, clamped charges, the balance check before a model call,
 * and the price of tokens. The API (top-ups, the ledger) and the extraction worker (its charge)
 * come through here. A reply is charged inside record_reply (R__replies.sql), which calls the
 * same charge_credits as `charge`; the message worker only prices it here (costForTokens).
 *
 * Every write is a single SQL statement that locks the tenant's row and appends one ledger
 * entry; the ledger trigger moves `users.credit_balance`. Nothing reads a balance into JS to
 * write it back, so concurrent writers can never lose an update or go below zero. Each function
 * takes an optional `client` so a caller can charge inside the transaction that stores what it
 * pays for (the extraction worker's result): both commit together or neither does.
 */
import { config } from '../config';
import { db, withTransaction, type Queryable } from '../utils/database';
import { logger } from '../utils/logger';
import { enqueueConversations } from '../utils/queue';
import { requeueInsufficientCredits } from '../models/ReplyTurn';
import { clearNoCreditsPostponement } from '../models/Extraction';
import { notFound } from '../utils/errors';
import { forgetCredits } from './cachedLookups';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import {
  findBalance,
  insertClampedCharge,
  sumHolds,
  insertTopUp,
  listEntries,
  type CreditEntry,
} from '../models/CreditLedger';

export type { CreditEntry, CreditReason } from '../models/CreditLedger';

/** The largest amount one top-up may add: keeps every balance exactly representable in JS. */
export const MAX_CREDIT_AMOUNT = 1_000_000_000_000;

/** What a charge is for. A `reply` must name the outbound message it paid for. */
export interface ChargeFor {
  reason: 'reply' | 'extraction';
  messageId?: string | null;
  conversationId?: string | null;
  extractionId?: string | null;
  /** Prompt + completion tokens the model reported; kept on the entry for audit. */
  tokens?: number | null;
}

export interface ChargeResult {
  /** Credits actually taken: `cost`, or less when the balance ran out (0 when it was empty). */
  charged: number;
  /** The balance right after this charge. */
  balance: number;
  /** The ledger entry written; null when this reply or extraction had already been charged. */
  entryId: string | null;
  /** True when an earlier charge for the same reply message or extraction exists; nothing was taken. */
  alreadyCharged: boolean;
}

export interface TopUpResult {
  balance: number;
  entry: CreditEntry;
}

function assertWholeCredits(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
}

/**
 * Adds `amount` credits to the tenant as one `top_up` entry. 404 when the user does not exist.
 * Committed on its own (no `client`), the cached "has credits" pre-check is forgotten in every
 * process before this returns (503 when Redis cannot be told; the top-up stands). A caller
 * passing its transaction forgets it after its commit, unless the tenant is new (nothing cached).
 * @param description free text kept on the entry (≤ 500 characters, the column's limit)
 */
export async function topUp(userId: string, amount: number, description?: string | null, client: Queryable = db): Promise<TopUpResult> {
  assertWholeCredits('amount', amount, 1);
  if (amount > MAX_CREDIT_AMOUNT) throw new RangeError(`amount must be at most ${MAX_CREDIT_AMOUNT}`);
  const written = await insertTopUp(userId, amount, description ?? null, client);
  if (!written) throw notFound('User');
  if (client === db) await forgetCredits(userId);
  return written;
}

/**
 * A top-up that wakes the waiting: in the top-up's transaction, the tenant's
 * `insufficient_credits` messages still inside the stale window go back to `pending` (their
 * fallback already went; now the real answer follows) and extraction's "no credits"
 * postponements end; after the commit their conversations are nudged. A nudge lost (Redis
 * away) costs latency only: the sweeper finds pending messages after a lease.
 */
export async function topUpAndWake(userId: string, amount: number, description?: string | null): Promise<TopUpResult> {
  const { result, conversations } = await withTransaction(async (tx) => {
    const written = await topUp(userId, amount, description, tx);
    const woken = await requeueInsufficientCredits(userId, config.STALE_MESSAGE_SECONDS, tx);
    await clearNoCreditsPostponement(userId, tx);
    return { result: written, conversations: woken };
  });
  // Committed: the cached "has credits" pre-check is forgotten in every process before the woken
  // conversations are nudged, so their turns see the credits (503 when Redis cannot be told).
  await forgetCredits(userId);
  if (conversations.length > 0) {
    await enqueueConversations(conversations.map((conversationId) => ({ conversationId, userId, requestId: 'top_up' }))).catch((error: unknown) =>
      logger.warn({ err: { message: (error as Error).message }, user_id: userId }, 'nudging after a top-up failed; the sweeper will'),
    );
    logger.info({ user_id: userId, conversations: conversations.length }, 'top-up woke conversations waiting for credits');
  }
  return result;
}

/**
 * Takes `cost` credits from the tenant, clamped at its balance: a charge larger than what is
 * left takes the balance to zero, never below, whatever runs concurrently. Writes exactly one
 * ledger entry (amount = -charged, possibly 0); a repeated charge for the same reply message or
 * extraction writes nothing and reports `alreadyCharged`, so a retried job cannot pay twice.
 *
 * Pass the caller's transaction as `client` to make the charge commit with the work it pays for.
 * The tenant's row stays locked until that transaction ends, so keep it short.
 */
export async function charge(userId: string, cost: number, what: ChargeFor, client: Queryable = db): Promise<ChargeResult> {
  assertWholeCredits('cost', cost, 0);
  if (what.reason === 'reply' && !what.messageId) throw new TypeError('a reply charge must name its messageId');
  const written = await insertClampedCharge(userId, cost, what, client);
  if (!written) throw notFound('User');
  const { entry, balance } = written;
  // Emptied: the cached pre-check says so from now on. Best effort: a stale "has credits" costs
  // one hold that Postgres refuses, never a model call.
  if (balance === 0) await forgetCredits(userId).catch(() => undefined);
  // `0 - amount`, not `-amount`: a clamped zero charge must not come back as -0.
  return { charged: entry ? 0 - entry.amount : 0, balance, entryId: entry?.id ?? null, alreadyCharged: entry === null };
}

/**
 * Whether the tenant may spend anything: balance > 0. An unknown tenant has none.
 * A snapshot, not a reservation: the later `charge` clamps, so a race here costs at most one
 * reply's worth of credits, never a negative balance.
 */
export async function hasCredits(userId: string, client: Queryable = db): Promise<boolean> {
  return ((await findBalance(userId, client)) ?? 0) > 0;
}

/** The tenant's current balance. 404 when the user does not exist. */
export async function getBalance(userId: string, client: Queryable = db): Promise<number> {
  const balance = await findBalance(userId, client);
  if (balance === null) throw notFound('User');
  return balance;
}

/**
 * The price of `tokens` (prompt + completion, as the model reports them), rounded up so any
 * usage costs at least one credit: ceil(tokens × CREDITS_PER_1K_TOKENS / 1000).
 */
export function costForTokens(tokens: number, creditsPer1kTokens: number = config.CREDITS_PER_1K_TOKENS): number {
  assertWholeCredits('tokens', tokens, 0);
  return Math.ceil((tokens * creditsPer1kTokens) / 1000);
}

/** Credits per 1K prompt (`input`) and completion (`output`) tokens. */
export interface ModelPrice {
  readonly input: number;
  readonly output: number;
}
export type ModelPrices = Readonly<Record<string, ModelPrice>>;

/** The model's price from `MODEL_PRICES`, else `CREDITS_PER_1K_TOKENS` for both kinds of token. */
export function priceOf(
  model: string,
  prices: ModelPrices = config.MODEL_PRICES,
  creditsPer1kTokens: number = config.CREDITS_PER_1K_TOKENS,
): ModelPrice {
  return Object.hasOwn(prices, model) ? prices[model]! : { input: creditsPer1kTokens, output: creditsPer1kTokens };
}

/**
 * The price of a model call's tokens, rounded up to whole credits: ceil((prompt × input +
 * completion × output) / 1000) at the model's price. Used both for the hold (estimated prompt
 * plus max_tokens: the dearest outcome) and for the charge (what the model reports).
 */
export function costForUsage(model: string, promptTokens: number, completionTokens: number, prices?: ModelPrices, creditsPer1kTokens?: number): number {
  assertWholeCredits('promptTokens', promptTokens, 0);
  assertWholeCredits('completionTokens', completionTokens, 0);
  const price = priceOf(model, prices, creditsPer1kTokens);
  return Math.ceil((promptTokens * price.input + completionTokens * price.output) / 1000);
}

/**
 * The models agents may use: `MODEL_PRICES`'s names when it is set, else null (any model).
 */
export function allowedModels(prices: ModelPrices = config.MODEL_PRICES): string[] | null {
  const names = Object.keys(prices);
  return names.length > 0 ? names.sort() : null;
}

/**
 * How long a hold lives unless settled or released: longer than any live turn's model call
 * (every retry's deadline and backoff) plus a lease, so only a crashed worker's hold lapses.
 */
export function holdTtlMs(): number {
  return config.WORKER_LEASE_MS + 3 * (config.OPENAI_TIMEOUT_MS + 8_000);
}

/** Credits held for the tenant's model calls in flight. */
export async function creditsHeld(userId: string): Promise<number> {
  return sumHolds(userId);
}

/** The tenant's ledger, newest first, one page at a time (`cursor` from the previous page). */
export async function listLedger(userId: string, page: PageRequest): Promise<Page<CreditEntry>> {
  const afterId = page.cursor === undefined ? undefined : decodeCursor<string>(page.cursor, 'uuid');
  const rows = await listEntries(userId, page.limit + 1, afterId);
  return toPage(rows, page.limit, (entry) => entry.id);
}
