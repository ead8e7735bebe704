/** Emitting tenant events from TypeScript: one call on the caller's transaction client. */
import { emitTenantEvent, TENANT_EVENT_TYPES } from '../../../src/models/TenantEvent';
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
