/**
 * MetaEvent with the database edge mocked: which SQL function each write calls, the parameter
 * order those functions expect, how a unique violation becomes "duplicate", how a batch's
 * rows map back to its items, and what the UPDATEs report back. (The SQL itself runs against
 * Postgres in tests/integration/webhook.test.ts.)
 */
import {
  acceptCustomerMessages,
  applyOutboundStatus,
  fileInbox,
  findWaitingInbox,
  ingestBusinessEcho,
  markUnsentByCustomer,
  setInboxAside,
  type InboundMessageFields,
} from '../../../src/models/Inbox';
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

describe('acceptCustomerMessages', () => {
  const NUMBER = '44444444-4444-4444-8444-444444444444';
  const accepted = (ordinal: number, customerId = '15550001111') => ({ ordinal: String(ordinal), outcome: 'accepted', userId: USER, phoneNumberId: NUMBER, customerId, hasAgent: true });

  it('when a batch is accepted, then its items go as one JSON array in snake_case and rows come back in item order, whatever order they arrive in', async () => {
    query.mockResolvedValueOnce({
      rows: [
        { ordinal: '3', outcome: 'unknown_account', userId: null, phoneNumberId: null, customerId: 'C3', hasAgent: null },
        accepted(1),
        { ordinal: '2', outcome: 'duplicate', userId: USER, phoneNumberId: NUMBER, customerId: '15550001111', hasAgent: false },
      ],
    });

    const results = await acceptCustomerMessages([fields, { ...fields, externalId: 'wamid.B' }, { ...fields, accountId: 'nobody', customerId: 'C3' }]);

    expect(query).toHaveBeenCalledTimes(1);
    expect(sql()).toContain('INSERT INTO inbox');
    expect(sql()).toContain('NOT EXISTS (SELECT 1 FROM messages m');
    const items = JSON.parse(params()[0] as string);
    expect(items[0]).toEqual({
      channel: 'whatsapp',
      account_id: 'PNID-1',
      customer_id: '15550001111',
      customer_name: 'Ana',
      external_id: 'wamid.A',
      type: 'text',
      text: 'hello',
      payload: { media: { id: 'M' } },
      timestamp: '2025-03-04T05:06:07.000Z',
      answerable: true,
    });
    expect(results).toEqual([
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: true },
      { outcome: 'duplicate', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: false },
      { outcome: 'unknown_account', key: null, hasAgent: false },
    ]);
  });

  it('when a batch fails as a whole, then each item is tried alone and only the failing one carries the error', async () => {
    const refused = new Error('value too long');
    query
      .mockRejectedValueOnce(refused)
      .mockResolvedValueOnce({ rows: [accepted(1)] })
      .mockRejectedValueOnce(refused)
      .mockResolvedValueOnce({ rows: [accepted(1, 'C3')] });

    const results = await acceptCustomerMessages([fields, { ...fields, externalId: 'wamid.B' }, { ...fields, customerId: 'C3' }]);

    expect(query).toHaveBeenCalledTimes(4);
    expect(JSON.parse(params(2)[0] as string)).toEqual([expect.objectContaining({ external_id: 'wamid.B' })]);
    expect(results).toEqual([
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: '15550001111' }, hasAgent: true },
      refused,
      { outcome: 'accepted', key: { userId: USER, phoneNumberId: NUMBER, customerId: 'C3' }, hasAgent: true },
    ]);
  });

  it('when a single item fails, then its error comes back without a second try', async () => {
    const down = new Error('Connection terminated');
    query.mockRejectedValueOnce(down);

    await expect(acceptCustomerMessages([fields])).resolves.toEqual([down]);
    expect(query).toHaveBeenCalledTimes(1);
  });

  it('when a client is given, then the statement runs on it and not on the pool', async () => {
    const tx: Queryable = { query: jest.fn().mockResolvedValue({ rows: [accepted(1)], rowCount: 1 }) };

    await acceptCustomerMessages([fields], tx);

    expect(tx.query).toHaveBeenCalledTimes(1);
    expect(query).not.toHaveBeenCalled();
  });
});

describe('the inbox', () => {
  const key = { userId: USER, phoneNumberId: '44444444-4444-4444-8444-444444444444', customerId: '15550001111' };

  it('when a customer is filed, then file_inbox gets tenant, number and customer and its row comes back', async () => {
    const row = { conversationId: CONVERSATION, filed: 2, dropped: 0, refused: 0 };
    query.mockResolvedValueOnce({ rows: [row] });

    await expect(fileInbox(key)).resolves.toEqual(row);
    expect(sql()).toContain('FROM file_inbox($1, $2, $3)');
    expect(params()).toEqual([USER, key.phoneNumberId, '15550001111']);
  });

  it('when the sweeper looks for waiting customers, then rows idle longer than given and not set aside are asked for, up to a limit', async () => {
    query.mockResolvedValueOnce({ rows: [key] });

    await expect(findWaitingInbox(30_000, 500)).resolves.toEqual([key]);
    expect(sql()).toContain('attempts < inbox_max_attempts()');
    expect(params()).toEqual([30_000, 500]);
  });

  it('when a customer is set aside, then the reason is stored under the tenant and the active conversation is named', async () => {
    query.mockResolvedValueOnce({ rows: [{ setAside: 1, conversationId: CONVERSATION }] });

    await expect(setInboxAside(key, 'poison')).resolves.toEqual({ setAside: 1, conversationId: CONVERSATION });
    expect(sql()).toContain('UPDATE inbox SET attempts = inbox_max_attempts()');
    expect(params()).toEqual([USER, key.phoneNumberId, '15550001111', 'poison']);
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
    query.mockResolvedValueOnce({ rows: [{ flagged: 1 }] });

    expect(await markUnsentByCustomer('instagram', 'mid.GONE')).toBe(true);
    expect(params()).toEqual(['instagram', 'mid.GONE']);
    expect(sql()).toContain('{"deleted": true}');
    expect(sql()).toContain("direction = 'inbound'");
  });

  it('when no inbound message has that id, then false', async () => {
    query.mockResolvedValueOnce({ rows: [{ flagged: 0 }] });

    expect(await markUnsentByCustomer('instagram', 'mid.NEVER')).toBe(false);
  });
});
