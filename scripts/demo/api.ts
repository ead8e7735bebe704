/** The REST API, as a tenant's dashboard would call it, and its answers turned into transcripts. */
import { Aborted, clip, describeError } from './progress';
import type { Transcript } from './result';

export interface ApiConversation {
  id: string;
  channel: 'whatsapp' | 'instagram';
  customer: { external_id: string; name: string | null };
  bot_paused: boolean;
  paused_by?: 'human' | 'api' | 'keyword' | null;
  resumes_at?: string | null;
  opted_out?: boolean;
  created_at: string;
}
export interface ApiMessage {
  id: string;
  sequence_no: number;
  direction: 'inbound' | 'outbound';
  author: 'customer' | 'agent' | 'human';
  text: string | null;
  status: string;
  external_id: string | null;
  error?: { code: string; message: string | null };
}
export interface ApiLedgerEntry {
  amount: number;
  reason: string;
  message_id: string | null;
  conversation_id: string | null;
  created_at: string;
}
export interface ApiExtraction {
  conversation_id: string;
  fields: Record<string, unknown>;
  summary: string | null;
  extracted_at: string;
  up_to_sequence_no: number;
}
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export class ApiClient {
  constructor(
    private readonly baseUrl: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** One bounded request; anything but an expected status is an error naming the call. */
  async call<T>(method: string, route: string, key: string, options: { body?: unknown; expect?: number[] } = {}): Promise<{ status: number; body: T }> {
    if (this.signal?.aborted) throw new Aborted();
    const timeout = AbortSignal.timeout(10_000);
    let response: Response;
    try {
      response = await fetch(new URL(route, this.baseUrl), {
        method,
        headers: { authorization: `Bearer ${key}`, ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
        signal: this.signal ? AbortSignal.any([this.signal, timeout]) : timeout,
      });
    } catch (error) {
      if (this.signal?.aborted) throw new Aborted();
      // fetch says only "fetch failed"; the cause (ECONNREFUSED, a timeout) is what helps.
      const cause = (error as { cause?: unknown }).cause;
      throw new Error(`${method} ${route}: ${describeError(cause ?? error)}`);
    }
    const text = await response.text();
    const expected = options.expect ?? [200, 201, 202, 204];
    if (!expected.includes(response.status)) throw new Error(`${method} ${route} answered ${response.status}: ${clip(text, 300)}`);
    return { status: response.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  async get<T>(route: string, key: string): Promise<T> {
    return (await this.call<T>('GET', route, key)).body;
  }

  async post<T>(route: string, key: string, body?: unknown): Promise<T> {
    return (await this.call<T>('POST', route, key, { body })).body;
  }

  /** Every item of a cursor-paginated list. */
  async all<T>(route: string, key: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const separator = route.includes('?') ? '&' : '?';
      const page: Page<T> = await this.get<Page<T>>(`${route}${separator}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, key);
      items.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }
}

export function toTranscript(conversation: ApiConversation, messages: ApiMessage[]): Transcript {
  return {
    conversationId: conversation.id,
    channel: conversation.channel,
    customer: { externalId: conversation.customer.external_id, name: conversation.customer.name },
    botPaused: conversation.bot_paused,
    messages: messages.map((m) => ({
      sequenceNo: m.sequence_no,
      direction: m.direction,
      author: m.author,
      text: m.text,
      status: m.status,
      externalId: m.external_id,
      ...(m.error ? { error: m.error } : {}),
    })),
  };
}
