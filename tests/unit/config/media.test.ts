import { z } from 'zod';
import { mediaSection } from '../../../src/config/media';

const parse = (env: Record<string, string>) => z.object(mediaSection.shape).safeParse(env);

describe('media config section', () => {
  it('when nothing is set, then CONTRACT §2 defaults apply: gpt-4o-mini-transcribe, 100 credits a minute, 16 MiB, 80 sends a second', () => {
    expect(parse({}).data).toEqual({
      OPENAI_TRANSCRIBE_MODEL: 'gpt-4o-mini-transcribe',
      CREDITS_PER_AUDIO_MINUTE: 100,
      MEDIA_MAX_BYTES: 16_777_216,
      META_SEND_RATE_PER_SECOND: 80,
    });
  });

  it('when values are given, then they are kept as numbers', () => {
    expect(parse({ OPENAI_TRANSCRIBE_MODEL: 'whisper-1', CREDITS_PER_AUDIO_MINUTE: '0', MEDIA_MAX_BYTES: '1024', META_SEND_RATE_PER_SECOND: '20' }).data).toEqual({
      OPENAI_TRANSCRIBE_MODEL: 'whisper-1',
      CREDITS_PER_AUDIO_MINUTE: 0,
      MEDIA_MAX_BYTES: 1024,
      META_SEND_RATE_PER_SECOND: 20,
    });
  });

  it('when a size or rate is not a positive integer, then each is refused by name', () => {
    expect(parse({ MEDIA_MAX_BYTES: '0', META_SEND_RATE_PER_SECOND: 'fast', CREDITS_PER_AUDIO_MINUTE: '-1' }).error?.issues.map((issue) => issue.path[0]).sort()).toEqual([
      'CREDITS_PER_AUDIO_MINUTE',
      'MEDIA_MAX_BYTES',
      'META_SEND_RATE_PER_SECOND',
    ]);
  });
});
