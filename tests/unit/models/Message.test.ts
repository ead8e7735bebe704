/**
 * The message model with a fake database: what append_message and record_human_message are
 * sent (tenant first, optional fields as null, payload as JSON text), and how a missing
 * conversation and Postgres' errors come back. What the statements do runs against Postgres in
 * tests/integration/conversationRules.test.ts and conversations.test.ts.
 */
import { insertHumanMessage, insertMessage, listMessages, retryFailedMessages } from '../../../src/models/Message';
import * as database from '../../../src/utils/database';
import { AppError } from '../../../src/utils/errors';
import { answer, fakeDatabaseOf, fakeQueryable, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AT, CONVERSATION, MESSAGE, messageRow, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const message = messageRow(4, { direction: 'outbound', author: 'human', status: 'queued', text: 'hi', externalId: null });

beforeEach(() => resetFakeDatabase(fake));

describe('every statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertMessage', call: (client) => insertMessage(USER, CONVERSATION, { direction: 'inbound', author: 'customer', type: 'text', status: 'pending' }, client), rows: [message] },
    { name: 'insertHumanMessage', call: (client) => insertHumanMessage(USER, CONVERSATION, { type: 'text', text: 'hi', status: 'queued' }, client), rows: [message] },
    { name: 'listMessages', call: (client) => listMessages(USER, CONVERSATION, { limit: 10 }, client) },
    { name: 'retryFailedMessages', call: (client) => retryFailedMessages(USER, CONVERSATION, client) },
  ]);
});

describe('insertMessage', () => {
  it('when every field is given, then each goes in append_message order, the payload as JSON text', async () => {
    answer(fake.db, [message]);

    const stored = await insertMessage(USER, CONVERSATION, {
      direction: 'inbound',
      author: 'customer',
      type: 'image',
      text: 'look',
      payload: { media: ['M1', 'M2'] },
      status: 'failed',
      externalId: 'wamid.1',
      replyToMessageId: MESSAGE,
      externalTimestamp: AT,
      errorCode: '131047',
      errorMessage: 'Re-engagement message',
    });

    expect(stored).toEqual(message);
    expect(paramsOf(fake.db)).toEqual([
      USER,
      CONVERSATION,
      'inbound',
      'customer',
      'image',
      'look',
      '{"media":["M1","M2"]}',
      'failed',
      'wamid.1',
      MESSAGE,
      AT,
      '131047',
      'Re-engagement message',
    ]);
  });

  it('when the optional fields are left out, then they go as null, not as undefined or "null"', async () => {
    answer(fake.db, [message]);

    await insertMessage(USER, CONVERSATION, { direction: 'outbound', author: 'agent', type: 'text', status: 'queued', payload: null });

    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 'outbound', 'agent', 'text', null, null, 'queued', null, null, null, null, null]);
  });

  it('when the tenant has no such conversation, then it throws not_found', async () => {
    await expect(insertMessage(USER, CONVERSATION, { direction: 'inbound', author: 'customer', type: 'text', status: 'pending' })).rejects.toMatchObject({
      code: 'not_found',
      status: 404,
    });
  });

  it('when Meta\'s id was already stored, then Postgres\' unique violation reaches the caller unchanged', async () => {
    const duplicate = Object.assign(new Error('duplicate key value'), { code: '23505' });
    answer(fake.db, duplicate);

    await expect(insertMessage(USER, CONVERSATION, { direction: 'inbound', author: 'customer', type: 'text', status: 'pending', externalId: 'wamid.1' })).rejects.toBe(duplicate);
  });
});

describe('insertHumanMessage', () => {
  it('when a human writes, then the message goes on the transaction\'s client and comes back', async () => {
    const tx = fakeQueryable();
    answer(tx, [message]);

    await expect(insertHumanMessage(USER, CONVERSATION, { type: 'text', text: 'hi', status: 'queued' }, tx)).resolves.toEqual(message);
    expect(paramsOf(tx)).toEqual([USER, CONVERSATION, 'text', 'hi', 'queued']);
  });

  it('when the tenant has no such conversation, then it throws not_found', async () => {
    const error = await insertHumanMessage(USER, CONVERSATION, { type: 'text', text: 'hi', status: 'queued' }, fakeQueryable()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'not_found' });
  });
});

describe('listMessages', () => {
  it('when there is no cursor, then the page starts after sequence 0 and asks one row more than the limit', async () => {
    answer(fake.db, [message]);

    await expect(listMessages(USER, CONVERSATION, { limit: 10 })).resolves.toEqual([message]);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 0, 11]);
  });

  it('when a cursor is given, then the page starts after its sequence number', async () => {
    await listMessages(USER, CONVERSATION, { limit: 3, afterSequenceNo: 7 });

    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 7, 4]);
  });
});
