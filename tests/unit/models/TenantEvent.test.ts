/** Emitting tenant events from TypeScript: one call on the caller's transaction client. */
import { emitCustomerOptedOut, emitTenantEvent, TENANT_EVENT_TYPES } from '../../../src/models/TenantEvent';
import { fakeQueryable, paramsOf } from '../../fixtures/fakeDatabase';
import { CONVERSATION, MESSAGE, USER } from '../../fixtures/rows';

describe('emitTenantEvent', () => {
  it('when emitted on a transaction client, then the statement goes to that client with the tenant first and the data as JSON', async () => {
    const tx = fakeQueryable();
    tx.query.mockResolvedValue({ rows: [{ id: 'event-1' }], rowCount: 1 });
    await expect(emitTenantEvent(tx, USER, 'customer.opted_out', CONVERSATION, { keyword: 'STOP' })).resolves.toBe('event-1');
    expect(paramsOf(tx)).toEqual([USER, 'customer.opted_out', CONVERSATION, '{"keyword":"STOP"}']);
  });

  it('when no endpoint wants the type, then null comes back', async () => {
    const tx = fakeQueryable();
    tx.query.mockResolvedValue({ rows: [{ id: null }], rowCount: 1 });
    await expect(emitTenantEvent(tx, USER, 'credits.low', null, {})).resolves.toBeNull();
  });
});

describe('emitCustomerOptedOut', () => {
  it('when a customer opts out, then the conversation, message and keyword go to the one SQL helper', async () => {
    const tx = fakeQueryable();
    tx.query.mockResolvedValue({ rows: [{ id: 'event-2' }], rowCount: 1 });
    await expect(emitCustomerOptedOut(tx, USER, CONVERSATION, { messageId: MESSAGE, keyword: 'STOP' })).resolves.toBe('event-2');
    expect(paramsOf(tx)).toEqual([USER, CONVERSATION, MESSAGE, 'STOP']);
  });
});

describe('TENANT_EVENT_TYPES', () => {
  it('then it lists the eight types of the contract', () => {
    expect(TENANT_EVENT_TYPES).toEqual([
      'message.received',
      'message.answered',
      'message.failed',
      'conversation.handoff',
      'conversation.resumed',
      'customer.opted_out',
      'extraction.completed',
      'credits.low',
    ]);
  });
});
