import Database from 'better-sqlite3';
import { memoryV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import { codePointLength, sliceCodePoints } from './code-points';
import {
  QueryChecker,
  filterTokens,
  fuseRrf,
  lexicalProblem,
  markSpans,
  matchExpression,
  parseMarked,
  snippetWindow,
} from './search';

function rejection(fn: () => void): RpcError {
  try {
    fn();
  } catch (err) {
    return err as RpcError;
  }
  throw new Error('expected an error');
}

describe('QueryChecker', () => {
  const checker = new QueryChecker();
  afterAll(() => checker.close());

  it.each([
    ['"unterminated', 'unterminated string', '0'],
    ['foo "bar', 'unterminated string', '4'],
    ['AND', 'AND needs a term on each side', '0'],
    ['foo(', 'unbalanced "("', '3'],
    ['NEAR(', 'unbalanced "("', '4'],
    ['(foo', 'unbalanced "("', '0'],
    ['foo) OR (bar', 'unbalanced ")"', '3'],
    ['NEAR(a', 'unbalanced "("', '4'],
    ['foo AND', 'the query ends where a term was expected', '7'],
    ['node.js', 'put terms with punctuation in double quotes', '4'],
    ['nosuch:foo', 'unknown column "nosuch"', '0'],
    ['meta:zk1', 'unknown column "meta"', '0'],
    ['*', 'cannot start with "*"', '0'],
    ['   ', 'is empty', undefined],
    ['', 'is empty', undefined],
    ['😀😀 "x', 'unterminated string', '3'],
  ])('refuses %j as INVALID_QUERY (%s)', (query, message, position) => {
    const err = rejection(() => checker.check(query));
    expect(err.codeName).toBe('INVALID_ARGUMENT');
    expect(err.reason).toBe('INVALID_QUERY');
    expect(err.message).toContain(message);
    expect(err.metadata['position']).toBe(position);
  });

  it('refuses a query over 4096 bytes and one with NUL', () => {
    expect(rejection(() => checker.check('a '.repeat(2049))).reason).toBe('INVALID_QUERY');
    expect(rejection(() => checker.check('a\0b')).metadata['position']).toBe('1');
  });

  const valid = [
    'quick',
    'quick brown',
    '"quick brown"',
    'qu*',
    'quick OR slow',
    'quick NOT fox',
    '(quick OR slow) AND fox',
    'NEAR(quick dog, 10)',
    'title:hello',
    'text:quick AND title:hello',
    '{title text} : quick',
    '- title : quick',
    '^quick',
    '"a "" quote"',
    '東京',
    'café',
    '"node.js" runtime',
    'a + b',
  ];

  it.each(valid)('accepts %j', (query) => expect(() => checker.check(query)).not.toThrow());

  it('keeps every valid query valid when it is wrapped and ANDed with filter tokens', () => {
    const db = new Database(':memory:');
    db.exec(
      "CREATE VIRTUAL TABLE passages USING fts5(title, text, meta, tokenize = 'unicode61 remove_diacritics 2')",
    );
    db.prepare('INSERT INTO passages (rowid, title, text, meta) VALUES (1, ?, ?, ?)').run(
      'hello',
      'the quick brown fox jumps over the lazy dog',
      'zk1 ztabc',
    );
    const tokens = filterTokens({
      tags: ['a', 'b'],
      actor: 'spiffe://x/y',
      intentId: 'i',
      jobId: '',
      kind: memoryV1.EntryKind.ENTRY_KIND_NOTE,
    });
    const stmt = db.prepare('SELECT rowid FROM passages WHERE passages MATCH ?');
    for (const q of valid) {
      expect(() => stmt.all(matchExpression(q, tokens))).not.toThrow();
      expect(() => stmt.all(matchExpression(q, []))).not.toThrow();
    }
    db.close();
  });
});

describe('lexicalProblem', () => {
  it('skips "" escapes inside strings and parentheses inside strings', () => {
    expect(lexicalProblem('"a "" (b"')).toBeUndefined();
    expect(lexicalProblem('"(" AND ")"')).toBeUndefined();
    expect(lexicalProblem('")" )')).toMatchObject({ position: 4 });
  });
});

describe('matchExpression', () => {
  it('confines a prefix query to title and text so that it cannot match filter tokens', () => {
    expect(matchExpression('z*', [])).toBe('{title text} : (z*)');
    expect(matchExpression('a b', ['zk1'])).toBe('(a b) AND meta : (zk1)');
  });

  it('turns any filter value into one safe token', () => {
    const tokens = filterTokens({
      tags: ['with space', 'AND', '"quote"'],
      actor: 'spiffe://aether.local/users/a b',
      intentId: 'x) OR (y',
      jobId: 'NEAR(',
      kind: memoryV1.EntryKind.ENTRY_KIND_DOCUMENT,
    });
    for (const t of tokens) expect(t).toMatch(/^z[a-z][0-9a-f]*$/);
    expect(new Set(tokens).size).toBe(tokens.length);
  });
});

describe('highlights and snippets', () => {
  const O = '\uE000';
  const C = '\uE001';

  it('reads highlight() output into the text and code point spans', () => {
    const marked = `a😀 ${O}東京${C} b ${O}👩‍💻${C}`;
    const { text, spans } = parseMarked(marked, O, C);
    expect(text).toBe('a😀 東京 b 👩‍💻');
    expect(spans).toEqual([
      { start: 3, end: 5 },
      { start: 8, end: 11 },
    ]);
    for (const s of spans) expect(['東京', '👩‍💻']).toContain(sliceCodePoints(text, s.start, s.end));
  });

  it('marks spans with the caller’s markers', () => {
    expect(markSpans('a😀 東京 b', [{ start: 3, end: 5 }], '<<', '>>')).toBe('a😀 <<東京>> b');
    expect(markSpans('abc', [{ start: 0, end: 3 }], '[', ']')).toBe('[abc]');
  });

  it('shows a short passage whole and centres a long one on the first match, on word boundaries', () => {
    expect(snippetWindow('short text', 10, [], 200)).toEqual({ start: 0, end: 10 });
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const target = words.indexOf('w120');
    const len = codePointLength(words);
    const w = snippetWindow(words, len, [{ start: target, end: target + 4 }], 60);
    expect(w.start).toBeLessThanOrEqual(target);
    expect(w.end).toBeGreaterThanOrEqual(target + 4);
    expect(w.end - w.start).toBeLessThanOrEqual(60);
    expect(w.end - w.start).toBeGreaterThan(40);
    const snippet = sliceCodePoints(words, w.start, w.end);
    expect(snippet).toMatch(/^w\d+( w\d+)*$/);
  });

  it('never cuts a grapheme cluster at the edges of a snippet', () => {
    const text = '👩‍💻'.repeat(100);
    const len = codePointLength(text);
    const w = snippetWindow(text, len, [{ start: 150, end: 153 }], 50);
    expect(w.start % 3).toBe(0);
    expect(w.end % 3).toBe(0);
  });
});

describe('fuseRrf', () => {
  it('scores Σ 1/(k + rank) and puts items found by both rankings first', () => {
    const fused = fuseRrf([
      ['a', 'b', 'c'],
      ['c', 'd', 'a'],
    ]);
    const score = Object.fromEntries(fused.map((f) => [f.key, f.score]));
    expect(score['a']).toBeCloseTo(1 / 61 + 1 / 63);
    expect(score['c']).toBeCloseTo(1 / 63 + 1 / 61);
    expect(score['b']).toBeCloseTo(1 / 62);
    expect(score['d']).toBeCloseTo(1 / 62);
    // a and c tie: a was seen first; b and d tie: b was seen first.
    expect(fused.map((f) => f.key)).toEqual(['a', 'c', 'b', 'd']);
  });

  it('takes k, counts a repeat within a ranking once and leaves a single ranking in its order', () => {
    expect(fuseRrf([[1, 2, 3]], 1).map((f) => f.score)).toEqual([1 / 2, 1 / 3, 1 / 4]);
    expect(fuseRrf([['x', 'x', 'y']])).toEqual([
      { key: 'x', score: 1 / 61 },
      { key: 'y', score: 1 / 63 },
    ]);
    expect(fuseRrf([])).toEqual([]);
    expect(() => fuseRrf([['a']], 0)).toThrow(RangeError);
  });
});
