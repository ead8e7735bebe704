/**
 * Splits a reply that is too long for one channel message into ordered parts, cutting at the
 * most natural boundary that works: blank line, then line break, then end of sentence, then
 * space. Only a single word longer than the limit is cut inside, and then between graphemes,
 * so an emoji, an accented letter or a flag is never broken in two. Each part is the text's own
 * characters, verbatim and in order; only the whitespace between parts and around the text is
 * dropped. Linear in the text's length.
 *
 * Limits: WhatsApp `text.body` is at most 4096 characters (Meta: WhatsApp Cloud API › Messages ›
 * Text messages); Instagram text is at most 1000 UTF-8 bytes, an accent being 2 bytes and an
 * emoji 4 or more (Meta: Instagram API with Instagram Login › Messaging API).
 */

export interface TextLimits {
  /** Most characters per part, counted in Unicode code points (an emoji is 1, not 2). */
  maxChars?: number;
  /** Most UTF-8 bytes per part. At least 4, so any single code point fits. */
  maxBytes?: number;
}

/** WhatsApp: "Maximum 4096 characters". */
export const WHATSAPP_TEXT_LIMITS: Readonly<TextLimits> = Object.freeze({ maxChars: 4096 });
/** Instagram: "UTF-8 and 1000 bytes or less"; bytes bound characters too, so one limit suffices. */
export const INSTAGRAM_TEXT_LIMITS: Readonly<TextLimits> = Object.freeze({ maxBytes: 1000 });

export const CHANNEL_TEXT_LIMITS = Object.freeze({
  whatsapp: WHATSAPP_TEXT_LIMITS,
  instagram: INSTAGRAM_TEXT_LIMITS,
});

interface Size {
  chars: number;
  bytes: number;
}

/** Code points and UTF-8 bytes in one pass; both add up under concatenation, which packing relies on. */
export function measureText(text: string): Size {
  let chars = 0;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    chars++;
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A surrogate pair is one code point and 4 bytes.
        bytes += 4;
        i++;
      } else bytes += 3; // a lone surrogate is encoded as U+FFFD
    } else bytes += 3;
  }
  return { chars, bytes };
}

/**
 * Boundaries from the most to the least natural, each a kind of whitespace run: a run holding
 * a blank line (two line breaks), a run holding a line break, a run after a sentence's end (its
 * closing punctuation, then any closing quotes or brackets, stays with the sentence), any run.
 * A run is a separator whole, so a part is always the text's own characters, verbatim; only the
 * whitespace between two parts is dropped (a CRLF blank line stays `\r\n\r\n` inside a part).
 *
 * Found by one scan over each run rather than by a regular expression: a pattern such as
 * `\s*\n\s*` backtracks over every start in a run without a line break, which is quadratic, and
 * a model's reply can be 300k spaces long (tests/load/splitter.bench.ts).
 */
const BOUNDARY_LEVELS = 4;

/** What JavaScript's `\s` and `String.prototype.trim` count as whitespace. */
export function isWhitespace(unit: number): boolean {
  if (unit <= 0x20) return unit === 0x20 || (unit >= 0x09 && unit <= 0x0d);
  if (unit < 0xa0) return false;
  return (
    unit === 0xa0 || unit === 0x1680 || (unit >= 0x2000 && unit <= 0x200a) || unit === 0x2028 || unit === 0x2029 ||
    unit === 0x202f || unit === 0x205f || unit === 0x3000 || unit === 0xfeff
  );
}

const NEWLINE = 0x0a;
const SENTENCE_ENDS = new Set('.!?…。！？');
const SENTENCE_CLOSERS = new Set(')"\'”’»]');

/** Whether `text` just before `end` closes a sentence: an end mark, then any closing quotes or brackets. */
function endsSentence(text: string, end: number): boolean {
  let i = end - 1;
  while (i >= 0 && SENTENCE_CLOSERS.has(text[i]!)) i--;
  return i >= 0 && SENTENCE_ENDS.has(text[i]!);
}

/** Whether the whitespace run [start, end) is a boundary of `level`. */
function isBoundary(text: string, start: number, end: number, level: number): boolean {
  if (level === 3) return true;
  if (level === 2) return endsSentence(text, start);
  const breaksNeeded = level === 0 ? 2 : 1;
  let breaks = 0;
  for (let i = start; i < end && breaks < breaksNeeded; i++) if (text.charCodeAt(i) === NEWLINE) breaks++;
  return breaks === breaksNeeded;
}

/**
 * `text` cut at boundary `level`, alternating unit, separator, unit, … (what `split` with a
 * capturing pattern gives), in one pass: each character is looked at a bounded number of times.
 */
function piecesAt(text: string, level: number): string[] {
  const pieces: string[] = [];
  let unitStart = 0;
  let i = 0;
  while (i < text.length) {
    if (!isWhitespace(text.charCodeAt(i))) {
      i++;
      continue;
    }
    const runStart = i;
    while (i < text.length && isWhitespace(text.charCodeAt(i))) i++;
    if (!isBoundary(text, runStart, i, level)) continue;
    pieces.push(text.slice(unitStart, runStart), text.slice(runStart, i));
    unitStart = i;
  }
  pieces.push(text.slice(unitStart));
  return pieces;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * Splits `text` into parts that each fit `limits`, in order, trimmed and never empty.
 * Text that already fits comes back as one (trimmed) part; blank text gives `[]`.
 */
export function splitText(text: string, limits: TextLimits): string[] {
  const { maxChars, maxBytes } = limits;
  if (maxChars === undefined && maxBytes === undefined) throw new RangeError('splitText needs maxChars or maxBytes');
  if (maxChars !== undefined && !(Number.isInteger(maxChars) && maxChars >= 1)) {
    throw new RangeError('maxChars must be an integer of at least 1');
  }
  // Below 4 bytes a 4-byte code point could never be placed, and it must not be cut.
  if (maxBytes !== undefined && !(Number.isInteger(maxBytes) && maxBytes >= 4)) {
    throw new RangeError('maxBytes must be an integer of at least 4');
  }
  const fits = (size: Size) =>
    (maxChars === undefined || size.chars <= maxChars) && (maxBytes === undefined || size.bytes <= maxBytes);

  const trimmed = text.trim();
  if (trimmed === '') return [];
  if (fits(measureText(trimmed))) return [trimmed];
  return splitAt(trimmed, 0, fits);
}

/** `text` is trimmed and does not fit; pack its units at boundary `level`, going finer for any unit too big alone. */
function splitAt(text: string, level: number, fits: (size: Size) => boolean): string[] {
  if (level >= BOUNDARY_LEVELS) return hardSplit(text, fits);

  const pieces = piecesAt(text, level);
  if (pieces.length === 1) return splitAt(text, level + 1, fits);

  const parts: string[] = [];
  let current = '';
  let currentSize: Size = { chars: 0, bytes: 0 };
  const flush = () => {
    const part = current.trim();
    if (part !== '') parts.push(part);
    current = '';
    currentSize = { chars: 0, bytes: 0 };
  };

  for (let i = 0; i < pieces.length; i += 2) {
    const unit = (pieces[i] ?? '').trim();
    if (unit === '') continue;
    const unitSize = measureText(unit);
    if (current !== '') {
      const separator = pieces[i - 1] ?? ' ';
      const separatorSize = measureText(separator);
      const joined = {
        chars: currentSize.chars + separatorSize.chars + unitSize.chars,
        bytes: currentSize.bytes + separatorSize.bytes + unitSize.bytes,
      };
      if (fits(joined)) {
        current += separator + unit;
        currentSize = joined;
        continue;
      }
      flush();
    }
    if (fits(unitSize)) {
      current = unit;
      currentSize = unitSize;
    } else {
      // The tail of an oversized unit is not merged with the next unit: the coarser boundary
      // between them is the better place for the reader to see a new message start.
      parts.push(...splitAt(unit, level + 1, fits));
    }
  }
  flush();
  return parts;
}

/** The last resort for a single overlong word: cut between graphemes, or code points if one grapheme is too big. */
function hardSplit(text: string, fits: (size: Size) => boolean): string[] {
  const parts: string[] = [];
  let current = '';
  let currentSize: Size = { chars: 0, bytes: 0 };
  const add = (piece: string) => {
    const size = measureText(piece);
    const joined = { chars: currentSize.chars + size.chars, bytes: currentSize.bytes + size.bytes };
    if (fits(joined)) {
      current += piece;
      currentSize = joined;
      return;
    }
    if (current !== '') parts.push(current);
    current = piece;
    currentSize = size;
  };

  for (const { segment } of graphemes.segment(text)) {
    if (fits(measureText(segment))) add(segment);
    // A grapheme bigger than the limit (e.g. a letter with hundreds of combining marks) has to
    // be cut; code points are the smallest unit that still encodes to valid text.
    else for (const codePoint of segment) add(codePoint);
  }
  if (current !== '') parts.push(current);
  return parts;
}
