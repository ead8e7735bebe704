/**
 * WhatsApp Cloud API webhooks (`object: "whatsapp_business_account"`): every `changes[]` with
 * `field: "messages"` and its `messages[]`, `statuses[]` and `errors[]` become events
 * (Meta: WhatsApp Cloud API › Webhooks › Reference › messages).
 */
import type { MediaRef, MetaError } from '../metaNormalizer';
import { asObj, compact, num, objects, own, shape, str, toDate, toJson, type JsonObject, type JsonValue, type Obj } from './json';
import { child, eachItem, ignore, MAX_TYPE_LENGTH, type Walk } from './walk';

interface WaValue {
  accountId: string;
  contacts: Obj[];
}

/** Walks one WhatsApp `entry[]` item into `ctx.out`. */
export function walkWhatsAppEntry(ctx: Walk, raw: unknown, path: string): void {
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
 * Matches a message to its contact by id: Meta batches updates into one POST (Meta: WhatsApp
 * Cloud API › Webhooks › Create a webhook endpoint), so one value can hold several senders, and
 * nothing promises contacts[] and messages[] share an order.
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
    // Removal omits emoji (Meta: WhatsApp Cloud API › Webhooks › Reference › messages › reaction);
    // older payloads sent "". str() folds both.
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
    bizOpaqueCallbackData: str(status.biz_opaque_callback_data) ?? null,
    dedupeKey: `wa|${externalId}|${value}`,
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

