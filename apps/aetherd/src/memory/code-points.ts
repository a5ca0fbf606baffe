/**
 * Code point arithmetic on JavaScript strings. The memory API counts offsets in Unicode code points
 * (memory.proto, "Character offsets"); JavaScript strings index UTF-16 code units, which differ as soon as
 * a character lies outside the BMP (emoji, many CJK extensions). Everything that turns one into the other
 * lives here.
 */

const isHigh = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

/** The number of code points in `s` (a surrogate pair counts once). */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if (isHigh(s.charCodeAt(i)) && isLow(s.charCodeAt(i + 1))) {
      n--;
      i++;
    }
  }
  return n;
}

/** True when `s` holds a lone surrogate (not valid Unicode; SQLite would store U+FFFD instead). */
export function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDFFF]/u.test(s);
}

/**
 * The UTF-16 index of code point `cp` in `s`, counting from UTF-16 index `from` (which is code point
 * `fromCp`); the length of `s` when `cp` is at or past the end.
 */
export function utf16IndexOf(s: string, cp: number, from = 0, fromCp = 0): number {
  let i = from;
  for (let n = fromCp; n < cp && i < s.length; n++) {
    i += isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
  }
  return i;
}

/** `s` sliced by code points: `Array.from(s).slice(start, end).join('')` without the array. */
export function sliceCodePoints(s: string, start: number, end: number): string {
  const a = utf16IndexOf(s, start);
  return s.slice(a, utf16IndexOf(s, end, a, start));
}

/** The code point at UTF-16 index `i` of `s` (which must not be the low half of a pair). */
export function codePointAt(s: string, i: number): number {
  return s.codePointAt(i) ?? 0;
}

const ZWJ = 0x200d;

/**
 * Whether a grapheme cluster may end between code points `before` and `after`: not before a combining
 * mark, a variation selector, an emoji modifier or a zero-width joiner, and not after a joiner. An
 * approximation of UAX #29 that keeps snippets from cutting 👩‍💻, é (e + U+0301) or 👍🏽 in half.
 */
export function isClusterBoundary(before: number | undefined, after: number | undefined): boolean {
  if (before === undefined || after === undefined) return true;
  if (before === ZWJ || after === ZWJ) return false;
  if ((after >= 0xfe00 && after <= 0xfe0f) || (after >= 0xe0100 && after <= 0xe01ef)) return false;
  if (after >= 0x1f3fb && after <= 0x1f3ff) return false;
  if (after >= 0xe0020 && after <= 0xe007f) return false; // emoji tag sequences (flags of regions)
  return !/\p{M}/u.test(String.fromCodePoint(after));
}
