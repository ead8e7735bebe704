/**
 * The send client against the local Graph stand-in over real HTTP on 127.0.0.1: what goes on
 * the wire per channel, splitting, and how each Meta failure is classified.
 */
import { standinAccessToken, startGraphStandin, type GraphStandin } from '../../fixtures/standins/graphStandin';
import {
  GraphError,
  classifyGraphError,
  createAccountVerifier,
  createGraphClient,
  parsePartCallbackData,
  partCallbackData,
  retryDelayMs,
  splitForChannel,
  type GraphClient,
} from '../../../src/services/metaGraphService';

const TOKEN = 'EAAG-secret-token-0123456789';
const WA_ACCOUNT = '109876543210123';
const WA_CUSTOMER = '15550102030';
const IG_ACCOUNT = '17841455500000001';
const IG_CUSTOMER = '6021000000000011';

let graph: GraphStandin;
let client: GraphClient;

beforeAll(async () => {
  graph = await startGraphStandin();
  client = createGraphClient({ whatsappBaseUrl: graph.url, instagramBaseUrl: `${graph.url}/`, version: 'v25.0', timeoutMs: 2000 });
});
afterEach(() => graph.reset());
afterAll(() => graph.close());

const waText = (text: string, extra: Partial<Parameters<GraphClient['sendText']>[0]> = {}) =>
  client.sendText({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, text, ...extra });
const igText = (text: string, extra: Partial<Parameters<GraphClient['sendText']>[0]> = {}) =>
  client.sendText({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, to: IG_CUSTOMER, text, ...extra });

/** Resolves to the rejection, failing the test if the promise resolves. */
async function failure(promise: Promise<unknown>): Promise<GraphError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(GraphError);
    return error as GraphError;
  }
  throw new Error('expected a GraphError, but the call succeeded');
}

/** Three sentences of ~3000 characters each: no two fit in one 4096-character WhatsApp message. */
const longReply = ['A', 'B', 'C'].map((letter) => `${letter}${' word'.repeat(600)}.`).join(' ');

describe('sendText on WhatsApp', () => {
  it('when a short reply is sent, then one call goes to /{version}/{phone_number_id}/messages with the Cloud API body and bearer token', async () => {
    const result = await waText('Hello! How can I help?', { replyToExternalId: 'wamid.INBOUND1' });

    expect(graph.sends).toHaveLength(1);
    const send = graph.sends[0]!;
    expect(send).toMatchObject({ channel: 'whatsapp', version: 'v25.0', accountId: WA_ACCOUNT, authorization: `Bearer ${TOKEN}`, kind: 'text', ok: true });
    expect(send.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: WA_CUSTOMER,
      type: 'text',
      text: { preview_url: false, body: 'Hello! How can I help?' },
      context: { message_id: 'wamid.INBOUND1' },
    });
    expect(result).toEqual({ externalIds: [send.externalId], parts: ['Hello! How can I help?'], totalParts: 1 });
    expect(result.externalIds[0]).toMatch(/^wamid\./);
  });

  it('when there is no message to quote, then the body has no context at all', async () => {
    await waText('Hi');
    expect(graph.sends[0]!.body).not.toHaveProperty('context');
  });

  it('when the reply is over 4096 characters, then it goes out as ordered parts, one call after the other, quoting only in the first', async () => {
    const result = await waText(longReply, { replyToExternalId: 'wamid.INBOUND2' });

    const texts = graph.texts(WA_CUSTOMER);
    expect(texts).toHaveLength(3);
    expect(texts.map((send) => send.text?.[0])).toEqual(['A', 'B', 'C']);
    expect(texts.map((send) => send.contextMessageId)).toEqual(['wamid.INBOUND2', undefined, undefined]);
    for (const send of texts) expect([...send.text!].length).toBeLessThanOrEqual(4096);
    // Sequential: each part is sent only once Meta accepted the previous one.
    for (let i = 1; i < texts.length; i++) expect(texts[i]!.receivedAt).toBeGreaterThanOrEqual(texts[i - 1]!.respondedAt!);
    expect(result.externalIds).toEqual(texts.map((send) => send.externalId));
    expect(result.totalParts).toBe(3);
  });
});

describe('sending one part at a time, with callback data', () => {
  it('when fromPart and toPart name one part, then only that part goes, as splitForChannel cut it', async () => {
    const result = await waText(longReply, { fromPart: 1, toPart: 2 });

    const texts = graph.texts(WA_CUSTOMER);
    expect(texts.map((send) => send.text)).toEqual([splitForChannel('whatsapp', longReply)[1]]);
    expect(result).toEqual({ externalIds: [texts[0]!.externalId], parts: [texts[0]!.text], totalParts: 3 });
  });

  it('when callback data is given on WhatsApp, then each part carries its own as biz_opaque_callback_data', async () => {
    await waText(longReply, { callbackData: (part) => partCallbackData('6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61', part) });

    expect(graph.texts(WA_CUSTOMER).map((send) => send.bizOpaqueCallbackData)).toEqual([0, 1, 2].map((part) => `out:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:${part}`));
  });

  it('when callback data is given on Instagram, then the body has no such field (Instagram sends carry none)', async () => {
    await igText('hi', { callbackData: () => 'out:x:0' });

    expect(graph.sends[0]!.body).toEqual({ recipient: { id: IG_CUSTOMER }, message: { text: 'hi' } });
  });

  it('when toPart is not after fromPart or past the end, then it refuses without calling Meta', async () => {
    for (const range of [{ fromPart: 1, toPart: 1 }, { fromPart: 0, toPart: 4 }]) {
      expect(await failure(waText(longReply, range))).toMatchObject({ kind: 'invalid_request', retryable: false, totalParts: 3 });
    }
    expect(graph.sends).toHaveLength(0);
  });

  it('when our callback data comes back, then it parses to the message and part; anything else is not ours', () => {
    const id = '6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61';
    expect(parsePartCallbackData(partCallbackData(id, 12))).toEqual({ messageId: id, partNo: 12 });
    for (const other of [null, undefined, '', 'campaign-7', `out:${id}`, `out:${id}:x`, `out:not-a-uuid:0`, `out:${id}:0:extra`]) {
      expect(parsePartCallbackData(other)).toBeNull();
    }
  });
});

describe('sendTemplate', () => {
  const template = { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }] };

  it("when a template is sent on WhatsApp, then one call carries Meta's type template with name, language.code, components and the callback data", async () => {
    const result = await client.sendTemplate({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, template, callbackData: 'out:x:0' });

    expect(graph.sends).toHaveLength(1);
    expect(graph.sends[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: WA_CUSTOMER,
      type: 'template',
      template,
      biz_opaque_callback_data: 'out:x:0',
    });
    expect(result).toEqual({ externalId: graph.sends[0]!.externalId });
  });

  it('when Meta refuses the template, then a permanent GraphError with its code', async () => {
    graph.setFault({ code: 132001, kind: 'template' });
    const error = await failure(client.sendTemplate({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, template }));
    expect(error).toMatchObject({ code: 132001, retryable: false, mayBeAccepted: false });
  });

  it('when asked on Instagram, then invalid_request and nothing is posted', async () => {
    const error = await failure(client.sendTemplate({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, to: IG_CUSTOMER, template }));
    expect(error.kind).toBe('invalid_request');
    expect(graph.sends).toEqual([]);
  });
});

describe('sendText on Instagram', () => {
  it('when a reply is sent, then it goes to /{version}/{ig_account_id}/messages as recipient + message.text', async () => {
    const result = await igText('Olá! Em que posso ajudar? 😊', { replyToExternalId: 'mid.ignored' });

    const send = graph.sends[0]!;
    expect(send).toMatchObject({ channel: 'instagram', version: 'v25.0', accountId: IG_ACCOUNT, token: TOKEN, kind: 'text' });
    // Instagram has no quoted replies: nothing but recipient and message.
    expect(send.body).toEqual({ recipient: { id: IG_CUSTOMER }, message: { text: 'Olá! Em que posso ajudar? 😊' } });
    expect(result.externalIds).toEqual([send.externalId]);
    expect(result.externalIds[0]).toMatch(/^mid\./);
  });

  it('when the reply is over 1000 UTF-8 bytes, then every part fits in 1000 bytes and the order holds', async () => {
    const accented = Array.from({ length: 60 }, (_, i) => `Frase número ${i} com acentuação é ótima 🚀.`).join(' ');
    expect(Buffer.byteLength(accented)).toBeGreaterThan(2000);

    const result = await igText(accented);

    const texts = graph.texts(IG_CUSTOMER);
    expect(texts.length).toBe(result.totalParts);
    expect(texts.length).toBeGreaterThanOrEqual(3);
    for (const send of texts) expect(Buffer.byteLength(send.text!)).toBeLessThanOrEqual(1000);
    expect(texts.map((send) => send.text).join(' ')).toBe(accented);
  });
});

describe('markRead', () => {
  it('when marking a WhatsApp message read, then it posts status read with the inbound wamid', async () => {
    await client.markRead({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, externalId: 'wamid.IN', customerId: WA_CUSTOMER });
    expect(graph.sends[0]).toMatchObject({ kind: 'read', ok: true, token: TOKEN, accountId: WA_ACCOUNT });
    expect(graph.sends[0]!.body).toEqual({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.IN' });
  });

  it('when a typing indicator is asked for on WhatsApp, then it rides on the same read call', async () => {
    await client.markRead({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, externalId: 'wamid.IN', customerId: WA_CUSTOMER, typingIndicator: true });
    expect(graph.sends).toHaveLength(1);
    expect(graph.sends[0]!.body).toEqual({ messaging_product: 'whatsapp', status: 'read', message_id: 'wamid.IN', typing_indicator: { type: 'text' } });
  });

  it('when marking an Instagram thread seen, then it sends only recipient and sender_action mark_seen', async () => {
    await client.markRead({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, externalId: 'mid.IN', customerId: IG_CUSTOMER });
    expect(graph.sends).toHaveLength(1);
    expect(graph.sends[0]!.body).toEqual({ recipient: { id: IG_CUSTOMER }, sender_action: 'mark_seen' });
  });

  it('when a typing indicator is asked for on Instagram, then typing_on follows mark_seen as its own call', async () => {
    await client.markRead({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, externalId: 'mid.IN', customerId: IG_CUSTOMER, typingIndicator: true });
    expect(graph.sends.map((send) => send.senderAction)).toEqual(['mark_seen', 'typing_on']);
  });

  it('when the read call fails, then it still throws a typed error for the caller to ignore or log', async () => {
    graph.setFault({ code: 100, kind: 'read' });
    const error = await failure(
      client.markRead({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, externalId: 'wamid.OLD', customerId: WA_CUSTOMER }),
    );
    expect(error).toMatchObject({ code: 100, retryable: false });
  });
});

describe('failures', () => {
  const retryableCodes = [130429, 131056, 131057, 1, 2, 4, 17, 32, 613, 80007];
  const permanentCodes = [131047, 131026, 131048, 131049, 131050, 131051, 131052, 131053, 131062, 131031, 131042, 130497, 133010, 190, 0, 10, 200, 250, 299, 100, 368, 551];

  it.each(retryableCodes)('when Meta answers code %i, then the GraphError carries it and is retryable', async (code) => {
    graph.setFault({ code, details: `details for ${code}` });
    const error = await failure(waText('hi'));
    expect(error).toMatchObject({ code, retryable: true, kind: 'graph', channel: 'whatsapp', details: `details for ${code}` });
    expect(error.httpStatus).toBeGreaterThanOrEqual(400);
    expect(error.fbtraceId).toEqual(expect.any(String));
    expect(error.message).toContain(`(#${code})`);
  });

  it.each(permanentCodes)('when Meta answers code %i, then the GraphError is not retryable', async (code) => {
    graph.setFault({ code });
    const error = await failure(igText('hi'));
    expect(error).toMatchObject({ code, retryable: false, backoff: 'none', channel: 'instagram' });
  });

  it('when Meta answers with a 5xx and a known permanent code, then the code wins over the status', async () => {
    graph.setFault({ code: 131047, httpStatus: 500 });
    expect(await failure(waText('hi'))).toMatchObject({ code: 131047, httpStatus: 500, retryable: false });
  });

  it('when the token is rejected (190), then the HTTP status is 401 and the error is permanent', async () => {
    graph.setFault({ code: 190 });
    expect(await failure(waText('hi'))).toMatchObject({ code: 190, httpStatus: 401, retryable: false });
  });

  it('when the pair rate limit is hit (131056), then the error asks for the 4^X-second backoff and at least the 6 s pace', async () => {
    graph.setFault({ code: 131056 });
    const error = await failure(waText('hi'));
    expect(error).toMatchObject({ retryable: true, backoff: 'pair_rate_limit', retryAfterMs: 6000 });
    expect([0, 1, 2, 3].map((attempt) => retryDelayMs(error, attempt))).toEqual([6000, 6000, 16_000, 64_000]);
  });

  it('when Meta sends Retry-After, then retryAfterMs follows it and bounds the suggested delay', async () => {
    graph.setFault({ code: 130429, retryAfterSeconds: 7 });
    const error = await failure(waText('hi'));
    expect(error).toMatchObject({ retryable: true, backoff: 'standard', retryAfterMs: 7000 });
    expect(retryDelayMs(error, 0, () => 0)).toBe(7000);
    expect(retryDelayMs(error, 5, () => 1)).toBe(32_000);
  });

  it('when Meta never answers, then the call times out as a retryable error that warns it may have been delivered', async () => {
    const impatient = createGraphClient({ whatsappBaseUrl: graph.url, instagramBaseUrl: graph.url, version: 'v25.0', timeoutMs: 150 });
    graph.setFault({ hang: true });
    const started = Date.now();
    const error = await failure(impatient.sendText({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, text: 'hi' }));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toMatchObject({ kind: 'timeout', code: null, httpStatus: null, retryable: true, backoff: 'standard', mayBeAccepted: true });
    expect(error.message).toMatch(/timed out after 150 ms/);
  });

  it('when nothing listens at the base URL, then it is a retryable network error', async () => {
    const gone = await startGraphStandin();
    await gone.close();
    const offline = createGraphClient({ whatsappBaseUrl: gone.url, instagramBaseUrl: gone.url, version: 'v25.0', timeoutMs: 2000 });
    const error = await failure(offline.sendText({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, to: IG_CUSTOMER, text: 'hi' }));
    // Refused: the request never left, so Meta cannot have it.
    expect(error).toMatchObject({ kind: 'network', retryable: true, mayBeAccepted: false });
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('when Meta answered with an error, then it did not accept the part; a connection lost mid-request or an unreadable 2xx may have been', async () => {
    graph.setFault({ code: 130429, count: 1 });
    expect(await failure(waText('hi'))).toMatchObject({ kind: 'graph', mayBeAccepted: false });
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(new GraphError('lost', { kind: 'network', channel: 'whatsapp', cause: reset }).mayBeAccepted).toBe(true);
    expect(new GraphError('no id', { kind: 'invalid_response', channel: 'whatsapp' }).mayBeAccepted).toBe(true);
    expect(new GraphError('empty', { kind: 'invalid_request', channel: 'whatsapp' }).mayBeAccepted).toBe(false);
  });

  it('when a later part of a split reply fails, then the error lists the parts already sent and a resume point, and resuming sends only the rest', async () => {
    graph.setFault({ code: 130429, skip: 1, count: 1 });
    const error = await failure(waText(longReply, { replyToExternalId: 'wamid.Q' }));

    const accepted = graph.texts(WA_CUSTOMER);
    expect(accepted).toHaveLength(1);
    expect(error).toMatchObject({ retryable: true, nextPart: 1, totalParts: 3 });
    expect(error.sentExternalIds).toEqual([accepted[0]!.externalId]);

    const resumed = await waText(longReply, { replyToExternalId: 'wamid.Q', fromPart: error.nextPart });
    const texts = graph.texts(WA_CUSTOMER);
    expect(texts.map((send) => send.text?.[0])).toEqual(['A', 'B', 'C']);
    // The quote belongs to the first part only, which was not sent again.
    expect(texts.map((send) => send.contextMessageId)).toEqual(['wamid.Q', undefined, undefined]);
    expect(resumed.externalIds).toEqual([texts[1]!.externalId, texts[2]!.externalId]);
  });

  it('when the first part fails, then nothing is recorded as sent', async () => {
    graph.setFault({ code: 1, count: 1 });
    const error = await failure(waText(longReply));
    expect(error).toMatchObject({ sentExternalIds: [], nextPart: 0, totalParts: 3, retryable: true });
  });

  it('when Meta echoes the token in its error, then neither the message, the details nor the serialized error contain it', async () => {
    graph.setFault({ code: 190, message: `Malformed access token ${TOKEN}`, details: `token ${TOKEN} expired` });
    const error = await failure(waText('hi'));
    for (const text of [error.message, error.details ?? '', JSON.stringify(error), String(error.stack)]) expect(text).not.toContain(TOKEN);
    expect(error.message).toContain('[redacted]');
  });

  it('when any request fails, then the token is not in the error message', async () => {
    for (const fault of [{ code: 131047 }, { code: 1 }, { hang: true }]) {
      graph.setFault(fault);
      const fast = createGraphClient({ whatsappBaseUrl: graph.url, instagramBaseUrl: graph.url, version: 'v25.0', timeoutMs: 100 });
      const error = await failure(fast.sendText({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, text: 'hi' }));
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(TOKEN);
    }
  });

  it('when the recipient is missing, then Meta-style validation fails it as a permanent invalid parameter', async () => {
    const error = await failure(waText('hi', { to: '' }));
    expect(error).toMatchObject({ code: 100, retryable: false });
  });

  it('when the text is blank, then no call is made and the error is permanent', async () => {
    const error = await failure(waText('  \n '));
    expect(error).toMatchObject({ kind: 'invalid_request', retryable: false });
    expect(graph.sends).toHaveLength(0);
  });

  it('when fromPart is past the end, then it refuses without calling Meta', async () => {
    const error = await failure(waText('short', { fromPart: 1 }));
    expect(error).toMatchObject({ kind: 'invalid_request', retryable: false, totalParts: 1 });
    expect(graph.sends).toHaveLength(0);
  });
});

describe('classifyGraphError', () => {
  it.each([
    [130429, 400, true],
    [131056, 400, true],
    [131057, 400, true],
    [1, 500, true],
    [2, 503, true],
    [4, 429, true],
    [17, 400, true],
    [32, 400, true],
    [613, 400, true],
    [80007, 400, true],
    [131047, 400, false],
    [131026, 400, false],
    [131048, 400, false],
    [131049, 400, false],
    [131050, 400, false],
    [131051, 400, false],
    [131052, 400, false],
    [131053, 400, false],
    [131062, 400, false],
    [131031, 400, false],
    [131042, 400, false],
    [130497, 400, false],
    [133010, 400, false],
    [190, 401, false],
    [0, 401, false],
    [10, 403, false],
    [200, 403, false],
    [299, 403, false],
    [100, 400, false],
    [368, 400, false],
    [551, 400, false],
    [131047, 503, false],
    [999999, 400, false],
    [999999, 404, false],
    [999999, 500, true],
    [999999, 502, true],
    [999999, 429, true],
    [null, null, true],
    [null, 503, true],
    [null, 400, false],
  ] as Array<[number | null, number | null, boolean]>)('when code is %p and HTTP status %p, then retryable is %p', (code, status, retryable) => {
    expect(classifyGraphError(code, status).retryable).toBe(retryable);
  });

  it('when the code is 131056, then the backoff is the pair-rate-limit one; other retryables are standard', () => {
    expect(classifyGraphError(131056, 400).backoff).toBe('pair_rate_limit');
    expect(classifyGraphError(130429, 400).backoff).toBe('standard');
    expect(classifyGraphError(131047, 400).backoff).toBe('none');
  });
});

describe('the default client', () => {
  it('when no options are given, then base URLs and version come from config', async () => {
    const saved = { ...process.env };
    process.env.META_GRAPH_API_URL = graph.url;
    process.env.INSTAGRAM_GRAPH_API_URL = graph.url;
    process.env.META_GRAPH_API_VERSION = 'v26.0';
    try {
      let service: typeof import('../../../src/services/metaGraphService') | undefined;
      // A fresh module graph, so config re-reads the environment set above.
      jest.isolateModules(() => {
        service = require('../../../src/services/metaGraphService');
      });
      await service!.sendText({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN, to: WA_CUSTOMER, text: 'hi' });
      await service!.markRead({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN, externalId: 'mid.x', customerId: IG_CUSTOMER });
      expect(graph.sends.map((send) => [send.version, send.channel, send.kind])).toEqual([
        ['v26.0', 'whatsapp', 'text'],
        ['v26.0', 'instagram', 'sender_action'],
      ]);
    } finally {
      process.env = saved;
    }
  });
});

describe('createAccountVerifier (the lookups of CONTRACT §3, against the stand-in)', () => {
  const verifier = () => createAccountVerifier({ whatsappBaseUrl: graph.url, instagramBaseUrl: graph.url, version: 'v25.0', timeoutMs: 2000 });

  it("when a WhatsApp token is the number's own, then ok with its verified name, asked with the contract's fields and the bearer token", async () => {
    const token = standinAccessToken('whatsapp', WA_ACCOUNT);
    expect(await verifier()({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: token })).toEqual({ ok: true, name: `Stand-in ${WA_ACCOUNT}` });
    expect(graph.lookups).toEqual([{ channel: 'whatsapp', accountId: WA_ACCOUNT, fields: 'id,display_phone_number,verified_name', token, status: 200 }]);
  });

  it("when a WhatsApp token belongs to another number, then not ok with Graph's 100/33 reason", async () => {
    const verdict = await verifier()({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: standinAccessToken('whatsapp', '1555000999') });
    expect(verdict).toEqual({ ok: false, reason: expect.stringMatching(new RegExp(`Object with ID '${WA_ACCOUNT}' does not exist.*\\(code 100, HTTP 400\\)`)) });
  });

  it("when an Instagram token is the account's own, then ok; another account's, then not ok naming both ids", async () => {
    const ask = verifier();
    expect(await ask({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: standinAccessToken('instagram', IG_ACCOUNT) })).toEqual({ ok: true, name: `standin_${IG_ACCOUNT}` });
    expect(await ask({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: standinAccessToken('instagram', '17841400000000002') })).toEqual({
      ok: false,
      reason: `Graph instagram account lookup: the token acts for account 17841400000000002, not ${IG_ACCOUNT}`,
    });
    expect(graph.lookups.map((lookup) => [lookup.accountId, lookup.fields])).toEqual([['me', 'user_id,username'], ['me', 'user_id,username']]);
  });

  it("when Graph refuses the token and quotes it back, then not ok with Graph's reason, the token scrubbed", async () => {
    graph.setLookupFault({ code: 190, message: `Malformed access token ${TOKEN}` });
    const verdict = await verifier()({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN });
    expect(verdict).toEqual({ ok: false, reason: 'Graph whatsapp account lookup failed: Malformed access token [redacted] (code 190, HTTP 401)' });
  });

  it('when Graph is down (code 2, HTTP 503) or unreachable, then it rejects with a retryable GraphError: no verdict', async () => {
    graph.setLookupFault({ code: 2, httpStatus: 503 });
    await expect(verifier()({ channel: 'instagram', accountId: IG_ACCOUNT, accessToken: TOKEN })).rejects.toMatchObject({ name: 'GraphError', retryable: true, httpStatus: 503 });
    const gone = await startGraphStandin();
    await gone.close();
    const unreachable = createAccountVerifier({ whatsappBaseUrl: gone.url, instagramBaseUrl: gone.url, timeoutMs: 1000 });
    await expect(unreachable({ channel: 'whatsapp', accountId: WA_ACCOUNT, accessToken: TOKEN })).rejects.toMatchObject({ kind: 'network', retryable: true });
  });
});
