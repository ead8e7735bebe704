import type { NormalizedMessage } from '../../../../src/services/metaNormalizer';
import {
  IG_ACCOUNT_ID,
  igBody,
  igItem,
  igMessageDefaults,
  IGSID,
  normalize,
  RECEIVED_AT,
  single,
  singleIgnored,
  singleMessage,
  singleReaction,
} from '../../../fixtures/normalizer';

describe('normalizeWebhook on Instagram bodies', () => {
  describe('when Instagram sends messages', () => {
    const one = (message: Record<string, unknown>, fields: Record<string, unknown> = {}): NormalizedMessage =>
      singleMessage(igBody([igItem({ message: { mid: 'm1', ...message } }, fields)]));

    it('when the business echoes its own message, then the customer is the recipient', () => {
      const event = one(
        { text: 'hello', is_echo: true },
        { sender: { id: IG_ACCOUNT_ID }, recipient: { id: '6021000000000099' } },
      );
      expect(event).toMatchObject({ isEcho: true, customerId: '6021000000000099', accountId: IG_ACCOUNT_ID });
    });

    it('when the customer unsends a message, then it is a deleted event with its own dedupe key', () => {
      expect(one({ is_deleted: true })).toMatchObject({
        type: 'deleted',
        isDeleted: true,
        text: null,
        externalId: 'm1',
        dedupeKey: 'ig|m1|deleted',
      });
    });

    it('when the message is unsupported, then the type says so', () => {
      expect(one({ is_unsupported: true })).toMatchObject({ type: 'unsupported', payload: { isUnsupported: true } });
      expect(one({})).toMatchObject({ type: 'unsupported', text: null, payload: {} });
    });

    it('when several attachments arrive, then the first is the media and all are in the payload', () => {
      const event = one({
        attachments: [
          { type: 'video', payload: { url: 'https://cdn/v.mp4' } },
          { type: 'image', payload: { url: 'https://cdn/i.jpg' } },
          { payload: {} },
          'junk',
        ],
      });
      expect(event).toMatchObject({
        type: 'video',
        media: { url: 'https://cdn/v.mp4' },
        payload: {
          attachments: [
            { type: 'video', url: 'https://cdn/v.mp4' },
            { type: 'image', url: 'https://cdn/i.jpg' },
            { type: 'unknown' },
          ],
        },
      });
    });

    it.each(['audio', 'file', 'share', 'story_mention', 'ig_reel', 'reel'])(
      'when a %s attachment arrives, then the type is the attachment type',
      (type) => {
        expect(one({ attachments: [{ type, payload: { url: 'https://cdn/x' } }] })).toMatchObject({ type, media: { url: 'https://cdn/x' } });
      },
    );

    it('when an ephemeral attachment has no URL, then media is null', () => {
      expect(one({ attachments: [{ type: 'ephemeral' }] })).toMatchObject({ type: 'ephemeral', media: null });
    });

    it('when text comes with an attachment, then the attachment sets the type and the text is kept', () => {
      expect(one({ text: 'see', attachments: [{ type: 'share', payload: { url: 'https://x' } }] })).toMatchObject({
        type: 'share',
        text: 'see',
      });
    });

    it('when a quick reply is tapped, then the text is the title and the payload is kept', () => {
      expect(one({ text: 'Red', quick_reply: { payload: 'COLOR_RED' } })).toMatchObject({
        type: 'text',
        text: 'Red',
        payload: { quickReplyPayload: 'COLOR_RED' },
      });
    });

    it('when replying inline or to a story, then replyTo or replyToStory is set', () => {
      expect(one({ text: 'yes', reply_to: { mid: 'm0' } }).replyTo).toBe('m0');
      expect(one({ text: 'nice', reply_to: { story: { id: 'st1', url: 'https://cdn/s' } } })).toMatchObject({
        replyTo: null,
        payload: { replyToStory: { id: 'st1', url: 'https://cdn/s' } },
      });
    });

    it('when a message carries an ad referral, then it is kept', () => {
      expect(one({ text: 'hi', referral: { ref: 'r', ad_id: '9', source: 'ADS', type: 'OPEN_THREAD' } }).payload).toEqual({
        referral: { ref: 'r', ad_id: '9', source: 'ADS', type: 'OPEN_THREAD' },
      });
    });

    it('when a message has no mid, then it is ignored', () => {
      expect(singleIgnored(igBody([igItem({ message: { text: 'x' } })]))).toMatchObject({
        reason: 'malformed_message',
        detail: 'message has no mid',
        accountId: IG_ACCOUNT_ID,
      });
    });

    it('when the sender id is missing, then the item is ignored', () => {
      expect(singleIgnored(igBody([igItem({ message: { mid: 'm1' } }, { sender: {} })]))).toMatchObject({
        detail: 'item has no sender.id',
      });
      expect(singleIgnored(igBody([igItem({ message: { mid: 'm1', is_echo: true } }, { recipient: null })]))).toMatchObject({
        detail: 'item has no recipient.id',
      });
    });

    it('when entry.id is missing, then the business side of the item is the account', () => {
      const events = normalize({
        object: 'instagram',
        entry: [
          {
            messaging: [
              igItem({ message: { mid: 'm1', text: 'in' } }),
              igItem({ message: { mid: 'm2', text: 'out', is_echo: true } }, { sender: { id: 'BIZ' }, recipient: { id: IGSID } }),
              igItem({ message: { mid: 'm3' } }, { recipient: undefined }),
            ],
          },
        ],
      });
      expect(events[0]).toMatchObject({ accountId: IG_ACCOUNT_ID, customerId: IGSID });
      expect(events[1]).toMatchObject({ accountId: 'BIZ', customerId: IGSID });
      expect(events[2]).toMatchObject({ kind: 'ignored', accountId: null, detail: 'item has no account id (entry.id / business side)' });
    });

    it('when a messaging item is not an object, then it is ignored and its siblings survive', () => {
      const events = normalize(igBody([42, igItem({ message: { mid: 'm1', text: 'x' } })]));
      expect(events.map((e) => e.kind)).toEqual(['ignored', 'message']);
      expect(events[0]).toMatchObject({ path: 'entry[0].messaging[0]', reason: 'malformed_message' });
    });
  });

  describe('when Instagram sends other events', () => {
    it('when a reaction is removed, then emoji is null and removed is true', () => {
      expect(singleReaction(igBody([igItem({ reaction: { mid: 'm1', action: 'unreact' } })]))).toEqual({
        kind: 'reaction',
        channel: 'instagram',
        accountId: IG_ACCOUNT_ID,
        customerId: IGSID,
        targetExternalId: 'm1',
        emoji: null,
        removed: true,
        externalId: null,
        timestamp: new Date(1780300800412),
        dedupeKey: `ig|${IGSID}|m1|unreact|1780300800412`,
      });
    });

    it('when the reaction action is missing, then it is inferred from the emoji or name', () => {
      expect(singleReaction(igBody([igItem({ reaction: { mid: 'm1', emoji: '\u{1F602}' } })]))).toMatchObject({ emoji: '\u{1F602}', removed: false });
      expect(singleReaction(igBody([igItem({ reaction: { mid: 'm1', reaction: 'love' } })]))).toMatchObject({ emoji: null, removed: false });
      expect(singleReaction(igBody([igItem({ reaction: { mid: 'm1' } })]))).toMatchObject({ removed: true });
    });

    it('when a reaction has no mid, then it is ignored', () => {
      expect(singleIgnored(igBody([igItem({ reaction: { action: 'react' } })])).detail).toBe('reaction has no mid');
    });

    it('when a read arrives, then it becomes a read event', () => {
      expect(single(normalize(igBody([igItem({ read: { mid: 'm1' } })])))).toEqual({
        kind: 'read',
        channel: 'instagram',
        accountId: IG_ACCOUNT_ID,
        customerId: IGSID,
        externalId: 'm1',
        timestamp: new Date(1780300800412),
        dedupeKey: `ig|${IGSID}|m1|read`,
      });
    });

    it('when a read has only a watermark, then it is ignored', () => {
      expect(singleIgnored(igBody([igItem({ read: { watermark: 123 } })])).detail).toBe('read has no mid');
    });

    it('when an icebreaker postback arrives, then it is a postback message with the title as text', () => {
      expect(singleMessage(igBody([igItem({ postback: { mid: 'm9', title: 'Opening hours?', payload: 'HOURS' } })]))).toEqual({
        ...igMessageDefaults,
        externalId: 'm9',
        timestamp: new Date(1780300800412),
        type: 'postback',
        text: 'Opening hours?',
        payload: { postbackTitle: 'Opening hours?', postbackPayload: 'HOURS' },
        dedupeKey: 'ig|m9',
      });
    });

    it('when a postback has no mid, then a stable synthetic id is used', () => {
      const body = igBody([igItem({ postback: { payload: 'P', referral: { ref: 'x' } } })]);
      const first = singleMessage(body);
      expect(first).toMatchObject({ externalId: `postback|${IGSID}|1780300800412`, text: null, payload: { postbackPayload: 'P', referral: { ref: 'x' } } });
      expect(singleMessage(body).externalId).toBe(first.externalId);
    });

    it('when a standalone referral, a message_edit or an unknown event arrives, then each is ignored as unhandled_event', () => {
      const events = normalize(
        igBody([
          igItem({ referral: { ref: 'summer', source: 'SHORTLINKS', type: 'OPEN_THREAD' } }),
          igItem({ message_edit: { mid: 'm1', text: 'edited', num_edit: 1 } }),
          igItem({ something_new: {} }),
        ]),
      );
      expect(events.map((e) => (e.kind === 'ignored' ? `${e.reason}:${e.detail}` : e.kind))).toEqual([
        'unhandled_event:referral {"ref":"summer","source":"SHORTLINKS","type":"OPEN_THREAD"}',
        'unhandled_event:message_edit',
        'unhandled_event:no known event in keys [sender, recipient, timestamp, something_new]',
      ]);
    });

    it('when items arrive in standby[], then they are messages marked isStandby', () => {
      const events = normalize(
        igBody([igItem({ message: { mid: 'm1', text: 'a' } })], { standby: [igItem({ message: { mid: 'm2', text: 'b' } })] }),
      ) as NormalizedMessage[];
      expect(events.map((e) => [e.externalId, e.isStandby])).toEqual([
        ['m1', false],
        ['m2', true],
      ]);
    });

    it('when a postback arrives in standby[], then it is marked isStandby too', () => {
      const body = { object: 'instagram', entry: [{ id: IG_ACCOUNT_ID, standby: [igItem({ postback: { mid: 'p', title: 't' } })] }] };
      expect(singleMessage(body).isStandby).toBe(true);
    });

    it('when the dashboard test sends changes[] shaped like messaging items, then they are read; other fields are ignored', () => {
      const body = {
        object: 'instagram',
        entry: [
          {
            id: '0',
            time: 1780300800,
            changes: [
              { field: 'messages', value: { sender: { id: '12334' }, recipient: { id: '23245' }, timestamp: '1527459824', message: { mid: 'random_mid', text: 'random_text' } } },
              { field: 'standby', value: igItem({ message: { mid: 'sb', text: 'x' } }) },
              { field: 'comments', value: { id: 'c1', text: 'nice' } },
              { field: 'messages', value: { no: 'sender' } },
              'junk',
            ],
          },
        ],
      };
      const events = normalize(body);
      expect(events[0]).toMatchObject({ kind: 'message', accountId: '0', customerId: '12334', externalId: 'random_mid', timestamp: new Date(1527459824000) });
      expect(events[1]).toMatchObject({ kind: 'message', isStandby: true });
      expect(events.slice(2).map((e) => (e.kind === 'ignored' ? e.detail : e.kind))).toEqual([
        'field "comments"',
        'field "messages"',
        'field undefined',
      ]);
    });

    it('when an entry has no messaging, standby or changes, or is not an object, then it is malformed_entry', () => {
      const events = normalize({ object: 'instagram', entry: [{ id: IG_ACCOUNT_ID, time: 1 }, null, { id: IG_ACCOUNT_ID, messaging: 'x' }] });
      expect(events.map((e) => (e.kind === 'ignored' ? `${e.reason}@${e.path}` : e.kind))).toEqual([
        'malformed_entry@entry[0]',
        'malformed_entry@entry[1]',
        'malformed_entry@entry[2].messaging',
      ]);
    });
  });

  describe('when an item has no timestamp of its own', () => {
    it('when an Instagram item has no timestamp, then entry.time is used', () => {
      const event = singleMessage(igBody([igItem({ message: { mid: 'm1', text: 'x' } }, { timestamp: undefined })]));
      expect(event.timestamp).toEqual(new Date(1780300800950));
    });

    it('when neither item nor entry has a timestamp, then receivedAt is used', () => {
      const event = singleMessage(igBody([igItem({ message: { mid: 'm1', text: 'x' } }, { timestamp: 'soon' })], { time: undefined }));
      expect(event.timestamp).toEqual(RECEIVED_AT);
    });
  });
});
