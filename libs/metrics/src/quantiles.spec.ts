import { estimateQuantile, type CumulativeBucket } from './quantiles';

const buckets = (pairs: [number, number][]): CumulativeBucket[] =>
  pairs.map(([upperBound, cumulativeCount]) => ({ upperBound, cumulativeCount }));

describe('estimateQuantile', () => {
  it('is 0 when there are no observations', () => {
    expect(
      estimateQuantile(
        buckets([
          [1, 0],
          [Infinity, 0],
        ]),
        0.5,
        0,
      ),
    ).toBe(0);
    expect(estimateQuantile([], 0.99, 0)).toBe(0);
  });

  it('interpolates linearly within the bucket that holds the rank, from the previous bound', () => {
    // 10 observations in (0, 1], 10 in (1, 2]: the median is the top of the first bucket, p75 halfway
    // through the second.
    const b = buckets([
      [1, 10],
      [2, 20],
      [Infinity, 20],
    ]);
    expect(estimateQuantile(b, 0.5, 2)).toBe(1);
    expect(estimateQuantile(b, 0.75, 2)).toBe(1.5);
    expect(estimateQuantile(b, 0.25, 2)).toBe(0.5);
  });

  it('interpolates up to the largest observation in the +Inf bucket', () => {
    const b = buckets([
      [1, 2],
      [Infinity, 4],
    ]);
    // Ranks 3 and 4 of 4 lie in (1, max = 9]: p75 is halfway, p100 is the max.
    expect(estimateQuantile(b, 0.75, 9)).toBe(5);
    expect(estimateQuantile(b, 1, 9)).toBe(9);
  });

  it('never reports more than the largest observation', () => {
    const b = buckets([
      [0.1, 0],
      [10, 3],
      [Infinity, 3],
    ]);
    expect(estimateQuantile(b, 0.99, 0.4)).toBeLessThanOrEqual(0.4);
    expect(estimateQuantile(b, 0.99, 0.4)).toBeGreaterThan(0.1);
  });

  it('skips empty buckets before the rank', () => {
    const b = buckets([
      [1, 0],
      [2, 0],
      [4, 4],
      [Infinity, 4],
    ]);
    expect(estimateQuantile(b, 0.5, 4)).toBe(3);
  });
});
