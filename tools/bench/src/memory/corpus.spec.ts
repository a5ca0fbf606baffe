import { Corpus, PLANTED, word } from './corpus';

describe('the memory benchmark corpus', () => {
  const options = { passages: 3000, vocabulary: 5000, exponent: 1, seed: 42 };

  it('is the same on every run', () => {
    const a = [...new Corpus(options).passages(0, 50)];
    const b = [...new Corpus(options).passages(0, 50)];
    expect(a).toEqual(b);
    expect([...new Corpus(options).passages(10, 20)]).toEqual(a.slice(10, 20));
  });

  it('plants rare terms in exactly their number of passages, medium terms every period, one tag each', () => {
    const corpus = new Corpus(options);
    const passages = [...corpus.passages(0, options.passages)];
    const count = (term: string): number => passages.filter((p) => p.text.split(' ').includes(term)).length;
    for (const rare of PLANTED.rare) expect(count(rare)).toBe(PLANTED.rareHits);
    for (const medium of PLANTED.medium)
      expect(count(medium)).toBeGreaterThan(options.passages / corpus.mediumPeriod / 2);
    for (const p of passages) {
      const words = p.text.split(' ').filter((w) => !w.startsWith('zyq'));
      expect(words.length).toBeGreaterThanOrEqual(50);
      expect(words.length).toBeLessThanOrEqual(70);
      expect(PLANTED.tags).toContain(p.tag);
    }
    // Zipf: the most frequent word is in nearly every passage, a word of rank 4000 in few.
    expect(count(corpus.wordOfRank(0))).toBeGreaterThan(options.passages * 0.9);
    expect(count(corpus.wordOfRank(4000))).toBeLessThan(options.passages * 0.05);
  });

  it('makes unique words that no planted term equals', () => {
    const words = new Set(Array.from({ length: 100_000 }, (_, i) => word(i)));
    expect(words.size).toBe(100_000);
    for (const t of [...PLANTED.rare, ...PLANTED.medium]) expect(words.has(t)).toBe(false);
  });
});
