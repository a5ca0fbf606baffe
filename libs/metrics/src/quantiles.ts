/** One cumulative bucket: observations at or below `upperBound` (the last bound is `Infinity`). */
export interface CumulativeBucket {
  upperBound: number;
  cumulativeCount: number;
}

/**
 * Estimates the `q` quantile (0 < q ≤ 1) of a cumulative histogram by linear interpolation within the
 * bucket that holds it, as Prometheus's `histogram_quantile` does: the bucket's lower bound is the
 * previous bucket's upper bound (0 for the first). A bucket's upper bound is capped at `max`, the largest
 * observation, which is exact: so the `+Inf` bucket interpolates up to `max`, and no estimate ever
 * exceeds an observed value. 0 when there are no observations.
 */
export function estimateQuantile(buckets: readonly CumulativeBucket[], q: number, max: number): number {
  const count = buckets.length > 0 ? buckets[buckets.length - 1]!.cumulativeCount : 0;
  if (count === 0) return 0;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of buckets) {
    if (b.cumulativeCount >= rank && b.cumulativeCount > lowerCount) {
      const upper = Math.min(b.upperBound, max);
      const lower = Math.min(lowerBound, upper);
      return lower + ((upper - lower) * (rank - lowerCount)) / (b.cumulativeCount - lowerCount);
    }
    lowerBound = b.upperBound;
    lowerCount = b.cumulativeCount;
  }
  return max;
}
