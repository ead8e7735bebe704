/**
 * MetaEvent with the database edge mocked: which SQL function each write calls, the parameter
 * order those functions expect, how a unique violation becomes "duplicate", and what the
 * UPDATEs report back.
 */
import {
  applyOutboundStatus,
  ingestBusinessEcho,
  ingestCustomerMessage,
  markUnsentByCustomer,
  type InboundMessageFields,
} from '../../../src/models/MetaEvent';
import { db, type Queryable } from '../../../src/utils/database';

jest.mock('../../../src/utils/database', () => ({
  db: { query: jest.fn() },
  withTransaction: jest.fn(),
}));

const query = db.query as jest.Mock;
const sql = (call = 0) => String(query.mock.calls[call]?.[0]).replace(/\s+/g, ' ');
const params = (call = 0) => query.mock.calls[call]?.[1] as unknown[];

const USER = '11111111-1111-4111-8111-111111111111';
const CONVERSATION = '22222222-2222-4222-8222-222222222222';
const MESSAGE = '33333333-3333-4333-8333-333333333333';
const at = new Date('2025-03-04T05:06:07Z');

const fields: InboundMessageFields = {
  channel: 'whatsapp',
  accountId: 'PNID-1',
  customerId: '15550001111',
  customerName: 'Ana',
  externalId: 'wamid.A',
  type: 'text',
  text: 'hello',
  payload: { media: { id: 'M' } },
  timestamp: at,
  answerable: true,
};

const uniqueViolation = () => Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });

beforeEach(() => query.mockReset());

describe('ingestCustomerMessage', () => {
  it('when called, then ingest_customer_message gets its ten parameters in order and the row comes back as is', async () => {
    const row = { outcome: 'recorded', userId: USER, conversationId: CONVERSATION, messageId: MESSAGE, status: 'pending' };
    query.mockResolvedValueOnce({ rows: [row], rowCount: 1 });

    const result = await ingestCustomerMessage(fields);

    expect(query).toHaveBeenCalledTimes(1);
    expect(sql()).toContain('FROM ingest_customer_message($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)');
    expect(sql()).toContain('user_id AS "userId"');
    expect(params()).toEqual(['whatsapp', 'PNID-1', '15550001111', 'Ana', 'wamid.A', 'text', 'hello', { media: { id: 'M' } }, at, true]);
    expect(result).toEqual(row);
  });

  it('when the message is not answerable and has no name or text, then nulls and false are passed through', async () => {
    query.mockResolvedValueOnce({ rows: [{ outcome: 'recorded', userId: USER, conversationId: CONVERSATION, messageId: MESSAGE, status: 'ignored' }] });

    await ingestCustomerMessage({ ...fields, customerName: null, text: null, payload: null, answerable: false });

    expect(params()).toEqual(['whatsapp', 'PNID-1', '15550001111', null, 'wamid.A', 'text', null, null, at, false]);
  });

  it('when a concurrent delivery wins the unique index (23505), then the outcome is duplicate with nothing else', async () => {
    query.mockRejectedValueOnce(uniqueViolation());

    await expect(ingestCustomerMessage(fields)).resolves.toEqual({
      outcome: 'duplicate',
      userId: null,
      conversationId: null,
      messageId: null,
      status: null,
    });
  });

  it('when any other database error occurs, then it is rethrown unchanged', async () => {
    const error = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    query.mockRejectedValueOnce(error);

    await expect(ingestCustomerMessage(fields)).rejects.toBe(error);
  });

  it('when an error has no code at all, then it is rethrown', async () => {
    query.mockRejectedValueOnce(new Error('Connection terminated'));

    await expect(ingestCustomerMessage(fields)).rejects.toThrow('Connection terminated');
  });

  it('when a client is given, then the statement runs on it and not on the pool', async () => {
    const tx: Queryable = { query: jest.fn().mockResolvedValue({ rows: [{ outcome: 'unknown_account' }], rowCount: 1 }) };

    await ingestCustomerMessage(fields, tx);

    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(query).not.toHaveBeenCalled();
  });
});

describe('ingestBusinessEcho', () => {
  const echo = { channel: 'instagram', accountId: 'IG-1', customerId: 'IGSID-1', externalId: 'mid.E', type: 'text', text: 'hi', payload: {}, timestamp: at };

  it('when called, then ingest_business_echo gets its eight parameters in order and status is added as null', async () => {
    query.mockResolvedValueOnce({ rows: [{ outcome: 'recorded', userId: USER, conversationId: CONVERSATION, messageId: MESSAGE }], rowCount: 1 });

    const result = await ingestBusinessEcho(echo);

    expect(sql()).toContain('FROM ingest_business_echo($1, $2, $3, $4, $5, $6, $7, $8)');
    expect(params()).toEqual(['instagram', 'IG-1', 'IGSID-1', 'mid.E', 'text', 'hi', {}, at]);
    expect(result).toEqual({ outcome: 'recorded', userId: USER, conversationId: CONVERSATION, messageId: MESSAGE, status: null });
  });

  it('when our own reply echoes back, then own_echo comes through', async () => {
    query.mockResolvedValueOnce({ rows: [{ outcome: 'own_echo', userId: USER, conversationId: CONVERSATION, messageId: MESSAGE }] });

    expect((await ingestBusinessEcho(echo)).outcome).toBe('own_echo');
  });

  it('when the echo loses a unique race (23505), then the outcome is duplicate', async () => {
    query.mockRejectedValueOnce(uniqueViolation());

    expect(await ingestBusinessEcho(echo)).toEqual({ outcome: 'duplicate', userId: null, conversationId: null, messageId: null, status: null });
  });

  it('when any other error occurs, then it is rethrown', async () => {
    query.mockRejectedValueOnce(Object.assign(new Error('check violation'), { code: '23514' }));

    await expect(ingestBusinessEcho(echo)).rejects.toThrow('check violation');
  });
});

describe('applyOutboundStatus', () => {
  it('when a row moved forward, then true, with channel, id, status, code and message in order', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 1 });

    const moved = await applyOutboundStatus('whatsapp', 'wamid.O', 'failed', { code: '131047', message: 'too late' });

    expect(moved).toBe(true);
    expect(params()).toEqual(['whatsapp', 'wamid.O', 'failed', '131047', 'too late']);
    expect(sql()).toContain("direction = 'outbound'");
    expect(sql()).toContain('outbound_status_rank(status) < outbound_status_rank($3)');
  });

  it('when there is no error, then code and message are passed as null (COALESCE keeps earlier ones)', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 1 });

    await applyOutboundStatus('instagram', 'mid.O', 'read', null);

    expect(params()).toEqual(['instagram', 'mid.O', 'read', null, null]);
  });

  it('when no row matched (unknown id or a step backwards), then false', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });

    expect(await applyOutboundStatus('whatsapp', 'wamid.X', 'sent', null)).toBe(false);
  });

  it('when the driver reports a null rowCount, then false', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: null });

    expect(await applyOutboundStatus('whatsapp', 'wamid.X', 'delivered', null)).toBe(false);
  });
});

describe('markUnsentByCustomer', () => {
  it('when the inbound message exists, then it is flagged deleted and true comes back', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 1 });

    expect(await markUnsentByCustomer('instagram', 'mid.GONE')).toBe(true);
    expect(params()).toEqual(['instagram', 'mid.GONE']);
    expect(sql()).toContain('{"deleted": true}');
    expect(sql()).toContain("direction = 'inbound'");
  });

  it('when no inbound message has that id, then false', async () => {
    query.mockResolvedValueOnce({ rows: [], rowCount: 0 });

    expect(await markUnsentByCustomer('instagram', 'mid.NEVER')).toBe(false);
  });
});
