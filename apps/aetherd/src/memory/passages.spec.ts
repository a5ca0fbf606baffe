import { codePointLength, sliceCodePoints, utf16IndexOf } from './code-points';
import { splitPassages, spansFromEnds } from './passages';

/** Every passage is the text sliced at its span, and together they partition the text. */
function expectPartition(text: string, passages: ReturnType<typeof splitPassages>): void {
  expect(passages.length).toBeGreaterThan(0);
  expect(passages[0]!.charStart).toBe(0);
  expect(passages[passages.length - 1]!.charEnd).toBe(codePointLength(text));
  passages.forEach((p, i) => {
    if (i > 0) expect(p.charStart).toBe(passages[i - 1]!.charEnd);
    expect(p.charEnd).toBeGreaterThan(p.charStart);
    expect(sliceCodePoints(text, p.charStart, p.charEnd)).toBe(p.text);
    expect(Array.from(text).slice(p.charStart, p.charEnd).join('')).toBe(p.text);
  });
  expect(passages.map((p) => p.text).join('')).toBe(text);
}

describe('code points', () => {
  it('count a surrogate pair once and a ZWJ sequence as its code points', () => {
    expect(codePointLength('abc')).toBe(3);
    expect(codePointLength('😀')).toBe(1);
    expect(codePointLength('👩‍💻')).toBe(3);
    expect(codePointLength('e\u0301')).toBe(2);
    expect(codePointLength('東京')).toBe(2);
  });

  it('slice like Array.from(text).slice().join()', () => {
    const text = 'a😀b👩‍💻c東京é\u0301';
    for (let s = 0; s <= codePointLength(text); s++)
      for (let e = s; e <= codePointLength(text); e++)
        expect(sliceCodePoints(text, s, e)).toBe(Array.from(text).slice(s, e).join(''));
    expect(utf16IndexOf(text, 2)).toBe(3);
  });
});

describe('splitPassages', () => {
  it('keeps a note in one passage, however long', () => {
    const text = 'word '.repeat(1000);
    const passages = splitPassages(text, false, 100);
    expect(passages).toEqual([{ charStart: 0, charEnd: 5000, text }]);
  });

  it('joins paragraphs of a document while they fit, cutting after a blank line', () => {
    const p1 = 'First paragraph, short.\n\n';
    const p2 = 'Second paragraph, also short.\n\n';
    const p3 = 'x'.repeat(80) + '\n\n';
    const p4 = 'Last one.';
    const text = p1 + p2 + p3 + p4;
    const passages = splitPassages(text, true, 100);
    expectPartition(text, passages);
    expect(passages.map((p) => p.text)).toEqual([p1 + p2, p3 + p4]);
    expect(passages.map((p) => [p.charStart, p.charEnd])).toEqual([
      [0, 56],
      [56, 147],
    ]);
  });

  it('treats CRLF blank lines and lines of spaces as paragraph breaks', () => {
    const text = `${'a'.repeat(60)}\r\n   \r\n${'b'.repeat(60)}\n\t\n\n${'c'.repeat(10)}`;
    const passages = splitPassages(text, true, 100);
    expectPartition(text, passages);
    expect(passages).toHaveLength(2);
    expect(passages[0]!.text.endsWith('\r\n   \r\n')).toBe(true);
  });

  it('cuts a long paragraph after a sentence or a space in the second half of the window', () => {
    const sentence = 'The quick brown fox jumps over the lazy dog. ';
    const text = sentence.repeat(20);
    const passages = splitPassages(text, true, 100);
    expectPartition(text, passages);
    for (const p of passages) expect(p.charEnd - p.charStart).toBeLessThanOrEqual(100);
    for (const p of passages.slice(0, -1)) expect(p.text.endsWith('dog. ')).toBe(true);
  });

  it('never cuts inside a surrogate pair or a grapheme cluster, even without spaces', () => {
    const text = '👩‍💻'.repeat(60) + '😀'.repeat(50) + 'e\u0301'.repeat(70);
    const passages = splitPassages(text, true, 100);
    expectPartition(text, passages);
    for (const p of passages) {
      expect(p.text).not.toMatch(/^(?:\u200d|\u0301)/u);
      expect(p.text).not.toMatch(/\u200d$/u);
      expect(p.charEnd - p.charStart).toBeLessThanOrEqual(100);
    }
  });

  it('splits CJK text without spaces into passages of at most the length', () => {
    const text = '東京は日本の首都です。'.repeat(40);
    const passages = splitPassages(text, true, 100);
    expectPartition(text, passages);
    expect(passages.length).toBeGreaterThanOrEqual(4);
  });

  it('gives the spans back from the stored ends', () => {
    expect(spansFromEnds([3, 7, 7, 10])).toEqual([
      { charStart: 0, charEnd: 3 },
      { charStart: 3, charEnd: 7 },
      { charStart: 7, charEnd: 7 },
      { charStart: 7, charEnd: 10 },
    ]);
  });

  it('partitions random documents exactly', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = [
      'word',
      ' ',
      '\n',
      '\n\n',
      '. ',
      '😀',
      '👩‍💻',
      '東京',
      'e\u0301',
      '\r\n\r\n',
      'x'.repeat(30),
    ];
    for (let round = 0; round < 50; round++) {
      let text = '';
      const n = 20 + rnd(400);
      for (let i = 0; i < n; i++) text += pieces[rnd(pieces.length)]!;
      expectPartition(text, splitPassages(text, true, 100 + rnd(3) * 50));
    }
  });
});
