import { Batcher, BatcherFullError } from '../../../src/utils/batcher';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('when one group is submitted while idle, then it is written alone on the next turn', async () => {
    const write = jest.fn(async (items: number[]) => items.map((n) => n * 2));
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1 });
    expect(await batcher.submit([1, 2])).toEqual([2, 4]);
    expect(write).toHaveBeenCalledWith([1, 2]);
  });

  it('when groups arrive while a write is in flight, then they are gathered into the next write', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const write = jest.fn(async (items: string[]) => {
      if (write.mock.calls.length === 1) await gate;
      return items.map((item) => item.toUpperCase());
    });
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1 });
    const first = batcher.submit(['a']);
    await tick();
    const later = [batcher.submit(['b']), batcher.submit(['c', 'd']), batcher.submit(['e'])];
    release();
    expect(await first).toEqual(['A']);
    expect(await Promise.all(later)).toEqual([['B'], ['C', 'D'], ['E']]);
    expect(write.mock.calls.map(([items]) => items)).toEqual([['a'], ['b', 'c', 'd', 'e']]);
  });

  it('when gathering would pass maxBatch, then groups stay whole and spill into another write', async () => {
    const write = jest.fn(async (items: number[]) => items);
    const batcher = new Batcher(write, { maxBatch: 3, maxInFlight: 1 });
    await Promise.all([batcher.submit([1, 2]), batcher.submit([3, 4]), batcher.submit([5])]);
    expect(write.mock.calls.map(([items]) => items)).toEqual([[1, 2], [3, 4, 5]]);
  });

  it('when a single group is larger than maxBatch, then it is still written in one piece', async () => {
    const write = jest.fn(async (items: number[]) => items);
    const batcher = new Batcher(write, { maxBatch: 2, maxInFlight: 1 });
    expect(await batcher.submit([1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
    expect(write).toHaveBeenCalledTimes(1);
  });

  it('when a write fails, then every group in it is rejected and later groups still go through', async () => {
    const write = jest.fn(async (items: number[]) => {
      if (items.includes(0)) throw new Error('boom');
      return items;
    });
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1 });
    const failing = [batcher.submit([0]), batcher.submit([1])];
    await expect(failing[0]).rejects.toThrow('boom');
    await expect(failing[1]).rejects.toThrow('boom');
    expect(await batcher.submit([2])).toEqual([2]);
  });

  it('when more groups wait than slots, then at most maxInFlight writes run at once', async () => {
    let running = 0;
    let peak = 0;
    const write = async (items: number[]) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return items;
    };
    const batcher = new Batcher(write, { maxBatch: 1, maxInFlight: 2 });
    await Promise.all(Array.from({ length: 6 }, (_, i) => batcher.submit([i])));
    expect(peak).toBe(2);
  });

  it('when nothing is submitted, then nothing is written', async () => {
    const write = jest.fn(async (items: number[]) => items);
    expect(await new Batcher(write, { maxBatch: 1, maxInFlight: 1 }).submit([])).toEqual([]);
    expect(write).not.toHaveBeenCalled();
  });
});

describe('Batcher with maxWaiting', () => {
  /** A write that holds every batch until `release()`. */
  function stalled() {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const write = jest.fn(async (items: number[]) => {
      await gate;
      return items;
    });
    return { write, release };
  }

  it('when writes stall and the waiting items reach the bound, then the next group is refused at once and the waiting ones still complete', async () => {
    const { write, release } = stalled();
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1, maxWaiting: 3 });
    const inFlight = batcher.submit([1]);
    await tick();
    const waiting = [batcher.submit([2, 3]), batcher.submit([4])];

    await expect(batcher.submit([5])).rejects.toBeInstanceOf(BatcherFullError);

    release();
    expect(await inFlight).toEqual([1]);
    expect(await Promise.all(waiting)).toEqual([[2, 3], [4]]);
    expect(write.mock.calls.map(([items]) => items)).toEqual([[1], [2, 3, 4]]);
  });

  it('when the waiting items are written, then room frees up again', async () => {
    const { write, release } = stalled();
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1, maxWaiting: 1 });
    const first = batcher.submit([1]);
    await tick();
    const second = batcher.submit([2]);
    await expect(batcher.submit([3])).rejects.toBeInstanceOf(BatcherFullError);
    release();
    await Promise.all([first, second]);
    expect(await batcher.submit([4])).toEqual([4]);
  });

  it('when a group larger than the bound arrives while nothing waits, then it is taken, so no body is refused forever', async () => {
    const { write, release } = stalled();
    const batcher = new Batcher(write, { maxBatch: 10, maxInFlight: 1, maxWaiting: 2 });
    const inFlight = batcher.submit([1]);
    await tick();
    const big = batcher.submit([2, 3, 4, 5]);
    await expect(batcher.submit([6])).rejects.toBeInstanceOf(BatcherFullError);
    release();
    expect(await inFlight).toEqual([1]);
    expect(await big).toEqual([2, 3, 4, 5]);
  });
});
