/**
 * `npm run simulate -- --to <Meta phone_number_id> --from 15550001111 --text "Hi"`: plays Meta for
 * one customer message. It builds the webhook body in Meta's exact shape (WhatsApp Cloud API,
 * or Instagram with `--instagram`), signs it with META_APP_SECRET as Meta would, POSTs it to a
 * running instance's `/webhooks/meta` and prints the HTTP status.
 *
 * The body builders and `postSignedWebhook` are exported: `npm run demo` speaks to the webhook
 * through the same code, so the demo and this tool cannot drift apart.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { config } from '../src/config';

export const WEBHOOK_PATH = '/webhooks/meta';

/**
 * Placeholders for what Meta puts in a webhook but the product does not route on: the
 * WhatsApp Business Account id and the number's display form (routing uses phone_number_id).
 */
const PLACEHOLDER_WABA_ID = '210987654321098';
const PLACEHOLDER_DISPLAY_NUMBER = '15550001234';

const unixSeconds = () => String(Math.floor(Date.now() / 1000));

/** A message id shaped like WhatsApp's (`wamid.` + base64). */
export const newWamid = (): string => `wamid.${randomBytes(24).toString('base64')}`;

/** A message id shaped like Instagram's: base64url of an item path, as Meta's are. */
export const newInstagramMid = (accountId: string): string =>
  Buffer.from(`ig_item:1:IGMessageID:${accountId}:${randomBytes(9).toString('hex')}`).toString('base64url');

/** `sha256=<hex HMAC of the exact bytes>`: the X-Hub-Signature-256 header Meta sends. */
export function signBody(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface WhatsAppTextInput {
  /** Our number's `phone_number_id` (what the product routes on). */
  phoneNumberId: string;
  /** The customer's wa_id. */
  from: string;
  text: string;
  /** Contact profile name; WhatsApp always sends one. */
  name?: string | undefined;
  /** Reuse an id to play Meta re-delivering the same message. */
  id?: string | undefined;
  /** Unix seconds; now by default. */
  timestamp?: number | undefined;
}

/**
 * A WhatsApp Cloud API `messages` webhook carrying customer text messages: one, or several
 * batched in one `value` as Meta may send them (all to the first message's number).
 */
export function whatsappTextWebhook(input: WhatsAppTextInput | WhatsAppTextInput[]): string {
  const messages = Array.isArray(input) ? input : [input];
  return whatsappWebhook(messages[0]!.phoneNumberId, {
    contacts: messages.map((m) => ({ profile: { name: m.name ?? 'Customer' }, wa_id: m.from })),
    messages: messages.map((m) => ({
      from: m.from,
      id: m.id ?? newWamid(),
      timestamp: m.timestamp === undefined ? unixSeconds() : String(m.timestamp),
      type: 'text',
      text: { body: m.text },
    })),
  });
}

export interface WhatsAppMediaInput {
  phoneNumberId: string;
  from: string;
  /** `audio`, `image`, `sticker`, `video` or `document`. */
  type: 'audio' | 'image' | 'sticker' | 'video' | 'document';
  /** The media id Graph resolves (`GET /{version}/{media-id}`). */
  mediaId: string;
  mimeType: string;
  caption?: string | undefined;
  filename?: string | undefined;
  /** Audio only: a recorded voice note (true) or an audio file (false). */
  voice?: boolean | undefined;
  name?: string | undefined;
  id?: string | undefined;
}

/** A WhatsApp `messages` webhook carrying one media message, as Meta sends it: the media's id, never its bytes. */
export function whatsappMediaWebhook(input: WhatsAppMediaInput): string {
  const media: Record<string, unknown> = { mime_type: input.mimeType, sha256: randomBytes(32).toString('base64'), id: input.mediaId };
  if (input.caption !== undefined) media.caption = input.caption;
  if (input.filename !== undefined) media.filename = input.filename;
  if (input.type === 'audio') media.voice = input.voice ?? true;
  if (input.type === 'sticker') media.animated = false;
  return whatsappWebhook(input.phoneNumberId, {
    contacts: [{ profile: { name: input.name ?? 'Customer' }, wa_id: input.from }],
    messages: [{ from: input.from, id: input.id ?? newWamid(), timestamp: unixSeconds(), type: input.type, [input.type]: media }],
  });
}

export type WhatsAppStatus = 'sent' | 'delivered' | 'read' | 'failed';

export interface WhatsAppStatusInput {
  phoneNumberId: string;
  /** Our outbound message's wamid. */
  wamid: string;
  status: WhatsAppStatus;
  recipientId?: string | undefined;
  /** A Meta error code, sent as `errors[]` (as Meta does on `failed`). */
  errorCode?: number | undefined;
  /** Echoed back as Meta does when the send carried `biz_opaque_callback_data`. */
  bizOpaqueCallbackData?: string | undefined;
}

/** A WhatsApp status webhook: Meta telling us what happened to a message we sent. */
export function whatsappStatusWebhook(input: WhatsAppStatusInput): string {
  // Meta attaches pricing to the billable milestones only; `read` comes without it.
  const pricing =
    input.status === 'sent' || input.status === 'delivered'
      ? { pricing: { billable: false, pricing_model: 'PMP', type: 'free_customer_service', category: 'service' } }
      : {};
  const errors = input.errorCode
    ? { errors: [{ code: input.errorCode, title: 'Error', message: 'Error', error_data: { details: `details of ${input.errorCode}` } }] }
    : {};
  const callback = input.bizOpaqueCallbackData === undefined ? {} : { biz_opaque_callback_data: input.bizOpaqueCallbackData };
  return whatsappWebhook(input.phoneNumberId, {
    statuses: [
      {
        id: input.wamid,
        status: input.status,
        timestamp: unixSeconds(),
        recipient_id: input.recipientId ?? '15550102030',
        ...callback,
        ...pricing,
        ...errors,
      },
    ],
  });
}

function whatsappWebhook(phoneNumberId: string, value: Record<string, unknown>): string {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: PLACEHOLDER_WABA_ID,
        changes: [
          {
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: PLACEHOLDER_DISPLAY_NUMBER, phone_number_id: phoneNumberId },
              ...value,
            },
            field: 'messages',
          },
        ],
      },
    ],
  });
}

export interface InstagramTextInput {
  accountId: string;
  igsid: string;
  text: string;
  mid?: string | undefined;
  /** The business wrote it (from the Instagram app, or our own send coming back). */
  echo?: boolean | undefined;
}

/** An Instagram messaging webhook (Instagram API with Instagram Login) carrying one message between the account and a user. */
function instagramMessagingWebhook(accountId: string, sender: string, recipient: string, message: Record<string, unknown>): string {
  const now = Date.now();
  return JSON.stringify({
    object: 'instagram',
    entry: [{ id: accountId, time: now, messaging: [{ sender: { id: sender }, recipient: { id: recipient }, timestamp: now, message }] }],
  });
}

/** An Instagram messaging webhook carrying one text message. */
export function instagramTextWebhook(input: InstagramTextInput): string {
  // On an echo the business is the sender and the customer the recipient.
  const [sender, recipient] = input.echo ? [input.accountId, input.igsid] : [input.igsid, input.accountId];
  return instagramMessagingWebhook(input.accountId, sender, recipient, {
    mid: input.mid ?? newInstagramMid(input.accountId),
    text: input.text,
    ...(input.echo ? { is_echo: true } : {}),
  });
}

/** An Instagram messaging webhook carrying one attachment (`audio`, `image`, `video`, `file`…) by its CDN URL. */
export function instagramAttachmentWebhook(input: { accountId: string; igsid: string; type: string; url: string; text?: string; mid?: string }): string {
  return instagramMessagingWebhook(input.accountId, input.igsid, input.accountId, {
    mid: input.mid ?? newInstagramMid(input.accountId),
    ...(input.text !== undefined ? { text: input.text } : {}),
    attachments: [{ type: input.type, payload: { url: input.url } }],
  });
}

export interface WebhookAnswer {
  status: number;
  statusText: string;
  body: string;
}

/** POSTs `body` signed with `secret` to `<baseUrl>/webhooks/meta`, bounded by `timeoutMs`. */
export async function postSignedWebhook(baseUrl: string, body: string, secret: string, timeoutMs = 10_000): Promise<WebhookAnswer> {
  const response = await fetch(new URL(WEBHOOK_PATH, baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-hub-signature-256': signBody(body, secret) },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, statusText: response.statusText, body: await response.text() };
}

// ---------------------------------------------------------------------------------------------
// Command line

export const USAGE = `usage: npm run simulate -- --to <account id> --from <customer id> --text <message> [options]

Sends one signed customer message, in Meta's exact webhook shape, to a running instance.

  --to <id>        Meta's id of your number: the WhatsApp phone_number_id (Instagram: the account
                   id), i.e. the external_id you registered, not the API's UUID
  --from <id>      the customer: WhatsApp wa_id, digits only, e.g. 15550001111 (Instagram: IGSID)
  --text <text>    what the customer writes
  --name <name>    the customer's WhatsApp profile name (WhatsApp only)
  --id <id>        message id to use; send the same id twice to see Meta's retries deduplicated
  --url <url>      the instance (default http://127.0.0.1:PORT, PORT from your config)
  --instagram      send an Instagram message instead of a WhatsApp one
  -h, --help       this text

example: npm run simulate -- --to 109876543210123 --from 15550001111 --text "Hi" --name "Ana"`;

// The same rule as an account's external_id in the API, so a typo fails here, not as a silent 200.
const accountId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1–64 letters, digits, ".", "_" or "-"');

const argsSchema = z
  .object({
    // Meta addresses the webhook by its own account id; the API's UUID routes nowhere, and the
    // webhook would still answer 200 (an unknown account is not an error to Meta).
    to: accountId.refine(
      (value) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value),
      "looks like the API's id of the number (a UUID); it takes Meta's id, the external_id you registered",
    ),
    from: z.string().regex(/^\d{5,20}$/, 'must be 5–20 digits, without "+" or spaces'),
    text: z.string().min(1, 'must not be empty').max(4096).refine((value) => value.trim() !== '', 'must not be blank'),
    name: z.string().trim().min(1).max(200).optional(),
    id: z.string().regex(/^[A-Za-z0-9._=+/-]{1,200}$/, 'must be a message id such as wamid.HBg…').optional(),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    instagram: z.boolean(),
  })
  .refine((args) => !(args.instagram && args.name !== undefined), {
    path: ['name'],
    message: 'applies to WhatsApp only (Instagram webhooks carry no profile name)',
  });

export type SimulateArgs = z.infer<typeof argsSchema>;

export type ParsedArgs = { ok: true; args: SimulateArgs } | { ok: false; help: boolean; message: string };

/** Pure: the command line (without node and the script) → validated arguments, or what is wrong. */
export function parseSimulateArgs(argv: string[], defaults: { url: string }): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        to: { type: 'string' },
        from: { type: 'string' },
        text: { type: 'string' },
        name: { type: 'string' },
        id: { type: 'string' },
        url: { type: 'string' },
        instagram: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    return { ok: false, help: false, message: (error as Error).message };
  }
  const { help, ...given } = values;
  if (help) return { ok: false, help: true, message: '' };
  const parsed = argsSchema.safeParse({ ...given, url: given.url ?? defaults.url });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '');
      // A missing option reads better as "--to is required" than as zod's type complaint.
      const present = name === 'url' || (given as Record<string, unknown>)[name] !== undefined;
      return `--${name} ${present ? issue.message : 'is required'}`;
    });
    return { ok: false, help: false, message: problems.join('\n') };
  }
  return { ok: true, args: parsed.data };
}

/** The webhook body and a one-line description of it, for the given arguments. */
export function bodyFor(args: SimulateArgs): { body: string; id: string; describe: string } {
  if (args.instagram) {
    const id = args.id ?? newInstagramMid(args.to);
    return {
      body: instagramTextWebhook({ accountId: args.to, igsid: args.from, text: args.text, mid: id }),
      id,
      describe: `Instagram message from ${args.from} to account ${args.to}`,
    };
  }
  const id = args.id ?? newWamid();
  return {
    body: whatsappTextWebhook({ phoneNumberId: args.to, from: args.from, text: args.text, name: args.name, id }),
    id,
    describe: `WhatsApp message from ${args.from}${args.name ? ` (${args.name})` : ''} to phone_number_id ${args.to}`,
  };
}

async function main(): Promise<number> {
  // 127.0.0.1, not localhost: Node may resolve localhost to ::1 while the API listens on IPv4.
  const parsed = parseSimulateArgs(process.argv.slice(2), { url: `http://127.0.0.1:${config.PORT}` });
  if (!parsed.ok) {
    if (parsed.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    process.stderr.write(`simulate: ${parsed.message.split('\n').join('\nsimulate: ')}\n\n${USAGE}\n`);
    return 2;
  }
  const { args } = parsed;
  const { body, id, describe } = bodyFor(args);
  const target = new URL(WEBHOOK_PATH, args.url).toString();
  process.stdout.write(`→ POST ${target}\n  ${describe}\n  message id ${id}\n`);
  let answer: WebhookAnswer;
  try {
    answer = await postSignedWebhook(args.url, body, config.META_APP_SECRET);
  } catch (error) {
    // fetch reports "fetch failed"; the reason (ECONNREFUSED, a timeout, …) is in its cause.
    const { cause } = error as { cause?: { code?: string; message?: string } };
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    process.stderr.write(`simulate: could not reach ${target} (${reason}). Is the product running? Start it with: npm start\n`);
    return 1;
  }
  process.stdout.write(`← ${answer.status} ${answer.statusText}${answer.body ? ` ${answer.body}` : ''}\n`);
  if (answer.status === 401) {
    process.stderr.write('simulate: the signature was refused: this shell and the server must share META_APP_SECRET.\n');
  }
  return answer.status >= 200 && answer.status < 300 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: Error) => {
      process.stderr.write(`simulate: ${error.stack ?? error.message}\n`);
      process.exitCode = 1;
    },
  );
}
