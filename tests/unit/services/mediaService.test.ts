/**
 * mediaService with its edges faked (the ReplyTurn model, the media fetcher, the OpenAI
 * service): what the model reads for each kind of message, how long audio is taken to be, and
 * what a turn does with voice notes and images. The real thing runs in
 * tests/integration/inboundMedia.test.ts.
 */
import * as replyTurnModel from '../../../src/models/ReplyTurn';
import { MediaError, type MediaFetcher } from '../../../src/services/metaGraphService';
import type { OpenAIService } from '../../../src/services/openaiService';
import { ModelError } from '../../../src/services/modelErrors';
import {
  costForAudio,
  describeForModel,
  estimateAudioSeconds,
  mediaForApi,
  prepareTurnMedia,
  type MediaContext,
} from '../../../src/services/mediaService';
import { messageRow } from '../../fixtures/rows';

jest.mock('../../../src/models/ReplyTurn');
const model = jest.mocked(replyTurnModel);

const media = (type: string, payload: Record<string, unknown>, text: string | null = null) => ({ type, text, payload });

describe('describeForModel', () => {
  it('when a message is plain text, then the model reads its text as is', () => {
    expect(describeForModel({ type: 'text', text: 'hello', payload: null })).toBe('hello');
  });

  it('when a voice note has a transcript, then the model reads the transcript, marked as a voice note', () => {
    expect(describeForModel(media('audio', { media: { transcript: 'Call me at 5', state: 'transcribed' }, voice: true }, 'Call me at 5'))).toBe('[voice note, transcribed] Call me at 5');
    expect(describeForModel(media('audio', { media: { transcript: 'Hi' }, voice: false }))).toBe('[audio file, transcribed] Hi');
  });

  it.each([
    ['too_large', 'was too large to download'],
    ['transcription_failed', 'could not be transcribed'],
    ['unavailable', 'could not be transcribed'],
    ['no_credits', 'was not transcribed'],
  ])('when a voice note ends %s, then the model is told so, never given a bare placeholder', (state, words) => {
    expect(describeForModel(media('audio', { media: { state } }))).toBe(`[the customer sent a voice note that ${words}; ask them to write it if you need its content]`);
  });

  it('when an image goes with the text, then the caption is named as a photo; when it does not, the model is told it cannot see it', () => {
    const photo = media('image', { media: { caption: 'this one?' } }, 'this one?');
    expect(describeForModel(photo, true)).toBe('[photo] this one?');
    expect(describeForModel(photo, false)).toBe('[the customer sent a photo with the caption "this one?"; you cannot see it]');
    expect(describeForModel(media('sticker', { media: {} }), false)).toBe('[the customer sent a sticker without a caption; you cannot see it]');
    expect(describeForModel(photo, 'earlier')).toBe('[the customer sent a photo with the caption "this one?" earlier; it was shown to you then]');
  });

  it('when a document, a video or an Instagram file arrives, then file name, type and caption are described', () => {
    expect(describeForModel(media('document', { media: { filename: 'invoice.pdf', mimeType: 'application/pdf', caption: 'March' } }, 'March'))).toBe(
      '[the customer sent a document "invoice.pdf" (application/pdf) with the caption "March"]',
    );
    expect(describeForModel(media('video', { media: { mimeType: 'video/mp4' } }))).toBe('[the customer sent a video (video/mp4) without a caption]');
    expect(describeForModel(media('file', { media: { url: 'https://cdn/x' } }))).toBe('[the customer sent a document without a caption]');
    expect(describeForModel(media('share', { media: { url: 'https://ig/p/1' } }))).toBe('[the customer shared a post: https://ig/p/1]');
  });

  it('when a location or contacts arrive rendered by the normaliser, then their text is kept without a second tag', () => {
    expect(describeForModel({ type: 'location', text: '[location] Shop, Main St (38.7, -9.1)', payload: null })).toBe('[location] Shop, Main St (38.7, -9.1)');
    expect(describeForModel({ type: 'contacts', text: '[contacts] Ana (+351)', payload: null })).toBe('[contacts] Ana (+351)');
  });

  it('when a button is tapped or an unknown type has no text, then the model still reads what happened', () => {
    expect(describeForModel({ type: 'interactive', text: 'Yes', payload: null })).toBe('[tapped the button "Yes"]');
    expect(describeForModel({ type: 'order', text: null, payload: null })).toBe('[a order message with no text]');
  });
});

describe('mediaForApi', () => {
  it('when a message has media, then type, mime type, caption and transcript are shown; otherwise none', () => {
    expect(mediaForApi(media('audio', { media: { id: 'm1', mimeType: 'audio/ogg', transcript: 'hi' } }))).toEqual({ type: 'audio', mime_type: 'audio/ogg', transcript: 'hi' });
    expect(mediaForApi(media('image', { media: { caption: 'look' } }))).toEqual({ type: 'image', mime_type: null, caption: 'look' });
    expect(mediaForApi({ type: 'text', payload: null })).toBeNull();
  });
});

describe('audio length and price', () => {
  it('when the audio is Ogg, then its length is the last page’s granule position at 48 kHz', () => {
    const page = (granule: number) => {
      const header = Buffer.alloc(27);
      header.write('OggS', 0, 'latin1');
      header.writeBigInt64LE(BigInt(granule), 6);
      return header;
    };
    expect(estimateAudioSeconds(Buffer.concat([page(0), Buffer.alloc(100), page(48_000 * 61), Buffer.alloc(50)]))).toBe(61);
  });

  it('when the format is unknown, then the length is guessed from the size at 16 kbit/s', () => {
    expect(estimateAudioSeconds(Buffer.alloc(240_000))).toBe(120);
    expect(estimateAudioSeconds(Buffer.alloc(10))).toBe(1);
  });

  it('when priced, then minutes are charged in whole credits, rounded up', () => {
    expect(costForAudio(120, 100)).toBe(200);
    expect(costForAudio(1, 100)).toBe(2);
    expect(costForAudio(30, 0)).toBe(0);
  });
});

describe('prepareTurnMedia', () => {
  const context: MediaContext = { userId: 'u1', conversationId: 'c1', channel: 'whatsapp', accessToken: 'EAAG-token', vision: true };
  let fetchMedia: jest.MockedFunction<MediaFetcher>;
  let transcribe: jest.Mock;
  const deps = () => ({ openai: { transcribe } as unknown as OpenAIService, fetchMedia, signal: new AbortController().signal, maxBytes: 1000, transcribeModel: 'whisper-test', creditsPerAudioMinute: 60 });

  beforeEach(() => {
    jest.resetAllMocks();
    fetchMedia = jest.fn();
    transcribe = jest.fn();
    model.holdCredits.mockResolvedValue('hold-1');
    model.recordTranscription.mockResolvedValue(0);
  });

  const voiceNote = () => messageRow(1, { id: 'm1', type: 'audio', text: null, payload: { media: { id: 'media-1', mimeType: 'audio/ogg' }, voice: true } });

  it('when a voice note is pending, then it is fetched with the number’s token, held for, transcribed and recorded with its charge', async () => {
    fetchMedia.mockResolvedValue({ bytes: Buffer.alloc(4_000), mimeType: 'audio/ogg' });
    transcribe.mockResolvedValue({ text: ' Open on Sunday? ', seconds: 30, latencyMs: 1, attempts: 1 });

    const { messages } = await prepareTurnMedia(context, [voiceNote()], deps());

    expect(fetchMedia).toHaveBeenCalledWith({ channel: 'whatsapp', accessToken: 'EAAG-token', mediaId: 'media-1', url: undefined, maxBytes: 1000 });
    expect(model.holdCredits).toHaveBeenCalledWith('u1', 'c1', 2, expect.any(Number));
    expect(transcribe).toHaveBeenCalledWith(expect.objectContaining({ model: 'whisper-test', filename: 'voice.ogg', mimeType: 'audio/ogg', tenantId: 'u1' }));
    expect(model.recordTranscription).toHaveBeenCalledWith('u1', 'c1', 'm1', {
      transcript: 'Open on Sunday?',
      media: { state: 'transcribed', transcript: 'Open on Sunday?', seconds: 30, mimeType: 'audio/ogg' },
      cost: 30,
      holdId: 'hold-1',
    });
    expect(messages[0]).toMatchObject({ text: 'Open on Sunday?', payload: { media: { id: 'media-1', transcript: 'Open on Sunday?' } } });
  });

  it('when the voice note is too large, then nothing is held or transcribed and the state is recorded', async () => {
    fetchMedia.mockRejectedValue(new MediaError('too_large', 'too big', 20_000_000));
    const { messages } = await prepareTurnMedia(context, [voiceNote()], deps());
    expect(model.holdCredits).not.toHaveBeenCalled();
    expect(transcribe).not.toHaveBeenCalled();
    expect(model.recordMediaOutcome).toHaveBeenCalledWith('u1', 'm1', { state: 'too_large' }, undefined);
    expect(describeForModel(messages[0]!)).toMatch(/too large to download/);
  });

  it('when the credits cannot cover the transcription, then no transcription is made', async () => {
    fetchMedia.mockResolvedValue({ bytes: Buffer.alloc(4_000), mimeType: 'audio/ogg' });
    model.holdCredits.mockResolvedValue(null);
    await prepareTurnMedia(context, [voiceNote()], deps());
    expect(transcribe).not.toHaveBeenCalled();
    expect(model.recordMediaOutcome).toHaveBeenCalledWith('u1', 'm1', expect.objectContaining({ state: 'no_credits' }), undefined);
  });

  it('when the transcription fails, then the hold is released and the message keeps its type to be answered from', async () => {
    fetchMedia.mockResolvedValue({ bytes: Buffer.alloc(4_000), mimeType: 'audio/ogg' });
    transcribe.mockRejectedValue(new ModelError('retryable', 'model_unavailable', 'down'));
    const { messages } = await prepareTurnMedia(context, [voiceNote()], deps());
    expect(model.releaseHold).toHaveBeenCalledWith('u1', 'hold-1');
    expect(model.recordTranscription).not.toHaveBeenCalled();
    expect(describeForModel(messages[0]!)).toMatch(/could not be transcribed/);
  });

  it('when a voice note was already looked at, then it is not fetched again', async () => {
    const done = messageRow(1, { id: 'm1', type: 'audio', payload: { media: { id: 'x', state: 'transcription_failed' } } });
    await prepareTurnMedia(context, [done], deps());
    expect(fetchMedia).not.toHaveBeenCalled();
  });

  it('when an image is pending and the agent has vision, then its bytes come back as a data URL; without vision it is not fetched', async () => {
    const photo = messageRow(1, { id: 'p1', type: 'image', text: 'this?', payload: { media: { id: 'img-1', mimeType: 'image/jpeg', caption: 'this?' } } });
    fetchMedia.mockResolvedValue({ bytes: Buffer.from('jpeg!'), mimeType: 'image/jpeg' });
    const { images } = await prepareTurnMedia(context, [photo], deps());
    expect(images.get('p1')).toBe(`data:image/jpeg;base64,${Buffer.from('jpeg!').toString('base64')}`);

    fetchMedia.mockClear();
    const blind = await prepareTurnMedia({ ...context, vision: false }, [photo], deps());
    expect(fetchMedia).not.toHaveBeenCalled();
    expect(blind.images.size).toBe(0);
  });

  it('when an image cannot be fetched, then the turn goes on without it', async () => {
    const photo = messageRow(1, { id: 'p1', type: 'image', payload: { media: { id: 'img-1' } } });
    fetchMedia.mockRejectedValue(new MediaError('unavailable', 'gone'));
    const { images, messages } = await prepareTurnMedia(context, [photo], deps());
    expect(images.size).toBe(0);
    expect(messages).toHaveLength(1);
  });
});
