/**
 * How the normalisers walk a body: the output they append to, the `ignored` event for an item
 * they cannot read, and the guard that keeps one bad item from hiding its siblings.
 */
import type { Channel } from '../../models/types';
import type { IgnoredReason, NormalizedEvent } from '../metaNormalizer';
import { shape, type Obj } from './json';

/** One call's output and its fallback clock, passed down the walk. */
export interface Walk {
  out: NormalizedEvent[];
  receivedAt: Date;
}

/** `messages.type` is `CHECK (length(type) BETWEEN 1 AND 40)` in src/migrations/B008_baseline.sql. */
export const MAX_TYPE_LENGTH = 40;

/** The path of `key` under `path`, as the `ignored` events print it. */
export function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Records that the item at `path` yields no typed event, and why. */
export function ignore(
  ctx: Walk,
  channel: Channel | null,
  accountId: string | null,
  reason: IgnoredReason,
  detail: string,
  path: string,
): void {
  ctx.out.push({ kind: 'ignored', channel, accountId, reason, detail, path: path === '' ? '$' : path });
}

/**
 * Runs one item's normaliser so that, whatever it meets, the item becomes at most one
 * `internal_error` and its siblings are still read. JSON cannot make our accessors throw;
 * this is for callers that hand us something else (getters, proxies).
 */
export function guarded(ctx: Walk, channel: Channel | null, accountId: string | null, path: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    ignore(ctx, channel, accountId, 'internal_error', err instanceof Error ? err.message : shape(err), path);
  }
}

/** Walks `items` (absent is fine, a non-array is reported) and guards each element. */
export function eachItem(
  ctx: Walk,
  container: Obj,
  key: string,
  path: string,
  channel: Channel,
  accountId: string | null,
  malformed: IgnoredReason,
  fn: (item: unknown, itemPath: string) => void,
): void {
  const items = container[key];
  if (items === undefined) return;
  const listPath = child(path, key);
  if (!Array.isArray(items)) {
    ignore(ctx, channel, accountId, malformed, `${key} is ${shape(items)}, not an array`, listPath);
    return;
  }
  items.forEach((item, i) => {
    const itemPath = `${listPath}[${i}]`;
    guarded(ctx, channel, accountId, itemPath, () => fn(item, itemPath));
  });
}
