/**
 * Text Postgres cannot store as is: NUL (U+0000), which neither `text` nor `jsonb` accepts, and
 * a lone UTF-16 surrogate, which `jsonb` refuses (a `\ud800` escape names no character). Both
 * arrive in JSON as escapes, from Meta's webhooks and from API callers alike (CONTRACT §4.15).
 */

/** A NUL, a high surrogate with no low one after it, or a low surrogate with no high one before it. */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

/** Whether `text` holds a character Postgres would refuse. */
export function hasUnstorableText(text: string): boolean {
  return UNSTORABLE.test(text);
}

/**
 * `text` with each NUL and lone surrogate replaced by U+FFFD, the replacement character, so the
 * reader can see something was there; `text` itself when it is clean (the usual case).
 */
export function toStorableText(text: string): string {
  return UNSTORABLE.test(text) ? text.replace(UNSTORABLE_ALL, '\ufffd') : text;
}
