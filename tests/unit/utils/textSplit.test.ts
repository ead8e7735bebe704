import fc from 'fast-check';
import {
  CHANNEL_TEXT_LIMITS,
  INSTAGRAM_TEXT_LIMITS,
  WHATSAPP_TEXT_LIMITS,
  measureText,
  splitText,
} from '../../../src/utils/textSplit';

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');
const codePoints = (text: string) => [...text].length;
const words = (text: string) => text.split(/\s+/).filter(Boolean);
/** A lone surrogate means a pair was cut in two. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const graphemeCount = (text: string) => [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)].length;

describe('splitText', () => {
  it('when the text fits, then it comes back as one trimmed part', () => {
    expect(splitText('  Hello there.  ', { maxChars: 50 })).toEqual(['Hello there.']);
    expect(splitText('Hello', { maxBytes: 1000 })).toEqual(['Hello']);
  });

  it('when the text is empty or blank, then there are no parts', () => {
    expect(splitText('', { maxChars: 10 })).toEqual([]);
    expect(splitText(' \n\t ', { maxChars: 10 })).toEqual([]);
  });

  it('when paragraphs fit separately, then it cuts at the blank line and keeps each paragraph whole', () => {
    const text = 'First paragraph here.\n\nSecond paragraph is here.';
    expect(splitText(text, { maxChars: 30 })).toEqual(['First paragraph here.', 'Second paragraph is here.']);
  });

  it('when small paragraphs fit together, then they are packed into one part with their blank line', () => {
    const text = 'One.\n\nTwo.\n\nThree is longer than the rest.';
    expect(splitText(text, { maxChars: 12 })).toEqual(['One.\n\nTwo.', 'Three is', 'longer than', 'the rest.']);
  });

  it('when a paragraph is too long, then it cuts at sentence ends before spaces', () => {
    const text = 'The first sentence is here. The second one follows! Does a third? Yes.';
    expect(splitText(text, { maxChars: 30 })).toEqual([
      'The first sentence is here.',
      'The second one follows!',
      'Does a third? Yes.',
    ]);
  });

  it('when a sentence is too long, then it cuts between words, never inside one', () => {
    const parts = splitText('alpha beta gamma delta epsilon zeta eta theta', { maxChars: 11 });
    expect(parts).toEqual(['alpha beta', 'gamma delta', 'epsilon', 'zeta eta', 'theta']);
  });

  it('when lines break without a blank line, then it prefers the line break to a space', () => {
    const text = 'Opening hours:\nMonday to Friday 9-18\nSaturday 10-14';
    expect(splitText(text, { maxChars: 36 })).toEqual(['Opening hours:\nMonday to Friday 9-18', 'Saturday 10-14']);
  });

  it('when a single word is longer than the limit, then only that word is cut, into full-size pieces', () => {
    const url = `https://example.com/${'a'.repeat(30)}`;
    const parts = splitText(`See ${url} now`, { maxChars: 20 });
    expect(parts).toEqual(['See', url.slice(0, 20), url.slice(20, 40), url.slice(40), 'now']);
  });

  it('when an overlong word is made of emoji, then no surrogate pair or grapheme is cut', () => {
    const family = '👨‍👩‍👧'; // one grapheme, 5 code points, 18 bytes
    const word = `${'😀'.repeat(7)}${family.repeat(3)}`;
    const parts = splitText(word, { maxBytes: 20 });
    for (const part of parts) {
      expect(LONE_SURROGATE.test(part)).toBe(false);
      expect(bytes(part)).toBeLessThanOrEqual(20);
    }
    expect(parts.join('')).toBe(word);
    expect(parts.slice(-3)).toEqual([family, family, family]);
  });

  it('when a single grapheme is itself over the limit, then it falls back to whole code points', () => {
    const zalgo = `e${'\u0301'.repeat(20)}`; // one grapheme, 41 bytes
    const parts = splitText(zalgo, { maxBytes: 8 });
    expect(parts.join('')).toBe(zalgo);
    for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(8);
  });

  it('when counting for Instagram, then accents count 2 bytes and emoji 4', () => {
    // 400 "é" are 400 characters but 800 bytes: two of them do not fit in 1000 bytes.
    const accents = `${'é'.repeat(400)} ${'é'.repeat(400)}`;
    expect(splitText(accents, INSTAGRAM_TEXT_LIMITS)).toEqual(['é'.repeat(400), 'é'.repeat(400)]);
    const emoji = Array.from({ length: 300 }, () => '😀').join(' '); // 300×4 + 299 = 1499 bytes
    const parts = splitText(emoji, INSTAGRAM_TEXT_LIMITS);
    expect(parts).toHaveLength(2);
    for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(1000);
    expect(bytes(parts[0] as string)).toBeGreaterThan(990);
  });

  it('when counting for WhatsApp, then an emoji is one character, not two UTF-16 units', () => {
    const text = '😀'.repeat(4096);
    expect(text.length).toBe(8192);
    expect(splitText(text, WHATSAPP_TEXT_LIMITS)).toEqual([text]);
    expect(splitText(`${text} x`, WHATSAPP_TEXT_LIMITS)).toEqual([text, 'x']);
  });

  it('when the text is exactly at the limit, then it is not split', () => {
    expect(splitText('a'.repeat(4096), CHANNEL_TEXT_LIMITS.whatsapp)).toHaveLength(1);
    expect(splitText('a'.repeat(1000), CHANNEL_TEXT_LIMITS.instagram)).toHaveLength(1);
    expect(splitText('a'.repeat(1001), CHANNEL_TEXT_LIMITS.instagram)).toEqual(['a'.repeat(1000), 'a']);
  });

  it('when both limits are given, then every part honours both', () => {
    const text = 'ñandú '.repeat(50);
    for (const part of splitText(text, { maxChars: 40, maxBytes: 45 })) {
      expect(codePoints(part)).toBeLessThanOrEqual(40);
      expect(bytes(part)).toBeLessThanOrEqual(45);
    }
  });

  it('when a long realistic reply is split, then the parts keep order and rejoin to the same words', () => {
    const paragraph = (n: number) =>
      Array.from({ length: 12 }, (_, i) => `Sentence ${n}.${i} talks about café prices and délivery, 🚚 included.`).join(' ');
    const text = Array.from({ length: 6 }, (_, n) => paragraph(n)).join('\n\n');
    const parts = splitText(text, INSTAGRAM_TEXT_LIMITS);
    expect(parts.length).toBeGreaterThan(4);
    expect(words(parts.join(' '))).toEqual(words(text));
    for (const part of parts) {
      expect(bytes(part)).toBeLessThanOrEqual(1000);
      // Sentence boundaries were available, so every part ends a sentence.
      expect(part).toMatch(/\.$/);
    }
  });

  it('when the limits are nonsense, then it refuses instead of looping or cutting code points', () => {
    expect(() => splitText('x', {})).toThrow(RangeError);
    expect(() => splitText('x', { maxChars: 0 })).toThrow(RangeError);
    expect(() => splitText('x', { maxBytes: 3 })).toThrow(RangeError);
    expect(() => splitText('x', { maxChars: 1.5 })).toThrow(RangeError);
  });

  it('when any text is split, then parts fit, are trimmed and non-empty, and lose nothing but whitespace', () => {
    const unit = fc.constantFrom('a', 'Z', 'é', 'ß', '中', '😀', '👍🏽', '🇵🇹', 'e\u0301', ' ', ' ', '\n', '\n\n', '.', '!', '?', '7');
    const text = fc.array(unit, { minLength: 10, maxLength: 400, size: 'large' }).map((units) => units.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 4, max: 60 }), fc.boolean(), (input, limit, byBytes) => {
        const limits = byBytes ? { maxBytes: limit } : { maxChars: limit };
        const parts = splitText(input, limits);
        for (const part of parts) {
          if (part === '' || part !== part.trim()) return false;
          if (LONE_SURROGATE.test(part)) return false;
          const size = measureText(part);
          if (byBytes ? size.bytes > limit : size.chars > limit) return false;
        }
        return parts.join('').replace(/\s/g, '') === input.replace(/\s/g, '');
      }),
      { numRuns: 300 },
    );
  });

  it('when any text is split, then the parts are the input itself, in order, with only whitespace left out between them', () => {
    // Every kind of whitespace `trim` knows, sentence ends with closers, and runs long enough to be boundaries.
    const unit = fc.constantFrom('a', 'é', '😀', 'word', '.', '?', '…', ')', '"', '»', ' ', '\t', '\r\n', '\n', '\n \n', '\u00a0', '\u3000', '\u2028', '   \t  ');
    const text = fc.array(unit, { minLength: 1, maxLength: 300, size: 'large' }).map((units) => units.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 4, max: 50 }), fc.boolean(), (input, limit, byBytes) => {
        const parts = splitText(input, byBytes ? { maxBytes: limit } : { maxChars: limit });
        let at = 0;
        for (const part of parts) {
          while (at < input.length && /\s/.test(input[at]!)) at++;
          if (!input.startsWith(part, at)) return false;
          at += part.length;
          const size = measureText(part);
          if ((byBytes ? size.bytes : size.chars) > limit) return false;
        }
        return input.slice(at).trim() === '';
      }),
      { numRuns: 500 },
    );
  });

  it('when a reply is one long run of whitespace between two words, then it splits into the two words', () => {
    expect(splitText(`a${' '.repeat(300_000)}b`, WHATSAPP_TEXT_LIMITS)).toEqual(['a', 'b']);
    expect(splitText(`a${' \t'.repeat(100_000)}\nb`, INSTAGRAM_TEXT_LIMITS)).toEqual(['a', 'b']);
    expect(splitText(' '.repeat(300_000), WHATSAPP_TEXT_LIMITS)).toEqual([]);
  });

  it('when a sentence ends in closing quotes or brackets, then they stay with it and the cut comes after', () => {
    expect(splitText('He said "stop." Then (we left.) Fine', { maxChars: 20 })).toEqual(['He said "stop."', 'Then (we left.) Fine']);
  });

  it('when graphemes fit the limit, then no grapheme is ever cut (part graphemes add up)', () => {
    const unit = fc.constantFrom('👨‍👩‍👧', '🇵🇹', 'e\u0301', 'a', '😀', ' ');
    fc.assert(
      fc.property(fc.array(unit, { minLength: 1, maxLength: 80, size: 'large' }), (units) => {
        const input = units.join('');
        const parts = splitText(input, { maxBytes: 20 });
        const squeezed = input.replace(/\s/g, '');
        return graphemeCount(parts.join('').replace(/\s/g, '')) === graphemeCount(squeezed) &&
          parts.reduce((sum, part) => sum + graphemeCount(part.replace(/\s/g, '')), 0) === graphemeCount(squeezed);
      }),
      { numRuns: 200 },
    );
  });
});

describe('measureText', () => {
  it('when measuring, then code points and UTF-8 bytes agree with the platform', () => {
    for (const sample of ['', 'abc', 'é', '中文', '😀', '👨‍👩‍👧', '\uD800x']) {
      expect(measureText(sample)).toEqual({ chars: codePoints(sample), bytes: bytes(sample) });
    }
  });
});
