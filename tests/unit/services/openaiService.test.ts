/**
 * The service against a tiny OpenAI stand-in on 127.0.0.1 (port 0), local to this file: each test
 * scripts the answers it wants, and counts the HTTP calls that really happened.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOpenAIService, getOpenAIService, type OpenAIServiceOptions } from '../../../src/services/openaiService';
import { ModelError } from '../../../src/services/modelErrors';
import { CircuitOpenError } from '../../../src/utils/circuitBreaker';

const KEY = 'sk-test-secret-key-0123456789';

type Reply =
  | { status?: number; body?: unknown; headers?: Record<string, string> }
  | 'hang';

interface Received {
  method: string;
  url: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

function completion(content: string | null, extra: { finish_reason?: string; refusal?: string; usage?: unknown } = {}) {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-test-2025',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: extra.refusal ?? null }, finish_reason: extra.finish_reason ?? 'stop' }],
    usage: 'usage' in extra ? extra.usage : { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
  };
}

function apiError(status: number, message: string, code: string | null = null) {
  return { status, body: { error: { message, type: 'invalid_request_error', code, param: null } } };
}

/** Answers with `replies` in order; once they run out, with a plain success. */
class StandIn {
  readonly received: Received[] = [];
  private readonly replies: Reply[] = [];
  private server!: http.Server;
  url = '';

  async start() {
    this.server = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        this.received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          authorization: req.headers.authorization,
          body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
        });
        const reply = this.replies.shift() ?? { body: completion('Hello!') };
        if (reply === 'hang') return; // never answers: the client's timeout must fire
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.body ?? completion('Hello!')));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  script(...replies: Reply[]) {
    this.replies.push(...replies);
  }

  async stop() {
    // Hanging requests and keep-alive sockets would hold close() open forever.
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let standIn: StandIn;
const sleeps: number[] = [];

beforeEach(async () => {
  standIn = new StandIn();
  await standIn.start();
  sleeps.length = 0;
});
afterEach(() => standIn.stop());

function service(overrides: OpenAIServiceOptions = {}) {
  return createOpenAIService({
    apiKey: KEY,
    baseURL: standIn.url,
    timeoutMs: 5_000,
    retry: { attempts: 3, baseMs: 100, maxMs: 2_000 },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
}

const messages = [
  { role: 'system' as const, content: 'You are a shop assistant.' },
  { role: 'user' as const, content: 'Do you open on Sunday?' },
];

async function failure(promise: Promise<unknown>): Promise<ModelError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelError);
  return error as ModelError;
}

describe('complete', () => {
  it('when the provider answers, then text, tokens, model and latency come back and the request is well formed', async () => {
    const result = await service().complete({ model: 'gpt-test', temperature: 0.3, maxTokens: 200, messages });
    expect(result).toMatchObject({ text: 'Hello!', promptTokens: 11, completionTokens: 7, model: 'gpt-test-2025', attempts: 1 });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(standIn.received).toHaveLength(1);
    const [request] = standIn.received;
    expect(request).toMatchObject({ method: 'POST', url: '/v1/chat/completions', authorization: `Bearer ${KEY}` });
    expect(request?.body).toEqual({ model: 'gpt-test', messages, temperature: 0.3, max_completion_tokens: 200 });
  });

  it('when temperature and maxTokens are not given, then they are not sent (the model’s defaults apply)', async () => {
    await service().complete({ model: 'gpt-test', messages });
    expect(standIn.received[0]?.body).toEqual({ model: 'gpt-test', messages });
  });

  it('when the provider reports no usage, then the tokens are 0', async () => {
    standIn.script({ body: completion('Hi', { usage: undefined }) });
    await expect(service().complete({ model: 'gpt-test', messages })).resolves.toMatchObject({ promptTokens: 0, completionTokens: 0 });
  });

  it('when rate limited once, then it waits and retries, and succeeds', async () => {
    standIn.script(apiError(429, 'Rate limit reached'));
    const result = await service().complete({ model: 'gpt-test', messages });
    expect(result).toMatchObject({ text: 'Hello!', attempts: 2 });
    expect(standIn.received).toHaveLength(2);
    expect(sleeps).toEqual([50]); // full jitter: 0.5 of baseMs
  });

  it('when rate limited with Retry-After, then the wait is the server’s', async () => {
    standIn.script({ ...apiError(429, 'slow down'), headers: { 'retry-after': '1' } });
    await service().complete({ model: 'gpt-test', messages });
    expect(sleeps).toEqual([1_000]);
  });

  it('when Retry-After is longer than the retry budget, then it fails now, retryable, carrying the wait', async () => {
    standIn.script({ ...apiError(429, 'slow down'), headers: { 'retry-after-ms': '60000' } });
    const error = await failure(service().complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'retryable', code: 'model_rate_limited', status: 429, retryAfterMs: 60_000, retryable: true, attempts: 1 });
    expect(standIn.received).toHaveLength(1);
  });

  it('when 5xx persists, then the breaker opens, later calls fail without HTTP, and after the cooldown a trial closes it', async () => {
    let now = 0;
    const svc = service({ breaker: { failureThreshold: 3, cooldownMs: 10_000, now: () => now } });
    standIn.script(apiError(500, 'boom'), apiError(502, 'boom'), apiError(503, 'boom'));

    const first = await failure(svc.complete({ model: 'gpt-test', messages }));
    expect(first).toMatchObject({ kind: 'retryable', code: 'model_unavailable', status: 503, attempts: 3 });
    expect(standIn.received).toHaveLength(3);
    expect(svc.circuitState).toBe('open');

    now = 4_000;
    const blocked = await failure(svc.complete({ model: 'gpt-test', messages }));
    expect(blocked).toMatchObject({ kind: 'circuit_open', code: 'model_circuit_open', retryAfterMs: 6_000, retryable: true });
    expect(blocked.cause).toBeInstanceOf(CircuitOpenError);
    expect(standIn.received).toHaveLength(3); // no HTTP call while open

    now = 10_000;
    expect(svc.circuitState).toBe('half_open');
    await expect(svc.complete({ model: 'gpt-test', messages })).resolves.toMatchObject({ text: 'Hello!' });
    expect(standIn.received).toHaveLength(4);
    expect(svc.circuitState).toBe('closed');
  });

  it('when tenant A’s calls keep failing, then only A’s circuit for that model opens; B’s calls on the same model go through (guarantee 11)', async () => {
    const svc = service({ breaker: { failureThreshold: 3, cooldownMs: 10_000 } });
    standIn.script(apiError(500, 'boom'), apiError(502, 'boom'), apiError(503, 'boom'));
    await failure(svc.complete({ model: 'gpt-test', messages, tenantId: 'tenant-a' }));
    expect(svc.circuitStateFor('gpt-test', 'tenant-a')).toBe('open');
    expect(svc.breakerOpen('gpt-test', 'tenant-a')).toBe(true);
    expect(svc.breakerOpen('gpt-test', 'tenant-b')).toBe(false);
    expect(svc.circuitStateFor('other-model', 'tenant-a')).toBe('closed');

    const blocked = await failure(svc.complete({ model: 'gpt-test', messages, tenantId: 'tenant-a' }));
    expect(blocked).toMatchObject({ kind: 'circuit_open', code: 'model_circuit_open' });
    expect(standIn.received).toHaveLength(3);

    await expect(svc.complete({ model: 'gpt-test', messages, tenantId: 'tenant-b' })).resolves.toMatchObject({ text: 'Hello!' });
    await expect(svc.complete({ model: 'other-model', messages, tenantId: 'tenant-a' })).resolves.toMatchObject({ text: 'Hello!' });
    expect(standIn.received).toHaveLength(5);
    expect(svc.circuitStateFor('gpt-test', 'tenant-b')).toBe('closed');
    expect(svc.breakerOpen('gpt-test', 'tenant-a')).toBe(true);
  });

  it('when more circuits are asked for than the bound, then healthy ones are dropped first and an open one is kept', async () => {
    const svc = service({ breaker: { failureThreshold: 1, cooldownMs: 10_000 }, maxBreakers: 2 });
    standIn.script(apiError(500, 'boom'));
    await failure(svc.complete({ model: 'gpt-test', messages, tenantId: 'a' }));
    expect(svc.breakerOpen('gpt-test', 'a')).toBe(true);
    for (const tenant of ['b', 'c', 'd']) await svc.complete({ model: 'gpt-test', messages, tenantId: tenant });
    expect(svc.breakerOpen('gpt-test', 'a')).toBe(true);
  });

  it('when the open circuit’s remaining cooldown fits the retry budget, then it waits it out and the trial goes through', async () => {
    let now = 0;
    const svc = createOpenAIService({
      apiKey: KEY,
      baseURL: standIn.url,
      retry: { attempts: 3, baseMs: 10, maxMs: 1_000 },
      random: () => 0,
      breaker: { failureThreshold: 1, cooldownMs: 500, now: () => now },
      // The injected sleep moves the injected clock, as real time would.
      sleep: async (ms) => {
        now += ms;
      },
    });
    standIn.script(apiError(500, 'boom'));
    // attempt 1: 500 and the circuit opens; attempt 2: turned away, waits the 500 ms left; attempt 3: the trial.
    await expect(svc.complete({ model: 'gpt-test', messages })).resolves.toMatchObject({ text: 'Hello!', attempts: 3 });
    expect(now).toBe(500);
    expect(standIn.received).toHaveLength(2);
  });

  it('when the request is bad (400), then it is permanent, sent once, and the breaker stays closed', async () => {
    const svc = service({ breaker: { failureThreshold: 1, cooldownMs: 10_000 } });
    standIn.script(apiError(400, "Invalid value for 'temperature'"));
    const error = await failure(svc.complete({ model: 'gpt-test', temperature: 9, messages }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_bad_request', status: 400, retryable: false, attempts: 1 });
    expect(error.detail).toContain('temperature');
    expect(standIn.received).toHaveLength(1);
    expect(svc.circuitState).toBe('closed');
  });

  it('when the key is refused (401), then it is permanent and neither message nor detail contains the key', async () => {
    standIn.script(apiError(401, `Incorrect API key provided: ${KEY}.`, 'invalid_api_key'));
    const error = await failure(service().complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_auth', status: 401 });
    expect(error.message).not.toContain(KEY);
    expect(error.detail).not.toContain(KEY);
    expect(error.detail).toContain('[redacted]');
    expect(standIn.received).toHaveLength(1);
  });

  it('when the model does not exist (404), then it is permanent and names the model', async () => {
    standIn.script(apiError(404, 'The model does not exist'));
    const error = await failure(service().complete({ model: 'gpt-nope', messages }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_not_found' });
    expect(error.message).toContain('gpt-nope');
  });

  it('when the provider never answers, then the attempt times out as retryable', async () => {
    standIn.script('hang', 'hang');
    const svc = service({ timeoutMs: 200, retry: { attempts: 2, baseMs: 10, maxMs: 100 } });
    const error = await failure(svc.complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'retryable', code: 'model_timeout', attempts: 2 });
    expect(standIn.received).toHaveLength(2);
  });

  it('when nothing listens at the base URL, then it is a retryable network error', async () => {
    const closed = new StandIn();
    await closed.start();
    const url = closed.url;
    await closed.stop();
    const error = await failure(service({ baseURL: url, retry: { attempts: 1, baseMs: 1, maxMs: 1 } }).complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'retryable', code: 'model_network' });
  });

  it('when OPENAI_API_KEY is not set, then it fails not_configured before any HTTP call', async () => {
    for (const apiKey of [undefined, '']) {
      const error = await failure(service({ apiKey }).complete({ model: 'gpt-test', messages }));
      expect(error).toMatchObject({ kind: 'not_configured', code: 'openai_not_configured', retryable: false });
      expect(error.message).toMatch(/not configured/);
    }
    await failure(service({ apiKey: undefined }).extractStructured({ model: 'm', messages, schemaName: 's', jsonSchema: {} }));
    expect(standIn.received).toHaveLength(0);
  });

  it('when the answer is empty, then it is retried (not counted by the breaker) and the next answer is used', async () => {
    const svc = service({ breaker: { failureThreshold: 1, cooldownMs: 10_000 } });
    standIn.script({ body: completion('') });
    await expect(svc.complete({ model: 'gpt-test', messages })).resolves.toMatchObject({ text: 'Hello!', attempts: 2 });
    expect(svc.circuitState).toBe('closed');
  });

  it('when the answer stays empty, then it fails retryable with the tokens spent', async () => {
    standIn.script({ body: completion(null) }, { body: completion(null) }, { body: completion(null) });
    const error = await failure(service().complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'retryable', code: 'model_empty_response', attempts: 3, usage: { promptTokens: 11, completionTokens: 7 } });
  });

  it('when the answer is empty because max tokens ran out, then it is permanent and not retried', async () => {
    standIn.script({ body: completion('', { finish_reason: 'length' }) });
    const error = await failure(service().complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_empty_response' });
    expect(standIn.received).toHaveLength(1);
  });

  it('when the provider returns no choices, then it counts as an empty answer', async () => {
    standIn.script({ body: { ...completion('x'), choices: [] } });
    await expect(service().complete({ model: 'gpt-test', messages })).resolves.toMatchObject({ attempts: 2 });
  });

  it('when the model refuses, then it is permanent', async () => {
    standIn.script({ body: completion(null, { refusal: 'I cannot help with that.' }) });
    const error = await failure(service().complete({ model: 'gpt-test', messages }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_refused' });
  });

  it('when the caller aborts before the call, then it fails model_aborted without HTTP', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await failure(service().complete({ model: 'gpt-test', messages, signal: controller.signal }));
    expect(error).toMatchObject({ code: 'model_aborted' });
    expect(standIn.received).toHaveLength(0);
  });

  it('when the caller aborts mid-call, then it fails model_aborted at once and is not retried', async () => {
    standIn.script('hang');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await failure(service().complete({ model: 'gpt-test', messages, signal: controller.signal }));
    expect(error).toMatchObject({ code: 'model_aborted', attempts: 1 });
    expect(standIn.received).toHaveLength(1);
  });
});

describe('extractStructured', () => {
  const jsonSchema = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'], additionalProperties: false };

  it('when the model answers JSON, then it is parsed and response_format asks for the strict schema', async () => {
    standIn.script({ body: completion('{"name":"Ana"}') });
    const result = await service().extractStructured({ model: 'gpt-test', messages, schemaName: 'lead', jsonSchema });
    expect(result).toMatchObject({ data: { name: 'Ana' }, promptTokens: 11, completionTokens: 7, model: 'gpt-test-2025' });
    expect(standIn.received[0]?.body).toMatchObject({
      model: 'gpt-test',
      response_format: { type: 'json_schema', json_schema: { name: 'lead', schema: jsonSchema, strict: true } },
    });
  });

  it('when a compatible server wraps the JSON in a code fence, then it is still parsed', async () => {
    standIn.script({ body: completion('```json\n{"name":"Bo"}\n```') });
    const result = await service().extractStructured({ model: 'gpt-test', messages, schemaName: 'lead', jsonSchema, temperature: 0, maxTokens: 50 });
    expect(result.data).toEqual({ name: 'Bo' });
    expect(standIn.received[0]?.body).toMatchObject({ temperature: 0, max_completion_tokens: 50 });
  });

  it('when the content is not JSON, then a permanent model_invalid_json error carries the tokens, after one call', async () => {
    standIn.script({ body: completion('Sure! The name is Ana.') });
    const error = await failure(service().extractStructured({ model: 'gpt-test', messages, schemaName: 'lead', jsonSchema }));
    expect(error).toMatchObject({ kind: 'permanent', code: 'model_invalid_json', usage: { promptTokens: 11, completionTokens: 7 } });
    expect(standIn.received).toHaveLength(1);
  });

  it('when the JSON is cut off by max tokens, then the detail says so', async () => {
    standIn.script({ body: completion('{"name":"An', { finish_reason: 'length' }) });
    const error = await failure(service().extractStructured({ model: 'gpt-test', messages, schemaName: 'lead', jsonSchema }));
    expect(error).toMatchObject({ code: 'model_invalid_json', detail: 'answer cut off by max tokens' });
  });
});

describe('getOpenAIService', () => {
  it('when called twice, then it returns one lazily created instance with a closed circuit', () => {
    const svc = getOpenAIService();
    expect(getOpenAIService()).toBe(svc);
    expect(svc.circuitState).toBe('closed');
  });
});

describe('transcribe (issue 16)', () => {
  it('when audio is sent, then the SDK posts it to /audio/transcriptions and the text and seconds come back; a 500 is retried', async () => {
    const { startOpenAIStandin } = await import('../../fixtures/standins/openaiStandin');
    const standin = await startOpenAIStandin();
    try {
      standin.setTranscriptionFault({ status: 500, count: 1 });
      const service = createOpenAIService({ apiKey: KEY, baseURL: standin.url, timeoutMs: 2000, retry: { attempts: 2, baseMs: 1, maxMs: 2 } });
      const audio = Buffer.concat([Buffer.from('voice:Where is my order?'), Buffer.alloc(6000)]);
      const result = await service.transcribe({ model: 'gpt-4o-mini-transcribe', audio, filename: 'voice.ogg', mimeType: 'audio/ogg', tenantId: 't1' });
      expect(result).toMatchObject({ text: 'Where is my order?', seconds: 4, attempts: 2 });
      expect(standin.transcriptions.map((t) => t.status)).toEqual([500, 200]);
      expect(standin.transcriptions[1]).toMatchObject({ model: 'gpt-4o-mini-transcribe', filename: 'voice.ogg' });
    } finally {
      await standin.close();
    }
  });

  it('when no API key is configured, then it fails as not configured without a call', async () => {
    const service = createOpenAIService({ apiKey: undefined, baseURL: 'http://127.0.0.1:9/v1' });
    await expect(service.transcribe({ model: 'm', audio: Buffer.from('x'), filename: 'voice.ogg', mimeType: null })).rejects.toMatchObject({ code: 'openai_not_configured' });
  });
});
