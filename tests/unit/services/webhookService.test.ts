/**
 * webhookService with its two edges mocked: the models it writes through (Postgres) and the queue
 * (Redis). What each normalized event turns into, how outcomes are counted, which recorded
 * messages get a nudge, and how a failure on either edge surfaces.
 */
import { ingestWebhookEvents } from '../../../src/services/webhookService';
import { acceptCustomerMessages, fileInbox, markUnsentByCustomer, type AcceptResult, type InboxEvent } from '../../../src/models/Inbox';
import { ingestBusinessEcho, type IngestResult } from '../../../src/models/BusinessEcho';
import { applyOutboundStatus, settlePartByStatus } from '../../../src/models/OutboundStatus';
import { partCallbackData } from '../../../src/services/metaGraphService';
import { config } from '../../../src/config';
import { enqueueConversations } from '../../../src/utils/queue';
import { AppError } from '../../../src/utils/errors';
import { findAccountRoute } from '../../../src/services/cachedLookups';
import type {
  MetaError,
  NormalizedError,
  NormalizedIgnored,
  NormalizedMessage,
  NormalizedReaction,
  NormalizedRead,
  NormalizedStatus,
} from '../../../src/services/metaNormalizer';

jest.mock('../../../src/models/Inbox', () => ({
  acceptCustomerMessages: jest.fn(),
  fileInbox: jest.fn(),
  markUnsentByCustomer: jest.fn(),
}));
jest.mock('../../../src/models/BusinessEcho', () => ({ ingestBusinessEcho: jest.fn() }));
jest.mock('../../../src/models/OutboundStatus', () => ({ applyOutboundStatus: jest.fn(), settlePartByStatus: jest.fn() }));
jest.mock('../../../src/utils/queue', () => ({ enqueueConversations: jest.fn() }));
jest.mock('../../../src/services/cachedLookups', () => ({ findAccountRoute: jest.fn() }));

/** What acceptance says of each item: the batch mock below asks it once per item. */
const ingestCustomer = jest.fn<Promise<AcceptResult>, [InboxEvent]>();
const ingestEcho = ingestBusinessEcho as jest.MockedFunction<typeof ingestBusinessEcho>;
const applyStatus = applyOutboundStatus as jest.MockedFunction<typeof applyOutboundStatus>;
const settlePart = settlePartByStatus as jest.MockedFunction<typeof settlePartByStatus>;
const markUnsent = markUnsentByCustomer as jest.MockedFunction<typeof markUnsentByCustomer>;
const enqueue = enqueueConversations as jest.MockedFunction<typeof enqueueConversations>;
const route = jest.mocked(findAccountRoute);

const REQUEST_ID = 'req-123';
const USER = '11111111-1111-4111-8111-111111111111';
const CONVERSATION = '22222222-2222-4222-8222-222222222222';
const NUMBER = '44444444-4444-4444-8444-444444444444';
const at = new Date('2025-03-04T05:06:07Z');

function message(overrides: Partial<NormalizedMessage> = {}): NormalizedMessage {
  return {
    kind: 'message',
    channel: 'whatsapp',
    accountId: 'PNID-1',
    customerId: '15550001111',
    customerUserId: null,
    customerName: 'Ana',
    externalId: 'wamid.A',
    timestamp: at,
    type: 'text',
    text: 'hello',
    media: null,
    replyTo: null,
    isEcho: false,
    isDeleted: false,
    isStandby: false,
    payload: {},
    dedupeKey: 'wa|wamid.A',
    ...overrides,
  };
}

function reaction(overrides: Partial<NormalizedReaction> = {}): NormalizedReaction {
  return {
    kind: 'reaction',
    channel: 'whatsapp',
    accountId: 'PNID-1',
    customerId: '15550001111',
    targetExternalId: 'wamid.TARGET',
    emoji: '👍',
    removed: false,
    externalId: 'wamid.REACTION',
    timestamp: at,
    dedupeKey: 'wa|wamid.REACTION|👍|1741064767000',
    ...overrides,
  };
}

function status(value: NormalizedStatus['status'], errors: MetaError[] = []): NormalizedStatus {
  return {
    kind: 'status',
    channel: 'whatsapp',
    accountId: 'PNID-1',
    externalId: 'wamid.OURS',
    status: value,
    timestamp: at,
    recipientId: '15550001111',
    recipientUserId: null,
    errors,
    bizOpaqueCallbackData: null,
    dedupeKey: `wa|wamid.OURS|${value}`,
  };
}

const metaError = (overrides: Partial<MetaError> = {}): MetaError => ({
  code: 131047,
  title: 'Re-engagement message',
  message: 'Message failed to send',
  details: 'More than 24 hours have passed',
  ...overrides,
});

const read: NormalizedRead = {
  kind: 'read',
  channel: 'instagram',
  accountId: 'IG-1',
  customerId: 'IGSID-1',
  externalId: 'mid.OURS',
  timestamp: at,
  dedupeKey: 'ig|IGSID-1|mid.OURS|read',
};

const errorEvent: NormalizedError = {
  kind: 'error',
  channel: 'whatsapp',
  accountId: 'PNID-1',
  code: 131000,
  title: 'Something went wrong',
  message: null,
  details: null,
};

const ignored: NormalizedIgnored = {
  kind: 'ignored',
  channel: 'whatsapp',
  accountId: 'PNID-1',
  reason: 'unhandled_field',
  detail: 'field account_update',
  path: 'entry[0].changes[0]',
};

const accepted = (customerId = '15550001111', hasAgent = true): AcceptResult => ({
  outcome: 'accepted',
  key: { userId: USER, phoneNumberId: NUMBER, customerId },
  hasAgent,
});
const nudge = (customerId = '15550001111') => ({ userId: USER, phoneNumberId: NUMBER, customerId, requestId: REQUEST_ID });

const outcome = (value: IngestResult['outcome']): IngestResult => ({
  outcome: value,
  userId: null,
  conversationId: null,
  messageId: null,
  status: null,
});
const echoRecorded: IngestResult = { outcome: 'recorded', userId: USER, conversationId: CONVERSATION, messageId: 'M', status: null };

beforeEach(() => {
  jest.resetAllMocks();
  // The service writes customer messages in batches; each item behaves as the single-row mock says.
  (acceptCustomerMessages as jest.MockedFunction<typeof acceptCustomerMessages>).mockImplementation((batch) =>
    Promise.all(batch.map((fields) => ingestCustomer(fields).catch((error: Error) => error))),
  );
  ingestCustomer.mockResolvedValue(accepted());
  ingestEcho.mockResolvedValue(echoRecorded);
  applyStatus.mockResolvedValue(true);
  markUnsent.mockResolvedValue(true);
  enqueue.mockResolvedValue(undefined);
  // Every account is registered unless a test says otherwise (the cached route, services/cachedLookups.ts).
  route.mockImplementation(async () => ({ userId: USER, phoneNumberId: NUMBER, agentId: null }));
});

describe('customer messages', () => {
  it('when a text arrives, then it is accepted with every field, answerable, and its customer is nudged with the request id', async () => {
    const summary = await ingestWebhookEvents([message()], REQUEST_ID);

    expect(ingestCustomer).toHaveBeenCalledTimes(1);
    expect(ingestCustomer).toHaveBeenCalledWith({
      channel: 'whatsapp',
      account_id: 'PNID-1',
      customer_id: '15550001111',
      customer_name: 'Ana',
      external_id: 'wamid.A',
      type: 'text',
      text: 'hello',
      payload: {},
      timestamp: at.toISOString(),
      answerable: true,
    });
    expect(enqueue).toHaveBeenCalledWith([nudge()]);
    expect(summary).toEqual({ recorded: 1, duplicates: 0, queued: 1, statuses: 0, ignored: 0 });
  });

  it('when a message has media and quotes another, then both are folded into the payload next to its own keys', async () => {
    const media = { id: 'MEDIA-1', mimeType: 'image/jpeg', caption: 'look' };
    await ingestWebhookEvents([message({ type: 'image', media, replyTo: 'wamid.EARLIER', payload: { sha: 'x' } })], REQUEST_ID);

    expect(ingestCustomer.mock.calls[0]?.[0].payload).toEqual({ sha: 'x', media, reply_to: 'wamid.EARLIER' });
  });

  it('when a message has neither media nor a quote, then the payload carries no media or reply_to key', async () => {
    await ingestWebhookEvents([message({ payload: { a: 1 } })], REQUEST_ID);

    expect(ingestCustomer.mock.calls[0]?.[0].payload).toEqual({ a: 1 });
  });

  it.each(['reaction', 'unsupported', 'system', 'deleted', 'ephemeral', 'unknown'])(
    'when the message type is %s, then it is stored but not answerable',
    async (type) => {
      await ingestWebhookEvents([message({ type })], REQUEST_ID);

      expect(ingestCustomer.mock.calls[0]?.[0].answerable).toBe(false);
    },
  );

  it.each(['image', 'location', 'interactive', 'button', 'audio', 'postback'])(
    'when the message type is %s, then it is answerable',
    async (type) => {
      await ingestWebhookEvents([message({ type })], REQUEST_ID);

      expect(ingestCustomer.mock.calls[0]?.[0].answerable).toBe(true);
    },
  );

  it('when the message came on standby (another app owns the thread), then it is stored but not answerable', async () => {
    await ingestWebhookEvents([message({ channel: 'instagram', isStandby: true })], REQUEST_ID);

    expect(ingestCustomer.mock.calls[0]?.[0].answerable).toBe(false);
  });

  it('when the customer unsent a message, then it is flagged by channel and id and nothing is ingested or counted', async () => {
    const summary = await ingestWebhookEvents(
      [message({ channel: 'instagram', externalId: 'mid.GONE', isDeleted: true, type: 'deleted' })],
      REQUEST_ID,
    );

    expect(markUnsent).toHaveBeenCalledWith('instagram', 'mid.GONE');
    expect(ingestCustomer).not.toHaveBeenCalled();
    expect(ingestEcho).not.toHaveBeenCalled();
    expect(enqueue).not.toHaveBeenCalled();
    expect(summary).toEqual({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 0 });
  });

  it('when the message is an echo of the business, then it goes to ingestBusinessEcho without customer name or answerable', async () => {
    const summary = await ingestWebhookEvents(
      [message({ channel: 'instagram', accountId: 'IG-1', customerId: 'IGSID-1', externalId: 'mid.ECHO', isEcho: true })],
      REQUEST_ID,
    );

    expect(ingestCustomer).not.toHaveBeenCalled();
    expect(ingestEcho).toHaveBeenCalledWith({
      channel: 'instagram',
      account_id: 'IG-1',
      customer_id: 'IGSID-1',
      external_id: 'mid.ECHO',
      type: 'text',
      text: 'hello',
      payload: {},
      timestamp: at.toISOString(),
    }, config.SEND_IN_DOUBT_GRACE_MS);
    expect(summary.recorded).toBe(1);
    expect(summary.queued).toBe(0);
  });
});

describe('reactions', () => {
  it('when a reaction arrives, then its dedupe key is the external id, the emoji is the text, and it is not answerable', async () => {
    const summary = await ingestWebhookEvents([reaction()], REQUEST_ID);

    expect(ingestCustomer).toHaveBeenCalledWith({
      channel: 'whatsapp',
      account_id: 'PNID-1',
      customer_id: '15550001111',
      customer_name: null,
      external_id: 'wa|wamid.REACTION|👍|1741064767000',
      type: 'reaction',
      text: '👍',
      payload: { target_external_id: 'wamid.TARGET', emoji: '👍', removed: false },
      timestamp: at.toISOString(),
      answerable: false,
    });
    expect(summary.recorded).toBe(1);
  });

  it('when a reaction is removed on Instagram (no id, no emoji), then it is still stored under its dedupe key', async () => {
    await ingestWebhookEvents(
      [reaction({ channel: 'instagram', externalId: null, emoji: null, removed: true, dedupeKey: 'ig|S|mid.T|unreact|1' })],
      REQUEST_ID,
    );

    expect(ingestCustomer.mock.calls[0]?.[0]).toMatchObject({
      external_id: 'ig|S|mid.T|unreact|1',
      text: null,
      payload: { target_external_id: 'wamid.TARGET', emoji: null, removed: true },
    });
  });

  it('when a reaction is accepted, then its customer is nudged to file it like any message (filing decides it owes no reply)', async () => {
    const summary = await ingestWebhookEvents([reaction()], REQUEST_ID);

    expect(summary).toEqual({ recorded: 1, duplicates: 0, queued: 1, statuses: 0, ignored: 0 });
    expect(enqueue).toHaveBeenCalledWith([nudge()]);
  });
});

describe('statuses and reads', () => {
  it.each(['sent', 'delivered', 'read'] as const)('when a %s status arrives, then it is applied with no error', async (value) => {
    const summary = await ingestWebhookEvents([status(value)], REQUEST_ID);

    expect(applyStatus).toHaveBeenCalledWith('whatsapp', 'wamid.OURS', value, null);
    expect(summary.statuses).toBe(1);
  });

  it.each(['played', 'deleted', 'warning', ''])('when a %p status arrives, then it is ignored and nothing is written', async (value) => {
    const summary = await ingestWebhookEvents([status(value)], REQUEST_ID);

    expect(applyStatus).not.toHaveBeenCalled();
    expect(summary).toEqual({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 1 });
  });

  it('when a failed status carries details, then the details win over message and title, and the code becomes a string', async () => {
    await ingestWebhookEvents([status('failed', [metaError()])], REQUEST_ID);

    expect(applyStatus).toHaveBeenCalledWith('whatsapp', 'wamid.OURS', 'failed', {
      code: '131047',
      message: 'More than 24 hours have passed',
    });
  });

  it('when a failed status has no details, then the message is used', async () => {
    await ingestWebhookEvents([status('failed', [metaError({ details: null })])], REQUEST_ID);

    expect(applyStatus.mock.calls[0]?.[3]).toEqual({ code: '131047', message: 'Message failed to send' });
  });

  it('when a failed status has only a title, then the title is used', async () => {
    await ingestWebhookEvents([status('failed', [metaError({ details: null, message: null })])], REQUEST_ID);

    expect(applyStatus.mock.calls[0]?.[3]).toEqual({ code: '131047', message: 'Re-engagement message' });
  });

  it('when a failed status has no code and no text, then code "unknown" and message "failed" are stored', async () => {
    await ingestWebhookEvents([status('failed', [{ code: null, title: null, message: null, details: null }])], REQUEST_ID);

    expect(applyStatus.mock.calls[0]?.[3]).toEqual({ code: 'unknown', message: 'failed' });
  });

  it('when a failed status carries several errors, then only the first is stored', async () => {
    await ingestWebhookEvents([status('failed', [metaError({ code: 1 }), metaError({ code: 2 })])], REQUEST_ID);

    expect(applyStatus.mock.calls[0]?.[3]).toMatchObject({ code: '1' });
  });

  it('when a failed status carries no error object, then it is applied with an unknown error code', async () => {
    await ingestWebhookEvents([status('failed')], REQUEST_ID);

    expect(applyStatus).toHaveBeenCalledWith('whatsapp', 'wamid.OURS', 'failed', {
      code: 'unknown',
      message: 'Meta reported the message failed without saying why',
    });
  });

  it('when a status names no message of ours (or moves backwards), then it is still counted and nothing throws', async () => {
    applyStatus.mockResolvedValue(false);

    const summary = await ingestWebhookEvents([status('delivered')], REQUEST_ID);

    expect(summary.statuses).toBe(1);
  });

  it('when a status carries the callback data of one of our parts, then it settles that part and still moves the message', async () => {
    const part = { messageId: '6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61', partNo: 1 };
    settlePart.mockResolvedValue(true);
    applyStatus.mockResolvedValue(false);

    const summary = await ingestWebhookEvents([{ ...status('delivered'), bizOpaqueCallbackData: partCallbackData(part.messageId, part.partNo) }], REQUEST_ID);

    expect(settlePart).toHaveBeenCalledWith('whatsapp', 'PNID-1', part, 'wamid.OURS', 'delivered', null);
    expect(applyStatus).toHaveBeenCalledWith('whatsapp', 'wamid.OURS', 'delivered', null);
    expect(summary.statuses).toBe(1);
  });

  it('when a failed status names our part, then the part is settled with the error Meta gave', async () => {
    await ingestWebhookEvents([{ ...status('failed', [metaError()]), bizOpaqueCallbackData: partCallbackData('6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61', 0) }], REQUEST_ID);

    expect(settlePart.mock.calls[0]?.slice(4)).toEqual(['failed', { code: '131047', message: 'More than 24 hours have passed' }]);
  });

  it('when a status carries no callback data, or someone else\'s, then no part is settled', async () => {
    await ingestWebhookEvents([status('sent'), { ...status('read'), bizOpaqueCallbackData: 'campaign-42' }], REQUEST_ID);

    expect(settlePart).not.toHaveBeenCalled();
    expect(applyStatus).toHaveBeenCalledTimes(2);
  });

  it('when Instagram says the customer read our message, then it is applied as a read status', async () => {
    const summary = await ingestWebhookEvents([read], REQUEST_ID);

    expect(applyStatus).toHaveBeenCalledWith('instagram', 'mid.OURS', 'read', null);
    expect(summary.statuses).toBe(1);
  });
});

describe('errors and ignored items', () => {
  it('when Meta reports an error or an item was ignored, then each is counted as ignored and nothing is written', async () => {
    const summary = await ingestWebhookEvents([errorEvent, ignored], REQUEST_ID);

    expect(summary).toEqual({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 2 });
    for (const fn of [ingestCustomer, ingestEcho, applyStatus, markUnsent]) expect(fn).not.toHaveBeenCalled();
  });
});

describe('outcomes', () => {
  it('when the cached route says no tenant has the account, then its messages and echoes are ignored without a write', async () => {
    route.mockImplementation(async (_channel, account) => (account === 'PNID-1' ? null : { userId: USER, phoneNumberId: NUMBER, agentId: null }));

    const summary = await ingestWebhookEvents(
      [message(), message({ isEcho: true, externalId: 'wamid.E' }), message({ accountId: 'PNID-2', externalId: 'wamid.B' })],
      REQUEST_ID,
    );

    expect(summary).toMatchObject({ recorded: 1, ignored: 2 });
    expect(ingestCustomer).toHaveBeenCalledTimes(1);
    expect(ingestCustomer).toHaveBeenCalledWith(expect.objectContaining({ account_id: 'PNID-2' }));
    expect(ingestEcho).not.toHaveBeenCalled();
    // One lookup per account of the body, not per message.
    expect(route.mock.calls.filter(([, account]) => account === 'PNID-1').length).toBeLessThanOrEqual(2);
  });

  it('when the route cannot be looked up at all (Redis and Postgres away), then the webhook is unavailable (Meta retries)', async () => {
    route.mockRejectedValue(new Error('connection refused'));
    await expect(ingestWebhookEvents([message()], REQUEST_ID)).rejects.toMatchObject({ code: 'unavailable' });
    expect(ingestCustomer).not.toHaveBeenCalled();
  });

  it('when the account is unknown, then it is counted as ignored and not nudged', async () => {
    ingestCustomer.mockResolvedValue({ outcome: 'unknown_account', key: null, hasAgent: false });

    const summary = await ingestWebhookEvents([message()], REQUEST_ID);

    expect(summary).toEqual({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 1 });
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when the message is a duplicate or our own echo, then it is counted as a duplicate and not nudged', async () => {
    ingestCustomer.mockResolvedValueOnce({ outcome: 'duplicate', key: accepted().key, hasAgent: true });
    ingestEcho.mockResolvedValueOnce(outcome('own_echo'));

    const summary = await ingestWebhookEvents([message(), message({ isEcho: true, externalId: 'wamid.E' })], REQUEST_ID);

    expect(summary).toEqual({ recorded: 0, duplicates: 2, queued: 0, statuses: 0, ignored: 0 });
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when the number has no agent, then its messages are filed at once and nothing is queued', async () => {
    ingestCustomer.mockResolvedValue(accepted('15550001111', false));
    (fileInbox as jest.Mock).mockResolvedValue({ conversationId: CONVERSATION, filed: 2, dropped: 0, refused: 0 });

    const summary = await ingestWebhookEvents([message(), message({ externalId: 'wamid.B' })], REQUEST_ID);

    expect(fileInbox).toHaveBeenCalledTimes(1);
    expect(fileInbox).toHaveBeenCalledWith({ userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' });
    expect(enqueue).not.toHaveBeenCalled();
    expect(summary).toEqual({ recorded: 2, duplicates: 0, queued: 0, statuses: 0, ignored: 0 });
  });

  it('when filing for a number without agent fails, then the webhook still succeeds (the rows wait for the sweeper)', async () => {
    ingestCustomer.mockResolvedValue(accepted('15550001111', false));
    (fileInbox as jest.Mock).mockRejectedValue(new Error('deadlock detected'));

    await expect(ingestWebhookEvents([message()], REQUEST_ID)).resolves.toMatchObject({ recorded: 1, queued: 0 });
  });

  it('when one body carries several messages of one customer, then the customer is nudged once', async () => {
    const summary = await ingestWebhookEvents([message(), message({ externalId: 'wamid.B' }), reaction()], REQUEST_ID);

    expect(summary).toEqual({ recorded: 3, duplicates: 0, queued: 1, statuses: 0, ignored: 0 });
    expect(enqueue).toHaveBeenCalledWith([nudge()]);
  });

  it('when a body mixes every kind, then customer messages are written first in body order, the rest after, and each new customer is nudged', async () => {
    const order: string[] = [];
    ingestCustomer.mockImplementation(async (fields) => {
      order.push(fields.external_id);
      return fields.external_id === 'wamid.DUP' ? { outcome: 'duplicate', key: accepted().key, hasAgent: true } : accepted(`customer-${fields.external_id}`);
    });
    applyStatus.mockImplementation(async (_channel, externalId) => {
      order.push(externalId);
      return true;
    });

    const summary = await ingestWebhookEvents(
      [message({ externalId: 'wamid.1' }), status('read'), message({ externalId: 'wamid.DUP' }), ignored, message({ externalId: 'wamid.2' })],
      REQUEST_ID,
    );

    expect(order).toEqual(['wamid.1', 'wamid.DUP', 'wamid.2', 'wamid.OURS']);
    expect(enqueue).toHaveBeenCalledWith([nudge('customer-wamid.1'), nudge('customer-wamid.2')]);
    expect(summary).toEqual({ recorded: 2, duplicates: 1, queued: 2, statuses: 1, ignored: 1 });
  });

  it('when the body is empty, then the summary is all zeros', async () => {
    expect(await ingestWebhookEvents([], REQUEST_ID)).toEqual({ recorded: 0, duplicates: 0, queued: 0, statuses: 0, ignored: 0 });
  });
});

describe('failures', () => {
  it('when the database fails, then an AppError unavailable (503) is thrown with the cause and nothing is queued', async () => {
    const cause = new Error('connection terminated');
    ingestCustomer.mockResolvedValueOnce(accepted()).mockRejectedValueOnce(cause);

    const error = await ingestWebhookEvents([message(), message({ externalId: 'wamid.B' })], REQUEST_ID).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'unavailable', status: 503, cause });
    expect(enqueue).not.toHaveBeenCalled();
  });

  it.each([
    ['a status update', () => applyStatus.mockRejectedValue(new Error('db down')), status('sent')],
    ['an unsend', () => markUnsent.mockRejectedValue(new Error('db down')), message({ isDeleted: true })],
    ['an echo', () => ingestEcho.mockRejectedValue(new Error('db down')), message({ isEcho: true })],
  ] as const)('when %s cannot be written, then unavailable is thrown', async (_what, fail, event) => {
    fail();

    await expect(ingestWebhookEvents([event], REQUEST_ID)).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('when enqueueing fails, then the webhook does not wait for it or fail: the error is only logged (the sweeper repairs it)', async () => {
    let reject!: (error: Error) => void;
    enqueue.mockReturnValue(new Promise((_, fail) => (reject = fail)));

    const summary = await ingestWebhookEvents([message()], REQUEST_ID);

    expect(enqueue).toHaveBeenCalledTimes(1);
    expect(summary).toEqual({ recorded: 1, duplicates: 0, queued: 1, statuses: 0, ignored: 0 });
    reject(new Error('Redis is down'));
    await new Promise((resolve) => setImmediate(resolve));
  });
});
