import { readFileSync } from 'node:fs';

/** Busy CPU time of the whole machine so far, in microseconds (from /proc/stat; NaN elsewhere). */
export function machineBusyMicros(): number {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait, in USER_HZ (1/100 s) ticks.
    const busy = fields.slice(0, 8).reduce((sum, v, i) => (i === 3 || i === 4 ? sum : sum + v), 0);
    return busy * 10_000;
  } catch {
    return NaN;
  }
}
