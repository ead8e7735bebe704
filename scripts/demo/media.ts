/**
 * The demo's media scenes (issue 16): a customer's voice note answered from its transcript, and
 * a photo answered from what it shows. The Graph stand-in holds the media as Meta would (looked
 * up by id with the number's token, downloaded from a URL that expires); the OpenAI stand-in
 * transcribes the voice note and "sees" the photo by its bytes' hash.
 */
import { createHash } from 'node:crypto';
import { whatsappMediaWebhook } from '../simulate';
import type { GraphStandin } from '../../tests/fixtures/standins/graphStandin';
import { describeImage, SPOKEN_PREFIX } from '../../tests/fixtures/standins/openaiStandin';
import { WHATSAPP_NUMBER } from './cast';
import { agentRepliesAfter } from './checks';
import { clip, type Progress } from './progress';
import type { DemoCheck, DemoResult, DemoScenes } from './result';
import type { Shop } from './scenes';

export const ELENA = { waId: '15550005555', name: 'Elena Costa' };

export const MEDIA_SCRIPT = {
  voiceNote: 'Hi, this is Elena. Do you deliver to Porto on Saturdays?',
  photoCaption: 'Can you fix the strap on this one?',
  photoShows: 'a brown leather handbag with a torn strap',
};

/** 30 seconds of "audio" at the stand-in's 16 kbit/s: it hears the words, and bills half a minute. */
const VOICE_NOTE = Buffer.concat([Buffer.from(`${SPOKEN_PREFIX}${MEDIA_SCRIPT.voiceNote}`), Buffer.alloc(60_000 - SPOKEN_PREFIX.length - MEDIA_SCRIPT.voiceNote.length)]);
const PHOTO = Buffer.from('\xff\xd8\xff\xe0 JFIF demo photo of a brown leather handbag', 'latin1');

export async function playMedia(progress: Progress, shop: Shop, graph: GraphStandin, scenes: Partial<DemoScenes>): Promise<void> {
  const { conversationId } = await progress.step(
    'Elena sends a voice note on WhatsApp (the worker fetches it from Graph with the number’s token and transcribes it)',
    async () => {
      const { id: mediaId } = graph.addMedia({ bytes: VOICE_NOTE, mimeType: 'audio/ogg; codecs=opus', accountId: WHATSAPP_NUMBER });
      const body = whatsappMediaWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: ELENA.waId, name: ELENA.name, type: 'audio', mediaId, mimeType: 'audio/ogg; codecs=opus' });
      scenes.voiceNote = messageIdOf(body);
      await shop.sendWebhook(body);
      const conversation = await shop.conversationOf(shop.tenant.whatsappId, ELENA.waId);
      await shop.replyTo(conversation.id, scenes.voiceNote);
      return { conversationId: conversation.id };
    },
    () => `transcript "${MEDIA_SCRIPT.voiceNote}"; the agent answered from it`,
  );

  await progress.step(
    'Elena sends a photo with a caption (the model sees the image itself)',
    async () => {
      describeImage(createHash('sha256').update(PHOTO).digest('hex'), MEDIA_SCRIPT.photoShows);
      const { id: mediaId } = graph.addMedia({ bytes: PHOTO, mimeType: 'image/jpeg', accountId: WHATSAPP_NUMBER });
      const body = whatsappMediaWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: ELENA.waId, name: ELENA.name, type: 'image', mediaId, mimeType: 'image/jpeg', caption: MEDIA_SCRIPT.photoCaption });
      scenes.photo = messageIdOf(body);
      await shop.sendWebhook(body);
      return shop.replyTo(conversationId, scenes.photo);
    },
    (answer) => {
      const text = answer.text ?? '';
      const seen = text.indexOf('I can see');
      return `answered from what it shows: "${clip(seen >= 0 ? text.slice(seen) : text, 90)}"`;
    },
  );
}

function messageIdOf(body: string): string {
  return (JSON.parse(body) as { entry: Array<{ changes: Array<{ value: { messages: Array<{ id: string }> } }> }> }).entry[0]!.changes[0]!.value.messages[0]!.id;
}

/** The media checks, from what the API read back. */
export function mediaChecks(result: DemoResult): DemoCheck[] {
  const checks: DemoCheck[] = [];
  const add = (name: string, passed: boolean, detail: string) => checks.push({ name, passed, detail });
  const transcriptOf = (id: string | undefined) => result.transcripts.find((t) => t.messages.some((m) => m.externalId === id && m.direction === 'inbound'));

  const voice = transcriptOf(result.scenes.voiceNote);
  const voiceMessage = voice?.messages.find((m) => m.externalId === result.scenes.voiceNote);
  const voiceReplies = voice && result.scenes.voiceNote ? agentRepliesAfter(voice, result.scenes.voiceNote) : [];
  const charged = result.credits?.entries.filter((e) => e.reason === 'transcription').length ?? 0;
  add(
    'the voice note was answered from its transcript, charged as a transcription',
    voiceMessage?.media?.transcript === MEDIA_SCRIPT.voiceNote && voiceReplies.length === 1 && (voiceReplies[0]!.text ?? '').includes(MEDIA_SCRIPT.voiceNote) && charged === 1,
    `transcript ${voiceMessage?.media?.transcript ? `"${clip(voiceMessage.media.transcript, 40)}"` : 'missing'}; ${voiceReplies.length} reply; ${charged} transcription charge`,
  );

  const photo = transcriptOf(result.scenes.photo);
  const photoReplies = photo && result.scenes.photo ? agentRepliesAfter(photo, result.scenes.photo) : [];
  add(
    'the photo was answered from what it shows',
    photoReplies.length === 1 && (photoReplies[0]!.text ?? '').includes(MEDIA_SCRIPT.photoShows),
    `${photoReplies.length} reply: "${clip(photoReplies[0]?.text ?? '', 60)}"`,
  );
  return checks;
}
