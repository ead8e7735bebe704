import { isValidSignature } from '../../../src/controllers/webhook';
import { normalizeWebhook } from '../../../src/services/metaNormalizer';
import {
  bodyFor,
  instagramTextWebhook,
  parseSimulateArgs,
  signBody,
  whatsappStatusWebhook,
  whatsappTextWebhook,
} from '../../../scripts/simulate';

const defaults = { url: 'http://127.0.0.1:3000' };
const valid = ['--to', '109876543210123', '--from', '15550001111', '--text', 'Hi there'];

describe('simulate: arguments', () => {
  it('when every required option is given, then it parses them with the default URL', () => {
    const parsed = parseSimulateArgs([...valid, '--name', 'Ana'], defaults);
    expect(parsed).toEqual({
      ok: true,
      args: { to: '109876543210123', from: '15550001111', text: 'Hi there', name: 'Ana', url: 'http://127.0.0.1:3000', instagram: false },
    });
  });

  it('when options are missing, then it names each one as required', () => {
    const parsed = parseSimulateArgs(['--to', '109876543210123'], defaults);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.message).toContain('--from is required');
    expect(parsed.message).toContain('--text is required');
  });

  it('when --from is not digits or --url is not http, then it says what is wrong with each', () => {
    const parsed = parseSimulateArgs(['--to', '1098', '--from', '+1 555', '--text', 'Hi', '--url', 'ftp://x'], defaults);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.message).toMatch(/--from must be 5–20 digits/);
    expect(parsed.message).toMatch(/--url must be an http\(s\) URL/);
  });

  it("when --to is the API's UUID of the number, then it is refused, asking for Meta's id", () => {
    const parsed = parseSimulateArgs(['--to', '32a026d0-e4d9-41b2-97af-4f2f71fc75ac', '--from', '15550001111', '--text', 'Hi'], defaults);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.message).toContain("--to looks like the API's id of the number (a UUID); it takes Meta's id");
  });

  it('when the text is blank, then it is refused', () => {
    const parsed = parseSimulateArgs(['--to', '1098', '--from', '15550001111', '--text', '   '], defaults);
    expect(parsed).toMatchObject({ ok: false, message: expect.stringContaining('--text must not be blank') });
  });

  it('when --name comes with --instagram, then it is refused (Instagram carries no profile name)', () => {
    const parsed = parseSimulateArgs([...valid, '--instagram', '--name', 'Ana'], defaults);
    expect(parsed).toMatchObject({ ok: false, message: expect.stringContaining('--name applies to WhatsApp only') });
  });

  it('when an unknown option or --help is given, then it reports it or asks for the usage', () => {
    expect(parseSimulateArgs([...valid, '--bogus'], defaults)).toMatchObject({ ok: false, help: false, message: expect.stringContaining('--bogus') });
    expect(parseSimulateArgs(['-h'], defaults)).toEqual({ ok: false, help: true, message: '' });
  });
});

describe('simulate: webhook bodies', () => {
  it("when a WhatsApp text is built and signed, then the product's signature check and normalizer accept it", () => {
    const body = whatsappTextWebhook({ phoneNumberId: '109876543210123', from: '15550001111', text: 'Olá, tudo bem?', name: 'Ana' });
    expect(isValidSignature(Buffer.from(body), signBody(body, 'dev-app-secret'), 'dev-app-secret')).toBe(true);
    expect(isValidSignature(Buffer.from(body), signBody(body, 'another-secret'), 'dev-app-secret')).toBe(false);
    const [event, ...rest] = normalizeWebhook(JSON.parse(body));
    expect(rest).toHaveLength(0);
    expect(event).toMatchObject({
      kind: 'message',
      channel: 'whatsapp',
      accountId: '109876543210123',
      customerId: '15550001111',
      customerName: 'Ana',
      type: 'text',
      text: 'Olá, tudo bem?',
    });
  });

  it('when a message id is given, then the same id comes back, so a retry can be replayed', () => {
    const first = bodyFor({ to: '109876543210123', from: '15550001111', text: 'Hi', id: 'wamid.ABC=', url: defaults.url, instagram: false });
    const again = bodyFor({ to: '109876543210123', from: '15550001111', text: 'Hi', id: 'wamid.ABC=', url: defaults.url, instagram: false });
    expect(first.id).toBe('wamid.ABC=');
    expect(normalizeWebhook(JSON.parse(first.body))[0]).toMatchObject({ externalId: 'wamid.ABC=' });
    expect(normalizeWebhook(JSON.parse(again.body))[0]).toMatchObject({ externalId: 'wamid.ABC=' });
  });

  it('when an Instagram text is built, then the normalizer reads a customer message to that account', () => {
    const { body, id } = bodyFor({ to: '17841455500000001', from: '6021000000000011', text: 'Is it available?', url: defaults.url, instagram: true });
    expect(normalizeWebhook(JSON.parse(body))).toEqual([
      expect.objectContaining({ kind: 'message', channel: 'instagram', accountId: '17841455500000001', customerId: '6021000000000011', externalId: id, text: 'Is it available?', isEcho: false }),
    ]);
    expect(JSON.parse(instagramTextWebhook({ accountId: 'a1', igsid: '1', text: 'x', mid: 'm1' })).entry[0].messaging[0].message.mid).toBe('m1');
  });

  it('when a status is built, then the normalizer reads it as that status of that wamid', () => {
    const body = whatsappStatusWebhook({ phoneNumberId: '109876543210123', wamid: 'wamid.OUT=', status: 'read', recipientId: '15550001111' });
    expect(normalizeWebhook(JSON.parse(body))).toEqual([
      expect.objectContaining({
        kind: 'status',
        externalId: 'wamid.OUT=',
        status: 'read',
        recipientId: '15550001111',
        accountId: '109876543210123',
        bizOpaqueCallbackData: null,
      }),
    ]);
    const echoed = whatsappStatusWebhook({ phoneNumberId: '1', wamid: 'wamid.X', status: 'sent', bizOpaqueCallbackData: 'ours:1' });
    expect(normalizeWebhook(JSON.parse(echoed))).toEqual([expect.objectContaining({ externalId: 'wamid.X', bizOpaqueCallbackData: 'ours:1' })]);
  });
});
