/**
 * Turns a parsed Meta webhook body (WhatsApp Cloud API or Instagram Messaging) into a flat
 * list of typed events, so the webhook controller and the workers never read Meta's shapes.
 *
 * Pure: no I/O, no logging, no clock except the optional `receivedAt` fallback. It never
 * throws, because a single odd item must not turn into a non-200 that makes Meta retry
 * (and, on Instagram, eventually unsubscribe us) — see docs spec §3.
 *
 * Every item Meta sent yields exactly one event: either a typed one or an `ignored` event
 * saying why, so the caller can log what it drops and siblings are never hidden.
 */
import type { Channel } from '../models/types';

/** A JSON value; payloads are copied into this shape so they can go straight into jsonb. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object, the shape of every event `payload`. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Message types we know by name. WhatsApp's are Meta's `messages[].type`; Instagram's are the
 * first attachment's `type`, `text`, `postback`, `deleted` (an unsend with no content left)
 * or `unsupported`.
 */
export type KnownMessageType =
  | 'text'
  | 'image'
  | 'audio'
  | 'video'
  | 'document'
  | 'sticker'
  | 'location'
  | 'contacts'
  | 'interactive'
  | 'button'
  | 'unsupported'
  | 'system'
  | 'order'
  | 'file'
  | 'share'
  | 'story_mention'
  | 'ig_reel'
  | 'reel'
  | 'ephemeral'
  | 'postback'
  | 'deleted'
  | 'unknown';

/** A known type, or whatever new type name Meta sends (kept verbatim, at most 40 chars). */
export type MessageType = KnownMessageType | (string & {});

/** Where to fetch a message's media; only the keys Meta sent are present. */
export interface MediaRef {
  /** WhatsApp media id (expires after 7 days; resolve with GET /<id>). */
  id?: string;
  /** Direct URL: Instagram CDN link, or WhatsApp's (gradually rolled out, may be absent). */
  url?: string;
  mimeType?: string;
  caption?: string;
  filename?: string;
}

/** One of Meta's error objects, flattened. `code` is null when Meta sent none usable. */
export interface MetaError {
  code: number | null;
  title: string | null;
  message: string | null;
  /** `error_data.details`, the human-readable cause Meta says to build logic on. */
  details: string | null;
}

/** A customer (or, with `isEcho`, business) message. */
export interface NormalizedMessage {
  kind: 'message';
  channel: Channel;
  /** What we route by: WhatsApp `metadata.phone_number_id`, Instagram `entry.id`. */
  accountId: string;
  /** WhatsApp: `from` (wa_id), else the BSUID. Instagram: the IGSID (the recipient on echoes). */
  customerId: string;
  /** WhatsApp BSUID (`from_user_id` / contact `user_id`) when Meta sent one; null on Instagram. */
  customerUserId: string | null;
  /** WhatsApp profile name of the matching contact; always null on Instagram. */
  customerName: string | null;
  /** wamid / mid. For an Instagram postback without a mid, a synthetic `postback|…` id. */
  externalId: string;
  timestamp: Date;
  type: MessageType;
  /** What the AI should read: body, caption, reply title, rendered location/contacts/order. */
  text: string | null;
  media: MediaRef | null;
  /** The message this one replies to: WhatsApp `context.id`, Instagram `reply_to.mid`. */
  replyTo: string | null;
  /** Instagram `is_echo`: sent by the business account (our API or a human in the IG app). */
  isEcho: boolean;
  /** Instagram `is_deleted`: the customer unsent `externalId`. */
  isDeleted: boolean;
  /** Instagram `standby[]`: another app owns the thread (Handover Protocol). */
  isStandby: boolean;
  /** Type-specific details worth storing (coordinates, reply ids, referral, error codes…). */
  payload: JsonObject;
  /** Key for webhook-retry deduplication (spec §3): `wa|<wamid>`, `ig|<mid>`, `ig|<mid>|deleted`. */
  dedupeKey: string;
}

/** A reaction added or removed on a message. */
export interface NormalizedReaction {
  kind: 'reaction';
  channel: Channel;
  accountId: string;
  customerId: string;
  /** The wamid / mid reacted to. */
  targetExternalId: string;
  /** Null when the reaction was removed (or Instagram sent no emoji). */
  emoji: string | null;
  removed: boolean;
  /** WhatsApp's own wamid for the reaction message; null on Instagram (reactions have no id). */
  externalId: string | null;
  timestamp: Date;
  /** `wa|<id>|<emoji or removed>|<ms>` or `ig|<sender>|<mid>|<react|unreact>|<ms>` (spec §3). */
  dedupeKey: string;
}

/** A delivery status for one of OUR outbound WhatsApp messages. */
export interface NormalizedStatus {
  kind: 'status';
  channel: 'whatsapp';
  accountId: string;
  /** Our outbound wamid. */
  externalId: string;
  status: 'sent' | 'delivered' | 'read' | 'failed' | 'played' | (string & {});
  timestamp: Date;
  /** `recipient_id` (phone or group id), else `recipient_user_id` (BSUID). */
  recipientId: string | null;
  recipientUserId: string | null;
  errors: MetaError[];
  /** `wa|<wamid>|<status>` (spec §3). */
  dedupeKey: string;
}

/** Instagram `read`: the customer has seen messages up to `externalId`. */
export interface NormalizedRead {
  kind: 'read';
  channel: 'instagram';
  accountId: string;
  customerId: string;
  externalId: string;
  timestamp: Date;
  /** `ig|<sender>|<mid>|read` (spec §3). */
  dedupeKey: string;
}

/** A system, app or account-level error (WhatsApp `value.errors[]`). */
export interface NormalizedError extends MetaError {
  kind: 'error';
  channel: Channel;
  /** Null when the change carried no `metadata.phone_number_id`. */
  accountId: string | null;
}

/** Why an item produced no typed event. */
export type IgnoredReason =
  /** The body (or an element of a top-level array) is not an object, or `entry` is not an array. */
  | 'malformed_body'
  /** `object` is neither `whatsapp_business_account` nor `instagram` (e.g. `page`). */
  | 'unknown_object'
  | 'malformed_entry'
  | 'malformed_change'
  /** A WhatsApp field other than `messages`, or an Instagram `changes[]` item (comments, …). */
  | 'unhandled_field'
  /** An Instagram event we deliberately skip (`message_edit`, standalone `referral`, optins…). */
  | 'unhandled_event'
  /** A WhatsApp change with messages/statuses but no `metadata.phone_number_id` to route by. */
  | 'missing_account'
  | 'malformed_message'
  | 'malformed_status'
  | 'malformed_error'
  /** Something threw while reading the item; only reachable with non-JSON input. */
  | 'internal_error';

/** Something we chose not to turn into a typed event; log it. */
export interface NormalizedIgnored {
  kind: 'ignored';
  channel: Channel | null;
  accountId: string | null;
  reason: IgnoredReason;
  /** Human-readable specifics for the log line. */
  detail: string;
  /** Where in the body, e.g. `entry[0].changes[1].value.messages[2]`. */
  path: string;
}

/** Everything `normalizeWebhook` can return, discriminated on `kind`. */
export type NormalizedEvent =
  | NormalizedMessage
  | NormalizedReaction
  | NormalizedStatus
  | NormalizedRead
  | NormalizedError
  | NormalizedIgnored;

/** Options for {@link normalizeWebhook}. */
export interface NormalizeOptions {
  /**
   * Used as the timestamp of an item whose own timestamp is missing or unreadable (Instagram
   * first falls back to `entry.time`). Defaults to now; pass it to keep the output deterministic.
   */
  receivedAt?: Date;
}

/**
 * Normalises a parsed Meta webhook body into events, in body order. Never throws.
 *
 * Walks every `entry[]`; for WhatsApp every `changes[]` with `field: "messages"` and its
 * `messages[]`, `statuses[]` and `errors[]`; for Instagram every `messaging[]` and `standby[]`
 * item (and `changes[]` items shaped like them, as the dashboard's test button sends).
 * A top-level array (an Instagram doc artifact) is walked element by element.
 */
export function normalizeWebhook(body: unknown, options: NormalizeOptions = {}): NormalizedEvent[] {
  const ctx: Walk = { out: [], receivedAt: options.receivedAt ?? new Date() };
  if (Array.isArray(body)) {
    body.forEach((element, i) => guarded(ctx, null, null, `[${i}]`, () => walkBody(ctx, element, `[${i}]`)));
  } else {
    guarded(ctx, null, null, '$', () => walkBody(ctx, body, ''));
  }
  return ctx.out;
}

// ---------------------------------------------------------------------------------------------
// Defensive accessors: the body is untrusted JSON, so every read checks its type.

type Obj = Record<string, unknown>;

interface Walk {
  out: NormalizedEvent[];
  receivedAt: Date;
}

/** `messages.type` is `CHECK (length(type) BETWEEN 1 AND 40)` in 001_initial_schema.sql. */
const MAX_TYPE_LENGTH = 40;
/** Deep enough for a referral or an order; bounds what a hostile body can make us copy. */
const MAX_JSON_DEPTH = 6;
/** Below this a timestamp is seconds: 1e12 ms is 2001, 1e12 s is the year 33658. */
const SECONDS_CUTOFF = 1e12;

function asObj(value: unknown): Obj | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Obj) : undefined;
}

/** Reads a key named by the body itself, so `type: "constructor"` cannot reach the prototype. */
function own(container: Obj | undefined, key: string): unknown {
  return container !== undefined && Object.hasOwn(container, key) ? container[key] : undefined;
}

/** Empty strings count as absent: Meta uses `""` for "none" (e.g. a removed reaction). */
function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Accepts numeric strings too, because WhatsApp sends numbers as strings in some places. */
function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) return Number(value);
  return undefined;
}

function objects(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map(asObj).filter((o): o is Obj => o !== undefined) : [];
}

/** WhatsApp sends string seconds, Instagram ms integers; we accept either in either form. */
function toDate(value: unknown): Date | undefined {
  const n = typeof value === 'number' || (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) return undefined;
  const date = new Date(n < SECONDS_CUTOFF ? n * 1000 : n);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Copies untrusted input into plain JSON so payloads never alias the body or carry junk. */
function toJson(value: unknown, depth = 0): JsonValue | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'object' || depth >= MAX_JSON_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((item) => toJson(item, depth + 1) ?? null);
  const out: JsonObject = {};
  for (const [key, item] of Object.entries(value)) {
    const json = toJson(item, depth + 1);
    if (json !== undefined) out[key] = json;
  }
  return out;
}

/** Drops absent keys so payloads stay small and tests can compare them exactly. */
function compact(fields: Record<string, JsonValue | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
}

function shape(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function ignore(
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
function guarded(ctx: Walk, channel: Channel | null, accountId: string | null, path: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    ignore(ctx, channel, accountId, 'internal_error', err instanceof Error ? err.message : shape(err), path);
  }
}

/** Walks `items` (absent is fine, a non-array is reported) and guards each element. */
function eachItem(
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

function metaError(raw: Obj): MetaError {
  return {
    code: num(raw.code) ?? null,
    title: str(raw.title) ?? null,
    message: str(raw.message) ?? null,
    details: str(asObj(raw.error_data)?.details) ?? null,
  };
}

function errorsJson(errors: MetaError[]): JsonValue {
  return errors.map((e) => ({ code: e.code, title: e.title, message: e.message, details: e.details }));
}

// ---------------------------------------------------------------------------------------------
// Envelope

function walkBody(ctx: Walk, body: unknown, path: string): void {
  const root = asObj(body);
  if (!root) {
    ignore(ctx, null, null, 'malformed_body', `body is ${shape(body)}, not an object`, path);
    return;
  }
  const channel: Channel | null =
    root.object === 'whatsapp_business_account' ? 'whatsapp' : root.object === 'instagram' ? 'instagram' : null;
  if (!channel) {
    ignore(ctx, null, null, 'unknown_object', `object is ${shape(root.object)}`, path);
    return;
  }
  const entries = root.entry;
  if (!Array.isArray(entries)) {
    ignore(ctx, channel, null, 'malformed_body', `entry is ${shape(entries)}, not an array`, child(path, 'entry'));
    return;
  }
  entries.forEach((entry, i) => {
    const entryPath = `${child(path, 'entry')}[${i}]`;
    guarded(ctx, channel, null, entryPath, () =>
      channel === 'whatsapp' ? walkWhatsAppEntry(ctx, entry, entryPath) : walkInstagramEntry(ctx, entry, entryPath),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// WhatsApp

interface WaValue {
  accountId: string;
  contacts: Obj[];
}

function walkWhatsAppEntry(ctx: Walk, raw: unknown, path: string): void {
  const entry = asObj(raw);
  if (!entry) {
    ignore(ctx, 'whatsapp', null, 'malformed_entry', `entry is ${shape(raw)}, not an object`, path);
    return;
  }
  if (entry.changes === undefined) {
    ignore(ctx, 'whatsapp', null, 'malformed_entry', 'entry has no changes', path);
    return;
  }
  eachItem(ctx, entry, 'changes', path, 'whatsapp', null, 'malformed_entry', (change, changePath) =>
    walkWhatsAppChange(ctx, change, changePath),
  );
}

function walkWhatsAppChange(ctx: Walk, raw: unknown, path: string): void {
  const change = asObj(raw);
  if (!change) {
    ignore(ctx, 'whatsapp', null, 'malformed_change', `change is ${shape(raw)}, not an object`, path);
    return;
  }
  const value = asObj(change.value);
  const accountId = str(asObj(value?.metadata)?.phone_number_id) ?? null;
  // Other fields (account_update, templates, smb_message_echoes, …) have other value shapes
  // and nothing for the agent to answer; the caller logs them.
  if (change.field !== 'messages') {
    ignore(ctx, 'whatsapp', accountId, 'unhandled_field', `field ${shape(change.field)}`, path);
    return;
  }
  const valuePath = child(path, 'value');
  if (!value) {
    ignore(ctx, 'whatsapp', null, 'malformed_change', `value is ${shape(change.value)}, not an object`, valuePath);
    return;
  }

  if (accountId === null) {
    // Without phone_number_id nothing here can be routed to a tenant; one event per value is
    // enough to log it. Errors below are still reported since they need no routing.
    const count = (key: string): number => (Array.isArray(value[key]) ? (value[key] as unknown[]).length : 0);
    if (count('messages') + count('statuses') > 0) {
      ignore(
        ctx,
        'whatsapp',
        null,
        'missing_account',
        `no metadata.phone_number_id for ${count('messages')} message(s) and ${count('statuses')} status(es)`,
        valuePath,
      );
    }
  } else {
    const wa: WaValue = { accountId, contacts: objects(value.contacts) };
    eachItem(ctx, value, 'messages', valuePath, 'whatsapp', accountId, 'malformed_change', (m, p) =>
      normalizeWhatsAppMessage(ctx, wa, m, p),
    );
    eachItem(ctx, value, 'statuses', valuePath, 'whatsapp', accountId, 'malformed_change', (s, p) =>
      normalizeWhatsAppStatus(ctx, accountId, s, p),
    );
  }
  eachItem(ctx, value, 'errors', valuePath, 'whatsapp', accountId, 'malformed_change', (e, p) => {
    const error = asObj(e);
    if (!error) {
      ignore(ctx, 'whatsapp', accountId, 'malformed_error', `error is ${shape(e)}, not an object`, p);
      return;
    }
    ctx.out.push({ kind: 'error', channel: 'whatsapp', accountId, ...metaError(error) });
  });
}

/**
 * Matches a message to its contact by id: Meta batches several senders into one value and
 * nothing promises contacts[] and messages[] share an order (spec §3).
 */
function findContact(contacts: Obj[], from: string | undefined, fromUserId: string | undefined): Obj | undefined {
  return (
    (from === undefined ? undefined : contacts.find((c) => str(c.wa_id) === from)) ??
    (fromUserId === undefined ? undefined : contacts.find((c) => str(c.user_id) === fromUserId))
  );
}

function normalizeWhatsAppMessage(ctx: Walk, wa: WaValue, raw: unknown, path: string): void {
  const { accountId } = wa;
  const msg = asObj(raw);
  if (!msg) {
    ignore(ctx, 'whatsapp', accountId, 'malformed_message', `message is ${shape(raw)}, not an object`, path);
    return;
  }
  const externalId = str(msg.id);
  if (!externalId) {
    ignore(ctx, 'whatsapp', accountId, 'malformed_message', 'message has no id', path);
    return;
  }
  const from = str(msg.from);
  const fromUserId = str(msg.from_user_id);
  const contact = findContact(wa.contacts, from, fromUserId);
  // Phone first: it is what conversations are keyed on today; BSUID-only users (usernames
  // enabled, no recent contact) still get a stable id instead of being dropped.
  const customerId = from ?? str(contact?.wa_id) ?? fromUserId;
  if (!customerId) {
    ignore(ctx, 'whatsapp', accountId, 'malformed_message', `message ${externalId} has no from or from_user_id`, path);
    return;
  }
  const timestamp = toDate(msg.timestamp) ?? ctx.receivedAt;
  const type = str(msg.type) ?? 'unknown';

  if (type === 'reaction') {
    const reaction = asObj(msg.reaction);
    const target = str(reaction?.message_id);
    if (!target) {
      ignore(ctx, 'whatsapp', accountId, 'malformed_message', `reaction ${externalId} has no message_id`, path);
      return;
    }
    // Removal omits emoji per the current docs; older payloads sent "" (spec §4), str() folds both.
    const emoji = str(reaction?.emoji) ?? null;
    ctx.out.push({
      kind: 'reaction',
      channel: 'whatsapp',
      accountId,
      customerId,
      targetExternalId: target,
      emoji,
      removed: emoji === null,
      externalId,
      timestamp,
      dedupeKey: `wa|${externalId}|${emoji ?? 'removed'}|${timestamp.getTime()}`,
    });
    return;
  }

  const content = whatsAppContent(type, msg);
  const context = asObj(msg.context);
  const referredProduct = asObj(context?.referred_product);
  const errors = objects(msg.errors).map(metaError);
  ctx.out.push({
    kind: 'message',
    channel: 'whatsapp',
    accountId,
    customerId,
    customerUserId: fromUserId ?? str(contact?.user_id) ?? null,
    customerName: str(asObj(contact?.profile)?.name) ?? null,
    externalId,
    timestamp,
    type: type.slice(0, MAX_TYPE_LENGTH),
    text: content.text,
    media: content.media,
    replyTo: str(context?.id) ?? null,
    isEcho: false,
    isDeleted: false,
    isStandby: false,
    payload: {
      ...content.payload,
      ...compact({
        forwarded: context?.forwarded === true ? true : undefined,
        frequentlyForwarded: context?.frequently_forwarded === true ? true : undefined,
        referredProduct: referredProduct
          ? compact({
              catalogId: str(referredProduct.catalog_id),
              productRetailerId: str(referredProduct.product_retailer_id),
            })
          : undefined,
        referral: msg.referral === undefined ? undefined : toJson(msg.referral),
        groupId: str(msg.group_id),
        errors: errors.length > 0 ? errorsJson(errors) : undefined,
      }),
    },
    dedupeKey: `wa|${externalId}`,
  });
}

interface Content {
  text: string | null;
  media: MediaRef | null;
  payload: JsonObject;
}

const WHATSAPP_MEDIA_TYPES = new Set(['image', 'audio', 'video', 'document', 'sticker']);

function whatsAppContent(type: string, msg: Obj): Content {
  const body = asObj(own(msg, type));
  if (type === 'text') return { text: str(body?.body) ?? null, media: null, payload: {} };
  if (WHATSAPP_MEDIA_TYPES.has(type)) {
    const media: MediaRef = {};
    const id = str(body?.id);
    const url = str(body?.url);
    const mimeType = str(body?.mime_type);
    const caption = str(body?.caption);
    const filename = str(body?.filename);
    if (id) media.id = id;
    if (url) media.url = url;
    if (mimeType) media.mimeType = mimeType;
    if (caption) media.caption = caption;
    if (filename) media.filename = filename;
    return {
      text: caption ?? null,
      media: Object.keys(media).length > 0 ? media : null,
      payload: compact({
        voice: typeof body?.voice === 'boolean' ? body.voice : undefined,
        animated: typeof body?.animated === 'boolean' ? body.animated : undefined,
      }),
    };
  }
  switch (type) {
    case 'location':
      return whatsAppLocation(body);
    case 'contacts':
      return whatsAppContacts(msg.contacts);
    case 'interactive':
      return whatsAppInteractive(body);
    case 'button': {
      const text = str(body?.text);
      const payload = str(body?.payload);
      return { text: text ?? payload ?? null, media: null, payload: compact({ buttonText: text, buttonPayload: payload }) };
    }
    case 'unsupported':
      // The errors (131051 / 131060) are added by the caller from messages[].errors.
      return { text: null, media: null, payload: compact({ unsupportedType: str(body?.type) }) };
    case 'system':
      return {
        text: str(body?.body) ?? null,
        media: null,
        payload: compact({
          systemType: str(body?.type),
          newWaId: str(body?.wa_id),
          newUserId: str(body?.user_id),
        }),
      };
    case 'order':
      return whatsAppOrder(body);
    default:
      // A type we do not know yet: keep its object so it can be handled later from the DB.
      return { text: null, media: null, payload: body ? compact({ raw: toJson(body) }) : {} };
  }
}

function whatsAppLocation(body: Obj | undefined): Content {
  const latitude = num(body?.latitude);
  const longitude = num(body?.longitude);
  const name = str(body?.name);
  const address = str(body?.address);
  const label = [name, address].filter((part): part is string => part !== undefined).join(', ');
  const coords = latitude !== undefined && longitude !== undefined ? `(${latitude}, ${longitude})` : '';
  const rendered = [label, coords].filter((part) => part !== '').join(' ');
  return {
    text: rendered === '' ? null : `[location] ${rendered}`,
    media: null,
    payload: {
      location: compact({ latitude, longitude, name, address, url: str(body?.url) }),
    },
  };
}

function whatsAppContacts(raw: unknown): Content {
  const contacts = objects(raw).map((card) => {
    const name = asObj(card.name);
    const fullName =
      str(name?.formatted_name) ??
      ([str(name?.first_name), str(name?.last_name)].filter((p): p is string => p !== undefined).join(' ') ||
        undefined);
    const phones = objects(card.phones).map((phone) =>
      compact({ phone: str(phone.phone), waId: str(phone.wa_id), type: str(phone.type) }),
    );
    const emails = objects(card.emails)
      .map((email) => str(email.email))
      .filter((e): e is string => e !== undefined);
    return { fullName, phones, emails };
  });
  const rendered = contacts.map(({ fullName, phones, emails }) => {
    const reach = [
      ...phones.map((p) => (typeof p.phone === 'string' ? p.phone : undefined)).filter((p) => p !== undefined),
      ...emails,
    ];
    const who = fullName ?? 'Unnamed contact';
    return reach.length > 0 ? `${who} (${reach.join(', ')})` : who;
  });
  return {
    text: rendered.length > 0 ? `[contacts] ${rendered.join('; ')}` : null,
    media: null,
    payload: {
      contacts: contacts.map(({ fullName, phones, emails }) =>
        compact({ name: fullName, phones, emails: emails.length > 0 ? emails : undefined }),
      ),
    },
  };
}

function whatsAppInteractive(body: Obj | undefined): Content {
  const interactiveType = str(body?.type);
  const reply = interactiveType === undefined ? undefined : asObj(own(body, interactiveType));
  if (interactiveType === 'nfm_reply') {
    // A WhatsApp Flow submission: response_json is a JSON string; keep it verbatim, the flow owner parses it.
    return {
      text: str(reply?.body) ?? null,
      media: null,
      payload: compact({ interactiveType, flowName: str(reply?.name), responseJson: str(reply?.response_json) }),
    };
  }
  const title = str(reply?.title);
  return {
    text: title ?? null,
    media: null,
    payload: compact({
      interactiveType,
      replyId: str(reply?.id),
      replyTitle: title,
      replyDescription: str(reply?.description),
    }),
  };
}

function whatsAppOrder(body: Obj | undefined): Content {
  const items = objects(body?.product_items).map((item) =>
    compact({
      productRetailerId: str(item.product_retailer_id),
      quantity: num(item.quantity),
      itemPrice: num(item.item_price),
      currency: str(item.currency),
    }),
  );
  const lines = items.map((item) => {
    const price = item.itemPrice === undefined ? '' : ` @ ${item.itemPrice}${item.currency ? ` ${item.currency}` : ''}`;
    return `${item.quantity ?? 1} × ${item.productRetailerId ?? 'unknown item'}${price}`;
  });
  const note = str(body?.text);
  const rendered = [note, lines.join('; ')].filter((p) => p !== undefined && p !== '').join(': ');
  return {
    text: rendered === '' ? null : `[order] ${rendered}`,
    media: null,
    payload: { order: compact({ catalogId: str(body?.catalog_id), text: note, items }) },
  };
}

function normalizeWhatsAppStatus(ctx: Walk, accountId: string, raw: unknown, path: string): void {
  const status = asObj(raw);
  if (!status) {
    ignore(ctx, 'whatsapp', accountId, 'malformed_status', `status is ${shape(raw)}, not an object`, path);
    return;
  }
  const externalId = str(status.id);
  const value = str(status.status);
  if (!externalId || !value) {
    ignore(ctx, 'whatsapp', accountId, 'malformed_status', `status has no ${externalId ? 'status' : 'id'}`, path);
    return;
  }
  const recipientUserId = str(status.recipient_user_id) ?? null;
  ctx.out.push({
    kind: 'status',
    channel: 'whatsapp',
    accountId,
    externalId,
    status: value,
    timestamp: toDate(status.timestamp) ?? ctx.receivedAt,
    recipientId: str(status.recipient_id) ?? recipientUserId,
    recipientUserId,
    errors: objects(status.errors).map(metaError),
    dedupeKey: `wa|${externalId}|${value}`,
  });
}

// ---------------------------------------------------------------------------------------------
// Instagram

interface IgEntry {
  /** `entry.id`; null makes each item fall back to its business-side id. */
  accountId: string | null;
  entryTime: unknown;
  isStandby: boolean;
}

/** Fields whose `changes[].value` is shaped like a messaging[] item (the dashboard's test sends these). */
const INSTAGRAM_MESSAGING_FIELDS = new Set([
  'messages',
  'message_reactions',
  'messaging_postbacks',
  'messaging_seen',
  'messaging_referral',
  'message_echoes',
  'standby',
]);

function walkInstagramEntry(ctx: Walk, raw: unknown, path: string): void {
  const entry = asObj(raw);
  if (!entry) {
    ignore(ctx, 'instagram', null, 'malformed_entry', `entry is ${shape(raw)}, not an object`, path);
    return;
  }
  const accountId = str(entry.id) ?? null;
  const base = { accountId, entryTime: entry.time };
  if (entry.messaging === undefined && entry.standby === undefined && entry.changes === undefined) {
    ignore(ctx, 'instagram', accountId, 'malformed_entry', 'entry has no messaging, standby or changes', path);
    return;
  }
  eachItem(ctx, entry, 'messaging', path, 'instagram', accountId, 'malformed_entry', (item, p) =>
    normalizeInstagramItem(ctx, { ...base, isStandby: false }, item, p),
  );
  eachItem(ctx, entry, 'standby', path, 'instagram', accountId, 'malformed_entry', (item, p) =>
    normalizeInstagramItem(ctx, { ...base, isStandby: true }, item, p),
  );
  eachItem(ctx, entry, 'changes', path, 'instagram', accountId, 'malformed_entry', (raw, p) => {
    const change = asObj(raw);
    const field = change?.field;
    if (typeof field === 'string' && INSTAGRAM_MESSAGING_FIELDS.has(field) && asObj(asObj(change?.value)?.sender)) {
      normalizeInstagramItem(ctx, { ...base, isStandby: field === 'standby' }, change?.value, child(p, 'value'));
      return;
    }
    // Comments, mentions, story insights…: not conversations the agent answers.
    ignore(ctx, 'instagram', accountId, 'unhandled_field', `field ${shape(field)}`, p);
  });
}

function normalizeInstagramItem(ctx: Walk, ig: IgEntry, raw: unknown, path: string): void {
  const item = asObj(raw);
  if (!item) {
    ignore(ctx, 'instagram', ig.accountId, 'malformed_message', `item is ${shape(raw)}, not an object`, path);
    return;
  }
  const senderId = str(asObj(item.sender)?.id);
  const recipientId = str(asObj(item.recipient)?.id);
  const timestamp = toDate(item.timestamp) ?? toDate(ig.entryTime) ?? ctx.receivedAt;
  const message = asObj(item.message);
  const isEcho = message?.is_echo === true;
  // entry.id is what accounts are registered under; the business side of the item is only a
  // fallback for bodies that lack it.
  const accountId = ig.accountId ?? (isEcho ? senderId : recipientId);
  const customerId = isEcho ? recipientId : senderId;
  if (!accountId || !customerId) {
    const missing = !accountId ? 'account id (entry.id / business side)' : isEcho ? 'recipient.id' : 'sender.id';
    ignore(ctx, 'instagram', accountId ?? null, 'malformed_message', `item has no ${missing}`, path);
    return;
  }
  const reject = (detail: string): void =>
    ignore(ctx, 'instagram', accountId, 'malformed_message', detail, path);

  if (message) {
    const mid = str(message.mid);
    if (!mid) return reject('message has no mid');
    ctx.out.push(instagramMessage(accountId, customerId, mid, timestamp, message, isEcho, ig.isStandby));
    return;
  }

  const reaction = asObj(item.reaction);
  if (reaction) {
    const target = str(reaction.mid);
    if (!target) return reject('reaction has no mid');
    const emoji = str(reaction.emoji);
    // action is documented; inferring it from emoji only covers bodies that omit it.
    const action =
      reaction.action === 'react' || reaction.action === 'unreact'
        ? reaction.action
        : emoji || str(reaction.reaction)
          ? 'react'
          : 'unreact';
    ctx.out.push({
      kind: 'reaction',
      channel: 'instagram',
      accountId,
      customerId,
      targetExternalId: target,
      emoji: action === 'unreact' ? null : (emoji ?? null),
      removed: action === 'unreact',
      externalId: null,
      timestamp,
      dedupeKey: `ig|${customerId}|${target}|${action}|${timestamp.getTime()}`,
    });
    return;
  }

  const postback = asObj(item.postback);
  if (postback) {
    // A tapped icebreaker/button is the customer talking to us, so it is a message the agent
    // answers. Older postbacks carry no mid; a key from sender+time stays stable across retries.
    const mid = str(postback.mid) ?? `postback|${customerId}|${timestamp.getTime()}`;
    const title = str(postback.title);
    ctx.out.push({
      kind: 'message',
      channel: 'instagram',
      accountId,
      customerId,
      customerUserId: null,
      customerName: null,
      externalId: mid,
      timestamp,
      type: 'postback',
      text: title ?? null,
      media: null,
      replyTo: null,
      isEcho: false,
      isDeleted: false,
      isStandby: ig.isStandby,
      payload: compact({
        postbackTitle: title,
        postbackPayload: str(postback.payload),
        referral: postback.referral === undefined ? undefined : toJson(postback.referral),
      }),
      dedupeKey: `ig|${mid}`,
    });
    return;
  }

  const read = asObj(item.read);
  if (read) {
    const mid = str(read.mid);
    // Watermark-only reads (older Messenger shape) name no message we could mark.
    if (!mid) return reject('read has no mid');
    ctx.out.push({
      kind: 'read',
      channel: 'instagram',
      accountId,
      customerId,
      externalId: mid,
      timestamp,
      dedupeKey: `ig|${customerId}|${mid}|read`,
    });
    return;
  }

  // message_edit: Messenger-only per the docs and, in dev mode, sent for new messages too, so
  // treating it as a message would double-answer. A standalone referral (ig.me link opened in an
  // existing thread) carries no words to answer; the customer's next message does.
  const known = ['message_edit', 'referral', 'optin', 'pass_thread_control', 'take_thread_control'].find(
    (key) => item[key] !== undefined,
  );
  const detail = known
    ? `${known}${known === 'referral' ? ` ${JSON.stringify(toJson(item.referral) ?? null).slice(0, 300)}` : ''}`
    : `no known event in keys [${Object.keys(item).slice(0, 10).join(', ')}]`;
  ignore(ctx, 'instagram', accountId, 'unhandled_event', detail, path);
}

function instagramMessage(
  accountId: string,
  customerId: string,
  mid: string,
  timestamp: Date,
  message: Obj,
  isEcho: boolean,
  isStandby: boolean,
): NormalizedMessage {
  const text = str(message.text) ?? null;
  const isDeleted = message.is_deleted === true;
  const isUnsupported = message.is_unsupported === true;
  const attachments = objects(message.attachments).map((a) => ({
    type: str(a.type) ?? 'unknown',
    url: str(asObj(a.payload)?.url),
  }));
  const first = attachments[0];
  // The attachment decides the type even when text is present, so media is never mistaken
  // for plain text; the text is still kept for the AI.
  const type = first
    ? first.type
    : text !== null
      ? 'text'
      : isUnsupported
        ? 'unsupported'
        : isDeleted
          ? 'deleted'
          : 'unsupported';
  const replyTo = asObj(message.reply_to);
  const story = asObj(replyTo?.story);
  return {
    kind: 'message',
    channel: 'instagram',
    accountId,
    customerId,
    customerUserId: null,
    customerName: null,
    externalId: mid,
    timestamp,
    type: type.slice(0, MAX_TYPE_LENGTH),
    text,
    media: first?.url ? { url: first.url } : null,
    replyTo: str(replyTo?.mid) ?? null,
    isEcho,
    isDeleted,
    isStandby,
    payload: compact({
      attachments: attachments.length > 0 ? attachments.map((a) => compact(a)) : undefined,
      quickReplyPayload: str(asObj(message.quick_reply)?.payload),
      replyToStory: story ? compact({ id: str(story.id), url: str(story.url) }) : undefined,
      referral: message.referral === undefined ? undefined : toJson(message.referral),
      isUnsupported: isUnsupported ? true : undefined,
    }),
    // An unsend reuses the original mid; a distinct key keeps it from being dropped as a retry.
    dedupeKey: isDeleted ? `ig|${mid}|deleted` : `ig|${mid}`,
  };
}
