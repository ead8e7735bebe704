/**
 * A customer's media, in the message worker's turn (issue 16; never in the webhook, which only
 * stores Meta's reference): voice notes are downloaded and transcribed, images downloaded for
 * the model to see, and every other kind is described to the model in a few typed words.
 *
 * What became of a message's media is kept in its `payload.media` (`state`, `transcript`,
 * `seconds`), so a turn that runs again does not download, transcribe or charge twice.
 */
import { config } from '../config';
import { logger } from '../utils/logger';
import { holdTtlMs } from './creditService';
import { MediaError, type MediaFetcher } from './metaGraphService';
import type { OpenAIService } from './openaiService';
import type { Message } from '../models/Message';
import { holdCredits, recordMediaOutcome, recordTranscription, releaseHold } from '../models/ReplyTurn';

/** What became of a message's media; absent until a turn looked at it. */
export type MediaState = 'transcribed' | 'too_large' | 'unavailable' | 'transcription_failed' | 'no_credits';

/** `payload.media` as the webhook stored it (services/metaNormalizer.ts `MediaRef`) plus what the worker added. */
export interface StoredMedia {
  id?: string;
  url?: string;
  mimeType?: string;
  caption?: string;
  filename?: string;
  transcript?: string;
  state?: MediaState;
  /** The audio's length, as the provider reported it or as estimated from the file. */
  seconds?: number;
}

/** Types whose media is a sound: WhatsApp `audio` (voice notes and files), Instagram `audio`. */
const AUDIO_TYPES = new Set(['audio']);
/** Types the model may be shown as an image: WhatsApp `image` and `sticker`, Instagram `image` (stickers too). */
const IMAGE_TYPES = new Set(['image', 'sticker']);
/** Types that carry media at all (CONTRACT §3's `media` on a message). */
const MEDIA_TYPES = new Set(['image', 'sticker', 'audio', 'video', 'document', 'file', 'ig_reel', 'reel', 'share', 'story_mention']);

type MessageLike = Pick<Message, 'type' | 'text' | 'payload'>;

const asRecord = (value: unknown): Record<string, unknown> | null =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;

/** The message's media as stored, or null when it has none. */
export function mediaOf(message: Pick<Message, 'type' | 'payload'>): StoredMedia | null {
  if (!MEDIA_TYPES.has(message.type)) return null;
  const payload = asRecord(message.payload);
  return (asRecord(payload?.media) as StoredMedia | null) ?? {};
}

/** Whether a WhatsApp audio was recorded as a voice note (`voice: true`) rather than sent as a file. */
function isVoiceNote(message: MessageLike): boolean {
  return asRecord(message.payload)?.voice !== false;
}

/** CONTRACT §3's `media` of a message in the API, or null when it has none. */
export function mediaForApi(message: Pick<Message, 'type' | 'payload'>): { type: string; mime_type: string | null; caption?: string; transcript?: string } | null {
  const media = mediaOf(message);
  if (!media) return null;
  return {
    type: message.type,
    mime_type: media.mimeType ?? null,
    ...(media.caption ? { caption: media.caption } : {}),
    ...(media.transcript ? { transcript: media.transcript } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// What the model reads

const quoted = (text: string) => `"${text}"`;

/** `caption …` or `no caption`, for the typed descriptions. */
function captionPart(caption: string | undefined): string {
  return caption ? `with the caption ${quoted(caption)}` : 'without a caption';
}

/**
 * What the model reads for a message, as text: its words, and for anything but plain text what
 * it is, in a few typed words (file name, caption, coordinates), never a bare placeholder. A
 * voice note reads as its transcript; one that could not be transcribed says so, so the message
 * is still answered from its type. `image`: true when the image itself goes with the text,
 * `'earlier'` for a photo of an earlier turn (the model saw it then, and answered it).
 */
export function describeForModel(message: MessageLike, image: boolean | 'earlier' = false): string | null {
  const text = message.text?.trim() || null;
  if (message.type === 'text') return message.text;
  const media = mediaOf(message);
  if (media) return describeMedia(message, media, image);
  // Location, contacts and orders are rendered by the normaliser, their kind in brackets already.
  if (text?.startsWith(`[${message.type}]`)) return text;
  switch (message.type) {
    case 'interactive':
    case 'button':
    case 'postback':
      return text ? `[tapped the button ${quoted(text)}]` : '[tapped a button]';
    case 'location':
      return text ? `[location] ${text}` : '[shared a location with no coordinates]';
    default:
      return text ? `[${message.type}] ${text}` : `[a ${message.type} message with no text]`;
  }
}

function describeMedia(message: MessageLike, media: StoredMedia, image: boolean | 'earlier'): string {
  const caption = media.caption?.trim() || (media.state !== 'transcribed' ? message.text?.trim() : undefined) || undefined;
  switch (message.type) {
    case 'audio': {
      const what = isVoiceNote(message) ? 'voice note' : 'audio file';
      if (media.transcript) return `[${what}, transcribed] ${media.transcript}`;
      const why =
        media.state === 'too_large'
          ? 'was too large to download'
          : media.state === 'transcription_failed' || media.state === 'unavailable'
            ? 'could not be transcribed'
            : 'was not transcribed';
      return `[the customer sent a ${what} that ${why}; ask them to write it if you need its content]`;
    }
    case 'image':
    case 'sticker': {
      const what = message.type === 'sticker' ? 'sticker' : 'photo';
      if (image === true) return caption ? `[${what}] ${caption}` : `[${what}]`;
      if (image === 'earlier') return `[the customer sent a ${what} ${captionPart(caption)} earlier; it was shown to you then]`;
      return `[the customer sent a ${what} ${captionPart(caption)}; you cannot see it]`;
    }
    case 'document':
    case 'file': {
      const name = media.filename ? ` ${quoted(media.filename)}` : '';
      const type = media.mimeType ? ` (${media.mimeType})` : '';
      return `[the customer sent a document${name}${type} ${captionPart(caption)}]`;
    }
    case 'video':
      return `[the customer sent a video${media.mimeType ? ` (${media.mimeType})` : ''} ${captionPart(caption)}]`;
    case 'share':
      return `[the customer shared a post${media.url ? `: ${media.url}` : ''}]`;
    case 'story_mention':
      return '[the customer mentioned the business in their story]';
    default:
      return `[the customer sent a ${message.type} attachment${caption ? ` ${captionPart(caption)}` : ''}]`;
  }
}

// ---------------------------------------------------------------------------------------------
// The turn's work on media

export interface MediaDeps {
  openai: OpenAIService;
  fetchMedia: MediaFetcher;
  signal: AbortSignal;
  maxBytes?: number;
  transcribeModel?: string;
  creditsPerAudioMinute?: number;
}

/** The customer messages of a turn, after their media was looked at. */
export interface PreparedMedia {
  /** The messages, with any transcript and media state they gained. */
  messages: Message[];
  /** Data URLs of the images to show the model, by message id (vision only). */
  images: Map<string, string>;
}

/** The conversation a turn serves, as far as media needs it. */
export interface MediaContext {
  userId: string;
  conversationId: string;
  channel: Message['channel'];
  accessToken: string;
  vision: boolean;
}

/**
 * Downloads and transcribes the voice notes among a turn's pending messages (each once: a
 * message whose media has a state is not looked at again), and downloads their images when the
 * agent has vision. A failure here never fails the turn: the message is answered from its type.
 */
export async function prepareTurnMedia(context: MediaContext, pending: Message[], deps: MediaDeps): Promise<PreparedMedia> {
  const images = new Map<string, string>();
  const messages: Message[] = [];
  for (const message of pending) {
    const media = mediaOf(message);
    if (media && AUDIO_TYPES.has(message.type) && !media.state) {
      messages.push(await transcribeVoiceNote(context, message, media, deps));
      continue;
    }
    if (media && IMAGE_TYPES.has(message.type) && context.vision) {
      const image = await downloadImage(context, message, media, deps);
      if (image) images.set(message.id, image);
    }
    messages.push(message);
  }
  return { messages, images };
}

const log = logger.child({ component: 'media' });

async function fetchFor(context: MediaContext, message: Message, media: StoredMedia, deps: MediaDeps) {
  return deps.fetchMedia({
    channel: context.channel,
    accessToken: context.accessToken,
    mediaId: context.channel === 'whatsapp' ? media.id : undefined,
    url: media.url,
    maxBytes: deps.maxBytes ?? config.MEDIA_MAX_BYTES,
  });
}

/** The message as it is after recording `media` (and `text`) on it. */
async function settle(context: MediaContext, message: Message, media: StoredMedia, patch: StoredMedia, text?: string): Promise<Message> {
  await recordMediaOutcome(context.userId, message.id, patch as Record<string, unknown>, text);
  const payload = { ...(asRecord(message.payload) ?? {}), media: { ...media, ...patch } };
  return { ...message, payload, text: text ?? message.text };
}

async function transcribeVoiceNote(context: MediaContext, message: Message, media: StoredMedia, deps: MediaDeps): Promise<Message> {
  const mlog = log.child({ message_id: message.id, conversation_id: context.conversationId });
  let audio;
  try {
    audio = await fetchFor(context, message, media, deps);
  } catch (error) {
    if (!(error instanceof MediaError)) throw error;
    mlog.warn({ kind: error.kind, size: error.size }, 'voice note not downloaded; answered from its type');
    return settle(context, message, media, { state: error.kind === 'too_large' ? 'too_large' : 'unavailable' });
  }
  const mimeType = audio.mimeType ?? media.mimeType ?? null;
  // Held like a reply (guarantee 14): the price of the audio's length as estimated from the file,
  // settled at the length the provider reports. No credits: no transcription.
  const estimated = estimateAudioSeconds(audio.bytes);
  const perMinute = deps.creditsPerAudioMinute ?? config.CREDITS_PER_AUDIO_MINUTE;
  const holdId = await holdCredits(context.userId, context.conversationId, costForAudio(estimated, perMinute), holdTtlMs());
  if (holdId === null) {
    mlog.info('no credits for the transcription; answered from its type');
    return settle(context, message, media, { state: 'no_credits', mimeType: mimeType ?? undefined });
  }
  let transcript: string;
  let seconds: number;
  try {
    const result = await deps.openai.transcribe({
      model: deps.transcribeModel ?? config.OPENAI_TRANSCRIBE_MODEL,
      audio: audio.bytes,
      filename: `voice${extensionFor(mimeType)}`,
      mimeType,
      tenantId: context.userId,
      signal: deps.signal,
    });
    transcript = result.text.trim();
    seconds = result.seconds ?? estimated;
  } catch (error) {
    await releaseQuietly(context.userId, holdId);
    if (deps.signal.aborted) throw error;
    mlog.warn({ err: { message: (error as Error).message } }, 'transcription failed; answered from its type');
    return settle(context, message, media, { state: 'transcription_failed', mimeType: mimeType ?? undefined });
  }
  if (transcript === '') {
    await releaseQuietly(context.userId, holdId);
    return settle(context, message, media, { state: 'transcription_failed', mimeType: mimeType ?? undefined });
  }
  const patch: StoredMedia = { state: 'transcribed', transcript, seconds, ...(mimeType ? { mimeType } : {}) };
  const charged = await recordTranscription(context.userId, context.conversationId, message.id, {
    transcript,
    media: patch as Record<string, unknown>,
    cost: costForAudio(seconds, perMinute),
    holdId,
  });
  mlog.info({ seconds, charged }, 'voice note transcribed');
  return { ...message, text: transcript, payload: { ...(asRecord(message.payload) ?? {}), media: { ...media, ...patch } } };
}

/** A hold that cannot be released now (Postgres away) lapses at its expiry; the turn goes on. */
async function releaseQuietly(userId: string, holdId: string): Promise<void> {
  try {
    await releaseHold(userId, holdId);
  } catch (error) {
    log.warn({ err: { message: (error as Error).message } }, 'releasing a transcription hold failed; it lapses on its own');
  }
}

async function downloadImage(context: MediaContext, message: Message, media: StoredMedia, deps: MediaDeps): Promise<string | null> {
  try {
    const image = await fetchFor(context, message, media, deps);
    const mimeType = image.mimeType?.split(';')[0]?.trim() || media.mimeType || (message.type === 'sticker' ? 'image/webp' : 'image/jpeg');
    return `data:${mimeType};base64,${image.bytes.toString('base64')}`;
  } catch (error) {
    if (!(error instanceof MediaError)) throw error;
    log.warn({ message_id: message.id, kind: error.kind }, 'image not downloaded; described in words');
    return null;
  }
}

/** Credits for `seconds` of audio at `perMinute`, rounded up to whole credits. */
export function costForAudio(seconds: number, perMinute: number = config.CREDITS_PER_AUDIO_MINUTE): number {
  return Math.ceil((Math.max(0, seconds) * perMinute) / 60);
}

/** Bytes a second of a low-bitrate voice recording (16 kbit/s); the guess for formats we cannot read. */
export const FALLBACK_AUDIO_BYTES_PER_SECOND = 2_000;

/**
 * The audio's length in seconds: for Ogg Opus (WhatsApp's voice notes) from the last page's
 * granule position (48 kHz samples); for anything else a guess from its size at 16 kbit/s,
 * which overstates most recordings: it is what is held, and the provider's figure is charged.
 */
export function estimateAudioSeconds(bytes: Buffer): number {
  const last = bytes.lastIndexOf('OggS');
  if (last >= 0 && bytes.length >= last + 14 && bytes.subarray(0, 4).toString('latin1') === 'OggS') {
    const granule = bytes.readBigInt64LE(last + 6);
    if (granule > 0n) return Math.max(1, Math.ceil(Number(granule) / 48_000));
  }
  return Math.max(1, Math.ceil(bytes.length / FALLBACK_AUDIO_BYTES_PER_SECOND));
}

function extensionFor(mimeType: string | null): string {
  const type = mimeType?.split(';')[0]?.trim().toLowerCase();
  switch (type) {
    case 'audio/ogg':
    case 'audio/opus':
      return '.ogg';
    case 'audio/mpeg':
      return '.mp3';
    case 'audio/mp4':
    case 'audio/aac':
    case 'audio/x-m4a':
      return '.m4a';
    case 'audio/amr':
      return '.amr';
    case 'audio/wav':
    case 'audio/x-wav':
      return '.wav';
    case 'audio/webm':
      return '.webm';
    default:
      return '.ogg';
  }
}
