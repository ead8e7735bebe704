/**
 * How the demo moves and talks: numbered steps with ✓/✗ and times, waits that are always
 * bounded and give up at once on Ctrl-C, and the little formatting they share.
 */

export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const clip = (text: string | null, max = 60) => {
  const flat = (text ?? '').replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};
export const describeError = (error: unknown) => (error instanceof Error ? error.message : String(error));

export const INTERRUPTED = 'interrupted (Ctrl-C)';

export class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Polls `check` until it returns a value; every wait in the demo is bounded by `timeoutMs`. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, signal?: AbortSignal): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${secs(timeoutMs)} waiting for ${what}`);
    await sleep(150, signal);
  }
}

/** Numbered steps with ✓/✗ and times, so a newcomer sees where the demo is and how long things take. */
export class Progress {
  private count = 0;
  constructor(
    private readonly log: (line: string) => void,
    private readonly startedAt: number,
  ) {}

  async step<T>(title: string, run: () => Promise<T>, summary?: (value: T) => string): Promise<T> {
    const number = ++this.count;
    const began = Date.now();
    this.log(`${String(number).padStart(2)}. ${title}`);
    try {
      const value = await run();
      const detail = summary ? `${summary(value)} ` : '';
      this.log(`    ✓ ${detail}(${secs(Date.now() - began)}; ${secs(Date.now() - this.startedAt)} in)`);
      return value;
    } catch (error) {
      this.log(`    ✗ failed after ${secs(Date.now() - began)}: ${describeError(error)}`);
      throw error;
    }
  }

  /** A step whose failure is reported but does not stop the demo (clean-up must go on). */
  async attempt(title: string, run: () => Promise<string>): Promise<boolean> {
    try {
      await this.step(title, run, (detail) => detail);
      return true;
    } catch {
      return false;
    }
  }
}
