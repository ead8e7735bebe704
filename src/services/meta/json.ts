/**
 * Readers for untrusted JSON: a webhook body is whatever reached us with a valid signature, so
 * every read checks its type, and nothing read here can throw on JSON input. Every string read
 * here comes out storable (utils/storableText.ts): a signed body holding a NUL or a lone
 * surrogate is accepted with those cleaned, not refused by Postgres on each of Meta's retries
 * (CONTRACT §4.15). Shared by the WhatsApp and Instagram normalisers.
 */
import { toStorableText } from '../../utils/storableText';

/** A JSON value; payloads are copied into this shape so they can go straight into jsonb. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object, the shape of every event `payload`. */
export type JsonObject = { [key: string]: JsonValue };

/** An object read from the body, its values not yet checked. */
export type Obj = Record<string, unknown>;

/** Deep enough for a referral or an order; bounds what a hostile body can make us copy. */
const MAX_JSON_DEPTH = 6;
/** Below this a timestamp is seconds: 1e12 ms is 2001, 1e12 s is the year 33658. */
const SECONDS_CUTOFF = 1e12;

/** The value if it is a plain object (not null, not an array), else undefined. */
export function asObj(value: unknown): Obj | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : undefined;
}

/** Reads a key named by the body itself, so `type: "constructor"` cannot reach the prototype. */
export function own(container: Obj | undefined, key: string): unknown {
  return container !== undefined && Object.hasOwn(container, key) ? container[key] : undefined;
}

/** Empty strings count as absent: Meta uses `""` for "none" (e.g. a removed reaction). */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? toStorableText(value) : undefined;
}

/** Accepts numeric strings too, because WhatsApp sends numbers as strings in some places. */
export function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) return Number(value);
  return undefined;
}

/** The objects of an array, skipping any other element; `[]` when the value is not an array. */
export function objects(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map(asObj).filter((o): o is Obj => o !== undefined) : [];
}

/** WhatsApp sends string seconds, Instagram ms integers; we accept either in either form. */
export function toDate(value: unknown): Date | undefined {
  const n = typeof value === 'number' || (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) return undefined;
  const date = new Date(n < SECONDS_CUTOFF ? n * 1000 : n);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Copies untrusted input into plain JSON so payloads never alias the body or carry junk. */
export function toJson(value: unknown, depth = 0): JsonValue | undefined {
  if (typeof value === 'string') return toStorableText(value);
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'object' || depth >= MAX_JSON_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((item) => toJson(item, depth + 1) ?? null);
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    const json = toJson(item, depth + 1);
    if (json !== undefined) out[toStorableText(key)] = json;
  }
  return out;
}

/** Drops absent keys so payloads stay small and tests can compare them exactly. */
export function compact(fields: Record<string, JsonValue | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
}

/** A short description of a value for a log line: a string (cut at 60 characters) or its kind. */
export function shape(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}
