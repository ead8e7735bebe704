/** Customers' media and Meta's send rate (issue 16): what is downloaded, how voice is transcribed and priced, how fast sends go. */
import { z } from 'zod';
import { defineSection, integer } from './parsers';

export const mediaSection = defineSection({
  shape: {
    /** Voice notes are transcribed with it, through `/audio/transcriptions` on OPENAI_BASE_URL. */
    OPENAI_TRANSCRIBE_MODEL: z.string().min(1).default('gpt-4o-mini-transcribe'),
    /** Price of transcription per minute of audio (rounded up to whole credits), a `transcription` ledger entry. */
    CREDITS_PER_AUDIO_MINUTE: integer(0, 1_000_000_000).default(100),
    /** Larger media are not downloaded: the message is answered from its caption and type. */
    MEDIA_MAX_BYTES: integer(1, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
    /** Sends per channel account per second, across every worker (a token bucket in Redis). */
    META_SEND_RATE_PER_SECOND: integer(1, 100_000).default(80),
  },
});
