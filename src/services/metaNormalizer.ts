/**
 * Turns a parsed Meta webhook body (WhatsApp Cloud API or Instagram Messaging) into a flat
 * list of typed events, so the webhook controller and the workers never read Meta's shapes.
 *
 * Pure: no I/O, no logging, no clock except the optional `receivedAt` fallback. It never
 * throws, because a single odd item must not turn into a non-200 that makes Meta retry and,
 * after an hour of failures, unsubscribe the app from an Instagram account (Meta: Messenger
 * Platform › Webhooks, on delivery failures).
 *
 * Every item Meta sent yields exactly one event: either a typed one or an `ignored` event
 * saying why, so the caller can log what it drops and siblings are never hidden.
 *
 * This file holds the event types and the dispatch on `object`; each channel's shapes are read
 * in `meta/whatsappNormalizer.ts` and `meta/instagramNormalizer.ts`, with the readers for
 * untrusted JSON in `meta/json.ts` and the walk itself in `meta/walk.ts`.
 */
import type { Channel } from '../models/types';
import { asObj, shape, type JsonObject } from './meta/json';
import { walkInstagramEntry } from './meta/instagramNormalizer';
import { child, guarded, ignore, type Walk } from './meta/walk';
import { walkWhatsAppEntry } from './meta/whatsappNormalizer';

export type { JsonObject, JsonValue } from './meta/json';

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
  /**
   * Key for webhook-retry deduplication: `wa|<wamid>`, `ig|<mid>`, `ig|<mid>|deleted`. Meta
   * redelivers webhooks and leaves deduplication to the receiver (Meta: WhatsApp Cloud API ›
   * Webhooks › Create a webhook endpoint; Messenger Platform › Webhooks).
   */
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
  /**
   * `wa|<id>|<emoji or removed>|<ms>` or `ig|<sender>|<mid>|<react|unreact>|<ms>`: Instagram
   * reactions have no id of their own, and Meta's WhatsApp reaction samples reuse one wamid for
   * adding and removing (see `NormalizedMessage.dedupeKey`).
   */
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
  /**
   * `biz_opaque_callback_data`, echoed from our send (Meta: WhatsApp Cloud API › Webhooks ›
   * Reference › messages › status): it names our message even when its wamid was never stored.
   */
  bizOpaqueCallbackData: string | null;
  /** `wa|<wamid>|<status>` (see `NormalizedMessage.dedupeKey`). */
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
  /** `ig|<sender>|<mid>|read` (see `NormalizedMessage.dedupeKey`). */
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

/** Dispatches on `object`; each channel walks its own entries. */
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
