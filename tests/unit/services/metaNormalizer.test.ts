import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { normalizeWebhook, type NormalizedEvent, type NormalizedMessage } from '../../../src/services/metaNormalizer';
import { FIXTURES_DIR } from '../../fixtures/meta';
import {
  IG_ACCOUNT_ID,
  igBody,
  igItem,
  igMessageDefaults,
  IGSID,
  normalize,
  PHONE_NUMBER_ID,
  singleIgnored,
  singleMessage,
  WABA_ID,
  waBody,
  waMessage,
  waMessageDefaults,
  waValue,
} from '../../fixtures/normalizer';

// WhatsApp's and Instagram's own cases are in meta/whatsappNormalizer.test.ts and
// meta/instagramNormalizer.test.ts; this file holds the fixtures, the envelope and the
// generated bodies that cross both channels.

function fixture(name: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, name), 'utf8'));
}

describe('normalizeWebhook', () => {
  describe('when given the shared fixtures', () => {
    const expected: Record<string, NormalizedEvent[]> = {
      'whatsapp_text.json': [
        {
          ...waMessageDefaults,
          customerId: '15550102030',
          customerName: 'José García',
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMAA=',
          timestamp: new Date(1780300800 * 1000),
          type: 'text',
          text: 'Hola! Do you have this jacket in size M?',
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMAA=',
        },
      ],
      'whatsapp_multi_messages_batch.json': [
        {
          ...waMessageDefaults,
          customerId: '15550102030',
          customerName: 'José García',
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMgA=',
          timestamp: new Date(1780300862 * 1000),
          type: 'text',
          text: 'Also, what are your opening hours?',
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwMgA=',
        },
        {
          ...waMessageDefaults,
          customerId: '447700900123',
          customerName: 'Tom Baker',
          externalId: 'wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FGQUtFMDAwMDAwMDAwMDAwMDMA',
          timestamp: new Date(1780300863 * 1000),
          type: 'text',
          text: 'Hi, is my order #4521 shipped yet?',
          dedupeKey: 'wa|wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FGQUtFMDAwMDAwMDAwMDAwMDMA',
        },
      ],
      'whatsapp_image.json': [
        {
          ...waMessageDefaults,
          customerId: '15550102030',
          customerName: 'José García',
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNAA=',
          timestamp: new Date(1780301100 * 1000),
          type: 'image',
          text: 'This one',
          media: {
            id: '1234509876543210',
            url: 'https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1234509876543210',
            mimeType: 'image/jpeg',
            caption: 'This one',
          },
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNAA=',
        },
      ],
      'whatsapp_interactive_button_reply.json': [
        {
          ...waMessageDefaults,
          customerId: '15550102030',
          customerName: 'José García',
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNQA=',
          timestamp: new Date(1780301160 * 1000),
          type: 'interactive',
          text: 'Yes, size M',
          replyTo: 'wamid.HBgLMTU1NTAxMDIwMzAVAgARGBJGQUtFT1VUMDAwMDAwMDAwMDEA',
          payload: { interactiveType: 'button_reply', replyId: 'size-m-confirm', replyTitle: 'Yes, size M' },
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNQA=',
        },
      ],
      'whatsapp_location.json': [
        {
          ...waMessageDefaults,
          customerId: '447700900123',
          customerName: 'Tom Baker',
          externalId: 'wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FGQUtFMDAwMDAwMDAwMDAwMDcA',
          timestamp: new Date(1780301460 * 1000),
          type: 'location',
          text: '[location] Example Store, 1 Example Street, London EC1A 1AA (51.5175, -0.0977)',
          payload: {
            location: {
              latitude: 51.5175,
              longitude: -0.0977,
              name: 'Example Store',
              address: '1 Example Street, London EC1A 1AA',
              url: 'https://www.example.com/stores/london',
            },
          },
          dedupeKey: 'wa|wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgUM0FGQUtFMDAwMDAwMDAwMDAwMDcA',
        },
      ],
      'whatsapp_reaction.json': [
        {
          kind: 'reaction',
          channel: 'whatsapp',
          accountId: PHONE_NUMBER_ID,
          customerId: '15550102030',
          targetExternalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgARGBJGQUtFT1VUMDAwMDAwMDAwMDIA',
          emoji: '\u{1F44D}',
          removed: false,
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNgA=',
          timestamp: new Date(1780301400 * 1000),
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgASGBQzQUZBS0UwMDAwMDAwMDAwMDAwNgA=|\u{1F44D}|1780301400000',
        },
      ],
      'whatsapp_status_delivered.json': [
        {
          kind: 'status',
          channel: 'whatsapp',
          accountId: PHONE_NUMBER_ID,
          externalId: 'wamid.HBgLMTU1NTAxMDIwMzAVAgARGBJGQUtFT1VUMDAwMDAwMDAwMDEA',
          status: 'delivered',
          timestamp: new Date(1780300807 * 1000),
          recipientId: '15550102030',
          recipientUserId: null,
          errors: [],
          bizOpaqueCallbackData: null,
          dedupeKey: 'wa|wamid.HBgLMTU1NTAxMDIwMzAVAgARGBJGQUtFT1VUMDAwMDAwMDAwMDEA|delivered',
        },
      ],
      'whatsapp_status_failed.json': [
        {
          kind: 'status',
          channel: 'whatsapp',
          accountId: PHONE_NUMBER_ID,
          externalId: 'wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSRkFLRU9VVDAwMDAwMDAwMDAzAA==',
          status: 'failed',
          timestamp: new Date(1780395000 * 1000),
          recipientId: '447700900123',
          recipientUserId: null,
          errors: [
            {
              code: 131047,
              title: 'Re-engagement message',
              message: 'Re-engagement message',
              details:
                'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
            },
          ],
          bizOpaqueCallbackData: null,
          dedupeKey: 'wa|wamid.HBgMNDQ3NzAwOTAwMTIzFQIAERgSRkFLRU9VVDAwMDAwMDAwMDAzAA==|failed',
        },
      ],
      'instagram_text.json': [
        {
          ...igMessageDefaults,
          externalId: 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDE',
          timestamp: new Date(1780300800412),
          type: 'text',
          text: 'Hi! Is the blue tote bag still available?',
          dedupeKey: 'ig|aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDE',
        },
      ],
      'instagram_echo.json': [
        {
          ...igMessageDefaults,
          // The business sent it: the customer is the recipient, not the sender.
          customerId: IGSID,
          externalId: 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDI',
          timestamp: new Date(1780300861105),
          type: 'text',
          text: 'Yes, it is! Would you like the link?',
          isEcho: true,
          dedupeKey: 'ig|aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDI',
        },
      ],
      'instagram_attachment_image.json': [
        {
          ...igMessageDefaults,
          externalId: 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDM',
          timestamp: new Date(1780301100987),
          type: 'image',
          text: null,
          media: {
            url: 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18000000000000001&signature=FAKE_SIGNATURE_FOR_TESTS',
          },
          payload: {
            attachments: [
              {
                type: 'image',
                url: 'https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18000000000000001&signature=FAKE_SIGNATURE_FOR_TESTS',
              },
            ],
          },
          dedupeKey: 'ig|aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDM',
        },
      ],
      'instagram_reaction.json': [
        {
          kind: 'reaction',
          channel: 'instagram',
          accountId: IG_ACCOUNT_ID,
          customerId: IGSID,
          targetExternalId: 'aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDI',
          emoji: '\u2764\ufe0f',
          removed: false,
          externalId: null,
          timestamp: new Date(1780301401876),
          dedupeKey:
            'ig|6021000000000011|aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDU1NTAwMDAwMDAxOkZBS0VfTUlEXzAwMDI|react|1780301401876',
        },
      ],
    };

    it('when the fixtures folder is listed, then every fixture has an expectation here', () => {
      const files = fs.readdirSync(FIXTURES_DIR).filter((f) => f.endsWith('.json'));
      expect(files.sort()).toEqual(Object.keys(expected).sort());
    });

    it.each(Object.entries(expected))('when %s is normalised, then it yields exactly its events', (name, events) => {
      expect(normalize(fixture(name))).toEqual(events);
    });

    it('when a fixture is normalised without receivedAt, then the output does not depend on the clock', () => {
      const body = fixture('whatsapp_text.json');
      expect(normalizeWebhook(body)).toEqual(normalize(body));
    });
  });

  describe('when the envelope is not a Meta body', () => {
    it.each([null, undefined, 42, 'text', true])('when the body is %p, then one malformed_body event is returned', (body) => {
      expect(singleIgnored(body)).toMatchObject({ reason: 'malformed_body', channel: null, path: '$' });
    });

    it('when the body is an empty array, then no events are returned', () => {
      expect(normalize([])).toEqual([]);
    });

    it('when object is "page", then it is ignored as unknown_object', () => {
      expect(singleIgnored({ object: 'page', entry: [] })).toMatchObject({
        reason: 'unknown_object',
        detail: 'object is "page"',
      });
    });

    it('when entry is not an array, then it is reported with the channel', () => {
      expect(singleIgnored({ object: 'instagram', entry: {} })).toMatchObject({
        reason: 'malformed_body',
        channel: 'instagram',
        path: 'entry',
      });
    });

    it('when entry is empty, then no events are returned', () => {
      expect(normalize({ object: 'whatsapp_business_account', entry: [] })).toEqual([]);
    });

    it('when an Instagram body is wrapped in a top-level array, then each element is walked', () => {
      const events = normalize([fixture('instagram_text.json'), 'junk', [fixture('instagram_echo.json')], fixture('whatsapp_text.json')]);
      expect(events.map((e) => e.kind)).toEqual(['message', 'ignored', 'ignored', 'message']);
      expect(events[1]).toMatchObject({ reason: 'malformed_body', path: '[1]' });
      // Nested arrays are not unwrapped again: one level is the documented artifact.
      expect(events[2]).toMatchObject({ reason: 'malformed_body', path: '[2]', detail: 'body is array, not an object' });
    });

    it('when a getter throws while reading an item, then that item becomes internal_error and siblings survive', () => {
      const poisoned = waMessage({ id: 'wamid.POISON' });
      Object.defineProperty(poisoned, 'type', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      const events = normalize(waBody(waValue({ messages: [poisoned, waMessage({ id: 'wamid.OK' })] })));
      expect(events).toHaveLength(2);
      expect(events[0]).toMatchObject({
        kind: 'ignored',
        reason: 'internal_error',
        detail: 'boom',
        accountId: PHONE_NUMBER_ID,
        path: 'entry[0].changes[0].value.messages[0]',
      });
      expect(events[1]).toMatchObject({ kind: 'message', externalId: 'wamid.OK' });
    });

    it('when a non-Error is thrown, then its shape is the detail', () => {
      const body = { object: 'instagram' };
      Object.defineProperty(body, 'entry', {
        get() {
          throw 'nope';
        },
      });
      expect(singleIgnored(body)).toMatchObject({ reason: 'internal_error', detail: '"nope"', path: '$' });
    });
  });

  describe('when bodies are generated', () => {
    const kinds = new Set(['message', 'reaction', 'status', 'read', 'error', 'ignored']);
    const wellFormed = (events: NormalizedEvent[]): boolean =>
      Array.isArray(events) &&
      events.every(
        (e) => kinds.has(e.kind) && (!('timestamp' in e) || (e.timestamp instanceof Date && !Number.isNaN(e.timestamp.getTime()))),
      );

    it('when the body is arbitrary JSON, then it never throws and returns well-formed events', () => {
      fc.assert(fc.property(fc.jsonValue(), (body) => wellFormed(normalizeWebhook(body))), { numRuns: 300 });
    });

    it('when the body is anything at all, then it never throws', () => {
      fc.assert(fc.property(fc.anything({ withNullPrototype: true, withMap: true, withSet: true }), (body) => wellFormed(normalizeWebhook(body))), {
        numRuns: 300,
      });
    });

    it('when a Meta envelope holds arbitrary JSON entries, then it never throws', () => {
      const envelope = fc.record({
        object: fc.constantFrom('whatsapp_business_account', 'instagram'),
        entry: fc.array(
          fc.oneof(
            fc.jsonValue({ maxDepth: 4 }),
            fc.record({ id: fc.jsonValue({ maxDepth: 1 }), changes: fc.array(fc.jsonValue({ maxDepth: 4 })) }),
            fc.record({ id: fc.jsonValue({ maxDepth: 1 }), messaging: fc.array(fc.jsonValue({ maxDepth: 4 })) }),
          ),
        ),
      });
      fc.assert(fc.property(envelope, (body) => wellFormed(normalizeWebhook(body))), { numRuns: 300 });
    });

    // Near-valid items: each field is usually plausible, sometimes junk, sometimes absent.
    const junk = fc.jsonValue({ maxDepth: 2 });
    const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> =>
      fc.oneof({ arbitrary: arb, weight: 4 }, { arbitrary: junk, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });
    const id = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constant(''));
    const waTypes = ['text', 'image', 'audio', 'video', 'document', 'sticker', 'location', 'contacts', 'interactive', 'button', 'reaction', 'unsupported', 'system', 'order', 'poll'];
    const mediaObject = fc.record({ id: maybe(id), url: maybe(fc.webUrl()), caption: maybe(fc.string()), mime_type: maybe(fc.string()) }, { requiredKeys: [] });
    const fuzzyWaMessage = fc.record(
      {
        id: maybe(id),
        from: maybe(id),
        from_user_id: maybe(id),
        timestamp: maybe(fc.oneof(fc.integer({ min: 0, max: 2e12 }).map(String), fc.integer(), fc.double())),
        type: maybe(fc.constantFrom(...waTypes)),
        text: maybe(fc.record({ body: maybe(fc.string()) })),
        image: maybe(mediaObject),
        audio: maybe(mediaObject),
        document: maybe(mediaObject),
        location: maybe(fc.record({ latitude: maybe(fc.double()), longitude: maybe(fc.double()), name: maybe(fc.string()) })),
        contacts: maybe(fc.array(fc.record({ name: maybe(fc.record({ formatted_name: maybe(fc.string()) })), phones: maybe(fc.array(junk)) }))),
        interactive: maybe(fc.record({ type: maybe(fc.constantFrom('button_reply', 'list_reply', 'nfm_reply')), button_reply: maybe(junk), list_reply: maybe(junk), nfm_reply: maybe(junk) })),
        reaction: maybe(fc.record({ message_id: maybe(id), emoji: maybe(fc.string()) })),
        order: maybe(fc.record({ product_items: maybe(fc.array(junk)), text: maybe(fc.string()) })),
        context: maybe(fc.record({ id: maybe(id), forwarded: maybe(fc.boolean()) })),
        errors: maybe(fc.array(junk)),
        referral: maybe(junk),
      },
      { requiredKeys: [] },
    );
    const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

    it('when WhatsApp messages[] holds near-valid items, then each yields exactly one event and valid ones keep their id', () => {
      fc.assert(
        fc.property(fc.array(fc.oneof({ arbitrary: fuzzyWaMessage, weight: 5 }, { arbitrary: junk, weight: 1 }), { maxLength: 8 }), (messages) => {
          const events = normalize(waBody(waValue({ messages })));
          expect(events).toHaveLength(messages.length);
          messages.forEach((raw, i) => {
            const event = events[i] as NormalizedEvent;
            const m = raw as Record<string, unknown> | null;
            const valid =
              typeof m === 'object' && m !== null && !Array.isArray(m) && nonEmpty(m.id) && (nonEmpty(m.from) || nonEmpty(m.from_user_id));
            if (!valid) {
              expect(event).toMatchObject({ kind: 'ignored', path: `entry[0].changes[0].value.messages[${i}]` });
            } else if (m.type === 'reaction') {
              const target = (m.reaction as Record<string, unknown> | undefined)?.message_id;
              expect(event.kind).toBe(nonEmpty(target) ? 'reaction' : 'ignored');
            } else {
              expect(event).toMatchObject({ kind: 'message', externalId: m.id });
            }
          });
        }),
        { numRuns: 300 },
      );
    });

    const fuzzyIgItem = fc.record(
      {
        sender: maybe(fc.record({ id: maybe(id) })),
        recipient: maybe(fc.record({ id: maybe(id) })),
        timestamp: maybe(fc.oneof(fc.integer({ min: 0, max: 2e12 }), fc.string())),
        message: maybe(
          fc.record(
            {
              mid: maybe(id),
              text: maybe(fc.string()),
              is_echo: maybe(fc.boolean()),
              is_deleted: maybe(fc.boolean()),
              attachments: maybe(fc.array(fc.record({ type: maybe(fc.string()), payload: maybe(fc.record({ url: maybe(fc.string()) })) }))),
              reply_to: maybe(fc.record({ mid: maybe(id), story: maybe(junk) })),
              quick_reply: maybe(junk),
            },
            { requiredKeys: [] },
          ),
        ),
        reaction: maybe(fc.record({ mid: maybe(id), action: maybe(fc.constantFrom('react', 'unreact')), emoji: maybe(fc.string()) })),
        read: maybe(fc.record({ mid: maybe(id) })),
        postback: maybe(fc.record({ mid: maybe(id), title: maybe(fc.string()), payload: maybe(fc.string()) })),
      },
      { requiredKeys: [] },
    );

    it('when Instagram messaging[] holds near-valid items, then each yields exactly one event', () => {
      fc.assert(
        fc.property(fc.array(fc.oneof({ arbitrary: fuzzyIgItem, weight: 5 }, { arbitrary: junk, weight: 1 }), { maxLength: 8 }), (items) => {
          const events = normalize(igBody(items));
          expect(events).toHaveLength(items.length);
          expect(wellFormed(events)).toBe(true);
        }),
        { numRuns: 300 },
      );
    });

    it('when a WhatsApp body has N entries × M changes × K messages, then exactly N*M*K messages come out in order', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), (n, m, k) => {
          const ids: string[] = [];
          const entry = Array.from({ length: n }, (_, e) => ({
            id: WABA_ID,
            changes: Array.from({ length: m }, (_, c) => ({
              field: 'messages',
              value: waValue({
                contacts: [{ profile: { name: `C${e}` }, wa_id: `1555${e}` }],
                messages: Array.from({ length: k }, (_, i) => {
                  const wamid = `wamid.e${e}.c${c}.m${i}`;
                  ids.push(wamid);
                  return waMessage({ id: wamid, from: `1555${e}`, text: { body: wamid } });
                }),
              }),
            })),
          }));
          const events = normalize({ object: 'whatsapp_business_account', entry }) as NormalizedMessage[];
          expect(events).toHaveLength(n * m * k);
          expect(events.every((ev) => ev.kind === 'message')).toBe(true);
          expect(events.map((ev) => ev.externalId)).toEqual(ids);
          expect(events.map((ev) => ev.text)).toEqual(ids);
          expect(events.map((ev) => ev.customerName)).toEqual(ids.map((wamid) => `C${wamid.split('.')[1]?.slice(1)}`));
        }),
      );
    });

    it('when a WhatsApp body has N entries × M changes × K statuses, then exactly N*M*K statuses come out', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 4 }),
          fc.array(fc.constantFrom('sent', 'delivered', 'read', 'failed', 'played'), { minLength: 1, maxLength: 5 }),
          (n, m, statuses) => {
            const expected: string[] = [];
            const entry = Array.from({ length: n }, (_, e) => ({
              id: WABA_ID,
              changes: Array.from({ length: m }, (_, c) => ({
                field: 'messages',
                value: waValue({
                  statuses: statuses.map((status, i) => {
                    const wamid = `wamid.e${e}.c${c}.s${i}`;
                    expected.push(`wa|${wamid}|${status}`);
                    return { id: wamid, status, timestamp: '1780300800', recipient_id: '15550102030' };
                  }),
                }),
              })),
            }));
            const events = normalize({ object: 'whatsapp_business_account', entry });
            expect(events.every((ev) => ev.kind === 'status')).toBe(true);
            expect(events.map((ev) => (ev.kind === 'status' ? ev.dedupeKey : ''))).toEqual(expected);
          },
        ),
      );
    });

    it('when one value mixes messages and statuses, then both come out', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 }), (k, s) => {
          const value = waValue({
            messages: Array.from({ length: k }, (_, i) => waMessage({ id: `wamid.m${i}` })),
            statuses: Array.from({ length: s }, (_, i) => ({ id: `wamid.s${i}`, status: 'delivered', timestamp: '1780300800' })),
          });
          const events = normalize(waBody(value));
          expect(events.filter((e) => e.kind === 'message')).toHaveLength(k);
          expect(events.filter((e) => e.kind === 'status')).toHaveLength(s);
          expect(events).toHaveLength(k + s);
        }),
      );
    });

    it('when an Instagram body has N entries with messaging items, then every item comes out with its mid', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }), (perEntry) => {
          const mids: string[] = [];
          const entry = perEntry.map((count, e) => ({
            id: `1784${e}`,
            time: 1780300800950,
            messaging: Array.from({ length: count }, (_, i) => {
              const mid = `mid.${e}.${i}`;
              mids.push(mid);
              return igItem({ message: { mid, text: mid } }, { recipient: { id: `1784${e}` } });
            }),
          }));
          const events = normalize({ object: 'instagram', entry }) as NormalizedMessage[];
          expect(events.map((ev) => ev.externalId)).toEqual(mids);
          expect(events.map((ev) => ev.accountId)).toEqual(mids.map((mid) => `1784${mid.split('.')[1]}`));
        }),
      );
    });

    it('when a timestamp is given in seconds or milliseconds, then both give the same instant', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1_000_000_000, max: 4_000_000_000 }), (seconds) => {
          const asSeconds = singleMessage(igBody([igItem({ message: { mid: 'a', text: 'x' } }, { timestamp: seconds })]));
          const asMs = singleMessage(igBody([igItem({ message: { mid: 'a', text: 'x' } }, { timestamp: seconds * 1000 })]));
          const waString = singleMessage(waBody(waValue({ messages: [waMessage({ timestamp: String(seconds) })] })));
          expect(asSeconds.timestamp.getTime()).toBe(seconds * 1000);
          expect(asMs.timestamp).toEqual(asSeconds.timestamp);
          expect(waString.timestamp).toEqual(asSeconds.timestamp);
        }),
      );
    });
  });
});
