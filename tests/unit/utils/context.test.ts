/** The per-request context: what a callee sees inside, outside, across awaits and side by side. */
import { setTimeout as sleep } from 'node:timers/promises';
import { currentContext, runWithContext } from '../../../src/utils/context';

describe('runWithContext and currentContext', () => {
  it('when nothing runs in a context, then there is none', () => {
    expect(currentContext()).toBeUndefined();
  });

  it('when a function runs in a context, then it sees it, its result comes back, and the context ends with it', () => {
    const result = runWithContext({ requestId: 'req-1', userId: 'user-1' }, () => currentContext());

    expect(result).toEqual({ requestId: 'req-1', userId: 'user-1' });
    expect(currentContext()).toBeUndefined();
  });

  it('when the work awaits timers and promises, then the context follows it', async () => {
    const seen = await runWithContext({ requestId: 'req-2' }, async () => {
      await sleep(1);
      await Promise.resolve();
      return new Promise((resolve) => setImmediate(() => resolve(currentContext()?.requestId)));
    });

    expect(seen).toBe('req-2');
  });

  it('when two requests run at once, then each sees only its own', async () => {
    const request = (requestId: string, ms: number) =>
      runWithContext({ requestId }, async () => {
        await sleep(ms);
        return currentContext()?.requestId;
      });

    await expect(Promise.all([request('slow', 5), request('fast', 1)])).resolves.toEqual(['slow', 'fast']);
  });

  it('when a context is opened inside another, then the inner one holds until it ends and the outer one comes back', () => {
    runWithContext({ requestId: 'outer' }, () => {
      expect(runWithContext({ requestId: 'inner' }, () => currentContext()?.requestId)).toBe('inner');
      expect(currentContext()?.requestId).toBe('outer');
    });
  });

  it('when the function throws, then the error passes through and no context is left behind', () => {
    expect(() =>
      runWithContext({ requestId: 'req-3' }, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(currentContext()).toBeUndefined();
  });
});
