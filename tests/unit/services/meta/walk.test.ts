import { child, eachItem, guarded, ignore, type Walk } from '../../../../src/services/meta/walk';

const walk = (): Walk => ({ out: [], receivedAt: new Date(0) });

describe('the normalisers\' walk', () => {
  it('when a key is appended to the root path, then no leading dot is written', () => {
    expect(child('', 'entry')).toBe('entry');
    expect(child('entry[0]', 'changes')).toBe('entry[0].changes');
  });

  it('when an item is ignored at the root, then its path is "$"', () => {
    const ctx = walk();
    ignore(ctx, 'instagram', 'A', 'malformed_entry', 'why', '');
    expect(ctx.out).toEqual([
      { kind: 'ignored', channel: 'instagram', accountId: 'A', reason: 'malformed_entry', detail: 'why', path: '$' },
    ]);
  });

  it('when a guarded function throws, then one internal_error is recorded and the throw goes no further', () => {
    const ctx = walk();
    guarded(ctx, 'whatsapp', 'P', 'entry[1]', () => {
      throw new Error('boom');
    });
    guarded(ctx, null, null, '$', () => {
      throw 'nope';
    });
    expect(ctx.out).toEqual([
      { kind: 'ignored', channel: 'whatsapp', accountId: 'P', reason: 'internal_error', detail: 'boom', path: 'entry[1]' },
      { kind: 'ignored', channel: null, accountId: null, reason: 'internal_error', detail: '"nope"', path: '$' },
    ]);
  });

  it('when the list is absent, then nothing is visited or reported', () => {
    const ctx = walk();
    const visit = jest.fn();
    eachItem(ctx, {}, 'messages', 'v', 'whatsapp', 'P', 'malformed_change', visit);
    expect(visit).not.toHaveBeenCalled();
    expect(ctx.out).toEqual([]);
  });

  it('when the list is not an array, then it is reported at its own path', () => {
    const ctx = walk();
    eachItem(ctx, { messages: 'x' }, 'messages', 'v', 'whatsapp', 'P', 'malformed_change', jest.fn());
    expect(ctx.out).toEqual([
      {
        kind: 'ignored',
        channel: 'whatsapp',
        accountId: 'P',
        reason: 'malformed_change',
        detail: 'messages is "x", not an array',
        path: 'v.messages',
      },
    ]);
  });

  it('when one item throws, then its siblings are still visited with their paths', () => {
    const ctx = walk();
    const seen: string[] = [];
    eachItem(ctx, { messaging: [1, 2, 3] }, 'messaging', 'entry[0]', 'instagram', null, 'malformed_entry', (item, path) => {
      if (item === 2) throw new Error('bad item');
      seen.push(`${String(item)}@${path}`);
    });
    expect(seen).toEqual(['1@entry[0].messaging[0]', '3@entry[0].messaging[2]']);
    expect(ctx.out).toEqual([expect.objectContaining({ reason: 'internal_error', detail: 'bad item', path: 'entry[0].messaging[1]' })]);
  });
});
