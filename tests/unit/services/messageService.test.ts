/**
 * The tenant API's messages with the models, the transaction and the queue mocked: ownership is
 * checked before a page is read, and a human's message is recorded under the conversation's
 * lock, then nudged, with Redis failures left to the sweeper. The same flows against Postgres
 * and Redis run in tests/integration/conversations.test.ts.
 */
import * as conversations from '../../../src/models/Conversation';
import * as messages from '../../../src/models/Message';
import * as database from '../../../src/utils/database';
import * as queue from '../../../src/utils/queue';
import type { Conversation } from '../../../src/models/Conversation';
import type { Message } from '../../../src/models/Message';
import { listMessages, retryFailed, sendHumanMessage, sendTemplate, windowOpen } from '../../../src/services/messageService';
import { runWithContext } from '../../../src/utils/context';
import { logger } from '../../../src/utils/logger';
import { encodeCursor } from '../../../src/utils/pagination';
import { fakeDatabaseOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { CONVERSATION, MESSAGE, USER, WINDOW_OPEN_UNTIL } from '../../fixtures/rows';

jest.mock('../../../src/models/Conversation');
jest.mock('../../../src/models/Message');
jest.mock('../../../src/utils/queue');
jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const model = { ...jest.mocked(conversations), ...jest.mocked(messages) };
const enqueue = jest.mocked(queue.enqueueConversations);
const fake = fakeDatabaseOf(database);

const conversation = (isActive = true, overrides: Partial<Conversation> = {}) =>
  ({ id: CONVERSATION, userId: USER, isActive, channel: 'whatsapp', windowExpiresAt: WINDOW_OPEN_UNTIL, optedOut: false, ...overrides }) as Conversation;
const message = (sequenceNo: number) => ({ id: `${MESSAGE}-${sequenceNo}`, sequenceNo }) as unknown as Message;

beforeEach(() => {
  jest.resetAllMocks();
  jest.restoreAllMocks();
  resetFakeDatabase(fake);
  enqueue.mockResolvedValue(undefined);
});

describe('listMessages', () => {
  it('when the model returns one row more than the limit, then the page ends with a cursor naming its last sequence number', async () => {
    model.findConversation.mockResolvedValue(conversation());
    model.listMessages.mockResolvedValue([message(1), message(2), message(3)]);

    const page = await listMessages(USER, CONVERSATION, { limit: 2 });

    expect(model.listMessages).toHaveBeenCalledWith(USER, CONVERSATION, { limit: 2, afterSequenceNo: undefined });
    expect(page).toEqual({ data: [message(1), message(2)], next_cursor: encodeCursor(2) });
  });

  it('when a cursor is given, then the page starts after the sequence number it names', async () => {
    model.findConversation.mockResolvedValue(conversation());
    model.listMessages.mockResolvedValue([]);

    await expect(listMessages(USER, CONVERSATION, { limit: 2, cursor: encodeCursor(9) })).resolves.toEqual({ data: [], next_cursor: null });
    expect(model.listMessages).toHaveBeenCalledWith(USER, CONVERSATION, { limit: 2, afterSequenceNo: 9 });
  });

  it('when the conversation is not the tenant\'s, then it is not_found and no message is read', async () => {
    model.findConversation.mockResolvedValue(null);

    await expect(listMessages(USER, CONVERSATION, { limit: 2 })).rejects.toMatchObject({ code: 'not_found' });
    expect(model.findConversation).toHaveBeenCalledWith(USER, CONVERSATION);
    expect(model.listMessages).not.toHaveBeenCalled();
  });

  it('when the cursor is not a sequence number, then it is a validation error and nothing is read', async () => {
    await expect(listMessages(USER, CONVERSATION, { limit: 2, cursor: encodeCursor(CONVERSATION) })).rejects.toMatchObject({ code: 'validation_error' });
    expect(model.findConversation).not.toHaveBeenCalled();
  });
});

describe('sendHumanMessage', () => {
  it('when the conversation is active, then the message is stored queued on the locked conversation\'s transaction and nudged with the request id', async () => {
    model.lockConversation.mockResolvedValue(conversation());
    model.insertHumanMessage.mockResolvedValue(message(4));

    const sent = await runWithContext({ requestId: 'req-1' }, () => sendHumanMessage(USER, CONVERSATION, 'Hi, a human here'));

    expect(sent).toEqual(message(4));
    expect(model.lockConversation).toHaveBeenCalledWith(USER, CONVERSATION, fake.transaction);
    expect(model.insertHumanMessage).toHaveBeenCalledWith(USER, CONVERSATION, { type: 'text', text: 'Hi, a human here', status: 'queued' }, fake.transaction);
    expect(enqueue).toHaveBeenCalledWith([{ conversationId: CONVERSATION, userId: USER, messageId: message(4).id, requestId: 'req-1' }]);
  });

  it('when the nudge is sent, then only after the transaction committed', async () => {
    const order: string[] = [];
    model.lockConversation.mockResolvedValue(conversation());
    model.insertHumanMessage.mockResolvedValue(message(4));
    fake.withTransaction.mockImplementation(async (fn) => {
      const result = await fn(fake.transaction);
      order.push('committed');
      return result;
    });
    enqueue.mockImplementation(async () => void order.push('nudged'));

    await sendHumanMessage(USER, CONVERSATION, 'hi');

    expect(order).toEqual(['committed', 'nudged']);
  });

  it('when the conversation is not the tenant\'s, then it is not_found and nothing is stored or nudged', async () => {
    model.lockConversation.mockResolvedValue(null);

    await expect(sendHumanMessage(USER, CONVERSATION, 'hi')).rejects.toMatchObject({ code: 'not_found' });
    expect(model.insertHumanMessage).not.toHaveBeenCalled();
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when the conversation is archived, then it is a conflict and nothing is stored or nudged', async () => {
    model.lockConversation.mockResolvedValue(conversation(false));

    await expect(sendHumanMessage(USER, CONVERSATION, 'hi')).rejects.toMatchObject({ code: 'conflict', status: 409 });
    expect(model.insertHumanMessage).not.toHaveBeenCalled();
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when Redis cannot take the nudge, then the stored message still comes back and a warning says the sweeper will send it', async () => {
    const warn = jest.spyOn(logger, 'warn');
    model.lockConversation.mockResolvedValue(conversation());
    model.insertHumanMessage.mockResolvedValue(message(4));
    enqueue.mockRejectedValue(new Error('Connection is closed.'));

    await expect(sendHumanMessage(USER, CONVERSATION, 'hi')).resolves.toEqual(message(4));
    expect(warn).toHaveBeenCalledWith({ err: { message: 'Connection is closed.' } }, expect.stringContaining('sweeper'));
  });

  it('when outside a request, then the nudge carries no request id', async () => {
    model.lockConversation.mockResolvedValue(conversation());
    model.insertHumanMessage.mockResolvedValue(message(4));

    await sendHumanMessage(USER, CONVERSATION, 'hi');

    expect(enqueue).toHaveBeenCalledWith([expect.objectContaining({ requestId: undefined })]);
  });
});

describe('windowOpen', () => {
  const now = Date.parse('2025-03-04T12:00:00Z');
  it.each([
    ['no customer message yet', null, false],
    ['a window that ended a second ago', new Date(now - 1000), false],
    ['a window that ends exactly now', new Date(now), false],
    ['a window that ends in a minute', new Date(now + 60_000), true],
  ])('when the conversation has %s, then %s', (_what, windowExpiresAt, open) => {
    expect(windowOpen({ windowExpiresAt }, now)).toBe(open);
  });
});

describe('sendHumanMessage outside the window', () => {
  it.each([
    ['closed', new Date(Date.now() - 1000)],
    ['never opened', null],
  ])('when the window is %s, then window_closed and nothing is stored or nudged', async (_what, windowExpiresAt) => {
    model.lockConversation.mockResolvedValue(conversation(true, { windowExpiresAt }));

    await expect(sendHumanMessage(USER, CONVERSATION, 'hi')).rejects.toMatchObject({ code: 'window_closed', status: 409 });
    expect(model.insertHumanMessage).not.toHaveBeenCalled();
    expect(enqueue).not.toHaveBeenCalled();
  });
});

describe('sending to a customer who opted out', () => {
  it('when a human writes, then opted_out (even inside the window) and nothing is stored or nudged', async () => {
    model.lockConversation.mockResolvedValue(conversation(true, { optedOut: true }));

    await expect(sendHumanMessage(USER, CONVERSATION, 'hi')).rejects.toMatchObject({ code: 'opted_out', status: 409 });
    expect(model.insertHumanMessage).not.toHaveBeenCalled();
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when a template is asked for, then opted_out and nothing is stored', async () => {
    model.lockConversation.mockResolvedValue(conversation(true, { optedOut: true }));

    await expect(sendTemplate(USER, CONVERSATION, { name: 'order_update', language: 'en' })).rejects.toMatchObject({ code: 'opted_out' });
    expect(model.insertMessage).not.toHaveBeenCalled();
  });
});

describe('sendTemplate', () => {
  const template = { name: 'order_update', language: 'en_US', components: [{ type: 'body' }] };

  it('when the conversation is on WhatsApp, then the template is stored queued as the business\'s (no pause: not a takeover) and nudged, even outside the window', async () => {
    model.lockConversation.mockResolvedValue(conversation(true, { windowExpiresAt: new Date(Date.now() - 1000) }));
    model.insertMessage.mockResolvedValue(message(5));

    await expect(sendTemplate(USER, CONVERSATION, template)).resolves.toEqual(message(5));
    expect(model.insertMessage).toHaveBeenCalledWith(
      USER,
      CONVERSATION,
      {
        direction: 'outbound',
        author: 'human',
        type: 'template',
        text: 'order_update',
        payload: { template: { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body' }] } },
        status: 'queued',
      },
      fake.transaction,
    );
    expect(model.insertHumanMessage).not.toHaveBeenCalled();
    expect(enqueue).toHaveBeenCalledWith([expect.objectContaining({ conversationId: CONVERSATION, userId: USER, messageId: message(5).id })]);
  });

  it.each([
    ['on Instagram', conversation(true, { channel: 'instagram' }), 'validation_error'],
    ['archived', conversation(false), 'conflict'],
    ['not the tenant\'s', null, 'not_found'],
  ])('when the conversation is %s, then %s and nothing is stored', async (_what, found, code) => {
    model.lockConversation.mockResolvedValue(found);

    await expect(sendTemplate(USER, CONVERSATION, template)).rejects.toMatchObject({ code });
    expect(model.insertMessage).not.toHaveBeenCalled();
  });
});

describe('retryFailed', () => {
  it('when failed messages go back, then it happens under the conversation\'s lock and the conversation is nudged after the commit', async () => {
    model.lockConversation.mockResolvedValue(conversation());
    model.retryFailedMessages.mockResolvedValue([message(1), message(2)]);

    await expect(retryFailed(USER, CONVERSATION)).resolves.toEqual([message(1), message(2)]);

    expect(model.lockConversation).toHaveBeenCalledWith(USER, CONVERSATION, fake.transaction);
    expect(model.retryFailedMessages).toHaveBeenCalledWith(USER, CONVERSATION, fake.transaction);
    expect(enqueue).toHaveBeenCalledWith([expect.objectContaining({ conversationId: CONVERSATION, userId: USER })]);
  });

  it('when nothing failed, then conflict and no nudge', async () => {
    model.lockConversation.mockResolvedValue(conversation());
    model.retryFailedMessages.mockResolvedValue([]);

    await expect(retryFailed(USER, CONVERSATION)).rejects.toMatchObject({ code: 'conflict', status: 409 });
    expect(enqueue).not.toHaveBeenCalled();
  });

  it('when the conversation is not the tenant\'s, then not_found and nothing is touched', async () => {
    model.lockConversation.mockResolvedValue(null);

    await expect(retryFailed(USER, CONVERSATION)).rejects.toMatchObject({ code: 'not_found' });
    expect(model.retryFailedMessages).not.toHaveBeenCalled();
  });

  it('when Redis cannot take the nudge, then the retry still stands (the sweeper nudges)', async () => {
    model.lockConversation.mockResolvedValue(conversation());
    model.retryFailedMessages.mockResolvedValue([message(1)]);
    enqueue.mockRejectedValue(new Error('redis down'));

    await expect(retryFailed(USER, CONVERSATION)).resolves.toEqual([message(1)]);
  });
});
