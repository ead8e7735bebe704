/**
 * `models/types.ts` holds only the `Channel` type. What can be checked of it: the channel list
 * the code iterates (`CHANNELS`, in PhoneNumber.ts) names every channel and nothing else, so a
 * channel added to the type but not the list (or the reverse) fails here, at compile time as
 * well as at run time.
 */
import type { Channel } from '../../../src/models/types';
import { CHANNELS } from '../../../src/models/PhoneNumber';

/** Compiles only when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

describe('Channel', () => {
  it('when the channel list is compared with the type, then each names exactly the other\'s channels', () => {
    const listed: Same<(typeof CHANNELS)[number], Channel> = true;

    expect(listed).toBe(true);
    expect([...CHANNELS].sort()).toEqual(['instagram', 'whatsapp']);
    expect(new Set(CHANNELS).size).toBe(CHANNELS.length);
  });
});
