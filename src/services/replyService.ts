/**
 * One conversation's turn, run by a message worker while it holds the conversation's lease:
 * send what is queued, then answer every pending customer message with one reply, charge it,
 * send it, and go round again until nothing is owed. Postgres is the source of truth at every
 * step, so a worker killed anywhere leaves work the next one finishes without answering twice.
 *
 * The reply is committed (with its charge, and the customer messages marked answered) BEFORE
 * it goes to Graph, as a queued outbound message; sending moves it to `sent`. Each part is
 * marked `sending` in its own commit before it goes, so a worker killed between Graph's answer
 * and its record leaves the part in doubt, not forgotten: the next one waits
 * SEND_IN_DOUBT_GRACE_MS for Meta's status or echo to settle it before sending it again.
 */
import { randomUUID } from 'node:crypto';
import { config } from '../config';
import { logger } from '../utils/logger';
import { withTransaction } from '../utils/database';
import { abortableSleep } from '../utils/retry';
import { costForUsage, holdTtlMs } from './creditService';
import type { OpenAIService } from './openaiService';
import { ModelError } from './modelErrors';
import { buildChatMessages, estimatePromptTokens } from './chatPrompt';
import { fetchMedia, GraphError, partCallbackData, retryDelayMs, splitForChannel, type GraphClient, type MediaFetcher } from './metaGraphService';
import { describeForModel, mediaOf, prepareTurnMedia } from './mediaService';
import { insertMessage, type Message } from '../models/Message';
import {
  ANSWERED_ELSEWHERE,
  beginReplyAttempt,
  cancelBotReply,
  fallbackAlreadyQueued,
  undoReplyAttempt,
  claimOutboundPart,
  markInboundStatus,
  markOutboundFailed,
  markOutboundSent,
  recordPartSent,
  recordReply,
  releaseHold,
  releasePart,
  type RecordedReply,
  type StoredReplyContext,
} from '../models/ReplyTurn';
import { decryptAccessToken } from './accessTokens';
import { forgetCredits, loadTurnWork } from './cachedLookups';
import { replyMetrics } from '../utils/metrics';
import type { SendRateLimiter } from '../utils/sendRate';

/**
 * A transient failure (the model or Graph failing or throttling, the lease lost): nothing is
 * wrong with the work, which stays owed in Postgres. The worker backs off and tries again
 * (guarantee 12); it counts toward neither attempts nor poison. `retryAfterMs`: the provider's
 * own hint (`Retry-After`, Meta's pair pace), honoured as the least wait.
 */
export class RetryLater extends Error {
  override name = 'RetryLater';

  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * The tenant's circuit for its agent's model is open: no call was made and no attempt counted
 * (guarantee 11). The work waits; the worker lets go of the nudge and nudges again after
 * `retryAfterMs`, so waiting on a failing model never spends deliveries either.
 */
export class WaitForCircuit extends RetryLater {
  override name = 'WaitForCircuit';

  constructor(override readonly retryAfterMs: number) {
    super(`model circuit open; waiting ${retryAfterMs} ms`, retryAfterMs);
  }
}

export interface ReplyDeps {
  openai: OpenAIService;
  graph: GraphClient;
  /** Aborted when the worker loses the conversation's lease or shuts down. */
  signal: AbortSignal;
  now?: () => number;
  /** How long a part in doubt waits for Meta to settle it; SEND_IN_DOUBT_GRACE_MS by default. */
  sendInDoubtGraceMs?: number;
  /**
   * Called when the turn has recorded progress (a reply recorded, a message sent): a delivery
   * that dies after it is no crash on the same work (poison counts only those with none).
   */
  onProgress?: () => void;
  /** Downloads customers' media (voice notes, images); the Graph `config` names by default. */
  fetchMedia?: MediaFetcher;
  /** Meta's throughput per account, shared by every worker; none: sends go unpaced. */
  sendRate?: SendRateLimiter;
}

/** Everything a turn needs to answer a conversation, the number's access token decrypted. */
export interface ReplyContext extends Omit<StoredReplyContext, 'phoneNumber'> {
  /** Null when the number was deleted. */
  phoneNumber: { id: string; externalId: string; agentId: string | null; accessToken: string } | null;
}

function withAccessToken({ phoneNumber, ...rest }: StoredReplyContext): ReplyContext {
  if (!phoneNumber) return { ...rest, phoneNumber: null };
  const { accessTokenEncrypted, ...number } = phoneNumber;
  return { ...rest, phoneNumber: { ...number, accessToken: decryptAccessToken(number.id, accessTokenEncrypted) } };
}

/** Graph sends retried in place before the turn gives up for a lease period. */
const SEND_ATTEMPTS_IN_PLACE = 3;
const MAX_SEND_WAIT_MS = 10_000;
/** How often a part in doubt looks again whether Meta's status or echo settled it. */
const IN_DOUBT_POLL_MS = 200;

/**
 * What the model reads for a message: its text, and for other types what they are in a few
 * typed words (services/mediaService.ts); `image`: true when the image itself goes with it,
 * `'earlier'` for a photo the model was shown in an earlier turn.
 */
export function renderForModel(message: Pick<Message, 'type' | 'text'> & Partial<Pick<Message, 'payload'>>, image: boolean | 'earlier' = false): string | null {
  return describeForModel({ payload: null, ...message }, image);
}

export async function serveConversation(userId: string, conversationId: string, deps: ReplyDeps): Promise<void> {
  const now = deps.now ?? Date.now;
  const log = logger.child({ conversation_id: conversationId, user_id: userId });
  for (;;) {
    if (deps.signal.aborted) throw new RetryLater('lease lost or shutting down');
    const work = await loadTurnWork(userId, conversationId);
    if (!work || work.owed.length === 0) return;
    const { owed } = work;
    const context = withAccessToken(work.context);
    await sendMessages(context, owed.filter((m) => m.direction === 'outbound'), deps, log);

    const pending = owed.filter((m) => m.direction === 'inbound');
    if (pending.length === 0) return;
    const ids = pending.map((m) => m.id);
    const newest = pending[pending.length - 1]!;

    // The same verdict filing and record_reply reach (reason_not_to_answer), read with the turn.
    const skip = context.reasonNotToAnswer;
    if (skip) {
      await markInboundStatus(userId, ids, 'ignored');
      log.info({ reason: skip, messages: ids.length }, 'not answering');
      continue;
    }
    const agent = context.agent!;

    // Stale cut-off: a message older than STALE_MESSAGE_SECONDS by Meta's clock when it could
    // first be answered (after an outage, a week of Meta's retries) is kept, unanswered and
    // uncharged; the customer has left, and the 24 h window has closed.
    const staleBefore = now() - config.STALE_MESSAGE_SECONDS * 1000;
    const stale = pending.filter((m) => (m.externalTimestamp ?? m.createdAt).getTime() < staleBefore);
    if (stale.length > 0) {
      await markInboundStatus(userId, stale.map((m) => m.id), 'stale', {
        code: 'stale',
        message: `Older than STALE_MESSAGE_SECONDS (${config.STALE_MESSAGE_SECONDS} s) when it could first be answered; not answered`,
      });
      replyMetrics.failures.inc({ reason: 'stale' }, stale.length);
      log.warn({ messages: stale.length }, 'stale messages not answered');
      continue;
    }

    // Debounce: wait until the newest message is `debounce_ms` old, then look again, so a
    // burst gets one reply that sees all of it.
    const wait = newest.createdAt.getTime() + agent.debounceMs - now();
    if (wait > 0) {
      await abortableSleep(wait, deps.signal).catch(() => undefined);
      continue;
    }

    // The cached pre-check: a tenant known to have nothing spends no attempt, history read or hold.
    if (!work.hasCredits) {
      await answerWithoutCredits(context, pending, log);
      continue;
    }
    // A call the tenant's open circuit would refuse is no attempt: wait without counting it.
    if (deps.openai.breakerOpen(agent.model, userId)) {
      replyMetrics.failures.inc({ reason: 'model_circuit_open' });
      throw new WaitForCircuit(deps.openai.circuitRetryAfterMs(agent.model, userId));
    }
    void markReadBestEffort(context, newest, deps.graph, log).catch((error: unknown) => log.warn({ err: error }, 'mark-as-read failed'));
    // Voice notes are transcribed (and charged) and images fetched here, in the worker, once per
    // message; what cannot be had is described to the model by its type instead.
    const { history } = work;
    let turnHistory = history;
    let images = new Map<string, string>();
    if (pending.some((m) => mediaOf(m) !== null)) {
      const prepared = await prepareTurnMedia(
        { userId, conversationId, channel: context.conversation.channel, accessToken: context.phoneNumber?.accessToken ?? '', vision: agent.vision },
        pending,
        { openai: deps.openai, fetchMedia: deps.fetchMedia ?? fetchMedia, signal: deps.signal },
      );
      const updated = new Map(prepared.messages.map((m) => [m.id, m]));
      turnHistory = history.map((m) => updated.get(m.id) ?? m);
      images = prepared.images;
    }
    const messages = buildChatMessages({
      systemPrompt: agent.systemPrompt,
      // Only this turn's images are sent (again and again would cost their tokens every reply);
      // an earlier one, which the model saw and answered then, is named.
      history: turnHistory.map((m) => ({
        author: m.author,
        text: renderForModel(m, images.has(m.id) || (agent.vision && !ids.includes(m.id) ? 'earlier' : false)),
        image: images.get(m.id),
      })),
      historyLimit: agent.historyLimit,
      maxPromptTokens: agent.maxPromptTokens,
    });

    // Guarantee 14: hold the dearest outcome (the prompt as estimated plus max_tokens, at the
    // model's price) before calling; concurrent turns of the tenant see each other's holds, so
    // credits for one reply buy one model call, however many conversations ask at once. The
    // attempt is counted with the hold, in one round trip; a refused hold counts none.
    const holdAmount = costForUsage(agent.model, estimatePromptTokens(messages), agent.maxTokens);
    const { holdId, attempts } = await beginReplyAttempt(userId, conversationId, ids, holdAmount, holdTtlMs());
    if (holdId === null) {
      await answerWithoutCredits(context, pending, log);
      continue;
    }
    if (attempts > config.MESSAGE_MAX_ATTEMPTS) {
      await releaseHoldQuietly(userId, holdId, log);
      await markInboundStatus(userId, ids, 'failed', { code: 'max_attempts', message: 'Gave up after repeated failures; see the logs' });
      replyMetrics.failures.inc({ reason: 'max_attempts' });
      log.error({ attempts }, 'message failed after its last attempt');
      continue;
    }
    // record_reply settles the hold in the reply's transaction; any other way out releases it.
    let settled = false;
    let recorded: RecordedReply;
    let firstPart: FirstPart | null;
    let tokens: number;
    let cost: number;
    try {
      let completion;
      const modelTimer = replyMetrics.modelLatency.startTimer();
      try {
        completion = await deps.openai.complete({
          model: agent.model,
          tenantId: userId,
          temperature: agent.temperature,
          maxTokens: agent.maxTokens,
          messages,
          promptCacheKey: conversationId,
          signal: deps.signal,
        });
      } catch (error) {
        if (error instanceof ModelError && !error.retryable) {
          await markInboundStatus(userId, ids, 'failed', { code: error.code, message: error.message });
          replyMetrics.failures.inc({ reason: error.code });
          // Not configured is not a refusal: say what is missing, as the startup warning does.
          log.warn({ code: error.code, reason: error.message }, error.code === 'openai_not_configured' ? 'OPENAI_API_KEY is not set: no model call; messages failed' : 'model refused the turn; messages failed');
          continue;
        }
        replyMetrics.failures.inc({ reason: error instanceof ModelError ? error.code : 'model_error' });
        if (error instanceof ModelError && error.kind === 'circuit_open' && error.providerRequests === 0) {
          // Refused by the circuit (it opened after the peek above): no call reached the
          // provider, so this was no attempt either.
          await undoReplyAttempt(userId, ids);
          throw new WaitForCircuit(error.retryAfterMs ?? 1_000);
        }
        // A transient failure is no attempt either: only a turn that dies mid-call (a crash)
        // keeps its count, so an outage of any length fails nothing (guarantee 12).
        await undoReplyAttempt(userId, ids);
        throw new RetryLater(`model call failed: ${(error as Error).message}`, error instanceof ModelError ? error.retryAfterMs : undefined);
      } finally {
        modelTimer();
      }

      if (deps.signal.aborted) throw new RetryLater('lease lost during the model call');
      firstPart = await firstPartToClaim(context, completion.text, deps);
      tokens = completion.promptTokens + completion.completionTokens;
      // Priced at the model the agent asked for (the one held for), by input and output tokens.
      cost = costForUsage(agent.model, completion.promptTokens, completion.completionTokens);
      // A human may have taken over (API message, Instagram echo) or the number been relinked
      // while the model was thinking: then no reply and no charge; the next round marks the
      // messages ignored. If another worker answered them first (a lease that lapsed), nothing
      // is written, and whatever is still pending is answered by the next round.
      try {
        recorded = await recordReply(userId, conversationId, { answered: ids, text: completion.text, replyToMessageId: newest.id, cost, tokens, holdId, firstPart });
        settled = true;
      } catch (error) {
        if ((error as { code?: string }).code !== ANSWERED_ELSEWHERE) throw error;
        log.warn({ reason: 'pending messages were answered elsewhere' }, 'reply dropped');
        continue;
      }
    } finally {
      if (!settled) await releaseHoldQuietly(userId, holdId, log);
    }
    if (recorded.outcome !== 'recorded') {
      log.warn({ reason: 'the conversation was paused or archived mid-turn' }, 'reply dropped');
      continue;
    }
    deps.onProgress?.();
    replyMetrics.creditsCharged.inc(recorded.charged);
    // A clamped charge emptied the balance: the cached pre-check must say so (best effort; a
    // stale yes costs one refused hold).
    if (recorded.charged < cost) await forgetCredits(userId).catch(() => undefined);
    log.info({ message_id: recorded.reply.id, tokens, charged: recorded.charged, answered: ids.length }, 'reply recorded');
    await sendMessages(context, [recorded.reply], deps, log, firstPart?.token);
    // Done: whatever arrived meanwhile nudged the conversation, and a nudge that finds the
    // lease taken marks it dirty, so the worker's release comes back here for another round.
    return;
  }
}

type FirstPart = { text: string; token: string };

/**
 * The reply's first part, for record_reply to claim in the reply's own commit (what sendPart's
 * claim would do, a round trip and a commit saved), once the account's turn in the shared send
 * rate is taken, as sendPart takes it before a claim. Null when the reply is not to go out as it
 * is (no text, or refused: sendMessages says why).
 */
async function firstPartToClaim(context: ReplyContext, text: string, deps: Pick<ReplyDeps, 'signal' | 'sendRate'>): Promise<FirstPart | null> {
  const { channel } = context.conversation;
  const first = splitForChannel(channel, text)[0];
  if (first === undefined || !context.phoneNumber || refusalToSend(context, { author: 'agent', type: 'text', payload: null })) return null;
  if (deps.sendRate) await takeSendTurn(deps.sendRate, channel, context.phoneNumber.externalId, deps.signal);
  return { text: first, token: randomUUID() };
}

/** The account's turn in the shared bucket; a send that finds it empty waits (RetryLater when the lease is lost meanwhile). */
async function takeSendTurn(sendRate: SendRateLimiter, channel: Message['channel'], accountId: string, signal: AbortSignal): Promise<void> {
  await sendRate.take(channel, accountId, signal).catch(() => {
    throw new RetryLater('lease lost while waiting for the send rate');
  });
}

/** A hold that cannot be released now (Postgres away) lapses at its expiry; the turn's own outcome matters more. */
async function releaseHoldQuietly(userId: string, holdId: string, log: typeof logger): Promise<void> {
  try {
    await releaseHold(userId, holdId);
  } catch (error) {
    log.warn({ err: { message: (error as Error).message } }, 'releasing a credit hold failed; it lapses on its own');
  }
}

/** No credits: the customer messages say so, and the agent's fallback (if any) goes out free. */
async function answerWithoutCredits(context: ReplyContext, pending: Message[], log: typeof logger): Promise<void> {
  const { userId, id: conversationId } = context.conversation;
  const fallback = context.agent?.fallbackMessage;
  const ids = pending.map((m) => m.id);
  await withTransaction(async (tx) => {
    await markInboundStatus(userId, ids, 'insufficient_credits', null, tx);
    // Woken by a top-up that did not cover a reply after all: the fallback went already.
    if (fallback && !(await fallbackAlreadyQueued(userId, ids, tx))) {
      await insertMessage(
        userId,
        conversationId,
        { direction: 'outbound', author: 'agent', type: 'text', text: fallback, status: 'queued', replyToMessageId: pending.at(-1)!.id, payload: { fallback: true } },
        tx,
      );
    }
  });
  replyMetrics.failures.inc({ reason: 'insufficient_credits' });
  log.info({ fallback: Boolean(fallback) }, 'no credits: no model call');
}

async function markReadBestEffort(context: ReplyContext, message: Message, graph: GraphClient, log: typeof logger): Promise<void> {
  if (!context.phoneNumber || !message.externalId) return;
  try {
    await graph.markRead({
      channel: context.conversation.channel,
      accountId: context.phoneNumber.externalId,
      accessToken: context.phoneNumber.accessToken,
      externalId: message.externalId,
      customerId: context.conversation.customerExternalId,
      typingIndicator: true,
    });
  } catch (error) {
    log.debug({ err: { message: (error as Error).message } }, 'mark-as-read failed (best effort)');
  }
}

/**
 * Sends queued outbound messages of the conversation (the agent's replies, fallbacks and
 * humans' messages from the API), in the order given (oldest first), part by part. A permanent
 * Graph error fails that message with Meta's code and text; a transient one is retried in
 * place, then left for later. A part Meta has already (sent before a crash, or settled by
 * Meta since) is never sent again.
 */
export async function sendMessages(
  context: ReplyContext,
  queued: Message[],
  deps: Pick<ReplyDeps, 'graph' | 'signal' | 'sendInDoubtGraceMs' | 'onProgress' | 'sendRate'>,
  log: typeof logger,
  /** The attempt token of the first message's first part, claimed already by record_reply. */
  firstPartToken?: string,
): Promise<void> {
  const { userId } = context.conversation;
  const phoneNumber = context.phoneNumber;
  // A bot reply is given back (guarantee 13), as the claim would; a human's message says it could not go.
  const giveUp = async (message: Message, refusal: { code: string; message: string }) => {
    if (message.author === 'agent') {
      // Refunded: the cached pre-check is forgotten, since a refund may lift an empty balance.
      if (await cancelBotReply(userId, message.id, refusal.code)) await forgetCredits(userId).catch(() => undefined);
    } else await markOutboundFailed(userId, message.id, refusal);
    replyMetrics.failures.inc({ reason: refusal.code });
    log.warn({ message_id: message.id, code: refusal.code }, 'message not sent');
  };
  for (const message of queued) {
    if (!phoneNumber) {
      await giveUp(message, { code: 'number_unavailable', message: 'The number was deleted before this message could be sent' });
      continue;
    }
    const refusal = refusalToSend(context, message);
    if (refusal) {
      await giveUp(message, refusal);
      continue;
    }
    if (message.type === 'template') {
      const sent = await sendPart({ ...context, phoneNumber }, message, 0, message.text ?? '', { sentBefore: [] }, deps, log, (send) =>
        deps.graph.sendTemplate({ ...send, template: templateOf(message) }).then((result) => result.externalId),
      );
      if (sent === null) continue;
      if (!sent.messageSent) await markOutboundSent(userId, message.id, [sent.externalId]);
      replyMetrics.replies.inc({ channel: message.channel, author: message.author });
      log.info({ message_id: message.id, template: message.text }, 'template sent');
      continue;
    }
    const parts = splitForChannel(message.channel, message.text ?? '');
    if (parts.length === 0) {
      await markOutboundFailed(userId, message.id, { code: 'invalid_request', message: 'The message has no text to send' });
      continue;
    }
    // Parts sent before outbound_parts existed were kept in the message's payload.
    const legacy = legacySendProgress(message);
    const externalIds = legacy.externalIds.slice(0, legacy.nextPart);
    let messageSent = false;
    for (let index = legacy.nextPart; index < parts.length; index++) {
      const last = index === parts.length - 1;
      const claimed = index === 0 && message === queued[0] ? firstPartToken : undefined;
      const sent = await sendPart({ ...context, phoneNumber }, message, index, parts[index]!, { sentBefore: last ? externalIds : null, claimed }, deps, log);
      if (sent === null) break;
      externalIds.push(sent.externalId);
      messageSent = sent.messageSent;
    }
    if (externalIds.length < parts.length) continue;
    if (!messageSent) await markOutboundSent(userId, message.id, externalIds);
    deps.onProgress?.();
    replyMetrics.replies.inc({ channel: message.channel, author: message.author });
    log.info({ message_id: message.id, parts: externalIds.length }, 'message sent');
  }
}

/**
 * Why a queued message must not go to Graph at all, or null. Free text needs the customer's
 * 24 h window open (Meta would refuse it with 131047; a template is the one send allowed
 * outside it): a reply recorded in time but held up past the window's end is failed here, not
 * sent. A human's free text was refused at the API already; this catches the window closing
 * while it waited.
 */
function refusalToSend(context: ReplyContext, message: Pick<Message, 'author' | 'type' | 'payload'>): { code: string; message: string } | null {
  // The confirmation of an opt-out is the one message an opted-out customer still gets.
  if (context.conversation.optedOut && !isOptOutConfirmation(message)) {
    return { code: 'opted_out', message: 'The customer opted out on this number before this message could be sent' };
  }
  if (message.type !== 'template' && !context.conversation.windowOpen) {
    return { code: 'window_closed', message: "The customer's 24-hour window closed before this message could be sent; only a template may go now" };
  }
  return null;
}

/** The confirmation filing queued when the customer opted out (queue_opt_out_confirmation, R__conversations.sql). */
export function isOptOutConfirmation(message: Pick<Message, 'author' | 'payload'>): boolean {
  return message.author === 'agent' && (message.payload as { opt_out_confirmation?: unknown } | null)?.opt_out_confirmation === true;
}

/** The template a queued template message carries (messageService.sendTemplate stored it). */
function templateOf(message: Message): { name: string; language: { code: string }; components?: unknown[] } {
  const template = (message.payload as { template?: { name: string; language: { code: string }; components?: unknown[] } } | null)?.template;
  if (!template) throw new Error(`template message ${message.id} has no template in its payload`);
  return template;
}

type SendingContext = ReplyContext & { phoneNumber: NonNullable<ReplyContext['phoneNumber']> };

/** Who and from where a send goes: what every Graph send takes besides its content. */
type SendTarget = { channel: Message['channel']; accountId: string; accessToken: string; to: string; callbackData?: string };

/** A part Meta has: its id, and whether recording it marked the whole message sent. */
type PartSent = { externalId: string; messageSent: boolean };

/**
 * Sends one part so that Meta gets it once, as far as anyone can know: claimed (marked
 * `sending`) in its own commit first, then posted, then recorded with Meta's id. Returns that
 * id, or null when Graph refused the part for good (the message is failed then). Throws
 * RetryLater when Graph keeps failing or the lease is lost. `sentBefore`: for the message's last
 * part, the ids of the parts before it; recording this part then marks the message sent too.
 * `claimed`: the token this part was claimed with already (record_reply), so its first attempt
 * neither waits for the send rate nor claims again.
 */
async function sendPart(
  context: SendingContext,
  message: Message,
  index: number,
  text: string,
  { sentBefore, claimed }: { sentBefore: string[] | null; claimed?: string },
  deps: Pick<ReplyDeps, 'graph' | 'signal' | 'sendInDoubtGraceMs' | 'sendRate'>,
  log: typeof logger,
  // How the part goes to Graph: a text part by default; a template sends its template instead.
  post: (target: SendTarget) => Promise<string> = ({ callbackData, ...target }) =>
    deps.graph
      .sendText({ ...target, text: message.text ?? '', fromPart: index, toPart: index + 1, ...(callbackData ? { callbackData: () => callbackData } : {}) })
      .then((result) => result.externalIds[0]!),
): Promise<PartSent | null> {
  const { userId } = context.conversation;
  for (let attempt = 1; ; attempt++) {
    let token = attempt === 1 ? claimed : undefined;
    if (token === undefined) {
      // The account's turn in the shared bucket first, before the part is claimed: a send that
      // finds it empty waits here (no part is in doubt meanwhile) rather than fail.
      if (deps.sendRate) await takeSendTurn(deps.sendRate, message.channel, context.phoneNumber.externalId, deps.signal);
      token = randomUUID();
      const settled = await claimPart(userId, message, index, text, token, deps, log);
      if (settled === CANCELLED) return null;
      if (settled !== null) return { externalId: settled, messageSent: false };
    }
    const timer = replyMetrics.sendLatency.startTimer({ channel: message.channel });
    try {
      const externalId = await post({
        channel: message.channel,
        accountId: context.phoneNumber.externalId,
        accessToken: context.phoneNumber.accessToken,
        to: context.conversation.customerExternalId,
        // Meta echoes it in the part's statuses: how a status names a part whose id we never stored.
        ...(message.channel === 'whatsapp' ? { callbackData: partCallbackData(message.id, index) } : {}),
      });
      timer();
      await recordPartSent(userId, message.id, index, externalId, sentBefore && [...sentBefore, externalId]);
      return { externalId, messageSent: sentBefore !== null };
    } catch (error) {
      timer();
      // Anything else (a crash of ours, Postgres gone) leaves the part `sending`: in doubt for whoever comes next.
      if (!(error instanceof GraphError)) throw error;
      // Meta said no, or never heard us: the next attempt is not in doubt. Otherwise it is.
      if (!error.mayBeAccepted) await releasePart(userId, message.id, index, token);
      if (!error.retryable) {
        await markOutboundFailed(userId, message.id, { code: String(error.code ?? error.kind), message: error.details ?? error.message });
        replyMetrics.failures.inc({ reason: `graph_${error.code ?? error.kind}` });
        log.warn({ message_id: message.id, part: index, code: error.code }, 'send failed permanently');
        return null;
      }
      if (attempt >= SEND_ATTEMPTS_IN_PLACE || deps.signal.aborted) {
        replyMetrics.failures.inc({ reason: `graph_${error.code ?? error.kind}` });
        throw new RetryLater(`send failed: ${error.message}`, error.retryAfterMs);
      }
      await abortableSleep(Math.min(MAX_SEND_WAIT_MS, retryDelayMs(error, attempt)), deps.signal).catch(() => undefined);
    }
  }
}

/** What claimPart returns for a bot reply that is not to go out (cancelled and refunded). */
const CANCELLED = Symbol('cancelled');

/**
 * Claims a part for this attempt. Returns Meta's id when Meta has the part already (never send
 * it again), CANCELLED for a bot reply the bot may no longer send (guarantee 13), or null once
 * this attempt may send it. A part another attempt left `sending` is
 * in doubt (Graph may have it): it waits, up to the grace, for a WhatsApp status naming it or
 * its Instagram echo (settle_part_by_status / settle_part_by_echo), then it is sent again.
 */
async function claimPart(
  userId: string,
  message: Message,
  index: number,
  text: string,
  token: string,
  deps: Pick<ReplyDeps, 'signal' | 'sendInDoubtGraceMs'>,
  log: typeof logger,
): Promise<string | null | typeof CANCELLED> {
  const graceMs = deps.sendInDoubtGraceMs ?? config.SEND_IN_DOUBT_GRACE_MS;
  let waiting = false;
  for (;;) {
    const claim = await claimOutboundPart(userId, message.id, index, text, token, graceMs, config.STALE_MESSAGE_SECONDS);
    switch (claim.outcome) {
      case 'claimed':
        return null;
      case 'cancelled':
        replyMetrics.failures.inc({ reason: 'reply_cancelled' });
        log.info({ message_id: message.id }, 'bot reply cancelled before it went out (takeover or stale); refunded');
        // A refund may lift an empty balance: the cached pre-check must not keep saying none.
        await forgetCredits(userId).catch(() => undefined);
        return CANCELLED;
      case 'settled':
        return claim.externalId;
      case 'settled_by_status':
      case 'settled_by_echo':
        replyMetrics.sendsInDoubt.inc({ outcome: claim.outcome });
        log.info({ message_id: message.id, part: index, outcome: claim.outcome }, 'send in doubt settled by Meta');
        return claim.externalId;
      case 'resent_after_grace':
        replyMetrics.sendsInDoubt.inc({ outcome: claim.outcome });
        log.warn({ message_id: message.id, part: index, grace_ms: graceMs }, 'send in doubt: nothing from Meta within the grace; sending it again');
        return null;
      case 'in_doubt':
        if (!waiting) log.info({ message_id: message.id, part: index, wait_ms: claim.waitMs }, 'send in doubt: waiting for Meta to settle it');
        waiting = true;
        if (deps.signal.aborted) throw new RetryLater('lease lost while a send was in doubt');
        await abortableSleep(Math.min(IN_DOUBT_POLL_MS, claim.waitMs), deps.signal).catch(() => undefined);
    }
  }
}

interface SendProgress {
  nextPart: number;
  externalIds: string[];
}

function legacySendProgress(message: Message): SendProgress {
  const saved = (message.payload as { send_progress?: Partial<SendProgress> } | null)?.send_progress;
  return { nextPart: saved?.nextPart ?? 0, externalIds: [...(saved?.externalIds ?? [])] };
}
