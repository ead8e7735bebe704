import fc from 'fast-check';
import { hasUnstorableText, toStorableText } from '../../../src/utils/storableText';

describe('storable text', () => {
  it('when text holds NUL or an unpaired surrogate, then it is unstorable and each becomes U+FFFD', () => {
    for (const bad of ['\u0000', 'a\ud800', '\udc00b', 'x\ud83d\ud83dy', '\udfff\ud800']) expect(hasUnstorableText(bad)).toBe(true);
    expect(toStorableText('x\ud83d\ud83dy')).toBe('x\ufffd\ufffdy');
    expect(toStorableText('\udfff\ud800')).toBe('\ufffd\ufffd');
  });

  it('when text is well formed and has no NUL, then it is storable and comes back as the same string', () => {
    const text = 'Olá 😀 👨‍👩‍👧 \u0001 tab\t';
    expect(hasUnstorableText(text)).toBe(false);
    expect(toStorableText(text)).toBe(text);
  });

  it('when any string is cleaned, then the result is storable and as Buffer/UTF-8 sees it, with NUL replaced', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const clean = toStorableText(text);
        // Node's UTF-8 encoder already turns each lone surrogate into U+FFFD.
        return !hasUnstorableText(clean) && clean === Buffer.from(text, 'utf8').toString('utf8').replace(/\u0000/g, '\ufffd');
      }),
    );
  });
});
