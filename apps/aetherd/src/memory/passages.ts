import { codePointAt, codePointLength, isClusterBoundary } from './code-points';

/** A span of an entry's text, in code points: `[charStart, charEnd)`. */
export interface PassageSpan {
  charStart: number;
  charEnd: number;
}

/** A passage as the search index holds it: its span and its text. */
export interface SplitPassage extends PassageSpan {
  text: string;
}

/** A blank line (possibly with spaces, possibly several) ends a paragraph; it stays with the paragraph. */
const PARAGRAPH_BREAK = /\r?\n(?:[ \t\f\v]*\r?\n)+/g;
const SENTENCE_END = /[.!?。！？…]/u;
const SPACE = /\s/u;

/**
 * Splits an entry's text into passages that partition it: passage i+1 starts where passage i ends, the
 * first starts at 0 and the last ends at the text's length, so the spans alone say where every passage
 * lies and slicing the text by them gives the passages back exactly.
 *
 * A note is one passage. A document is cut between paragraphs (a paragraph ends after a blank line),
 * joining paragraphs while they fit in `passageLength` code points; a paragraph longer than that is cut
 * after the last sentence end or the last whitespace in the second half of the window, else at
 * `passageLength` code points (never inside a grapheme cluster such as 👩‍💻). Passages thus hold at most
 * `passageLength` code points unless one cluster is longer.
 */
export function splitPassages(text: string, document: boolean, passageLength: number): SplitPassage[] {
  if (!document || text.length === 0) {
    return [{ charStart: 0, charEnd: codePointLength(text), text }];
  }
  const out: SplitPassage[] = [];
  // The passage being built: from UTF-16 index `startU` (code point `startCp`), `len` code points so far.
  let startU = 0;
  let startCp = 0;
  let len = 0;
  const emit = (endU: number): void => {
    out.push({ charStart: startCp, charEnd: startCp + len, text: text.slice(startU, endU) });
    startU = endU;
    startCp += len;
    len = 0;
  };
  let unitStart = 0;
  const units: number[] = [];
  for (const m of text.matchAll(PARAGRAPH_BREAK)) units.push(m.index + m[0].length);
  units.push(text.length);
  for (const unitEnd of units) {
    if (unitEnd <= unitStart) continue;
    const unitLen = codePointLength(text.slice(unitStart, unitEnd));
    if (len > 0 && len + unitLen > passageLength) emit(unitStart);
    if (len === 0 && unitLen > passageLength) {
      // A paragraph longer than a passage: cut pieces off its front; the rest may join what follows.
      let u = unitStart;
      let left = unitLen;
      while (left > passageLength) {
        const cut = cutPoint(text, u, unitEnd, passageLength);
        len = cut.cps;
        emit(cut.index);
        u = cut.index;
        left -= cut.cps;
      }
      len = left;
    } else {
      len += unitLen;
    }
    unitStart = unitEnd;
  }
  if (len > 0) emit(text.length);
  return out;
}

/**
 * Where to end a piece that starts at UTF-16 index `from` and may hold `max` code points: after the last
 * sentence end followed by whitespace, else after the last whitespace, in the second half of the window;
 * else at `max` code points, moved back to a grapheme cluster boundary.
 */
function cutPoint(text: string, from: number, end: number, max: number): { index: number; cps: number } {
  let i = from;
  let n = 0;
  let prev: number | undefined;
  let sentence: { index: number; cps: number } | undefined;
  let space: { index: number; cps: number } | undefined;
  const half = Math.floor(max / 2);
  while (n < max && i < end) {
    const c = codePointAt(text, i);
    const ch = String.fromCodePoint(c);
    i += ch.length;
    n++;
    if (n >= half && SPACE.test(ch)) {
      space = { index: i, cps: n };
      if (prev !== undefined && SENTENCE_END.test(String.fromCodePoint(prev))) sentence = space;
    }
    prev = c;
  }
  const chosen = sentence ?? space;
  if (chosen) return chosen;
  // Hard cut: step back while the cut would split a cluster (at most a few code points).
  let index = i;
  let cps = n;
  while (cps > 1) {
    const before = codePointBefore(text, index);
    const after = index < end ? codePointAt(text, index) : undefined;
    if (isClusterBoundary(before, after)) break;
    index -= String.fromCodePoint(before!).length;
    cps--;
    if (n - cps > 32) return { index: i, cps: n }; // a pathological cluster: cut it after all
  }
  return { index, cps };
}

function codePointBefore(s: string, i: number): number | undefined {
  if (i <= 0) return undefined;
  const low = s.charCodeAt(i - 1);
  if (low >= 0xdc00 && low <= 0xdfff && i >= 2) {
    const high = s.charCodeAt(i - 2);
    if (high >= 0xd800 && high <= 0xdbff) return s.codePointAt(i - 2);
  }
  return low;
}

/** The passages' spans from their ends (what the store keeps): `[0, e0), [e0, e1), …`. */
export function spansFromEnds(ends: readonly number[]): PassageSpan[] {
  let start = 0;
  return ends.map((end) => {
    const span = { charStart: start, charEnd: end };
    start = end;
    return span;
  });
}
