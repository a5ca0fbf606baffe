import { Registry } from 'prom-client';
import { LabeledLatencyRecorder, LatencyRecorder } from './latency-recorder';

describe('LatencyRecorder', () => {
  it('reads its histogram back as cumulative buckets with count, sum, max and estimated quantiles', async () => {
    const registry = new Registry();
    const rec = new LatencyRecorder(registry, 'test_latency', 'test', [0.01, 0.1, 1]);
    for (const s of [0.005, 0.005, 0.05, 0.05, 0.05, 0.05, 0.5, 0.5, 0.5, 3]) rec.observe(s);
    rec.observe(-1);
    rec.observe(Number.NaN);
    rec.observe(Infinity);
    const h = await rec.snapshot();
    expect(h.count).toBe(10n);
    expect(h.sumSeconds).toBeCloseTo(4.71, 12);
    expect(h.buckets).toEqual([
      { upperBoundSeconds: 0.01, cumulativeCount: 2n },
      { upperBoundSeconds: 0.1, cumulativeCount: 6n },
      { upperBoundSeconds: 1, cumulativeCount: 9n },
      { upperBoundSeconds: Infinity, cumulativeCount: 10n },
    ]);
    expect(h.maxSeconds).toBe(3);
    // Rank 5 of 10 is the 3rd of 4 in (0.01, 0.1]; rank 9 is the top of (0.1, 1]; rank 9.9 is 90 % of
    // the way from 1 to the max, 3.
    expect(h.p50Seconds).toBeCloseTo(0.01 + 0.09 * (3 / 4), 12);
    expect(h.p90Seconds).toBeCloseTo(1, 12);
    expect(h.p99Seconds).toBeCloseTo(1 + 2 * 0.9, 12);
    const text = await registry.metrics();
    expect(text).toContain('aether_test_latency_seconds_count 10');
    expect(text).toContain('aether_test_latency_max_seconds 3');
  });

  it('reports an empty distribution as zeros', async () => {
    const h = await new LatencyRecorder(new Registry(), 'idle', 'idle', [1]).snapshot();
    expect(h).toEqual({
      count: 0n,
      sumSeconds: 0,
      buckets: [
        { upperBoundSeconds: 1, cumulativeCount: 0n },
        { upperBoundSeconds: Infinity, cumulativeCount: 0n },
      ],
      p50Seconds: 0,
      p90Seconds: 0,
      p99Seconds: 0,
      maxSeconds: 0,
    });
  });

  it('keeps one distribution and one max per label value', async () => {
    const rec = new LabeledLatencyRecorder(new Registry(), 'by_method', 'test', 'method', [0.1]);
    rec.observe('/a/A', 0.05);
    rec.observe('/a/B', 0.2);
    rec.observe('/a/B', 0.3);
    const all = await rec.snapshot();
    expect([...all.keys()].sort()).toEqual(['/a/A', '/a/B']);
    expect(all.get('/a/A')).toMatchObject({ count: 1n, maxSeconds: 0.05 });
    expect(all.get('/a/B')).toMatchObject({ count: 2n, maxSeconds: 0.3 });
    expect(all.get('/a/B')!.buckets[0]).toEqual({ upperBoundSeconds: 0.1, cumulativeCount: 0n });
    expect(rec.empty()).toMatchObject({
      count: 0n,
      buckets: [{ cumulativeCount: 0n }, { cumulativeCount: 0n }],
    });
  });
});
