import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import {
  normalizeWebhook,
  type NormalizedEvent,
  type NormalizedIgnored,
  type NormalizedMessage,
  type NormalizedReaction,
} from '../../../src/services/metaNormalizer';
import { FIXTURES_DIR } from '../../fixtures/meta';

function fixture(name: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, name), 'utf8'));
}

const RECEIVED_AT = new Date('2026-06-01T12:00:00.000Z');
const normalize = (body: unknown): NormalizedEvent[] => normalizeWebhook(body, { receivedAt: RECEIVED_AT });

const WABA_ID = '210987654321098';
const PHONE_NUMBER_ID = '109876543210123';
const IG_ACCOUNT_ID = '17841455500000001';
const IGSID = '6021000000000011';

function waValue(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    messaging_product: 'whatsapp',
    metadata: { display_phone_number: '15550001234', phone_number_id: PHONE_NUMBER_ID },
    ...fields,
  };
}

function waBody(...values: Record<string, unknown>[]): unknown {
  return {
    object: 'whatsapp_business_account',
    entry: [{ id: WABA_ID, changes: values.map((value) => ({ field: 'messages', value })) }],
  };
}

function waMessage(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { from: '15550102030', id: 'wamid.TEST', timestamp: '1780300800', type: 'text', text: { body: 'hi' }, ...fields };
}

function igBody(items: unknown[], entry: Record<string, unknown> = {}): unknown {
  return { object: 'instagram', entry: [{ id: IG_ACCOUNT_ID, time: 1780300800950, messaging: items, ...entry }] };
}

function igItem(event: Record<string, unknown>, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { sender: { id: IGSID }, recipient: { id: IG_ACCOUNT_ID }, timestamp: 1780300800412, ...event, ...fields };
}

function single(events: NormalizedEvent[]): NormalizedEvent {
  expect(events).toHaveLength(1);
  return events[0] as NormalizedEvent;
}

function singleMessage(body: unknown): NormalizedMessage {
  const event = single(normalize(body));
  expect(event.kind).toBe('message');
  return event as NormalizedMessage;
}

function singleReaction(body: unknown): NormalizedReaction {
  const event = single(normalize(body));
  expect(event.kind).toBe('reaction');
  return event as NormalizedReaction;
}

function singleIgnored(body: unknown): NormalizedIgnored {
  const event = single(normalize(body));
  expect(event.kind).toBe('ignored');
  return event as NormalizedIgnored;
}

const waMessageDefaults = {
  kind: 'message',
  channel: 'whatsapp',
  accountId: PHONE_NUMBER_ID,
  customerUserId: null,
  media: null,
  replyTo: null,
  isEcho: false,
  isDeleted: false,
  isStandby: false,
  payload: {},
} as const;

const igMessageDefaults = {
  kind: 'message',
  channel: 'instagram',
  accountId: IG_ACCOUNT_ID,
  customerId: IGSID,
  customerUserId: null,
  customerName: null,
  media: null,
  replyTo: null,
  isEcho: false,
  isDeleted: false,
  isStandby: false,
  payload: {},
} as const;

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

  describe('when WhatsApp sends the envelope in odd shapes', () => {
    it('when an entry is not an object or has no changes, then each is reported and siblings are read', () => {
      const events = normalize({
        object: 'whatsapp_business_account',
        entry: [
          'x',
          { id: WABA_ID },
          { id: WABA_ID, changes: 'nope' },
          { id: WABA_ID, changes: [null, { field: 'messages', value: 3 }, { field: 'messages', value: waValue({ messages: [waMessage()] }) }] },
        ],
      });
      expect(events.map((e) => (e.kind === 'ignored' ? `${e.reason}@${e.path}` : e.kind))).toEqual([
        'malformed_entry@entry[0]',
        'malformed_entry@entry[1]',
        'malformed_entry@entry[2].changes',
        'malformed_change@entry[3].changes[0]',
        'malformed_change@entry[3].changes[1].value',
        'message',
      ]);
    });

    it('when a change has another field, then it is ignored as unhandled_field with its account', () => {
      const body = {
        object: 'whatsapp_business_account',
        entry: [{ id: WABA_ID, changes: [{ field: 'account_update', value: waValue({ event: 'VERIFIED_ACCOUNT' }) }] }],
      };
      expect(singleIgnored(body)).toMatchObject({
        reason: 'unhandled_field',
        detail: 'field "account_update"',
        channel: 'whatsapp',
        accountId: PHONE_NUMBER_ID,
      });
    });

    it('when value has no phone_number_id, then its messages and statuses are one missing_account event but errors still come through', () => {
      const value = {
        messages: [waMessage(), waMessage({ id: 'wamid.2' })],
        statuses: [{ id: 'wamid.S', status: 'sent', timestamp: '1780300800' }],
        errors: [{ code: 130429, title: 'Rate limit hit' }],
      };
      const events = normalize(waBody(value));
      expect(events).toEqual([
        expect.objectContaining({
          kind: 'ignored',
          reason: 'missing_account',
          accountId: null,
          detail: 'no metadata.phone_number_id for 2 message(s) and 1 status(es)',
        }),
        { kind: 'error', channel: 'whatsapp', accountId: null, code: 130429, title: 'Rate limit hit', message: null, details: null },
      ]);
    });

    it('when value has no phone_number_id and nothing to route, then nothing is reported', () => {
      expect(normalize(waBody({ messaging_product: 'whatsapp' }))).toEqual([]);
    });

    it('when messages is not an array, then it is reported and statuses beside it are still read', () => {
      const events = normalize(waBody(waValue({ messages: { id: 'x' }, statuses: [{ id: 'wamid.S', status: 'read', timestamp: '1780300800' }] })));
      expect(events.map((e) => e.kind)).toEqual(['ignored', 'status']);
      expect(events[0]).toMatchObject({ reason: 'malformed_change', detail: 'messages is object, not an array' });
    });

    it('when value.errors holds system errors, then each becomes an error event', () => {
      const events = normalize(
        waBody(
          waValue({
            errors: [
              {
                code: '130429',
                title: 'Rate limit hit',
                message: 'Rate limit hit',
                error_data: { details: 'too many messages' },
                href: '/x',
              },
              { title: 'no code' },
              'junk',
            ],
          }),
        ),
      );
      expect(events).toEqual([
        {
          kind: 'error',
          channel: 'whatsapp',
          accountId: PHONE_NUMBER_ID,
          code: 130429,
          title: 'Rate limit hit',
          message: 'Rate limit hit',
          details: 'too many messages',
        },
        { kind: 'error', channel: 'whatsapp', accountId: PHONE_NUMBER_ID, code: null, title: 'no code', message: null, details: null },
        expect.objectContaining({ kind: 'ignored', reason: 'malformed_error', path: 'entry[0].changes[0].value.errors[2]' }),
      ]);
    });
  });

  describe('when WhatsApp messages identify their customer', () => {
    it('when contacts[] is in a different order from messages[], then names are matched by wa_id', () => {
      const events = normalize(
        waBody(
          waValue({
            contacts: [
              { profile: { name: 'Tom Baker' }, wa_id: '447700900123' },
              'junk',
              { profile: { name: 'José García' }, wa_id: '15550102030' },
            ],
            messages: [
              waMessage({ id: 'wamid.A', from: '15550102030' }),
              waMessage({ id: 'wamid.B', from: '447700900123' }),
              waMessage({ id: 'wamid.C', from: '15559999999' }),
            ],
          }),
        ),
      ) as NormalizedMessage[];
      expect(events.map((e) => [e.externalId, e.customerId, e.customerName])).toEqual([
        ['wamid.A', '15550102030', 'José García'],
        ['wamid.B', '447700900123', 'Tom Baker'],
        // No contact for this sender: never borrow a neighbour's name by index.
        ['wamid.C', '15559999999', null],
      ]);
    });

    it('when only a BSUID is present, then it becomes the customer id and the contact is matched by user_id', () => {
      const bsuid = 'US.13491208655302741918';
      const message = waMessage({ from: undefined, from_user_id: bsuid });
      const event = singleMessage(
        waBody(waValue({ contacts: [{ profile: { name: 'Username User', username: 'uu' }, user_id: bsuid }], messages: [message] })),
      );
      expect(event).toMatchObject({ customerId: bsuid, customerUserId: bsuid, customerName: 'Username User' });
    });

    it('when both phone and BSUID are present, then the phone is the customer id and the BSUID is kept beside it', () => {
      const bsuid = 'GB.998877';
      const event = singleMessage(
        waBody(
          waValue({
            contacts: [{ profile: { name: 'Tom' }, wa_id: '447700900123', user_id: bsuid }],
            messages: [waMessage({ from: '447700900123' })],
          }),
        ),
      );
      expect(event).toMatchObject({ customerId: '447700900123', customerUserId: bsuid, customerName: 'Tom' });
    });

    it('when a BSUID-matched contact still carries wa_id, then wa_id is preferred as the customer id', () => {
      const event = singleMessage(
        waBody(
          waValue({
            contacts: [{ profile: { name: 'Ana' }, wa_id: '15550102030', user_id: 'US.1' }],
            messages: [waMessage({ from: undefined, from_user_id: 'US.1' })],
          }),
        ),
      );
      expect(event).toMatchObject({ customerId: '15550102030', customerUserId: 'US.1', customerName: 'Ana' });
    });

    it('when a message has neither from nor from_user_id, then it is ignored and its sibling survives', () => {
      const events = normalize(waBody(waValue({ messages: [waMessage({ from: undefined }), waMessage({ id: 'wamid.OK' })] })));
      expect(events[0]).toMatchObject({ kind: 'ignored', reason: 'malformed_message', detail: 'message wamid.TEST has no from or from_user_id' });
      expect(events[1]).toMatchObject({ kind: 'message', externalId: 'wamid.OK' });
    });

    it('when a message has no id or is not an object, then it is ignored with its path', () => {
      const events = normalize(waBody(waValue({ messages: [waMessage({ id: '' }), 7, waMessage({ id: 'wamid.OK' })] })));
      expect(events.map((e) => (e.kind === 'ignored' ? e.path : e.kind))).toEqual([
        'entry[0].changes[0].value.messages[0]',
        'entry[0].changes[0].value.messages[1]',
        'message',
      ]);
      expect(events[0]).toMatchObject({ detail: 'message has no id' });
    });
  });

  describe('when WhatsApp sends each message type', () => {
    const one = (fields: Record<string, unknown>): NormalizedMessage =>
      singleMessage(waBody(waValue({ messages: [waMessage({ text: undefined, ...fields })] })));

    it('when a text has no body, then text is null', () => {
      expect(one({ type: 'text', text: {} })).toMatchObject({ type: 'text', text: null });
    });

    it('when a voice note arrives, then media is set and voice is kept in the payload', () => {
      expect(one({ type: 'audio', audio: { id: 'A1', mime_type: 'audio/ogg; codecs=opus', sha256: 'x', voice: true } })).toMatchObject({
        type: 'audio',
        text: null,
        media: { id: 'A1', mimeType: 'audio/ogg; codecs=opus' },
        payload: { voice: true },
      });
    });

    it('when a video has a caption, then the caption is the text', () => {
      expect(one({ type: 'video', video: { id: 'V1', caption: 'look', mime_type: 'video/mp4' } })).toMatchObject({
        text: 'look',
        media: { id: 'V1', caption: 'look', mimeType: 'video/mp4' },
      });
    });

    it('when a document arrives, then filename and caption are kept', () => {
      const event = one({ type: 'document', document: { id: 'D1', filename: 'invoice.pdf', caption: 'my invoice', mime_type: 'application/pdf' } });
      expect(event.media).toEqual({ id: 'D1', filename: 'invoice.pdf', caption: 'my invoice', mimeType: 'application/pdf' });
      expect(event.text).toBe('my invoice');
    });

    it('when a sticker arrives, then animated is kept and text is null', () => {
      expect(one({ type: 'sticker', sticker: { id: 'S1', mime_type: 'image/webp', animated: false } })).toMatchObject({
        text: null,
        media: { id: 'S1', mimeType: 'image/webp' },
        payload: { animated: false },
      });
    });

    it('when a media object is missing, then media is null', () => {
      expect(one({ type: 'image' })).toMatchObject({ type: 'image', media: null, text: null, payload: {} });
    });

    it('when a location has only coordinates, then only they are rendered', () => {
      expect(one({ type: 'location', location: { latitude: '1.5', longitude: -2 } })).toMatchObject({
        text: '[location] (1.5, -2)',
        payload: { location: { latitude: 1.5, longitude: -2 } },
      });
    });

    it('when a location has a name but no coordinates, then the name is rendered', () => {
      expect(one({ type: 'location', location: { name: 'Shop' } }).text).toBe('[location] Shop');
    });

    it('when a location is empty, then text is null', () => {
      expect(one({ type: 'location', location: {} })).toMatchObject({ text: null, payload: { location: {} } });
    });

    it('when contacts are shared, then names, phones and emails are rendered and kept', () => {
      const event = one({
        type: 'contacts',
        contacts: [
          {
            name: { formatted_name: 'Ana Lima', first_name: 'Ana' },
            phones: [{ phone: '+1 555 0102', wa_id: '15550102', type: 'CELL' }, 'junk'],
            emails: [{ email: 'ana@example.com' }],
          },
          { name: { first_name: 'Bo', last_name: 'Chen' } },
          { phones: [{ phone: '+44 7700 900123' }] },
        ],
      });
      expect(event.text).toBe('[contacts] Ana Lima (+1 555 0102, ana@example.com); Bo Chen; Unnamed contact (+44 7700 900123)');
      expect(event.payload).toEqual({
        contacts: [
          { name: 'Ana Lima', phones: [{ phone: '+1 555 0102', waId: '15550102', type: 'CELL' }], emails: ['ana@example.com'] },
          { name: 'Bo Chen', phones: [] },
          { phones: [{ phone: '+44 7700 900123' }] },
        ],
      });
    });

    it('when contacts is empty, then text is null', () => {
      expect(one({ type: 'contacts', contacts: [] })).toMatchObject({ text: null, payload: { contacts: [] } });
    });

    it('when a list reply arrives, then its title is the text and ids are kept', () => {
      expect(
        one({
          type: 'interactive',
          context: { from: '15550001234', id: 'wamid.OURS' },
          interactive: { type: 'list_reply', list_reply: { id: 'row-2', title: 'Tuesday', description: '9-5' } },
        }),
      ).toMatchObject({
        text: 'Tuesday',
        replyTo: 'wamid.OURS',
        payload: { interactiveType: 'list_reply', replyId: 'row-2', replyTitle: 'Tuesday', replyDescription: '9-5' },
      });
    });

    it('when a flow reply arrives, then body is the text and response_json is kept verbatim', () => {
      expect(
        one({
          type: 'interactive',
          interactive: { type: 'nfm_reply', nfm_reply: { name: 'flow', body: 'Sent', response_json: '{"a":1}' } },
        }),
      ).toMatchObject({ text: 'Sent', payload: { interactiveType: 'nfm_reply', flowName: 'flow', responseJson: '{"a":1}' } });
    });

    it('when an interactive has an unknown or missing subtype, then text is null', () => {
      expect(one({ type: 'interactive', interactive: { type: 'call_permission_reply' } })).toMatchObject({
        text: null,
        payload: { interactiveType: 'call_permission_reply' },
      });
      expect(one({ type: 'interactive' })).toMatchObject({ text: null, payload: {} });
    });

    it('when a template quick-reply button is tapped, then its text is the text', () => {
      expect(one({ type: 'button', button: { payload: 'STOP', text: 'Stop promotions' } })).toMatchObject({
        text: 'Stop promotions',
        payload: { buttonText: 'Stop promotions', buttonPayload: 'STOP' },
      });
      expect(one({ type: 'button', button: { payload: 'ONLY' } }).text).toBe('ONLY');
    });

    it('when an unsupported message arrives, then its subtype and error codes are kept', () => {
      expect(
        one({
          type: 'unsupported',
          unsupported: { type: 'poll_update' },
          errors: [{ code: 131051, title: 'Message type unknown', message: 'Message type unknown', error_data: { details: 'x' } }],
        }),
      ).toMatchObject({
        type: 'unsupported',
        text: null,
        payload: {
          unsupportedType: 'poll_update',
          errors: [{ code: 131051, title: 'Message type unknown', message: 'Message type unknown', details: 'x' }],
        },
      });
    });

    it('when a system message arrives, then its body and new ids are kept', () => {
      expect(
        one({
          type: 'system',
          system: { body: 'User A changed from 1 to 2', wa_id: '2', type: 'user_changed_number' },
        }),
      ).toMatchObject({ text: 'User A changed from 1 to 2', payload: { systemType: 'user_changed_number', newWaId: '2' } });
    });

    it('when an order arrives, then items are rendered and kept', () => {
      const event = one({
        type: 'order',
        order: {
          catalog_id: 'CAT',
          text: 'Please deliver',
          product_items: [
            { product_retailer_id: 'SKU1', quantity: 2, item_price: 12.5, currency: 'GBP' },
            { product_retailer_id: 'SKU2', quantity: '1' },
            {},
          ],
        },
      });
      expect(event.text).toBe('[order] Please deliver: 2 × SKU1 @ 12.5 GBP; 1 × SKU2; 1 × unknown item');
      expect(event.payload).toEqual({
        order: {
          catalogId: 'CAT',
          text: 'Please deliver',
          items: [{ productRetailerId: 'SKU1', quantity: 2, itemPrice: 12.5, currency: 'GBP' }, { productRetailerId: 'SKU2', quantity: 1 }, {}],
        },
      });
    });

    it('when an order has a price without currency, or nothing at all, then it still renders', () => {
      expect(one({ type: 'order', order: { product_items: [{ product_retailer_id: 'A', item_price: 3 }] } }).text).toBe('[order] 1 × A @ 3');
      expect(one({ type: 'order' })).toMatchObject({ text: null, payload: { order: { items: [] } } });
    });

    it('when the type is new to us, then it is kept as given with its raw object', () => {
      expect(one({ type: 'poll', poll: { question: 'Q?', options: [1, 2] } })).toMatchObject({
        type: 'poll',
        text: null,
        payload: { raw: { question: 'Q?', options: [1, 2] } },
      });
      expect(one({ type: 'mystery' }).payload).toEqual({});
    });

    it('when the type names an Object prototype member, then nothing leaks from the prototype', () => {
      expect(one({ type: 'constructor' })).toMatchObject({ type: 'constructor', text: null, payload: {} });
      expect(one({ type: 'toString' })).toMatchObject({ type: 'toString', payload: {} });
      expect(one({ type: 'interactive', interactive: { type: 'hasOwnProperty' } })).toMatchObject({ text: null });
    });

    it('when the type is missing or absurdly long, then it is "unknown" or cut to 40 characters', () => {
      expect(one({ type: undefined }).type).toBe('unknown');
      expect(one({ type: 'x'.repeat(100) }).type).toBe('x'.repeat(40));
    });

    it('when context, referral and group id are present, then they land in the payload', () => {
      const event = one({
        type: 'text',
        text: { body: 'about this' },
        context: { forwarded: true, frequently_forwarded: true, referred_product: { catalog_id: 'C', product_retailer_id: 'P' } },
        referral: { source_type: 'ad', source_id: '1', headline: 'Sale', ctwa_clid: 'abc', nested: { deep: [1, { a: NaN }] } },
        group_id: 'G1',
      });
      expect(event.payload).toEqual({
        forwarded: true,
        frequentlyForwarded: true,
        referredProduct: { catalogId: 'C', productRetailerId: 'P' },
        referral: { source_type: 'ad', source_id: '1', headline: 'Sale', ctwa_clid: 'abc', nested: { deep: [1, {}] } },
        groupId: 'G1',
      });
      expect(event.replyTo).toBeNull();
    });

    it('when a referral nests deeper than we copy, then the excess is dropped rather than copied', () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 20; i += 1) deep = { d: deep };
      const payload = one({ referral: deep, text: { body: 'x' } }).payload;
      expect(JSON.stringify(payload).length).toBeLessThan(100);
    });
  });

  describe('when WhatsApp sends reactions', () => {
    const reaction = (fields: Record<string, unknown>): unknown =>
      waBody(waValue({ messages: [waMessage({ id: 'wamid.R', type: 'reaction', text: undefined, ...fields })] }));

    it('when the emoji is missing, then it is a removal with a "removed" dedupe key', () => {
      expect(singleReaction(reaction({ reaction: { message_id: 'wamid.OURS' } }))).toEqual({
        kind: 'reaction',
        channel: 'whatsapp',
        accountId: PHONE_NUMBER_ID,
        customerId: '15550102030',
        targetExternalId: 'wamid.OURS',
        emoji: null,
        removed: true,
        externalId: 'wamid.R',
        timestamp: new Date(1780300800000),
        dedupeKey: 'wa|wamid.R|removed|1780300800000',
      });
    });

    it('when the emoji is an empty string, then it is a removal too', () => {
      expect(singleReaction(reaction({ reaction: { message_id: 'wamid.OURS', emoji: '' } }))).toMatchObject({ emoji: null, removed: true });
    });

    it('when add and remove reuse one wamid, then their dedupe keys differ', () => {
      const add = singleReaction(reaction({ reaction: { message_id: 'wamid.OURS', emoji: '\u{1F600}' } }));
      const remove = singleReaction(reaction({ timestamp: '1780300900', reaction: { message_id: 'wamid.OURS' } }));
      expect(add.dedupeKey).not.toBe(remove.dedupeKey);
    });

    it('when the reaction has no target message_id, then it is ignored', () => {
      expect(singleIgnored(reaction({ reaction: { emoji: '\u{1F600}' } }))).toMatchObject({
        reason: 'malformed_message',
        detail: 'reaction wamid.R has no message_id',
      });
    });
  });

  describe('when WhatsApp sends statuses', () => {
    it('when a status was sent to a BSUID only, then the BSUID is the recipient', () => {
      const event = single(
        normalize(waBody(waValue({ statuses: [{ id: 'wamid.S', status: 'played', timestamp: '1780300800', recipient_user_id: 'US.7' }] }))),
      );
      expect(event).toMatchObject({ kind: 'status', status: 'played', recipientId: 'US.7', recipientUserId: 'US.7', errors: [] });
    });

    it('when a status lacks id or status, or is not an object, then it is ignored and siblings survive', () => {
      const events = normalize(
        waBody(
          waValue({
            statuses: [
              { status: 'sent' },
              { id: 'wamid.S' },
              null,
              { id: 'wamid.OK', status: 'sent', timestamp: '1780300800', recipient_id: '1' },
            ],
          }),
        ),
      );
      expect(events.map((e) => (e.kind === 'ignored' ? e.detail : e.kind))).toEqual([
        'status has no id',
        'status has no status',
        'status is null, not an object',
        'status',
      ]);
    });

    it('when a status has no timestamp, then receivedAt is used', () => {
      const event = single(normalize(waBody(waValue({ statuses: [{ id: 'wamid.S', status: 'sent' }] }))));
      expect(event).toMatchObject({ timestamp: RECEIVED_AT, recipientId: null });
    });
  });

  describe('when timestamps come in different units', () => {
    const at = (timestamp: unknown): Date => singleMessage(waBody(waValue({ messages: [waMessage({ timestamp })] }))).timestamp;

    it('when WhatsApp sends string seconds, then they are read as seconds', () => {
      expect(at('1780300800')).toEqual(new Date(1780300800000));
    });

    it('when a number is below 1e12, then it is seconds, and above it is milliseconds', () => {
      expect(at(1780300800)).toEqual(new Date(1780300800000));
      expect(at(1780300800123)).toEqual(new Date(1780300800123));
      expect(at('1780300800123')).toEqual(new Date(1780300800123));
    });

    it.each([undefined, '', 'yesterday', -5, 0, Number.NaN, 1e20, '1e9', {}])(
      'when the timestamp is %p, then receivedAt is used',
      (timestamp) => {
        expect(at(timestamp)).toEqual(RECEIVED_AT);
      },
    );

    it('when Instagram sends seconds instead of milliseconds, then they are still read right', () => {
      const event = singleMessage(igBody([igItem({ message: { mid: 'm1', text: 'x' } }, { timestamp: 1780300800 })]));
      expect(event.timestamp).toEqual(new Date(1780300800000));
    });

    it('when an Instagram item has no timestamp, then entry.time is used', () => {
      const event = singleMessage(igBody([igItem({ message: { mid: 'm1', text: 'x' } }, { timestamp: undefined })]));
      expect(event.timestamp).toEqual(new Date(1780300800950));
    });

    it('when neither item nor entry has a timestamp, then receivedAt is used', () => {
      const event = singleMessage(igBody([igItem({ message: { mid: 'm1', text: 'x' } }, { timestamp: 'soon' })], { time: undefined }));
      expect(event.timestamp).toEqual(RECEIVED_AT);
    });
  });

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
