/**
 * replyService with every edge faked: the models (an in-memory store of the messages' statuses;
 * record_reply only answers what each test scripts, its semantics run against Postgres in
 * tests/integration/recordReply.test.ts and replyTurn.test.ts), the transaction (the shared
 * fake database), and the OpenAI and Graph clients. What one turn decides for each state of a
 * conversation, and how a send survives permanent, transient and partial failures.
 */
import { randomUUID } from 'node:crypto';
import * as messageModel from '../../../src/models/Message';
import * as replyTurnModel from '../../../src/models/ReplyTurn';
import * as database from '../../../src/utils/database';
import * as retryUtils from '../../../src/utils/retry';
import { encryptSecret } from '../../../src/utils/encryption';
import { accessTokenContext } from '../../../src/models/PhoneNumber';
import type { Message, NewMessage } from '../../../src/models/Message';
import type { StoredReplyContext } from '../../../src/models/ReplyTurn';
import { fakeDatabaseOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import type { CompletionResult, OpenAIService } from '../../../src/services/openaiService';
import { ModelError } from '../../../src/services/modelErrors';
import { GraphError, partCallbackData, splitForChannel, type GraphClient, type SendTextResult } from '../../../src/services/metaGraphService';
import { isOptOutConfirmation, renderForModel, RetryLater, sendMessages, serveConversation, WaitForCircuit, type ReplyContext, type ReplyDeps } from '../../../src/services/replyService';
import { config } from '../../../src/config';
import { logger } from '../../../src/utils/logger';
import { replyMetrics } from '../../../src/utils/metrics';
import * as cachedLookups from '../../../src/services/cachedLookups';

jest.mock('../../../src/models/Message');
jest.mock('../../../src/models/ReplyTurn', () => ({
  ...jest.createMockFromModule<object>('../../../src/models/ReplyTurn'),
  ANSWERED_ELSEWHERE: 'MC001',
}));
jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());
// The turn's start (Postgres for the conversation, the cache for agent, number and credits) comes from the store.
jest.mock('../../../src/services/cachedLookups', () => ({ loadTurnWork: jest.fn(), forgetCredits: jest.fn(async () => undefined) }));
// Real sleeps by default; the send-retry tests make them instant and read the requested waits.
jest.mock('../../../src/utils/retry', () => {
  const actual = jest.requireActual('../../../src/utils/retry');
  return { ...actual, abortableSleep: jest.fn(actual.abortableSleep) };
});

const model = { ...jest.mocked(messageModel), ...jest.mocked(replyTurnModel) };
const loadTurnWork = jest.mocked(cachedLookups.loadTurnWork);
const forgetCredits = jest.mocked(cachedLookups.forgetCredits);
/** The context part of loadTurnWork, as a turn sees it (token decrypted); what is owed comes from the store. */
const loadReplyContext = jest.fn<Promise<ReplyContext | null>, []>();
const fakeDb = fakeDatabaseOf(database);
const withTransaction = fakeDb.withTransaction;
const tx = fakeDb.transaction;
const sleep = jest.mocked(retryUtils.abortableSleep);
const realSleep = jest.requireActual<typeof retryUtils>('../../../src/utils/retry').abortableSleep;

const USER = '11111111-1111-4111-8111-111111111111';
const CONVERSATION = '22222222-2222-4222-8222-222222222222';
const AGENT = '33333333-3333-4333-8333-333333333333';
const PHONE = '44444444-4444-4444-8444-444444444444';
const TOKEN = 'EAAG-access-token';

/** The context as the model stores it: the access token encrypted (the turn decrypts it). */
function stored({ phoneNumber, ...rest }: ReplyContext): StoredReplyContext {
  if (!phoneNumber) return { ...rest, phoneNumber: null };
  const { accessToken, ...number } = phoneNumber;
  return { ...rest, phoneNumber: { ...number, accessTokenEncrypted: encryptSecret(accessToken, accessTokenContext(number.id)) } };
}

// ---------------------------------------------------------------------------------------------
// Fixtures

function context(
  overrides: {
    reasonNotToAnswer?: string | null;
    conversation?: Partial<ReplyContext['conversation']>;
    agent?: Partial<NonNullable<ReplyContext['agent']>> | null;
    phoneNumber?: ReplyContext['phoneNumber'];
  } = {},
): ReplyContext {
  return {
    // The database's verdict (reason_not_to_answer, tests/integration/conversationRules.test.ts).
    reasonNotToAnswer: overrides.reasonNotToAnswer ?? null,
    conversation: {
      id: CONVERSATION,
      userId: USER,
      channel: 'whatsapp',
      customerExternalId: '15550001111',
      isActive: true,
      botPaused: false,
      agentId: AGENT,
      windowOpen: true,
      optedOut: false,
      ...overrides.conversation,
    },
    agent:
      overrides.agent === null
        ? null
        : {
            id: AGENT,
            systemPrompt: 'You sell shoes.',
            model: 'gpt-test',
            temperature: 0.4,
            maxTokens: 300,
            historyLimit: 20,
            maxPromptTokens: 8000,
            debounceMs: 0,
            fallbackMessage: null,
            archivedAt: null,
            vision: true,
            ...overrides.agent,
          },
    phoneNumber: overrides.phoneNumber === undefined ? { id: PHONE, externalId: 'PNID-1', agentId: AGENT, accessToken: TOKEN } : overrides.phoneNumber,
  };
}

let sequence = 0;
function message(overrides: Partial<Message> = {}): Message {
  sequence += 1;
  return {
    id: randomUUID(),
    userId: USER,
    conversationId: CONVERSATION,
    sequenceNo: sequence,
    direction: 'inbound',
    author: 'customer',
    channel: 'whatsapp',
    type: 'text',
    text: `hello ${sequence}`,
    payload: null,
    status: 'pending',
    externalId: `wamid.IN${sequence}`,
    replyToMessageId: null,
    errorCode: null,
    errorMessage: null,
    attempts: 0,
    externalTimestamp: null,
    createdAt: new Date(Date.now() - 60_000),
    updatedAt: new Date(0),
    ...overrides,
  };
}

const outbound = (overrides: Partial<Message> = {}) =>
  message({ direction: 'outbound', author: 'agent', status: 'queued', externalId: null, text: 'Our reply', ...overrides });

/** A row of outbound_parts, as the fake claim reads and writes it. */
interface Part {
  status: 'sending' | 'sent';
  token: string;
  /** `store.clock` when the latest attempt was marked sending. */
  since: number;
  externalId: string | null;
  settledBy: 'answer' | 'status' | 'echo' | null;
  reported: boolean;
}

/** The rows the model functions read and write: statuses as the simple UPDATEs would leave them. */
interface Store {
  messages: Message[];
  history: Message[] | null;
  /** The tenant's credit balance, as beginReplyAttempt reads it. */
  balance: number;
  /** What the cached pre-check says; by default whether the balance is above zero. */
  cachedHasCredits?: boolean;
  /** Credit holds by id (hold_credits), what each holds. */
  held: Map<string, number>;
  /** outbound_parts by `<message id>:<part>`. */
  parts: Map<string, Part>;
  /** Postgres' clock for the parts, in ms; the send tests move it with each requested wait. */
  clock: number;
  /** The part ids each message was marked sent with (markOutboundSent, or recordPartSent of its last part). */
  markedSent: Map<string, string[]>;
}
let store: Store;

const pending = () => store.messages.filter((m) => m.direction === 'inbound' && m.status === 'pending');
const queued = () => store.messages.filter((m) => m.direction === 'outbound' && m.status === 'queued');
const byId = (id: string) => store.messages.find((m) => m.id === id);

const historyUpTo = (limit: number, upto: number) => (store.history ?? store.messages.filter((m) => m.sequenceNo <= upto)).slice(-limit);

function installStore(...messages: Message[]): void {
  store = { messages: [...messages], history: null, balance: 1_000, held: new Map(), parts: new Map(), clock: 0, markedSent: new Map() };
  loadTurnWork.mockImplementation(async () => {
    const context = await loadReplyContext();
    if (!context) return null;
    return {
      context: stored(context),
      owed: [...pending(), ...queued()].sort((x, y) => x.sequenceNo - y.sequenceNo).map((m) => ({ ...m })),
      // Read with the turn, up to the newest pending message, at the agent's history_limit.
      history: pending().length > 0 ? historyUpTo(context.agent?.historyLimit ?? 0, Math.max(...pending().map((m) => m.sequenceNo))).map((m) => ({ ...m })) : [],
      hasCredits: store.cachedHasCredits ?? store.balance > 0,
    };
  });
  model.markInboundStatus.mockImplementation(async (_user, ids, status, error = null) => {
    const moved = pending().filter((m) => ids.includes(m.id));
    for (const m of moved) Object.assign(m, { status, errorCode: error?.code ?? null, errorMessage: error?.message ?? null });
    return moved.length;
  });
  // The hold, then the count only when it was granted, as the real statement does.
  model.beginReplyAttempt.mockImplementation(async (user, conversation, ids, amount, ttlMs) => {
    const holdId = await model.holdCredits(user, conversation, amount, ttlMs);
    if (holdId === null) return { holdId, attempts: 0 };
    const rows = store.messages.filter((m) => ids.includes(m.id));
    for (const m of rows) m.attempts += 1;
    return { holdId, attempts: Math.max(0, ...rows.map((m) => m.attempts)) };
  });
  model.undoReplyAttempt.mockImplementation(async (_user, ids) => {
    for (const m of store.messages) if (ids.includes(m.id) && m.attempts > 0) m.attempts -= 1;
  });
  // hold_credits as the rule reads (R__credits.sql): covered by what is not held already; the
  // concurrency of it runs against Postgres in tests/integration/creditHolds.test.ts.
  store.held = new Map();
  model.holdCredits.mockImplementation(async (_user, _conversation, amount) => {
    const held = [...store.held.values()].reduce((sum, n) => sum + n, 0);
    if (store.balance - held <= 0 || store.balance - held < amount) return null;
    const id = randomUUID();
    store.held.set(id, amount);
    return id;
  });
  model.releaseHold.mockImplementation(async (_user, holdId) => {
    store.held.delete(holdId);
  });
  model.insertMessage.mockImplementation(async (_user, conversationId, fields: NewMessage) => {
    const row = message({
      conversationId,
      direction: fields.direction,
      author: fields.author,
      type: fields.type,
      text: fields.text ?? null,
      payload: fields.payload ?? null,
      status: fields.status,
      externalId: fields.externalId ?? null,
      replyToMessageId: fields.replyToMessageId ?? null,
    });
    store.messages.push(row);
    return row;
  });
  // Scripted, not simulated: by default the reply is recorded (queued) and charged in full.
  // Tests that need another outcome script it; what record_reply really does is tested on Postgres.
  model.recordReply.mockImplementation(async (_user, conversationId, reply) => {
    const row = outbound({ conversationId, text: reply.text, replyToMessageId: reply.replyToMessageId });
    store.messages.push(row);
    if (reply.holdId) store.held.delete(reply.holdId);
    // Its first part claimed in the same commit, as record_reply does.
    if (reply.firstPart) {
      store.parts.set(`${row.id}:0`, { status: 'sending', token: reply.firstPart.token, since: store.clock, externalId: null, settledBy: null, reported: false });
    }
    return { outcome: 'recorded', reply: { ...row }, charged: reply.cost };
  });
  const markSent = (id: string, externalIds: string[]) => {
    const row = byId(id);
    if (row?.status !== 'queued') return;
    Object.assign(row, { status: 'sent', externalId: externalIds[0] ?? null });
    store.markedSent.set(id, externalIds);
  };
  model.markOutboundSent.mockImplementation(async (_user, id, externalIds) => markSent(id, externalIds));
  model.markOutboundFailed.mockImplementation(async (_user, id, error) => {
    const row = byId(id);
    if (row?.status === 'queued') Object.assign(row, { status: 'failed', errorCode: error.code, errorMessage: error.message });
  });
  // claim_outbound_part's outcomes, kept as simply as the rule reads (R__sending.sql); its SQL
  // runs against Postgres in tests/integration/sendInDoubt.test.ts.
  model.claimOutboundPart.mockImplementation(async (_user, messageId, partNo, _text, token, graceMs) => {
    const key = `${messageId}:${partNo}`;
    const part = store.parts.get(key);
    if (!part) {
      store.parts.set(key, { status: 'sending', token, since: store.clock, externalId: null, settledBy: null, reported: false });
      return { outcome: 'claimed' };
    }
    if (part.status === 'sent') {
      if (part.settledBy !== 'answer' && !part.reported) {
        part.reported = true;
        return { outcome: `settled_by_${part.settledBy!}`, externalId: part.externalId! };
      }
      return { outcome: 'settled', externalId: part.externalId! };
    }
    const waitMs = part.since + graceMs - store.clock;
    if (waitMs > 0) return { outcome: 'in_doubt', waitMs };
    Object.assign(part, { token, since: store.clock });
    return { outcome: 'resent_after_grace' };
  });
  model.recordPartSent.mockImplementation(async (_user, messageId, partNo, externalId, messageExternalIds) => {
    Object.assign(store.parts.get(`${messageId}:${partNo}`)!, { status: 'sent', externalId, settledBy: 'answer', reported: true });
    if (messageExternalIds) markSent(messageId, messageExternalIds);
  });
  model.releasePart.mockImplementation(async (_user, messageId, partNo, token) => {
    const key = `${messageId}:${partNo}`;
    if (store.parts.get(key)?.token === token && store.parts.get(key)?.status === 'sending') store.parts.delete(key);
  });
}

/** A part another attempt marked `sending` at `since` and never recorded: in doubt. */
function leftInDoubt(messageId: string, partNo = 0, since = store.clock): void {
  store.parts.set(`${messageId}:${partNo}`, { status: 'sending', token: randomUUID(), since, externalId: null, settledBy: null, reported: false });
}

/** Meta's status or echo settling a part, as the webhook does. */
function settleByMeta(messageId: string, partNo: number, externalId: string, by: 'status' | 'echo'): void {
  Object.assign(store.parts.get(`${messageId}:${partNo}`)!, { status: 'sent', externalId, settledBy: by });
}

async function inDoubtCount(outcome: string): Promise<number> {
  return (await replyMetrics.sendsInDoubt.get()).values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
}

const completion = (overrides: Partial<CompletionResult> = {}): CompletionResult => ({
  text: 'Hi! How can I help?',
  promptTokens: 100,
  completionTokens: 20,
  model: 'gpt-test',
  latencyMs: 5,
  attempts: 1,
  ...overrides,
});

let openai: { complete: jest.Mock; extractStructured: jest.Mock; circuitState: 'closed'; circuitStateFor: jest.Mock; breakerOpen: jest.Mock; circuitRetryAfterMs: jest.Mock };
let graph: {
  sendText: jest.MockedFunction<GraphClient['sendText']>;
  sendTemplate: jest.MockedFunction<GraphClient['sendTemplate']>;
  markRead: jest.MockedFunction<GraphClient['markRead']>;
};
let controller: AbortController;
let wamid = 0;

function deps(extra: Partial<ReplyDeps> = {}): ReplyDeps {
  return { openai: openai as unknown as OpenAIService, graph, signal: controller.signal, ...extra };
}

const sent = (...ids: string[]): SendTextResult => ({ externalIds: ids, parts: ids.map(() => 'part'), totalParts: ids.length });

const graphError = (init: Partial<ConstructorParameters<typeof GraphError>[1]> = {}, message = 'Graph whatsapp send failed') =>
  new GraphError(message, { kind: 'graph', channel: 'whatsapp', httpStatus: 400, ...init });

beforeEach(() => {
  jest.resetAllMocks();
  sequence = 0;
  wamid = 0;
  controller = new AbortController();
  installStore();
  loadReplyContext.mockResolvedValue(context());
  forgetCredits.mockResolvedValue(undefined);
  resetFakeDatabase(fakeDb);
  sleep.mockImplementation(realSleep);
  openai = { complete: jest.fn().mockResolvedValue(completion()), extractStructured: jest.fn(), circuitState: 'closed', circuitStateFor: jest.fn().mockReturnValue('closed'), breakerOpen: jest.fn().mockReturnValue(false), circuitRetryAfterMs: jest.fn().mockReturnValue(0) };
  graph = {
    sendText: jest.fn<Promise<SendTextResult>, Parameters<GraphClient['sendText']>>(async () => sent(`wamid.OUT${++wamid}`)),
    sendTemplate: jest.fn<Promise<{ externalId: string }>, Parameters<GraphClient['sendTemplate']>>(async () => ({ externalId: `wamid.TPL${++wamid}` })),
    markRead: jest.fn().mockResolvedValue(undefined),
  };
});

// ---------------------------------------------------------------------------------------------

describe('renderForModel', () => {
  it('when the message is text, then its text is returned untouched', () => {
    expect(renderForModel({ type: 'text', text: '  spaced  ' })).toBe('  spaced  ');
  });

  it('when a text message has no text, then null', () => {
    expect(renderForModel({ type: 'text', text: null })).toBeNull();
  });

  it('when another type carries text, then it is described with its type, the text trimmed', () => {
    expect(renderForModel({ type: 'image', text: '  red sneakers, size 42 ' })).toBe('[the customer sent a photo with the caption "red sneakers, size 42"; you cannot see it]');
    expect(renderForModel({ type: 'image', text: '  red sneakers, size 42 ' }, true)).toBe('[photo] red sneakers, size 42');
  });

  it('when another type has no text, or only whitespace, then it is still described, never a bare tag', () => {
    expect(renderForModel({ type: 'sticker', text: null })).toBe('[the customer sent a sticker without a caption; you cannot see it]');
    expect(renderForModel({ type: 'location', text: ' \n ' })).toBe('[shared a location with no coordinates]');
  });
});

describe('serveConversation', () => {
  it('when nothing is owed, then one read and nothing else', async () => {
    await serveConversation(USER, CONVERSATION, deps());

    expect(loadTurnWork).toHaveBeenCalledTimes(1);
    expect(loadTurnWork).toHaveBeenCalledWith(USER, CONVERSATION);
    expect(model.beginReplyAttempt).not.toHaveBeenCalled();
    expect(graph.markRead).not.toHaveBeenCalled();
    expect(graph.sendText).not.toHaveBeenCalled();
  });

  it('when the conversation does not exist (any more), then nothing is sent or asked', async () => {
    installStore(message());
    loadReplyContext.mockResolvedValue(null);

    await serveConversation(USER, CONVERSATION, deps());

    expect(model.beginReplyAttempt).not.toHaveBeenCalled();
    expect(openai.complete).not.toHaveBeenCalled();
    expect(graph.sendText).not.toHaveBeenCalled();
  });

  it('when nothing is pending, then it returns without calling the model', async () => {
    await serveConversation(USER, CONVERSATION, deps());

    expect(loadTurnWork).toHaveBeenCalledWith(USER, CONVERSATION);
    expect(openai.complete).not.toHaveBeenCalled();
    expect(model.beginReplyAttempt).not.toHaveBeenCalled();
  });

  it('when the signal is already aborted, then RetryLater is thrown before anything is read', async () => {
    controller.abort();

    await expect(serveConversation(USER, CONVERSATION, deps())).rejects.toBeInstanceOf(RetryLater);
    expect(loadReplyContext).not.toHaveBeenCalled();
  });

  it('when a message is pending, then the model gets the agent settings and history, the reply is recorded, charged and sent', async () => {
    const earlier = message({ status: 'answered', text: 'first question' });
    const photo = message({ type: 'image', text: 'this one?' });
    installStore(earlier, photo);

    await serveConversation(USER, CONVERSATION, deps());

    expect(model.beginReplyAttempt).toHaveBeenCalledWith(USER, CONVERSATION, [photo.id], expect.any(Number), expect.any(Number));
    expect(openai.complete).toHaveBeenCalledTimes(1);
    expect(openai.complete).toHaveBeenCalledWith({
      model: 'gpt-test',
      tenantId: USER,
      temperature: 0.4,
      maxTokens: 300,
      messages: [
        { role: 'system', content: 'You sell shoes.' },
        { role: 'user', content: 'first question' },
        { role: 'user', content: '[the customer sent a photo with the caption "this one?"; you cannot see it]' },
      ],
      promptCacheKey: CONVERSATION,
      signal: controller.signal,
    });

    // Answered, recorded and charged in one statement: 120 tokens at the configured price.
    expect(model.recordReply).toHaveBeenCalledWith(USER, CONVERSATION, {
      answered: [photo.id],
      text: 'Hi! How can I help?',
      replyToMessageId: photo.id,
      cost: Math.ceil((120 * config.CREDITS_PER_1K_TOKENS) / 1000),
      tokens: 120,
      holdId: expect.any(String),
      firstPart: { text: 'Hi! How can I help?', token: expect.any(String) },
    });
    // Its first part was claimed in that statement too: no claim of its own before the send.
    expect(model.claimOutboundPart).not.toHaveBeenCalled();
    // The hold was settled by record_reply, not released apart.
    expect(model.releaseHold).not.toHaveBeenCalled();
    expect(store.held.size).toBe(0);
    const reply = store.messages.find((m) => m.direction === 'outbound')!;
    expect(graph.sendText).toHaveBeenCalledWith({
      channel: 'whatsapp',
      accountId: 'PNID-1',
      accessToken: TOKEN,
      to: '15550001111',
      text: 'Hi! How can I help?',
      fromPart: 0,
      toPart: 1,
      callbackData: expect.any(Function),
    });
    expect(reply).toMatchObject({ status: 'sent', externalId: 'wamid.OUT1' });
  });

  it('when a pending message is older than STALE_MESSAGE_SECONDS by Meta\'s timestamp, then it is marked stale with no model call; the fresh one is answered', async () => {
    const old = message({ externalTimestamp: new Date(Date.now() - (config.STALE_MESSAGE_SECONDS + 60) * 1000), createdAt: new Date() });
    const fresh = message();
    installStore(old, fresh);

    await serveConversation(USER, CONVERSATION, deps());

    expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [old.id], 'stale', expect.objectContaining({ code: 'stale' }));
    expect(openai.complete).toHaveBeenCalledTimes(1);
    expect(model.recordReply).toHaveBeenCalledWith(USER, CONVERSATION, expect.objectContaining({ answered: [fresh.id] }));
  });

  it('when several messages are pending, then one reply answers them all and quotes the newest', async () => {
    const [a, b, c] = [message(), message(), message()];
    installStore(a, b, c);

    await serveConversation(USER, CONVERSATION, deps());

    expect(openai.complete).toHaveBeenCalledTimes(1);
    expect(model.beginReplyAttempt).toHaveBeenCalledWith(USER, CONVERSATION, [a.id, b.id, c.id], expect.any(Number), expect.any(Number));
    expect(model.recordReply).toHaveBeenCalledWith(USER, CONVERSATION, expect.objectContaining({ answered: [a.id, b.id, c.id], replyToMessageId: c.id }));
    expect(graph.sendText).toHaveBeenCalledTimes(1);
  });

  it('when answering, then the newest message is marked read with a typing indicator, best effort', async () => {
    const earlier = message();
    const newest = message({ externalId: 'wamid.NEWEST' });
    installStore(earlier, newest);

    await serveConversation(USER, CONVERSATION, deps());

    expect(graph.markRead).toHaveBeenCalledWith({
      channel: 'whatsapp',
      accountId: 'PNID-1',
      accessToken: TOKEN,
      externalId: 'wamid.NEWEST',
      customerId: '15550001111',
      typingIndicator: true,
    });
  });

  it('when the account’s send-rate bucket is shared, then each part takes its turn before it goes', async () => {
    installStore(message());
    const order: string[] = [];
    const take = jest.fn(async () => {
      order.push('take');
      return 1;
    });
    graph.sendText.mockImplementation(async () => {
      order.push('send');
      return sent('wamid.OUT-rate');
    });

    await serveConversation(USER, CONVERSATION, deps({ sendRate: { take, ratePerSecond: 80 } }));

    expect(take).toHaveBeenCalledWith('whatsapp', 'PNID-1', expect.any(AbortSignal));
    expect(order).toEqual(['take', 'send']);
  });

  it('when the wait for the send rate is cut short (lease lost), then nothing is sent and the turn is retried later', async () => {
    installStore(message());
    const take = jest.fn(async () => Promise.reject(new Error('aborted')));

    await expect(serveConversation(USER, CONVERSATION, deps({ sendRate: { take, ratePerSecond: 80 } }))).rejects.toBeInstanceOf(RetryLater);
    expect(graph.sendText).not.toHaveBeenCalled();
  });

  it('when marking read fails, then the reply still goes out', async () => {
    installStore(message());
    graph.markRead.mockRejectedValue(new Error('Graph down'));

    await serveConversation(USER, CONVERSATION, deps());

    expect(graph.sendText).toHaveBeenCalledTimes(1);
  });

  it('when the newest message has no external id, then nothing is marked read', async () => {
    installStore(message({ externalId: null }));

    await serveConversation(USER, CONVERSATION, deps());

    expect(graph.markRead).not.toHaveBeenCalled();
    expect(graph.sendText).toHaveBeenCalledTimes(1);
  });

  it('when a human message is queued and nothing is pending, then it is sent and no model call is made', async () => {
    const human = outbound({ author: 'human', text: 'A human here' });
    installStore(human);

    await serveConversation(USER, CONVERSATION, deps());

    expect(graph.sendText).toHaveBeenCalledWith(expect.objectContaining({ text: 'A human here' }));
    expect(human.status).toBe('sent');
    expect(openai.complete).not.toHaveBeenCalled();
  });

  it.each(['conversation_archived', 'bot_paused', 'no_agent', 'number_unlinked'])(
    'when the turn must not be answered (%s), then the pending messages are marked ignored and the model is not called',
    async (reason) => {
      const [a, b] = [message(), message()];
      installStore(a, b);
      loadReplyContext.mockResolvedValue(context({ reasonNotToAnswer: reason }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [a.id, b.id], 'ignored');
      expect([a.status, b.status]).toEqual(['ignored', 'ignored']);
      expect(openai.complete).not.toHaveBeenCalled();
      expect(model.beginReplyAttempt).not.toHaveBeenCalled();
    },
  );

  describe('debounce', () => {
    it('when the newest message is younger than debounce_ms, then it waits that long and looks again before answering', async () => {
      const newest = message({ createdAt: new Date(Date.now()) });
      installStore(newest);
      loadReplyContext.mockResolvedValue(context({ agent: { debounceMs: 60 } }));
      const started = Date.now();

      await serveConversation(USER, CONVERSATION, deps({ now: Date.now }));

      expect(Date.now() - started).toBeGreaterThanOrEqual(50);
      expect(sleep).toHaveBeenCalledTimes(1);
      expect(sleep.mock.calls[0]?.[0]).toBeGreaterThan(0);
      expect(sleep.mock.calls[0]?.[0]).toBeLessThanOrEqual(60);
      // Look, wait, look and answer; the turn ends with the send (what arrives later nudges anew).
      expect(loadTurnWork).toHaveBeenCalledTimes(2);
      expect(openai.complete).toHaveBeenCalledTimes(1);
    });

    it('when now() says the debounce has passed, then it answers at once without sleeping', async () => {
      installStore(message({ createdAt: new Date(1_000) }));
      loadReplyContext.mockResolvedValue(context({ agent: { debounceMs: 5_000 } }));

      await serveConversation(USER, CONVERSATION, deps({ now: () => 6_000 }));

      expect(sleep).not.toHaveBeenCalled();
      expect(openai.complete).toHaveBeenCalledTimes(1);
    });

    it('when another message arrives during the wait, then one reply sees both', async () => {
      const first = message({ createdAt: new Date(Date.now()) });
      installStore(first);
      loadReplyContext.mockResolvedValue(context({ agent: { debounceMs: 40 } }));
      let second: Message | undefined;
      sleep.mockImplementationOnce(async (ms, signal) => {
        second = message({ createdAt: new Date(Date.now()) });
        store.messages.push(second);
        await realSleep(ms, signal);
      });

      await serveConversation(USER, CONVERSATION, deps({ now: Date.now }));

      expect(openai.complete).toHaveBeenCalledTimes(1);
      expect(model.recordReply).toHaveBeenCalledWith(USER, CONVERSATION, expect.objectContaining({ answered: [first.id, second!.id], replyToMessageId: second!.id }));
    });

    it('when the lease is lost during the wait, then RetryLater is thrown promptly and nothing is answered', async () => {
      installStore(message({ createdAt: new Date(Date.now()) }));
      loadReplyContext.mockResolvedValue(context({ agent: { debounceMs: 60_000 } }));
      setTimeout(() => controller.abort(), 20);
      const started = Date.now();

      await expect(serveConversation(USER, CONVERSATION, deps({ now: Date.now }))).rejects.toBeInstanceOf(RetryLater);

      expect(Date.now() - started).toBeLessThan(5_000);
      expect(openai.complete).not.toHaveBeenCalled();
      expect(model.markInboundStatus).not.toHaveBeenCalled();
    });
  });

  describe('credits', () => {
    it('when the cached pre-check still says yes but Postgres says the balance is 0, then Postgres decides: insufficient_credits, no model call', async () => {
      const [a] = [message()];
      installStore(a);
      store.balance = 0;
      store.cachedHasCredits = true;

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.beginReplyAttempt).toHaveBeenCalledWith(USER, CONVERSATION, [a.id], expect.any(Number), expect.any(Number));
      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [a.id], 'insufficient_credits', null, tx);
      expect(openai.complete).not.toHaveBeenCalled();
    });

    it('when a charge is clamped (the balance ran out), then the cached pre-check is forgotten; a full charge forgets nothing', async () => {
      installStore(message());
      await serveConversation(USER, CONVERSATION, deps());
      expect(forgetCredits).not.toHaveBeenCalled();

      installStore(message());
      const record = model.recordReply.getMockImplementation()!;
      model.recordReply.mockImplementationOnce(async (user, conversationId, reply) => {
        const recorded = await record(user, conversationId, reply);
        return recorded.outcome === 'recorded' ? { ...recorded, charged: reply.cost - 1 } : recorded;
      });
      await serveConversation(USER, CONVERSATION, deps());
      expect(forgetCredits).toHaveBeenCalledWith(USER);
    });

    it('when the tenant has no credits and no fallback, then the messages are marked insufficient_credits and nothing is queued', async () => {
      const [a, b] = [message(), message()];
      installStore(a, b);
      store.balance = 0;

      await serveConversation(USER, CONVERSATION, deps());

      // The cached pre-check knows: no attempt is counted, no history read, no hold tried.
      expect(model.beginReplyAttempt).not.toHaveBeenCalled();
      expect(model.holdCredits).not.toHaveBeenCalled();
      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [a.id, b.id], 'insufficient_credits', null, tx);
      expect(model.insertMessage).not.toHaveBeenCalled();
      expect(openai.complete).not.toHaveBeenCalled();
      expect(model.recordReply).not.toHaveBeenCalled();
      expect(graph.sendText).not.toHaveBeenCalled();
    });

    it('when the tenant has no credits and the agent has a fallback, then the fallback is queued in the same transaction and sent free', async () => {
      const [a, b] = [message(), message()];
      installStore(a, b);
      store.balance = 0;
      loadReplyContext.mockResolvedValue(context({ agent: { fallbackMessage: 'We will get back to you soon.' } }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(withTransaction).toHaveBeenCalledTimes(1);
      expect(model.insertMessage).toHaveBeenCalledWith(
        USER,
        CONVERSATION,
        {
          direction: 'outbound',
          author: 'agent',
          type: 'text',
          text: 'We will get back to you soon.',
          status: 'queued',
          replyToMessageId: b.id,
          payload: { fallback: true },
        },
        tx,
      );
      expect(graph.sendText).toHaveBeenCalledWith(expect.objectContaining({ text: 'We will get back to you soon.' }));
      expect(openai.complete).not.toHaveBeenCalled();
      expect(model.recordReply).not.toHaveBeenCalled();
    });
  });

  describe('credit holds (guarantee 14)', () => {
    it('when the balance is above zero but cannot cover the prompt plus max_tokens, then no model call: insufficient_credits', async () => {
      const a = message();
      installStore(a);
      // The agent's max_tokens (300, at 1 credit a token) plus any prompt is more than this.
      store.balance = 300;

      await serveConversation(USER, CONVERSATION, deps());

      const [, , amount] = model.holdCredits.mock.calls[0]!;
      expect(amount).toBeGreaterThan(300);
      expect(openai.complete).not.toHaveBeenCalled();
      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [a.id], 'insufficient_credits', null, tx);
    });

    it('when the balance covers the dearest outcome, then it is held for prompt estimate + max_tokens and the call is made', async () => {
      installStore(message({ text: 'x'.repeat(400) }));

      await serveConversation(USER, CONVERSATION, deps());

      const [user, conversation, amount, ttlMs] = model.holdCredits.mock.calls[0]!;
      expect([user, conversation]).toEqual([USER, CONVERSATION]);
      // At least the 100 tokens of the message and the 300 of max_tokens, at 1 credit a token.
      expect(amount).toBeGreaterThanOrEqual(400);
      expect(ttlMs).toBeGreaterThan(config.WORKER_LEASE_MS);
      expect(openai.complete).toHaveBeenCalledTimes(1);
    });

    it.each([
      ['fails transiently', () => openai.complete.mockRejectedValue(new ModelError('retryable', 'model_timeout', 'slow'))],
      ['fails for good', () => openai.complete.mockRejectedValue(new ModelError('permanent', 'model_bad_request', 'bad'))],
    ])('when the model %s, then the hold is released', async (_name, script) => {
      installStore(message());
      script();

      await serveConversation(USER, CONVERSATION, deps()).catch(() => undefined);

      expect(model.releaseHold).toHaveBeenCalledWith(USER, expect.any(String));
      expect(store.held.size).toBe(0);
      expect(model.recordReply).not.toHaveBeenCalled();
    });

    it('when recording the reply raises, then the hold is released', async () => {
      installStore(message());
      model.recordReply.mockRejectedValueOnce(Object.assign(new Error('elsewhere'), { code: 'MC001' }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.releaseHold).toHaveBeenCalledTimes(1);
      expect(store.held.size).toBe(0);
    });
  });

  describe('attempts', () => {
    it('when the attempts exceed MESSAGE_MAX_ATTEMPTS, then the messages fail with max_attempts and the model is not called', async () => {
      const poison = message({ attempts: config.MESSAGE_MAX_ATTEMPTS });
      installStore(poison);

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [poison.id], 'failed', {
        code: 'max_attempts',
        message: 'Gave up after repeated failures; see the logs',
      });
      expect(poison.status).toBe('failed');
      expect(openai.complete).not.toHaveBeenCalled();
      // The hold taken with the count is given back: no call was made.
      expect(model.releaseHold).toHaveBeenCalledTimes(1);
      expect(store.held.size).toBe(0);
    });

    it('when the hold is refused, then no attempt is counted', async () => {
      const poor = message({ attempts: 1 });
      installStore(poor);
      store.cachedHasCredits = true;
      store.balance = 1;

      await serveConversation(USER, CONVERSATION, deps());

      expect(poor).toMatchObject({ status: 'insufficient_credits', attempts: 1 });
      expect(openai.complete).not.toHaveBeenCalled();
    });

    it('when this is exactly the last allowed attempt, then the model is still called', async () => {
      installStore(message({ attempts: config.MESSAGE_MAX_ATTEMPTS - 1 }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(openai.complete).toHaveBeenCalledTimes(1);
    });
  });

  describe('model failures', () => {
    it.each([
      new ModelError('permanent', 'model_bad_request', 'The AI provider rejected the request'),
      new ModelError('permanent', 'model_refused', 'The model refused to answer'),
      new ModelError('not_configured', 'openai_not_configured', 'No OpenAI API key is configured'),
    ])('when the model fails for good ($code), then the messages fail with its code and message, uncharged and unsent', async (error) => {
      const pendingMessage = message();
      installStore(pendingMessage);
      openai.complete.mockRejectedValue(error);

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.markInboundStatus).toHaveBeenCalledWith(USER, [pendingMessage.id], 'failed', { code: error.code, message: error.message });
      expect(pendingMessage).toMatchObject({ status: 'failed', errorCode: error.code });
      expect(withTransaction).not.toHaveBeenCalled();
      expect(model.recordReply).not.toHaveBeenCalled();
      expect(model.insertMessage).not.toHaveBeenCalled();
      expect(graph.sendText).not.toHaveBeenCalled();
    });

    it.each<[string, Error]>([
      ['model_rate_limited', new ModelError('retryable', 'model_rate_limited', 'The AI provider is rate limiting us')],
      ['model_timeout', new ModelError('retryable', 'model_timeout', 'The AI provider did not answer in time')],
      ['model_circuit_open', new ModelError('circuit_open', 'model_circuit_open', 'The AI provider is failing; waiting')],
      ['a plain Error', new Error('socket hang up')],
    ])('when the model fails transiently (%s), then RetryLater is thrown and the messages stay pending', async (_what, error) => {
      const pendingMessage = message();
      installStore(pendingMessage);
      openai.complete.mockRejectedValue(error);

      const thrown = await serveConversation(USER, CONVERSATION, deps()).catch((e: unknown) => e);

      expect(thrown).toBeInstanceOf(RetryLater);
      expect((thrown as Error).message).toContain(error.message);
      expect(pendingMessage.status).toBe('pending');
      expect(model.markInboundStatus).not.toHaveBeenCalled();
      expect(model.recordReply).not.toHaveBeenCalled();
    });

    it('when the tenant’s circuit for the model is open, then the turn waits (WaitForCircuit) before counting an attempt and no call is made (guarantee 11)', async () => {
      const pendingMessage = message({ attempts: config.MESSAGE_MAX_ATTEMPTS - 1 });
      installStore(pendingMessage);
      openai.breakerOpen.mockReturnValue(true);
      openai.circuitRetryAfterMs.mockReturnValue(7_000);

      for (let round = 0; round < 3; round++) {
        const thrown = await serveConversation(USER, CONVERSATION, deps()).catch((e: unknown) => e);
        expect(thrown).toBeInstanceOf(WaitForCircuit);
        expect(thrown).toBeInstanceOf(RetryLater);
        expect((thrown as WaitForCircuit).retryAfterMs).toBe(7_000);
      }
      expect(openai.breakerOpen).toHaveBeenCalledWith('gpt-test', USER);
      expect(model.beginReplyAttempt).not.toHaveBeenCalled();
      expect(openai.complete).not.toHaveBeenCalled();
      expect(pendingMessage).toMatchObject({ status: 'pending', attempts: config.MESSAGE_MAX_ATTEMPTS - 1 });

      // Closed again: the last allowed attempt is still there, and it answers.
      openai.breakerOpen.mockReturnValue(false);
      await serveConversation(USER, CONVERSATION, deps());
      expect(openai.complete).toHaveBeenCalledTimes(1);
      expect(openai.complete.mock.calls[0][0]).toMatchObject({ tenantId: USER });
      expect(model.recordReply).toHaveBeenCalledTimes(1);
    });

    it('when the circuit opens between the peek and the call (refused, no request made), then the attempt is taken back and the turn waits', async () => {
      const pendingMessage = message();
      installStore(pendingMessage);
      const refused = new ModelError('circuit_open', 'model_circuit_open', 'The AI provider is failing; waiting', { retryAfterMs: 3_000 });
      refused.providerRequests = 0;
      openai.complete.mockRejectedValue(refused);

      const thrown = await serveConversation(USER, CONVERSATION, deps()).catch((e: unknown) => e);

      expect(thrown).toBeInstanceOf(WaitForCircuit);
      expect((thrown as WaitForCircuit).retryAfterMs).toBe(3_000);
      expect(model.undoReplyAttempt).toHaveBeenCalledWith(USER, [pendingMessage.id]);
      expect(pendingMessage).toMatchObject({ status: 'pending', attempts: 0 });
    });

    it('when requests reached the provider before the circuit refused the rest, then it is a transient failure: RetryLater, and the attempt is taken back (guarantee 12)', async () => {
      const pendingMessage = message();
      installStore(pendingMessage);
      openai.complete.mockRejectedValue(new ModelError('circuit_open', 'model_circuit_open', 'The AI provider is failing; waiting'));

      const thrown = await serveConversation(USER, CONVERSATION, deps()).catch((e: unknown) => e);

      expect(thrown).toBeInstanceOf(RetryLater);
      expect(thrown).not.toBeInstanceOf(WaitForCircuit);
      expect(model.undoReplyAttempt).toHaveBeenCalledWith(USER, [pendingMessage.id]);
    });

    it('when the provider throttles with a Retry-After, then RetryLater carries the hint and the attempt is taken back', async () => {
      const pendingMessage = message();
      installStore(pendingMessage);
      openai.complete.mockRejectedValue(new ModelError('retryable', 'model_rate_limited', 'slow down', { retryAfterMs: 7_000 }));

      const thrown = await serveConversation(USER, CONVERSATION, deps()).catch((e: unknown) => e);

      expect(thrown).toBeInstanceOf(RetryLater);
      expect((thrown as RetryLater).retryAfterMs).toBe(7_000);
      expect(model.undoReplyAttempt).toHaveBeenCalledWith(USER, [pendingMessage.id]);
      expect(model.markInboundStatus).not.toHaveBeenCalledWith(USER, expect.anything(), 'failed', expect.anything());
    });

    it('when the lease is lost while the model answers, then RetryLater and the answer is not recorded', async () => {
      const pendingMessage = message();
      installStore(pendingMessage);
      openai.complete.mockImplementation(async () => {
        controller.abort();
        return completion();
      });

      await expect(serveConversation(USER, CONVERSATION, deps())).rejects.toThrow('lease lost during the model call');
      expect(withTransaction).not.toHaveBeenCalled();
      expect(pendingMessage.status).toBe('pending');
    });
  });

  describe('a human who takes over mid-turn', () => {
    it('when the conversation is paused by the time the reply is recorded, then nothing is recorded, charged or sent', async () => {
      const pendingMessage = message();
      installStore(pendingMessage);
      model.recordReply.mockResolvedValueOnce({ outcome: 'paused_or_archived' });
      // The next round sees the pause too, and marks the message ignored.
      loadReplyContext.mockResolvedValueOnce(context()).mockResolvedValue(context({ reasonNotToAnswer: 'bot_paused' }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.recordReply).toHaveBeenCalledTimes(1);
      expect(store.messages.filter((m) => m.direction === 'outbound')).toEqual([]);
      expect(graph.sendText).not.toHaveBeenCalled();
      expect(pendingMessage.status).toBe('ignored');
    });
  });

  describe('a race lost to another worker', () => {
    it('when a message was answered elsewhere meanwhile, then no reply is recorded, charged or sent, and the rest is answered next round', async () => {
      const [a, b] = [message(), message()];
      installStore(a, b);
      // Another worker (whose lease lapsed) answered `a` while the model was thinking.
      openai.complete.mockImplementationOnce(async () => {
        a.status = 'answered';
        return completion();
      });
      model.recordReply.mockRejectedValueOnce(Object.assign(new Error('pending messages were answered elsewhere'), { code: 'MC001' }));

      await serveConversation(USER, CONVERSATION, deps());

      expect(model.recordReply).toHaveBeenNthCalledWith(1, USER, CONVERSATION, expect.objectContaining({ answered: [a.id, b.id] }));
      expect(model.recordReply).toHaveBeenNthCalledWith(2, USER, CONVERSATION, expect.objectContaining({ answered: [b.id] }));
      expect(graph.sendText).toHaveBeenCalledTimes(1);
    });

    it('when recording fails otherwise, then the error propagates and nothing is sent', async () => {
      installStore(message());
      model.recordReply.mockRejectedValue(Object.assign(new Error('connection terminated'), { code: '57P01' }));

      await expect(serveConversation(USER, CONVERSATION, deps())).rejects.toThrow('connection terminated');
      expect(graph.sendText).not.toHaveBeenCalled();
    });
  });
});

describe('sendMessages', () => {
  const GRACE_MS = 15_000;
  const send = (ctx: ReplyContext = context()) =>
    sendMessages(ctx, queued(), { graph, signal: controller.signal, sendInDoubtGraceMs: GRACE_MS }, logger);
  /** Three parts on Instagram (1000 bytes each at most): the words of a long reply. */
  const longText = Array.from({ length: 3 }, (_, part) => `${'word '.repeat(190)}part${part}`).join(' ');

  beforeEach(() => {
    // No real waits: each requested wait moves the parts' clock instead, and is asserted.
    sleep.mockImplementation(async (ms: number) => {
      store.clock += ms;
    });
  });

  it('when a template is queued, then it goes to Graph as a template in one claimed part with its callback data, and is marked sent', async () => {
    const template = { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body' }] };
    const message = outbound({ author: 'human', type: 'template', text: 'order_update', payload: { template } });
    installStore(message);

    // Templates are the one send allowed with the window closed.
    await send(context({ conversation: { windowOpen: false } }));

    expect(graph.sendText).not.toHaveBeenCalled();
    expect(graph.sendTemplate).toHaveBeenCalledWith({
      channel: 'whatsapp',
      accountId: 'PNID-1',
      accessToken: TOKEN,
      to: '15550001111',
      template,
      callbackData: `out:${message.id}:0`,
    });
    expect(model.claimOutboundPart.mock.calls.map(([, id, part, text]) => [id, part, text])).toEqual([[message.id, 0, 'order_update']]);
    expect(store.markedSent.get(message.id)).toEqual(['wamid.TPL1']);
  });

  it('when the customer opted out while messages waited, then a human\'s fails with opted_out, a bot reply is cancelled and refunded; the opt-out confirmation alone still goes', async () => {
    const reply = outbound({ text: 'Here is your answer' });
    const human = outbound({ author: 'human', sequenceNo: 8, text: 'Ana here' });
    const confirmation = outbound({ sequenceNo: 9, text: 'You are unsubscribed', payload: { opt_out_confirmation: true } });
    installStore(reply, human, confirmation);

    await send(context({ conversation: { optedOut: true } }));

    expect(model.cancelBotReply).toHaveBeenCalledWith(USER, reply.id, 'opted_out');
    expect(byId(human.id)).toMatchObject({ status: 'failed', errorCode: 'opted_out' });
    expect(graph.sendText).toHaveBeenCalledTimes(1);
    expect(graph.sendText.mock.calls[0]![0].text).toBe('You are unsubscribed');
  });

  it.each([
    ['the agent’s confirmation', { author: 'agent' as const, payload: { opt_out_confirmation: true } }, true],
    ['a human message claiming to be one', { author: 'human' as const, payload: { opt_out_confirmation: true } }, false],
    ['an ordinary reply', { author: 'agent' as const, payload: null }, false],
  ])('when asked whether %s is the opt-out confirmation, then %s', (_what, message, expected) => {
    expect(isOptOutConfirmation(message)).toBe(expected);
  });

  it('when the customer window closed while free text waited, then a human\'s fails with window_closed, a bot reply is cancelled and refunded, and neither reaches Graph', async () => {
    const reply = outbound({ text: 'Here is your answer' });
    const human = outbound({ author: 'human', sequenceNo: 8, text: 'Ana here' });
    installStore(reply, human);

    await send(context({ conversation: { windowOpen: false } }));

    expect(graph.sendText).not.toHaveBeenCalled();
    expect(model.claimOutboundPart).not.toHaveBeenCalled();
    expect(model.cancelBotReply).toHaveBeenCalledWith(USER, reply.id, 'window_closed');
    expect(byId(human.id)).toMatchObject({ status: 'failed', errorCode: 'window_closed' });
  });

  it('when a split message is accepted, then each part is claimed and sent alone, in order, and the message is marked sent with every id', async () => {
    const reply = outbound({ channel: 'instagram', text: longText });
    installStore(reply);

    await send(context({ conversation: { channel: 'instagram', customerExternalId: 'IGSID-9' } }));

    expect(graph.sendText.mock.calls.map(([input]) => [input.fromPart, input.toPart])).toEqual([[0, 1], [1, 2], [2, 3]]);
    expect(graph.sendText).toHaveBeenCalledWith({ channel: 'instagram', accountId: 'PNID-1', accessToken: TOKEN, to: 'IGSID-9', text: longText, fromPart: 0, toPart: 1 });
    const parts = splitForChannel('instagram', longText);
    expect(model.claimOutboundPart.mock.calls.map(([, id, part, text]) => [id, part, text])).toEqual([
      [reply.id, 0, parts[0]],
      [reply.id, 1, parts[1]],
      [reply.id, 2, parts[2]],
    ]);
    // The last part's record marks the message sent in the same statement: no round trip of its own.
    expect(model.recordPartSent.mock.calls.map(([, , part, id, all]) => [part, id, all])).toEqual([
      [0, 'wamid.OUT1', null],
      [1, 'wamid.OUT2', null],
      [2, 'wamid.OUT3', ['wamid.OUT1', 'wamid.OUT2', 'wamid.OUT3']],
    ]);
    expect(model.markOutboundSent).not.toHaveBeenCalled();
    expect(store.markedSent.get(reply.id)).toEqual(['wamid.OUT1', 'wamid.OUT2', 'wamid.OUT3']);
  });

  it('when a part goes to WhatsApp, then its callback data names the message and that part', async () => {
    const reply = outbound();
    installStore(reply);

    await send();

    const { callbackData } = graph.sendText.mock.calls[0]![0];
    expect(callbackData!(0)).toBe(partCallbackData(reply.id, 0));
  });

  it('when several messages are queued, then they are sent oldest first', async () => {
    const [first, second] = [outbound({ text: 'one' }), outbound({ text: 'two' })];
    installStore(first, second);

    await send();

    expect(graph.sendText.mock.calls.map(([input]) => input.text)).toEqual(['one', 'two']);
    expect([first.status, second.status]).toEqual(['sent', 'sent']);
  });

  it('when a queued message has no text, then it fails as invalid_request and Graph is not called', async () => {
    const empty = outbound({ text: null });
    installStore(empty);

    await send();

    expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, empty.id, { code: 'invalid_request', message: 'The message has no text to send' });
    expect(graph.sendText).not.toHaveBeenCalled();
  });

  it('when Graph refuses for good, then the message fails with Meta code and details, the part is released, and the next one is still sent', async () => {
    const [doomed, fine] = [outbound(), outbound()];
    installStore(doomed, fine);
    graph.sendText.mockRejectedValueOnce(graphError({ code: 131047, details: 'More than 24 hours have passed since the customer last replied' }));

    await send();

    expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, doomed.id, {
      code: '131047',
      message: 'More than 24 hours have passed since the customer last replied',
    });
    expect(model.releasePart).toHaveBeenCalledWith(USER, doomed.id, 0, expect.any(String));
    expect(graph.sendText).toHaveBeenCalledTimes(2);
    expect([doomed.status, fine.status]).toEqual(['failed', 'sent']);
  });

  it('when a permanent error has no details, then its message is stored', async () => {
    const doomed = outbound();
    installStore(doomed);
    graph.sendText.mockRejectedValueOnce(graphError({ code: 100 }, 'Graph whatsapp send failed: Invalid parameter (code 100, HTTP 400)'));

    await send();

    expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, doomed.id, {
      code: '100',
      message: 'Graph whatsapp send failed: Invalid parameter (code 100, HTTP 400)',
    });
  });

  it('when a permanent error has no Meta code, then its kind is the stored code', async () => {
    const doomed = outbound();
    installStore(doomed);
    graph.sendText.mockRejectedValueOnce(graphError({ kind: 'invalid_request', httpStatus: null }, 'send refused: the text is empty'));

    await send();

    expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, doomed.id, { code: 'invalid_request', message: 'send refused: the text is empty' });
  });

  it('when Graph throttles once, then Meta does not have the part: it is released and sent again at once, not in doubt', async () => {
    const reply = outbound();
    installStore(reply);
    graph.sendText.mockRejectedValueOnce(graphError({ code: 130429, httpStatus: 429 }));

    await send();

    expect(graph.sendText).toHaveBeenCalledTimes(2);
    expect(sleep).toHaveBeenCalledTimes(1);
    expect(await Promise.all(model.claimOutboundPart.mock.results.map((result) => result.value))).toEqual([{ outcome: 'claimed' }, { outcome: 'claimed' }]);
    expect(reply.status).toBe('sent');
    expect(model.markOutboundFailed).not.toHaveBeenCalled();
  });

  it('when Graph keeps failing with errors, then it tries three times and throws RetryLater, leaving the message queued', async () => {
    const reply = outbound();
    installStore(reply);
    graph.sendText.mockRejectedValue(graphError({ code: 2, httpStatus: 503 }));

    await expect(send()).rejects.toBeInstanceOf(RetryLater);

    expect(graph.sendText).toHaveBeenCalledTimes(3);
    expect(sleep).toHaveBeenCalledTimes(2);
    expect(reply.status).toBe('queued');
    expect(model.markOutboundFailed).not.toHaveBeenCalled();
  });

  it('when Graph does not answer, then the part is in doubt: the retry waits the grace for Meta before sending it again', async () => {
    const reply = outbound();
    installStore(reply);
    const resentBefore = await inDoubtCount('resent_after_grace');
    graph.sendText.mockRejectedValueOnce(graphError({ kind: 'timeout', httpStatus: null }));

    await send();

    expect(model.releasePart).not.toHaveBeenCalled();
    expect(graph.sendText).toHaveBeenCalledTimes(2);
    // The in-place backoff, then polls of the part until the grace ran out.
    expect(store.clock).toBeGreaterThanOrEqual(GRACE_MS);
    expect(await inDoubtCount('resent_after_grace')).toBe(resentBefore + 1);
    expect(reply.status).toBe('sent');
  });

  it('when the wait Meta asks for is long (pair rate limit), then each in-place wait is capped at 10 s', async () => {
    installStore(outbound());
    graph.sendText.mockRejectedValue(graphError({ code: 131056, retryAfterMs: 60_000 }));

    await expect(send()).rejects.toBeInstanceOf(RetryLater);

    expect(sleep.mock.calls.map(([ms]) => ms)).toEqual([10_000, 10_000]);
  });

  it('when the lease is lost during a transient failure, then it gives up at once without waiting', async () => {
    installStore(outbound());
    graph.sendText.mockImplementation(async () => {
      controller.abort();
      throw graphError({ code: 130429, httpStatus: 429 });
    });

    await expect(send()).rejects.toBeInstanceOf(RetryLater);

    expect(graph.sendText).toHaveBeenCalledTimes(1);
    expect(sleep).not.toHaveBeenCalled();
  });

  it('when Graph throws something that is not a GraphError, then it propagates as is and the part stays in doubt', async () => {
    const reply = outbound();
    installStore(reply);
    const bug = new TypeError('cannot read properties of undefined');
    graph.sendText.mockRejectedValue(bug);

    await expect(send()).rejects.toBe(bug);
    expect(store.parts.get(`${reply.id}:0`)?.status).toBe('sending');
  });

  it('when a split message fails midway, then the parts Meta has are not sent again and the retry sends the rest', async () => {
    const reply = outbound({ channel: 'instagram', text: longText });
    installStore(reply);
    graph.sendText.mockResolvedValueOnce(sent('p0')).mockRejectedValueOnce(graphError({ code: 130429, httpStatus: 429 }));

    await send(context({ conversation: { channel: 'instagram' } }));

    expect(graph.sendText.mock.calls.map(([input]) => input.fromPart)).toEqual([0, 1, 1, 2]);
    expect(store.markedSent.get(reply.id)).toEqual(['p0', 'wamid.OUT1', 'wamid.OUT2']);
  });

  it('when a turn gave up after a partial send, then the next turn sends only what is left and keeps the earlier ids', async () => {
    const reply = outbound({ channel: 'instagram', text: longText });
    installStore(reply);
    graph.sendText.mockResolvedValueOnce(sent('p0')).mockRejectedValue(graphError({ code: 2, httpStatus: 503 }));
    await expect(send(context({ conversation: { channel: 'instagram' } }))).rejects.toBeInstanceOf(RetryLater);
    expect(reply.status).toBe('queued');

    graph.sendText.mockReset().mockResolvedValueOnce(sent('p1')).mockResolvedValueOnce(sent('p2'));
    await send(context({ conversation: { channel: 'instagram' } }));

    expect(graph.sendText.mock.calls.map(([input]) => input.fromPart)).toEqual([1, 2]);
    expect(store.markedSent.get(reply.id)).toEqual(['p0', 'p1', 'p2']);
  });

  it('when a partial send then fails for good, then the message is failed and never marked sent', async () => {
    const reply = outbound({ channel: 'instagram', text: longText });
    installStore(reply);
    graph.sendText.mockResolvedValueOnce(sent('p0')).mockRejectedValueOnce(graphError({ code: 131026 }));

    await send(context({ conversation: { channel: 'instagram' } }));

    expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, reply.id, expect.objectContaining({ code: '131026' }));
    expect(store.markedSent.size).toBe(0);
    expect(graph.sendText).toHaveBeenCalledTimes(2);
  });

  it('when the message kept progress from before parts were recorded, then it resumes at that part with those ids', async () => {
    const reply = outbound({ channel: 'instagram', text: longText, payload: { send_progress: { nextPart: 2, externalIds: ['old0', 'old1'] } } });
    installStore(reply);

    await send(context({ conversation: { channel: 'instagram' } }));

    expect(graph.sendText.mock.calls.map(([input]) => input.fromPart)).toEqual([2]);
    expect(store.markedSent.get(reply.id)).toEqual(['old0', 'old1', 'wamid.OUT1']);
  });

  describe('a part in doubt (another attempt marked it sending and never recorded it)', () => {
    it('when Meta\'s status settles it within the grace, then it is never sent again, its id is kept, and the doubt counts as settled_by_status', async () => {
      const reply = outbound();
      installStore(reply);
      leftInDoubt(reply.id);
      const before = await inDoubtCount('settled_by_status');
      sleep.mockImplementationOnce(async (ms: number) => {
        store.clock += ms;
        settleByMeta(reply.id, 0, 'wamid.META', 'status');
      });

      await send();

      expect(graph.sendText).not.toHaveBeenCalled();
      expect(store.markedSent.get(reply.id)).toEqual(['wamid.META']);
      expect(store.clock).toBeLessThan(GRACE_MS);
      expect(await inDoubtCount('settled_by_status')).toBe(before + 1);
    });

    it('when our Instagram echo settles it within the grace, then it is never sent again and counts as settled_by_echo', async () => {
      const reply = outbound({ channel: 'instagram' });
      installStore(reply);
      leftInDoubt(reply.id);
      const before = await inDoubtCount('settled_by_echo');
      sleep.mockImplementationOnce(async (ms: number) => {
        store.clock += ms;
        settleByMeta(reply.id, 0, 'mid.ECHO', 'echo');
      });

      await send(context({ conversation: { channel: 'instagram' } }));

      expect(graph.sendText).not.toHaveBeenCalled();
      expect(store.markedSent.get(reply.id)).toEqual(['mid.ECHO']);
      expect(await inDoubtCount('settled_by_echo')).toBe(before + 1);
    });

    it('when Meta settled it before anyone looked, then it is taken at once, without waiting, and counted once', async () => {
      const reply = outbound();
      installStore(reply);
      leftInDoubt(reply.id);
      settleByMeta(reply.id, 0, 'wamid.META', 'status');
      const before = await inDoubtCount('settled_by_status');

      await send();
      await send(); // the message is not queued any more: nothing is claimed twice

      expect(sleep).not.toHaveBeenCalled();
      expect(graph.sendText).not.toHaveBeenCalled();
      expect(await inDoubtCount('settled_by_status')).toBe(before + 1);
    });

    it('when nothing settles it, then it is sent again only once the grace has passed, and counts as resent_after_grace', async () => {
      const reply = outbound();
      installStore(reply);
      leftInDoubt(reply.id, 0, -4_000); // marked 4 s before this worker looked
      const before = await inDoubtCount('resent_after_grace');
      let sentAt: number | undefined;
      graph.sendText.mockImplementationOnce(async () => {
        sentAt = store.clock;
        return sent('wamid.AGAIN');
      });

      await send();

      expect(sentAt).toBe(GRACE_MS - 4_000);
      expect(store.markedSent.get(reply.id)).toEqual(['wamid.AGAIN']);
      expect(await inDoubtCount('resent_after_grace')).toBe(before + 1);
    });

    it('when the lease is lost while waiting, then it stops with RetryLater and sends nothing', async () => {
      const reply = outbound();
      installStore(reply);
      leftInDoubt(reply.id);
      sleep.mockImplementationOnce(async () => controller.abort());

      await expect(send()).rejects.toBeInstanceOf(RetryLater);

      expect(graph.sendText).not.toHaveBeenCalled();
      expect(reply.status).toBe('queued');
    });
  });

  it('when the number was deleted, then a human\'s queued message fails with number_unavailable, a bot reply is cancelled and refunded, and Graph is not called', async () => {
    const [a, b] = [outbound({ author: 'human' }), outbound({ author: 'human' })];
    const reply = outbound();
    installStore(a, b, reply);

    await send(context({ phoneNumber: null }));

    for (const m of [a, b]) {
      expect(model.markOutboundFailed).toHaveBeenCalledWith(USER, m.id, {
        code: 'number_unavailable',
        message: 'The number was deleted before this message could be sent',
      });
    }
    expect(model.cancelBotReply).toHaveBeenCalledWith(USER, reply.id, 'number_unavailable');
    expect(model.markOutboundFailed).not.toHaveBeenCalledWith(USER, reply.id, expect.anything());
    expect(graph.sendText).not.toHaveBeenCalled();
  });

  it('when a bot reply is cancelled and refunded, then the cached credits pre-check is forgotten (a refund may lift an empty balance)', async () => {
    const reply = outbound();
    installStore(reply);
    model.cancelBotReply.mockResolvedValue(true);

    await send(context({ phoneNumber: null }));

    expect(forgetCredits).toHaveBeenCalledWith(USER);
  });

});
