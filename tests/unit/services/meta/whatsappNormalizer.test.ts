import type { NormalizedMessage } from '../../../../src/services/metaNormalizer';
import {
  normalize,
  PHONE_NUMBER_ID,
  RECEIVED_AT,
  single,
  singleIgnored,
  singleMessage,
  singleReaction,
  WABA_ID,
  waBody,
  waMessage,
  waValue,
} from '../../../fixtures/normalizer';

describe('normalizeWebhook on WhatsApp bodies', () => {
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

    it('when a status echoes our biz_opaque_callback_data, then the event carries it verbatim, whatever the status', () => {
      const statuses = (['sent', 'delivered', 'read', 'failed'] as const).map((status) => ({
        id: `wamid.${status}`,
        status,
        timestamp: '1780300800',
        recipient_id: '15550102030',
        biz_opaque_callback_data: 'mca1:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:2',
        ...(status === 'failed' ? { errors: [{ code: 131026, title: 'Message undeliverable' }] } : {}),
      }));
      const events = normalize(waBody(waValue({ statuses })));
      expect(events.map((e) => e.kind === 'status' && [e.status, e.bizOpaqueCallbackData])).toEqual([
        ['sent', 'mca1:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:2'],
        ['delivered', 'mca1:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:2'],
        ['read', 'mca1:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:2'],
        ['failed', 'mca1:6f1c0e2a-9d3b-4c55-8a8e-2f1d0c9b7a61:2'],
      ]);
    });

    it('when a status has no biz_opaque_callback_data, or an empty or non-string one, then it is null and the status still counts', () => {
      const events = normalize(
        waBody(
          waValue({
            statuses: [
              { id: 'wamid.A', status: 'sent', timestamp: '1780300800' },
              { id: 'wamid.B', status: 'sent', timestamp: '1780300800', biz_opaque_callback_data: '' },
              { id: 'wamid.C', status: 'sent', timestamp: '1780300800', biz_opaque_callback_data: { forged: true } },
            ],
          }),
        ),
      );
      expect(events.map((e) => e.kind === 'status' && [e.externalId, e.bizOpaqueCallbackData])).toEqual([
        ['wamid.A', null],
        ['wamid.B', null],
        ['wamid.C', null],
      ]);
    });
  });
});
