/**
 * A synthetic corpus for the memory benchmark, the same for a given size on every run: passages of about
 * 60 words drawn from a Zipf-distributed vocabulary of pronounceable made-up words (so there are very
 * common, medium and rare terms, as in prose), with planted terms whose number of hits is known exactly.
 */

/** mulberry32: a small, fast, deterministic PRNG; [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit integer hash (lowbias32), for choices that must not correlate with each other. */
function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

const CONSONANTS = 'bcdfghklmnprstvw';
const VOWELS = 'aeiou';

/** The i-th word of the vocabulary: syllables of [bcdfghklmnprstvw][aeiou], unique per index. */
export function word(i: number): string {
  let w = '';
  let n = i;
  do {
    const s = n % 80;
    w += CONSONANTS[Math.floor(s / 5)]! + VOWELS[s % 5]!;
    n = Math.floor(n / 80);
  } while (n > 0);
  return w;
}

export interface CorpusOptions {
  passages: number;
  vocabulary: number;
  /** Zipf exponent: the word of rank r has probability ∝ 1/r^s. */
  exponent: number;
  seed: number;
}

/** The planted terms: none of them can be a vocabulary word (they hold letters words never do). */
export interface Planted {
  /** Each in exactly `rareHits` passages. */
  rare: string[];
  rareHits: number;
  /** Each in about 10,000 passages (1 % of a million), at most every tenth passage. */
  medium: string[];
  /** Every passage has one tag of ten: `tag-0` … `tag-9` (10 % each). */
  tags: string[];
}

export const PLANTED: Planted = {
  rare: Array.from({ length: 20 }, (_, i) => `zyqrare${i}`),
  rareHits: 50,
  medium: Array.from({ length: 10 }, (_, i) => `zyqmedium${i}`),
  tags: Array.from({ length: 10 }, (_, i) => `tag-${i}`),
};

/** The passages: text and tag of each, generated in order. */
export class Corpus {
  private readonly cdf: Float64Array;
  private readonly words: string[];
  private readonly rareAt = new Map<number, string[]>();

  constructor(readonly options: CorpusOptions) {
    this.words = Array.from({ length: options.vocabulary }, (_, i) => word(i));
    this.cdf = new Float64Array(options.vocabulary);
    let acc = 0;
    for (let r = 0; r < options.vocabulary; r++) {
      acc += 1 / Math.pow(r + 1, options.exponent);
      this.cdf[r] = acc;
    }
    const pick = prng(options.seed ^ 0x5eed);
    for (const term of PLANTED.rare) {
      const chosen = new Set<number>();
      while (chosen.size < Math.min(PLANTED.rareHits, options.passages))
        chosen.add(Math.floor(pick() * options.passages));
      for (const i of chosen) this.rareAt.set(i, [...(this.rareAt.get(i) ?? []), term]);
    }
  }

  /** The vocabulary word of rank r (0 is the most common). */
  wordOfRank(r: number): string {
    return this.words[r]!;
  }

  /** Every how many passages a medium term is planted: about 10,000 hits, at most 10 %. */
  get mediumPeriod(): number {
    return Math.max(10, Math.round(this.options.passages / 10_000));
  }

  /** The medium terms planted in passage i (by a hash of i and the term, so independent of the tag). */
  mediumAt(i: number): string[] {
    return PLANTED.medium.filter((_, k) => mix(i * 16 + k) % this.mediumPeriod === 0);
  }

  static tagOf(i: number): string {
    return PLANTED.tags[mix(i ^ 0x7a67) % PLANTED.tags.length]!;
  }

  /** Generates passages [from, to): 50-70 Zipf words each, with the planted terms at random places. */
  *passages(from: number, to: number): Generator<{ text: string; tag: string }> {
    const total = this.cdf[this.cdf.length - 1]!;
    for (let i = from; i < to; i++) {
      const rnd = prng(this.options.seed + i * 2654435761);
      const n = 50 + Math.floor(rnd() * 21);
      const out: string[] = [];
      for (let j = 0; j < n; j++) {
        const u = rnd() * total;
        let lo = 0;
        let hi = this.cdf.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (this.cdf[mid]! < u) lo = mid + 1;
          else hi = mid;
        }
        out.push(this.words[lo]!);
      }
      for (const t of [...this.mediumAt(i), ...(this.rareAt.get(i) ?? [])])
        out.splice(Math.floor(rnd() * out.length), 0, t);
      yield { text: out.join(' '), tag: Corpus.tagOf(i) };
    }
  }
}
