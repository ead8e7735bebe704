/**
 * Issue 16 items 1 and 2, through the real webhook and worker against the Graph stand-in (media
 * lookup and download with the number's token, URLs that expire) and the OpenAI stand-in
 * (`/audio/transcriptions`; it describes an image by its bytes' hash): voice notes are answered
 * from their transcript and charged for it, photos from what they show, other media from a
 * short typed description. Nothing is downloaded by the webhook.
 */
import request from 'supertest';
import { createHash } from 'node:crypto';
import { config } from '../../src/config';
import { costForAudio } from '../../src/services/mediaService';
import { fixtureBytes, instagramAttachmentBody, whatsappMediaBody } from '../fixtures/meta';
import { SPOKEN_PREFIX, messageImages, messageText, secondsFor } from '../fixtures/standins/openaiStandin';
import { createBusiness, customerWrites, eventually, ledgerOf, messagesOf, pipelineForFile, postWebhook, type Business } from '../fixtures/pipeline';

const pipeline = pipelineForFile();
let customerSeq = 0;
const newCustomer = () => `1557${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;
const newIgsid = () => `68${String(process.pid).slice(-3)}${++customerSeq}`;

afterEach(() => pipeline().reset());

/** Audio the OpenAI stand-in hears as `words`, padded to `bytes` (its length in seconds follows the size). */
function voice(words: string, bytes = 0): Buffer {
  const spoken = Buffer.from(`${SPOKEN_PREFIX}${words}`);
  return bytes > spoken.length ? Buffer.concat([spoken, Buffer.alloc(bytes - spoken.length, 0x20)]) : spoken;
}

/** The customer's message (the first inbound one) and the reply, once the reply is sent. */
async function answered(business: Business, customer: string) {
  return eventually(async () => {
    const rows = await messagesOf(business.tenant.userId, customer);
    const reply = rows.find((m) => m.direction === 'outbound');
    return reply && reply.status === 'sent' ? { inbound: rows.find((m) => m.direction === 'inbound'), reply, rows } : null;
  }, 15_000, 'the reply');
}

/** What the model was last sent as the customer's words. */
function lastUserText(): string {
  const chat = pipeline().openai.completions().at(-1)!;
  const users = (chat.body!.messages ?? []).filter((m) => m.role === 'user');
  return messageText(users.at(-1)!);
}

async function apiMessages(business: Business, customer: string) {
  const conversations = await request(pipeline().app).get('/v1/conversations').set(business.tenant.auth);
  const conversation = conversations.body.data.find((c: { customer: { external_id: string } }) => c.customer.external_id === customer);
  const res = await request(pipeline().app).get(`/v1/conversations/${conversation.id}/messages`).set(business.tenant.auth);
  expect(res.status).toBe(200);
  return res.body.data as Array<Record<string, unknown>>;
}

describe('voice notes (issue 16 item 1)', () => {
  it('when a WhatsApp voice note arrives, then the worker fetches it with the number token, transcribes it, answers from the transcript and charges it as a transcription', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const audio = voice('Do you deliver to Porto on Saturdays?', 240_000);
    const { id: mediaId } = graph.addMedia({ bytes: audio, mimeType: 'audio/ogg; codecs=opus', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'audio', mediaId, mimeType: 'audio/ogg; codecs=opus' }));
    // Accepted with nothing fetched: media is the worker's business, never the webhook's.
    expect(graph.mediaRequests).toEqual([]);
    expect(openai.transcriptions).toEqual([]);

    await pipeline().startWorker();
    const { inbound, reply } = await answered(business, customer);

    expect(graph.mediaRequests.map((r) => [r.kind, r.mediaId, r.token, r.status])).toEqual([
      ['lookup', mediaId, business.whatsapp.token, 200],
      ['download', mediaId, business.whatsapp.token, 200],
    ]);
    expect(openai.transcriptions).toHaveLength(1);
    expect(openai.transcriptions[0]).toMatchObject({ model: config.OPENAI_TRANSCRIBE_MODEL, status: 200, filename: 'voice.ogg' });
    expect(openai.transcriptions[0]!.audio.equals(audio)).toBe(true);
    expect(lastUserText()).toContain('Do you deliver to Porto on Saturdays?');
    expect(reply.text).toContain('Do you deliver to Porto on Saturdays?');
    expect(inbound.status).toBe('answered');

    const [shown] = (await apiMessages(business, customer)).filter((m) => m.direction === 'inbound');
    expect(shown).toMatchObject({
      type: 'audio',
      text: 'Do you deliver to Porto on Saturdays?',
      media: { type: 'audio', mime_type: 'audio/ogg; codecs=opus', transcript: 'Do you deliver to Porto on Saturdays?' },
    });

    const ledger = await ledgerOf(business.tenant.userId);
    const transcription = ledger.entries.filter((e) => e.reason === 'transcription');
    expect(transcription).toHaveLength(1);
    expect(transcription[0].message_id).toBe(inbound.id);
    expect(Number(transcription[0].amount)).toBe(-costForAudio(secondsFor(audio)));
    expect(Number(transcription[0].amount)).toBe(-Math.ceil((120 * config.CREDITS_PER_AUDIO_MINUTE) / 60));
    expect(ledger.balance).toBe(ledger.sum);
    const me = await request(app).get('/v1/me').set(business.tenant.auth);
    expect(me.body.credits_held).toBe(0);
  });

  it('when an Instagram audio attachment arrives, then its URL is fetched (without our token) and the reply answers the transcript', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    const igsid = newIgsid();
    const { url } = graph.addMedia({ bytes: voice('Is the green bag back in stock?'), mimeType: 'audio/mp4' });
    await postWebhook(app, instagramAttachmentBody({ accountId: business.instagram.externalId, igsid, type: 'audio', url }));
    await pipeline().startWorker();

    const { reply } = await answered(business, igsid);
    expect(reply.text).toContain('Is the green bag back in stock?');
    expect(graph.mediaRequests.map((r) => [r.kind, r.token, r.status])).toEqual([['cdn', undefined, 200]]);
    expect(openai.transcriptions[0]).toMatchObject({ filename: 'voice.m4a', mimeType: 'audio/mp4' });
  });

  it('when a voice note is larger than MEDIA_MAX_BYTES (20 MB), then it is not downloaded nor transcribed, and the message is answered from its type', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const { id: mediaId } = graph.addMedia({ bytes: Buffer.alloc(20 * 1024 * 1024, 1), mimeType: 'audio/ogg', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'audio', mediaId, mimeType: 'audio/ogg' }));
    await pipeline().startWorker();

    const { inbound } = await answered(business, customer);
    expect(inbound.status).toBe('answered');
    expect(graph.mediaRequests.map((r) => r.kind)).toEqual(['lookup']);
    expect(openai.transcriptions).toEqual([]);
    expect(lastUserText()).toMatch(/voice note that was too large to download/);
    expect((await ledgerOf(business.tenant.userId)).entries.filter((e) => e.reason === 'transcription')).toEqual([]);
  });

  it('when transcription fails, then the message is still answered, from its type, with nothing charged or held for it', async () => {
    const { app, graph, openai } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    openai.setTranscriptionFault({ status: 500 });
    const { id: mediaId } = graph.addMedia({ bytes: voice('Call me back please'), mimeType: 'audio/ogg', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'audio', mediaId, mimeType: 'audio/ogg' }));
    await pipeline().startWorker();

    const { inbound } = await answered(business, customer);
    expect(inbound.status).toBe('answered');
    expect(openai.transcriptions.length).toBeGreaterThan(0);
    expect(openai.transcriptions.every((t) => t.status === 500)).toBe(true);
    expect(lastUserText()).toMatch(/voice note that could not be transcribed/);
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.entries.filter((e) => e.reason === 'transcription')).toEqual([]);
    expect((await request(app).get('/v1/me').set(business.tenant.auth)).body.credits_held).toBe(0);
  });

  it('when the tenant has no credits for the transcription, then no transcription is made', async () => {
    const { app, graph, openai } = pipeline();
    // 50 credits; two minutes of audio cost 200.
    const business = await createBusiness(app, { credits: 50 });
    const customer = newCustomer();
    const { id: mediaId } = graph.addMedia({ bytes: voice('Hello there', 240_000), mimeType: 'audio/ogg', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'audio', mediaId, mimeType: 'audio/ogg' }));
    await pipeline().startWorker();

    const inbound = await eventually(async () => {
      const [row] = await messagesOf(business.tenant.userId, customer);
      return row && row.status !== 'pending' ? row : null;
    });
    expect(inbound.status).toBe('insufficient_credits');
    expect(openai.transcriptions).toEqual([]);
    expect(inbound.payload.media.state).toBe('no_credits');
    const ledger = await ledgerOf(business.tenant.userId);
    expect(ledger.balance).toBe(50);
  });
});



/** The data URLs of images the model was last sent in the customer's turn. */
function lastUserImages(): string[] {
  const chat = pipeline().openai.completions().at(-1)!;
  return (chat.body!.messages ?? []).filter((m) => m.role === 'user').flatMap((m) => messageImages(m));
}

describe('images and other media (issue 16 item 2)', () => {
  const photo = Buffer.from('\xff\xd8\xff a photo of a red bicycle', 'latin1');
  const photoHash = createHash('sha256').update(photo).digest('hex');

  it('when a WhatsApp photo with a caption arrives, then the model sees the image (a data URL of its bytes) with the caption, and answers from what it shows', async () => {
    const { app, graph, openai } = pipeline();
    openai.describeImage(photoHash, 'a red bicycle with a flat tyre');
    const business = await createBusiness(app);
    const customer = newCustomer();
    const { id: mediaId } = graph.addMedia({ bytes: photo, mimeType: 'image/jpeg', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'image', mediaId, mimeType: 'image/jpeg', caption: 'Can you fix this?' }));
    expect(graph.mediaRequests).toEqual([]);
    await pipeline().startWorker();

    const { reply } = await answered(business, customer);
    expect(lastUserImages()).toEqual([`data:image/jpeg;base64,${photo.toString('base64')}`]);
    expect(lastUserText()).toBe('[photo] Can you fix this?');
    expect(reply.text).toContain('I can see a red bicycle with a flat tyre.');
    expect(graph.mediaRequests.map((r) => [r.kind, r.token])).toEqual([['lookup', business.whatsapp.token], ['download', business.whatsapp.token]]);

    const [shown] = (await apiMessages(business, customer)).filter((m) => m.direction === 'inbound');
    expect(shown).toMatchObject({ type: 'image', text: 'Can you fix this?', media: { type: 'image', mime_type: 'image/jpeg', caption: 'Can you fix this?' } });

    // The next turn does not send the image again (nor fetch it): the model is told it saw it then.
    await customerWrites(app, business, customer, 'How much would it cost?');
    await eventually(async () => (await messagesOf(business.tenant.userId, customer)).filter((m) => m.direction === 'outbound' && m.status === 'sent').length === 2);
    const next = openai.completions().at(-1)!.body!.messages!.filter((m) => m.role === 'user');
    expect(next.flatMap((m) => messageImages(m))).toEqual([]);
    expect(next.map((m) => messageText(m))).toEqual(['[the customer sent a photo with the caption "Can you fix this?" earlier; it was shown to you then]', 'How much would it cost?']);
    expect(graph.mediaRequests).toHaveLength(2);
  });

  it('when a WhatsApp sticker or an Instagram image arrives, then the model sees it too', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    const customer = newCustomer();
    const sticker = Buffer.from('RIFF....WEBP sticker');
    const { id: mediaId } = graph.addMedia({ bytes: sticker, mimeType: 'image/webp', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'sticker', mediaId, mimeType: 'image/webp' }));
    await pipeline().startWorker();
    const { reply } = await answered(business, customer);
    expect(lastUserImages()).toEqual([`data:image/webp;base64,${sticker.toString('base64')}`]);
    expect(reply.text).toContain(`I can see an image with sha256 ${createHash('sha256').update(sticker).digest('hex').slice(0, 12)}`);

    const igsid = newIgsid();
    const { url } = graph.addMedia({ bytes: photo, mimeType: 'image/png' });
    await postWebhook(app, instagramAttachmentBody({ accountId: business.instagram.externalId, igsid, type: 'image', url }));
    await answered(business, igsid);
    expect(lastUserImages()).toEqual([`data:image/png;base64,${photo.toString('base64')}`]);
  });

  it('when the agent has vision off, then the photo is not downloaded and the model reads a description with its caption', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app, { agent: { vision: false } });
    const customer = newCustomer();
    const { id: mediaId } = graph.addMedia({ bytes: photo, mimeType: 'image/jpeg', accountId: business.whatsapp.externalId });
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: customer, type: 'image', mediaId, mimeType: 'image/jpeg', caption: 'In stock?' }));
    await pipeline().startWorker();

    await answered(business, customer);
    expect(graph.mediaRequests).toEqual([]);
    expect(lastUserImages()).toEqual([]);
    expect(lastUserText()).toBe('[the customer sent a photo with the caption "In stock?"; you cannot see it]');
  });

  it('when a document, a video or a location arrives, then the model reads a short typed description, never a bare placeholder', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    await pipeline().startWorker();

    const withDocument = newCustomer();
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: withDocument, type: 'document', mediaId: 'doc-1', mimeType: 'application/pdf', filename: 'invoice-0042.pdf', caption: 'Wrong amount' }));
    await answered(business, withDocument);
    expect(lastUserText()).toBe('[the customer sent a document "invoice-0042.pdf" (application/pdf) with the caption "Wrong amount"]');

    const withVideo = newCustomer();
    await postWebhook(app, whatsappMediaBody({ phoneNumberId: business.whatsapp.externalId, from: withVideo, type: 'video', mediaId: 'vid-1', mimeType: 'video/mp4' }));
    await answered(business, withVideo);
    expect(lastUserText()).toBe('[the customer sent a video (video/mp4) without a caption]');

    const withLocation = newCustomer();
    await postWebhook(app, fixtureWithIds('whatsapp_location.json', business.whatsapp.externalId, withLocation));
    await answered(business, withLocation);
    expect(lastUserText()).toMatch(/^\[location\] .*\(-?\d+(\.\d+)?, -?\d+(\.\d+)?\)$/);
    // Documents and videos are described, not fetched.
    expect(graph.mediaRequests).toEqual([]);
  });
});

/** A shared fixture's body, sent to this number from this customer. */
function fixtureWithIds(name: string, phoneNumberId: string, customer: string): string {
  const body = JSON.parse(fixtureBytes(name).toString('utf8'));
  const value = body.entry[0].changes[0].value;
  value.metadata.phone_number_id = phoneNumberId;
  value.contacts[0].wa_id = customer;
  value.messages[0].from = customer;
  value.messages[0].id = `wamid.${customer}${Date.now()}`;
  value.messages[0].timestamp = String(Math.floor(Date.now() / 1000));
  return JSON.stringify(body);
}
