/**
 * Adaptive batching for a hot write: groups submitted while earlier batches are in flight are
 * gathered and written together once a slot frees. Under light load every group goes alone,
 * at once; under heavy load batches grow, so the cost of a round trip and a commit is shared.
 * Nothing waits on a timer. A group is never split across batches, so what one caller submits
 * together is written together, in its order.
 */
import { logger } from './logger';

export interface BatcherOptions {
  /** Items gathered into one write, unless a single group is larger. */
  maxBatch: number;
  /** Writes in flight at once. */
  maxInFlight: number;
  /**
   * Items that may wait for a write slot. Past it `submit` refuses at once (`BatcherFullError`)
   * rather than holding more: when writes stall, waiting callers would otherwise pile up in
   * memory without limit. A group arriving when nothing waits is taken whatever its size, so
   * no group is refused forever.
   */
  maxWaiting?: number;
}

/** `submit` refused a group: too many items already wait (see `maxWaiting`). */
export class BatcherFullError extends Error {
  override name = 'BatcherFullError';
}

interface Group<I, O> {
  items: I[];
  resolve: (outputs: O[]) => void;
  reject: (error: unknown) => void;
}

export class Batcher<I, O> {
  private readonly waiting: Group<I, O>[] = [];
  private waitingItems = 0;
  private inFlight = 0;
  private scheduled = false;

  /** `write` must return one output per item, in the items' order. */
  constructor(
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
  ) {}

  submit(items: I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    const { maxWaiting } = this.options;
    if (maxWaiting !== undefined && this.waitingItems > 0 && this.waitingItems + items.length > maxWaiting) {
      return Promise.reject(new BatcherFullError(`${this.waitingItems} items already wait to be written`));
    }
    return new Promise<O[]>((resolve, reject) => {
      this.waiting.push({ items, resolve, reject });
      this.waitingItems += items.length;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.waiting.length === 0) return;
    this.scheduled = true;
    // One turn of the event loop lets requests that arrived together share the first batch.
    setImmediate(() => {
      this.scheduled = false;
      while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
        // flush settles every group itself; this only catches a bug in that bookkeeping.
        void this.flush(this.takeBatch()).catch((error: unknown) => logger.error({ err: error }, 'batch bookkeeping failed'));
      }
    });
  }

  private takeBatch(): Group<I, O>[] {
    const batch = [this.waiting.shift()!];
    let size = batch[0]!.items.length;
    while (this.waiting.length > 0 && size + this.waiting[0]!.items.length <= this.options.maxBatch) {
      const group = this.waiting.shift()!;
      size += group.items.length;
      batch.push(group);
    }
    this.waitingItems -= size;
    return batch;
  }

  private async flush(batch: Group<I, O>[]): Promise<void> {
    this.inFlight++;
    try {
      const outputs = await this.write(batch.flatMap((group) => group.items));
      let offset = 0;
      for (const group of batch) {
        group.resolve(outputs.slice(offset, offset + group.items.length));
        offset += group.items.length;
      }
    } catch (error) {
      for (const group of batch) group.reject(error);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}
