/**
 * Instagram Messaging webhooks (`object: "instagram"`): every `messaging[]` and `standby[]`
 * item, and `changes[]` items shaped like them, become events (Meta: Instagram Messaging ›
 * Webhooks; the same shape for Instagram API with Instagram Login and for the Messenger
 * Platform).
 */
import type { NormalizedMessage } from '../metaNormalizer';
import { asObj, compact, objects, shape, str, toDate, toJson, type Obj } from './json';
import { child, eachItem, ignore, MAX_TYPE_LENGTH, type Walk } from './walk';

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

/** Walks one Instagram `entry[]` item into `ctx.out`. */
export function walkInstagramEntry(ctx: Walk, raw: unknown, path: string): void {
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
    // action is documented (Meta: Instagram Messaging › Webhooks); inferring it from emoji only
    // covers bodies that omit it.
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
    ctx.out.push(
      instagramMessageEvent(accountId, customerId, {
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
      }),
    );
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

  // message_edit: Messenger-only (Meta: Messenger Platform › Webhook Events Reference) and, in
  // dev mode, sent for new messages too, so treating it as a message would double-answer. A
  // standalone referral (ig.me link opened in an existing thread) carries no words to answer;
  // the customer's next message does.
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
  return instagramMessageEvent(accountId, customerId, {
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
  });
}

/** What differs between Instagram messages; the rest is the same for every one of them. */
type InstagramMessageFields = Omit<
  NormalizedMessage,
  'kind' | 'channel' | 'accountId' | 'customerId' | 'customerUserId' | 'customerName'
>;

/** An Instagram message event: Instagram's webhook names no BSUID and no profile name. */
function instagramMessageEvent(accountId: string, customerId: string, fields: InstagramMessageFields): NormalizedMessage {
  return {
    kind: 'message',
    channel: 'instagram',
    accountId,
    customerId,
    customerUserId: null,
    customerName: null,
    ...fields,
  };
}
