/**
 * The one client for Meta's send APIs: WhatsApp Cloud API on `META_GRAPH_API_URL` and
 * Instagram API with Instagram Login on `INSTAGRAM_GRAPH_API_URL`, both under
 * `META_GRAPH_API_VERSION` (Meta: WhatsApp Cloud API › Messages › Send messages; Instagram API
 * with Instagram Login › Messaging API). Replies too long for one message are split per channel
 * (the limits and their pages are in `utils/textSplit.ts`) and sent in order. Every failure is a
 * `GraphError` that says whether retrying can help (Meta: WhatsApp Cloud API › Support › Error
 * codes; Messenger Platform › Error codes).
 *
 * The access token only ever travels in the Authorization header: it is never logged and is
 * scrubbed from anything Meta echoes back, because errors end up in logs and in the API.
 */
import http from 'node:http';
import https from 'node:https';
import { config } from '../config';
import { logger } from '../utils/logger';
import { CHANNEL_TEXT_LIMITS, splitText } from '../utils/textSplit';
import type { Channel } from '../models/types';


export interface SendTextInput {
  channel: Channel;
  /** WhatsApp `phone_number_id` or Instagram account id: the sender. */
  accountId: string;
  accessToken: string;
  /** WhatsApp: the customer's phone number (`wa_id`); Instagram: the customer's IGSID. */
  to: string;
  text: string;
  /** WhatsApp only: the inbound wamid to quote; set on the first part only. Ignored on Instagram. */
  replyToExternalId?: string;
  /**
   * Index of the first part to send, to resume after a `GraphError` whose `sentExternalIds` were
   * already delivered (pass its `nextPart`). Splitting is deterministic (`splitForChannel`), so
   * indexes are stable.
   */
  fromPart?: number;
  /** Index after the last part to send; all of them by default. `fromPart: k, toPart: k + 1` sends part k alone. */
  toPart?: number;
  /**
   * WhatsApp only: `biz_opaque_callback_data` for each part, which Meta echoes in that part's
   * status webhooks (Meta: WhatsApp Cloud API › Messages › Send messages; at most 512
   * characters). Ignored on Instagram, whose sends carry no such field.
   */
  callbackData?: (partIndex: number) => string;
}

/** A WhatsApp message template send (Meta: WhatsApp Cloud API › Messages › Template messages). */
export interface SendTemplateInput {
  channel: Channel;
  accountId: string;
  accessToken: string;
  to: string;
  template: {
    name: string;
    language: { code: string };
    /** Header, body and button parameters, as Meta takes them. */
    components?: unknown[];
  };
  /** `biz_opaque_callback_data`, as for a text part. */
  callbackData?: string;
}

export interface SendTextResult {
  /** One Meta id per part sent by this call, in order (WhatsApp `wamid.…`, Instagram `mid`). */
  externalIds: string[];
  /** The text of each part sent by this call, aligned with `externalIds`. */
  parts: string[];
  /** How many parts the whole text splits into, including any skipped by `fromPart`. */
  totalParts: number;
}

export interface MarkReadInput {
  channel: Channel;
  accountId: string;
  accessToken: string;
  /** WhatsApp: the inbound wamid to mark read (earlier ones in the thread follow). */
  externalId: string;
  /** Instagram: the customer's IGSID; `mark_seen` addresses the thread, not a message. */
  customerId: string;
  /**
   * Also show "typing…" (WhatsApp: `typing_indicator` on the same call, dismissed by the reply or
   * after 25 s; Instagram: a separate `typing_on`). Only when a reply is really coming, as Meta
   * asks (Meta: WhatsApp Cloud API › Typing indicators).
   */
  typingIndicator?: boolean;
}

export interface GraphClientOptions {
  whatsappBaseUrl?: string;
  instagramBaseUrl?: string;
  /** Graph API version path segment, e.g. `v25.0`. */
  version?: string;
  /** Per HTTP call (each part is one call), headers and body included. */
  timeoutMs?: number;
}

export interface GraphClient {
  sendText(input: SendTextInput): Promise<SendTextResult>;
  /** WhatsApp only (Instagram has no templates: an `invalid_request` GraphError); resolves with Meta's id. */
  sendTemplate(input: SendTemplateInput): Promise<{ externalId: string }>;
  markRead(input: MarkReadInput): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Errors

/** What kind of failure: Meta answered with an error, or we never got a usable answer. */
export type GraphErrorKind = 'graph' | 'network' | 'timeout' | 'invalid_response' | 'invalid_request';

/**
 * How to back off before a retry. `pair_rate_limit` (131056) is per customer and needs
 * 4^X-second waits (Meta: WhatsApp Business Platform › About the platform › Pair rate limits);
 * `standard` is ordinary exponential backoff.
 */
export type GraphBackoff = 'none' | 'standard' | 'pair_rate_limit';

export interface GraphErrorClassification {
  retryable: boolean;
  backoff: GraphBackoff;
}

/**
 * Transient by Meta's error tables (Meta: WhatsApp Cloud API › Support › Error codes; Messenger
 * Platform › Error codes): throughput, pair limit, upgrade window, app/page call limits, temporary errors.
 */
const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  130429, 131056, 131057, 1, 2, 4, 17, 32, 613, 80007,
  // Meta's error table names these "service unavailable" / "server temporarily unavailable".
  131016, 133004,
]);

/** Permanent until someone acts (template, re-auth, payment, policy, a fixed request): retrying repeats the failure. */
const PERMANENT_CODES: ReadonlySet<number> = new Set([
  131047, 131026, 131048, 131049, 131050, 131051, 131052, 131053, 131062, 131031, 131042, 130497, 133010, 190, 0, 10,
  100, 368, 551,
  // Templates: parameter count mismatch, no such template or language, paused, disabled, bad parameter format.
  132000, 132001, 132005, 132007, 132012, 132015, 132016,
]);

/**
 * Retry policy from Meta's `code` first, since Meta says to build logic on `code` and not on the
 * HTTP status (Meta: WhatsApp Cloud API › Support › Error codes),
 * falling back to the HTTP status only for codes we do not know. `code === null` with no status
 * means we never got an answer (network error, timeout): retryable.
 */
export function classifyGraphError(code: number | null, httpStatus: number | null): GraphErrorClassification {
  if (code === 131056) return { retryable: true, backoff: 'pair_rate_limit' };
  if (code !== null) {
    if (RETRYABLE_CODES.has(code)) return { retryable: true, backoff: 'standard' };
    if (PERMANENT_CODES.has(code) || (code >= 200 && code <= 299)) return { retryable: false, backoff: 'none' };
  }
  if (httpStatus === null || httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) {
    return { retryable: true, backoff: 'standard' };
  }
  return { retryable: false, backoff: 'none' };
}

/**
 * The pair limit's pace: one message every 6 s to the same customer (Meta: WhatsApp Business
 * Platform › About the platform › Pair rate limits).
 */
const PAIR_RATE_LIMIT_PACE_MS = 6_000;

export interface GraphErrorInit {
  kind: GraphErrorKind;
  channel: Channel;
  code?: number | null;
  subcode?: number | null;
  httpStatus?: number | null;
  details?: string | null;
  fbtraceId?: string | null;
  retryAfterMs?: number;
  sentExternalIds?: string[];
  nextPart?: number;
  totalParts?: number;
  cause?: unknown;
}

export class GraphError extends Error {
  readonly kind: GraphErrorKind;
  readonly channel: Channel;
  /** Meta's `error.code`; null when Meta did not answer with an error body. */
  readonly code: number | null;
  /** `error_subcode` (deprecated on WhatsApp, still meaningful on Instagram, e.g. 2534022). */
  readonly subcode: number | null;
  readonly httpStatus: number | null;
  /** `error_data.details` (WhatsApp) or `error_user_msg`: the human-readable cause. */
  readonly details: string | null;
  readonly fbtraceId: string | null;
  readonly retryable: boolean;
  readonly backoff: GraphBackoff;
  /** The least wait before retrying: from `Retry-After`, or the 6 s pair pace for 131056. */
  readonly retryAfterMs?: number;
  /** Parts of this call Meta accepted before the failure: never send these again. */
  readonly sentExternalIds: string[];
  /** `fromPart` for the retry that sends only what is left. */
  readonly nextPart: number;
  readonly totalParts: number;
  /**
   * Whether Meta may have accepted the failed part all the same: no answer (a timeout, a
   * connection lost after the request left), or a 2xx we could not read. False when Meta
   * answered with an error, or the request never left (refused, unresolvable host, bad input).
   */
  readonly mayBeAccepted: boolean;

  constructor(message: string, init: GraphErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'GraphError';
    this.kind = init.kind;
    this.channel = init.channel;
    this.code = init.code ?? null;
    this.subcode = init.subcode ?? null;
    this.httpStatus = init.httpStatus ?? null;
    this.details = init.details ?? null;
    this.fbtraceId = init.fbtraceId ?? null;
    const classification =
      init.kind === 'invalid_request' || init.kind === 'invalid_response'
        ? // Bad input never improves; a 2xx we cannot read may already have been delivered.
          { retryable: false, backoff: 'none' as const }
        : classifyGraphError(this.code, init.kind === 'graph' ? this.httpStatus : null);
    this.retryable = classification.retryable;
    this.backoff = classification.backoff;
    const retryAfterMs =
      classification.backoff === 'pair_rate_limit'
        ? Math.max(init.retryAfterMs ?? 0, PAIR_RATE_LIMIT_PACE_MS)
        : init.retryAfterMs;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
    this.sentExternalIds = init.sentExternalIds ?? [];
    this.nextPart = init.nextPart ?? 0;
    this.totalParts = init.totalParts ?? 0;
    this.mayBeAccepted =
      init.kind === 'timeout' || init.kind === 'invalid_response' || (init.kind === 'network' && !neverLeft(init.cause));
  }

  /** A copy that also records the parts already sent, for a failure in the middle of a split reply. */
  withProgress(sentExternalIds: string[], nextPart: number, totalParts: number): GraphError {
    const copy = new GraphError(this.message, {
      kind: this.kind,
      channel: this.channel,
      code: this.code,
      subcode: this.subcode,
      httpStatus: this.httpStatus,
      details: this.details,
      fbtraceId: this.fbtraceId,
      retryAfterMs: this.retryAfterMs,
      sentExternalIds,
      nextPart,
      totalParts,
      cause: this.cause,
    });
    copy.stack = this.stack;
    return copy;
  }
}

/** Connection errors raised before a byte of the request can have reached Meta. */
const NEVER_LEFT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function neverLeft(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && NEVER_LEFT_CODES.has(code);
}

/**
 * Suggested wait before retry number `attempt` (0 for the first retry). 131056 follows Meta's
 * 4^X seconds; others double from 1 s to at most 60 s with jitter so workers do not retry in step.
 * Never less than `retryAfterMs`.
 */
export function retryDelayMs(error: GraphError, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.floor(attempt));
  let delay: number;
  if (error.backoff === 'pair_rate_limit') delay = Math.min(4 ** exponent, 1024) * 1000;
  else delay = Math.min(1000 * 2 ** exponent, 60_000) * (0.5 + random() / 2);
  return Math.round(Math.max(delay, error.retryAfterMs ?? 0));
}

// ---------------------------------------------------------------------------------------------
// Client

const log = logger.child({ module: 'metaGraph' });

interface MetaErrorBody {
  message?: unknown;
  code?: unknown;
  error_subcode?: unknown;
  error_data?: { details?: unknown };
  error_user_msg?: unknown;
  fbtrace_id?: unknown;
}

const asNumber = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : null;
const asString = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/** Replaces the token wherever it shows up; Meta sometimes quotes request parameters back. */
function scrub(text: string, accessToken: string): string {
  return accessToken.length >= 4 ? text.split(accessToken).join('[redacted]') : text;
}

/** `Retry-After` in seconds or as an HTTP date. */
function parseRetryAfter(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A network error's code (ECONNREFUSED, ENOTFOUND…) is what an operator needs. */
function describeNetworkError(error: unknown): string {
  const { message, code } = (error ?? {}) as { message?: unknown; code?: unknown };
  if (typeof message !== 'string') return String(error);
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}

interface RawResponse {
  status: number;
  retryAfter: string | undefined;
  text: string;
}

class RequestTimeout extends Error {
  override name = 'TimeoutError';
}

/**
 * Keep-alive connections to Graph, per protocol. node:http rather than fetch: a turn makes two
 * Graph calls, and fetch's WHATWG streams, AbortSignal and Request objects cost the worker
 * more CPU than the rest of the call (CPU profile of npm run bench -- pipeline).
 */
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };

/** POSTs JSON and reads the whole answer; `timeoutMs` bounds all of it, body included. */
function postJson(url: URL, headers: Record<string, string>, body: string, timeoutMs: number): Promise<RawResponse> {
  return requestJson('POST', url, headers, body, timeoutMs);
}

/** One HTTP call with an optional body, its whole answer read; `timeoutMs` bounds all of it. */
function requestJson(method: 'GET' | 'POST', url: URL, headers: Record<string, string>, body: string | null, timeoutMs: number): Promise<RawResponse> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, {
      method,
      agent: agents[url.protocol as keyof typeof agents],
      headers: body === null ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(() => req.destroy(new RequestTimeout(`timed out after ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.once('end', () => {
        clearTimeout(timer);
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    if (body === null) req.end();
    else req.end(body);
  });
}

/** The GraphError for a call that got no answer (`error` from the request). */
function unansweredError(channel: Channel, what: string, error: unknown, timeoutMs: number, accessToken: string): GraphError {
  const timedOut = error instanceof RequestTimeout;
  // Network errors name host and port only; no headers, so no token.
  return new GraphError(
    timedOut
      ? `Graph ${channel} ${what} timed out after ${timeoutMs} ms (Meta may still have accepted it)`
      : `Graph ${channel} ${what} failed: ${scrub(describeNetworkError(error), accessToken)}`,
    { kind: timedOut ? 'timeout' : 'network', channel, cause: error },
  );
}

/** The answer's JSON, or null when it is empty or not JSON. */
function parseBody(text: string): unknown {
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    return null;
  }
}

/** The GraphError for a non-2xx answer: Meta's code, message and details, the token scrubbed out. */
function answeredError(channel: Channel, what: string, response: RawResponse, parsed: unknown, accessToken: string): GraphError {
  const metaError =
    parsed && typeof parsed === 'object' && 'error' in parsed && parsed.error && typeof parsed.error === 'object'
      ? (parsed.error as MetaErrorBody)
      : null;
  const code = asNumber(metaError?.code);
  const details = asString(metaError?.error_data?.details) ?? asString(metaError?.error_user_msg);
  const metaMessage = asString(metaError?.message) ?? `HTTP ${response.status}`;
  return new GraphError(scrub(`Graph ${channel} ${what} failed: ${metaMessage} (code ${code ?? 'none'}, HTTP ${response.status})`, accessToken), {
    kind: 'graph',
    channel,
    code,
    subcode: asNumber(metaError?.error_subcode),
    httpStatus: response.status,
    details: details === null ? null : scrub(details, accessToken),
    fbtraceId: asString(metaError?.fbtrace_id),
    retryAfterMs: parseRetryAfter(response.retryAfter),
  });
}

const trimSlash = (url: string) => url.replace(/\/+$/, '');

/** Where and how long to call: the options given, else `config`'s. */
function endpoints(options: GraphClientOptions): { bases: Record<Channel, string>; version: string; timeoutMs: number } {
  return {
    bases: {
      whatsapp: trimSlash(options.whatsappBaseUrl ?? config.META_GRAPH_API_URL),
      instagram: trimSlash(options.instagramBaseUrl ?? config.INSTAGRAM_GRAPH_API_URL),
    },
    version: options.version ?? config.META_GRAPH_API_VERSION,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
}

export function createGraphClient(options: GraphClientOptions = {}): GraphClient {
  const { bases, version, timeoutMs } = endpoints(options);

  /** One POST to `/{version}/{accountId}/messages`; resolves with the parsed 2xx body or throws a GraphError. */
  async function post(channel: Channel, accountId: string, accessToken: string, body: unknown, what: string) {
    const url = new URL(`${bases[channel]}/${version}/${encodeURIComponent(accountId)}/messages`);
    const started = Date.now();
    let response: RawResponse;
    try {
      response = await postJson(
        url,
        { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        JSON.stringify(body),
        timeoutMs,
      );
    } catch (error) {
      log.debug({ channel, accountId, what, durationMs: Date.now() - started, timedOut: error instanceof RequestTimeout }, 'graph call got no answer');
      throw unansweredError(channel, what, error, timeoutMs, accessToken);
    }
    const parsed = parseBody(response.text);
    log.debug({ channel, accountId, what, status: response.status, durationMs: Date.now() - started }, 'graph call answered');
    if (response.status < 200 || response.status > 299) throw answeredError(channel, what, response, parsed, accessToken);
    return { status: response.status, body: parsed };
  }

  async function sendText(input: SendTextInput): Promise<SendTextResult> {
    const { channel, accountId, accessToken, to } = input;
    const parts = splitForChannel(channel, input.text);
    const fromPart = input.fromPart ?? 0;
    const toPart = input.toPart ?? parts.length;
    if (parts.length === 0) {
      throw new GraphError(`Graph ${channel} send refused: the text is empty`, { kind: 'invalid_request', channel });
    }
    if (!Number.isInteger(fromPart) || fromPart < 0 || fromPart >= parts.length) {
      throw new GraphError(`Graph ${channel} send refused: fromPart ${fromPart} is outside 0..${parts.length - 1}`, {
        kind: 'invalid_request',
        channel,
        totalParts: parts.length,
      });
    }
    if (!Number.isInteger(toPart) || toPart <= fromPart || toPart > parts.length) {
      throw new GraphError(`Graph ${channel} send refused: toPart ${toPart} is outside ${fromPart + 1}..${parts.length}`, {
        kind: 'invalid_request',
        channel,
        totalParts: parts.length,
      });
    }

    const externalIds: string[] = [];
    const sentParts: string[] = [];
    // Sequential on purpose: Meta keeps the order in which it accepted the calls, and a reader
    // must see part 2 after part 1.
    for (let index = fromPart; index < toPart; index++) {
      const part = parts[index] as string;
      const body =
        channel === 'whatsapp'
          ? {
              messaging_product: 'whatsapp',
              recipient_type: 'individual',
              to,
              type: 'text',
              text: { preview_url: false, body: part },
              // Quoting every part would repeat the same bubble; the first one anchors the reply.
              ...(index === 0 && input.replyToExternalId ? { context: { message_id: input.replyToExternalId } } : {}),
              ...(input.callbackData ? { biz_opaque_callback_data: input.callbackData(index) } : {}),
            }
          : { recipient: { id: to }, message: { text: part } };
      const what = parts.length > 1 ? `send (part ${index + 1}/${parts.length})` : 'send';
      let result: { body: unknown };
      try {
        result = await post(channel, accountId, accessToken, body, what);
      } catch (error) {
        if (error instanceof GraphError) throw error.withProgress(externalIds, index, parts.length);
        throw error;
      }
      const externalId = readExternalId(channel, result.body);
      if (externalId === null) {
        throw new GraphError(`Graph ${channel} ${what} answered without a message id`, {
          kind: 'invalid_response',
          channel,
          httpStatus: 200,
          sentExternalIds: externalIds,
          // Meta probably accepted it, so the safe resume point is after this part.
          nextPart: index + 1,
          totalParts: parts.length,
        });
      }
      externalIds.push(externalId);
      sentParts.push(part);
    }
    return { externalIds, parts: sentParts, totalParts: parts.length };
  }

  async function sendTemplate(input: SendTemplateInput): Promise<{ externalId: string }> {
    const { channel, accountId, accessToken, to, template } = input;
    if (channel !== 'whatsapp') {
      throw new GraphError(`Graph ${channel} send refused: templates are a WhatsApp feature`, { kind: 'invalid_request', channel });
    }
    const body = {
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to,
      type: 'template',
      template: { name: template.name, language: { code: template.language.code }, ...(template.components ? { components: template.components } : {}) },
      ...(input.callbackData ? { biz_opaque_callback_data: input.callbackData } : {}),
    };
    const result = await post(channel, accountId, accessToken, body, 'template send');
    const externalId = readExternalId(channel, result.body);
    if (externalId === null) {
      throw new GraphError(`Graph ${channel} template send answered without a message id`, { kind: 'invalid_response', channel, httpStatus: result.status });
    }
    return { externalId };
  }

  async function markRead(input: MarkReadInput): Promise<void> {
    const { channel, accountId, accessToken } = input;
    if (channel === 'whatsapp') {
      await post(
        channel,
        accountId,
        accessToken,
        {
          messaging_product: 'whatsapp',
          status: 'read',
          message_id: input.externalId,
          ...(input.typingIndicator ? { typing_indicator: { type: 'text' } } : {}),
        },
        'mark read',
      );
      return;
    }
    // "mark_seen indicators should only include the sender_action parameter and the recipient object".
    await post(channel, accountId, accessToken, { recipient: { id: input.customerId }, sender_action: 'mark_seen' }, 'mark seen');
    if (input.typingIndicator) {
      await post(channel, accountId, accessToken, { recipient: { id: input.customerId }, sender_action: 'typing_on' }, 'typing on');
    }
  }

  return { sendText, sendTemplate, markRead };
}

/**
 * What our WhatsApp sends put in `biz_opaque_callback_data`: the outbound message and part they
 * carry, so that Meta's status webhooks name the part even when its worker died before it
 * could record Meta's id (issue 19). Meta returns the string untouched.
 */
export function partCallbackData(messageId: string, partNo: number): string {
  return `out:${messageId}:${partNo}`;
}

const PART_CALLBACK = /^out:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):(\d{1,5})$/;

/** The part a status's `biz_opaque_callback_data` names, or null when it is not one of ours. */
export function parsePartCallbackData(value: string | null | undefined): { messageId: string; partNo: number } | null {
  const match = value ? PART_CALLBACK.exec(value) : null;
  return match ? { messageId: match[1]!, partNo: Number(match[2]) } : null;
}

/** The parts `sendText` sends a text as, in order: the channel's limit, split the same way every time. */
export function splitForChannel(channel: Channel, text: string): string[] {
  return splitText(text, CHANNEL_TEXT_LIMITS[channel]);
}

function readExternalId(channel: Channel, body: unknown): string | null {
  if (!body || typeof body !== 'object') return null;
  if (channel === 'whatsapp') {
    const messages = (body as { messages?: unknown }).messages;
    const first = Array.isArray(messages) ? (messages[0] as { id?: unknown } | undefined) : undefined;
    return asString(first?.id);
  }
  return asString((body as { message_id?: unknown }).message_id);
}

// ---------------------------------------------------------------------------------------------
// Account verification

export interface VerifyAccountInput {
  channel: Channel;
  /** WhatsApp `phone_number_id` or Instagram account id (the id Instagram's webhooks carry). */
  accountId: string;
  accessToken: string;
}

/** Graph's verdict on a token for an account: `reason` is Graph's own words, the token scrubbed out. */
export type AccountVerification = { ok: true; name: string | null } | { ok: false; reason: string };

/**
 * Asks Graph whether `accessToken` may act for the account. Resolves with Graph's verdict;
 * rejects with a GraphError only when Graph could not give one (unreachable, timed out, a 5xx,
 * a rate limit, an unreadable answer), so the caller can tell "no" from "ask again later".
 */
export type AccountVerifier = (input: VerifyAccountInput) => Promise<AccountVerification>;

/** Instagram ids exceed 2^53: read `user_id` from the raw text when Graph sends it as a number. */
function rawUserId(text: string): string | null {
  return /"user_id"\s*:\s*"?(\d+)/.exec(text)?.[1] ?? null;
}

/**
 * The two lookups of CONTRACT §3. WhatsApp: `GET /{version}/{phone_number_id}?fields=id,
 * display_phone_number,verified_name` answers for that number only if the token's business
 * owns it (Meta: WhatsApp Cloud API › Phone numbers). Instagram: `GET /{version}/me?fields=
 * user_id,username` names the account the token was issued for, whose `user_id` is the id
 * the webhooks carry (Meta: Instagram API with Instagram Login › Get started).
 */
export function createAccountVerifier(options: GraphClientOptions = {}): AccountVerifier {
  const { bases, version, timeoutMs } = endpoints(options);
  const what = 'account lookup';

  return async function verifyAccount({ channel, accountId, accessToken }: VerifyAccountInput): Promise<AccountVerification> {
    const path = channel === 'whatsapp' ? `${encodeURIComponent(accountId)}?fields=id,display_phone_number,verified_name` : 'me?fields=user_id,username';
    let response: RawResponse;
    try {
      response = await requestJson('GET', new URL(`${bases[channel]}/${version}/${path}`), { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' }, null, timeoutMs);
    } catch (error) {
      throw unansweredError(channel, what, error, timeoutMs, accessToken);
    }
    const parsed = parseBody(response.text);
    if (response.status < 200 || response.status > 299) {
      const error = answeredError(channel, what, response, parsed, accessToken);
      if (error.retryable) throw error;
      log.info({ channel, accountId, code: error.code, status: response.status }, 'Graph refused the token for the account');
      return { ok: false, reason: error.message };
    }
    const body = (parsed && typeof parsed === 'object' ? parsed : {}) as Record<string, unknown>;
    const id =
      channel === 'whatsapp'
        ? asString(body.id)
        : typeof body.user_id === 'number'
          ? rawUserId(response.text)
          : asString(body.user_id);
    if (id === null) {
      throw new GraphError(`Graph ${channel} ${what} answered 200 without ${channel === 'whatsapp' ? 'an id' : 'a user_id'}`, { kind: 'invalid_response', channel, httpStatus: response.status });
    }
    if (id !== accountId) {
      return { ok: false, reason: `Graph ${channel} ${what}: the token acts for ${channel === 'whatsapp' ? 'number' : 'account'} ${id}, not ${accountId}` };
    }
    return { ok: true, name: asString(channel === 'whatsapp' ? body.verified_name : body.username) };
  };
}

/** Built from `config`; tests and the demo make their own with `createGraphClient`. */
export const graphClient: GraphClient = createGraphClient();

/** Sends a reply through the default client. See `GraphClient.sendText`. */
export const sendText = (input: SendTextInput): Promise<SendTextResult> => graphClient.sendText(input);
/** Marks an inbound message read through the default client. See `GraphClient.markRead`. */
export const markRead = (input: MarkReadInput): Promise<void> => graphClient.markRead(input);
/** Verifies a token for an account against the Graph that `config` names. See `AccountVerifier`. */
export const verifyAccount: AccountVerifier = createAccountVerifier();
