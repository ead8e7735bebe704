import {
  asObj,
  compact,
  num,
  objects,
  own,
  shape,
  str,
  toDate,
  toJson,
} from '../../../../src/services/meta/json';
import { igBody, igItem, RECEIVED_AT, singleMessage, waBody, waMessage, waValue } from '../../../fixtures/normalizer';

describe('the JSON readers', () => {
  describe('asObj, own, str, num and objects', () => {
    it('when a value is a plain object, then asObj returns it; null, arrays and scalars give undefined', () => {
      const value = { a: 1 };
      expect(asObj(value)).toBe(value);
      expect([null, [], 'x', 1, undefined].map(asObj)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    });

    it('when a key is only on the prototype, then own does not see it', () => {
      expect(own({ type: 'text' }, 'type')).toBe('text');
      expect(own({}, 'constructor')).toBeUndefined();
      expect(own({}, 'toString')).toBeUndefined();
      expect(own(undefined, 'type')).toBeUndefined();
    });

    it('when a string is empty or the value is not a string, then str gives undefined', () => {
      expect(str('a')).toBe('a');
      expect([undefined, '', 0, null, {}].map(str)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    });

    it('when a string holds NUL or a lone surrogate, then str and toJson (keys too) give it back with U+FFFD in their place', () => {
      expect(str('a\u0000b\ud800c\udfff')).toBe('a\ufffdb\ufffdc\ufffd');
      expect(str('ok 😀')).toBe('ok 😀');
      expect(toJson({ 'k\u0000': ['x\udc00', { deep: '\ud83d' }] })).toEqual({ 'k\ufffd': ['x\ufffd', { deep: '\ufffd' }] });
    });

    it('when a number arrives as a numeric string, then num reads it; anything else non-finite is undefined', () => {
      expect(num(3)).toBe(3);
      expect(num(' -2.5 ')).toBe(-2.5);
      expect([Number.NaN, Number.POSITIVE_INFINITY, '1e3', '', 'x', null].map(num)).toEqual([
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
        undefined,
      ]);
    });

    it('when an array mixes objects and other values, then objects keeps the objects only', () => {
      expect(objects([{ a: 1 }, 'x', null, [], { b: 2 }])).toEqual([{ a: 1 }, { b: 2 }]);
      expect(objects({ a: 1 })).toEqual([]);
    });
  });

  describe('toDate', () => {
    it('when a value is below 1e12, then it is seconds; at or above, milliseconds', () => {
      expect(toDate(1780300800)).toEqual(new Date(1780300800000));
      expect(toDate('1780300800')).toEqual(new Date(1780300800000));
      expect(toDate(1780300800123)).toEqual(new Date(1780300800123));
    });

    it.each([undefined, null, '', 'yesterday', -5, 0, Number.NaN, 1e20, '1e9', {}])('when the value is %p, then it is undefined', (value) => {
      expect(toDate(value)).toBeUndefined();
    });
  });

  describe('toJson and compact', () => {
    it('when a value holds non-JSON numbers or functions, then they are dropped (in arrays, nulled)', () => {
      expect(toJson({ a: 1, b: Number.NaN, c: () => 1, d: [Number.POSITIVE_INFINITY, 'x'] })).toEqual({ a: 1, d: [null, 'x'] });
    });

    it('when a value nests deeper than six levels, then the excess is dropped', () => {
      let deep: unknown = 'bottom';
      for (let i = 0; i < 10; i += 1) deep = { d: deep };
      expect(JSON.stringify(toJson(deep))).toBe('{"d":{"d":{"d":{"d":{"d":{}}}}}}');
    });

    it('when a value is copied, then the copy does not alias it', () => {
      const original = { list: [1] };
      const copy = toJson(original) as { list: number[] };
      expect(copy).toEqual(original);
      expect(copy.list).not.toBe(original.list);
    });

    it('when fields are undefined, then compact drops them and keeps null', () => {
      expect(compact({ a: 1, b: undefined, c: null })).toEqual({ a: 1, c: null });
    });
  });

  describe('shape', () => {
    it('when describing a value for a log line, then strings are quoted and cut at 60 characters', () => {
      expect(shape('page')).toBe('"page"');
      expect(shape('x'.repeat(61))).toBe(JSON.stringify(`${'x'.repeat(60)}…`));
      expect([null, [], {}, 3, undefined].map(shape)).toEqual(['null', 'array', 'object', 'number', 'undefined']);
    });
  });
});

describe('normalizeWebhook reading timestamps', () => {
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
  });
});
