import { Histogram, type HistogramData } from './protocol';

describe('Histogram', () => {
  it('reports percentiles to 10 µs below 100 ms and 1 ms above, clamped to the exact min and max', () => {
    const h = new Histogram();
    for (let i = 1; i <= 100; i++) h.add(i / 10); // 0.1 … 10 ms
    expect(h.count).toBe(100);
    expect(h.percentile(50)).toBeCloseTo(5.005, 6);
    expect(h.percentile(99)).toBeCloseTo(9.905, 6);
    expect(h.percentile(100)).toBe(10);
    expect(h.min).toBe(0.1);
    expect(h.mean).toBeCloseTo(5.05, 9);

    const slow = new Histogram();
    slow.add(250.2);
    slow.add(250.7);
    expect(slow.percentile(50)).toBe(250.5);
    slow.add(20_000);
    expect(slow.percentile(100)).toBe(20_000);
  });

  it('counts negative samples in the first bucket', () => {
    const h = new Histogram();
    h.add(-0.05);
    h.add(1);
    expect(h.negative).toBe(1);
    expect(h.percentile(50)).toBe(0.005);
  });

  it('adds up across processes through its JSON form', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let i = 0; i < 90; i++) a.add(1);
    for (let i = 0; i < 10; i++) b.add(50);
    const merged = new Histogram()
      .merge(a.toJSON())
      .merge(JSON.parse(JSON.stringify(b.toJSON())) as HistogramData);
    expect(merged.count).toBe(100);
    expect(merged.percentile(50)).toBe(1.005);
    expect(merged.percentile(95)).toBe(50);
    expect(merged.max).toBe(50);
    expect(merged.summary()).toEqual({ count: 100, mean: 5.9, p50: 1.005, p99: 50, max: 50 });
  });

  it('is NaN when empty', () => {
    expect(new Histogram().percentile(50)).toBeNaN();
    expect(new Histogram().merge(new Histogram().toJSON()).count).toBe(0);
  });
});
