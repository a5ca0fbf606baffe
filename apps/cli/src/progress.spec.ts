import { ProgressBar } from './progress';

/** The drawn text without the erase-to-end-of-line sequence. */
const plain = (s: string | undefined): string => (s ?? '').split('\x1b[K').join('');

describe('ProgressBar', () => {
  it('draws percent, bar, bytes, rate and ETA, throttled, and a final line with a newline', () => {
    const out: string[] = [];
    let t = 0;
    const bar = new ProgressBar(
      'upload',
      100 * 1024 * 1024,
      { write: (s) => out.push(s), columns: 80 },
      () => t,
    );
    t = 1000;
    bar.advance(25 * 1024 * 1024);
    expect(out).toHaveLength(1);
    expect(plain(out[0])).toBe('\rupload  25% [#####···············]  25 MiB / 100 MiB  25 MiB/s  ETA 3s');
    t = 1050; // within 100 ms of the last draw: no redraw
    bar.advance(1024 * 1024);
    expect(out).toHaveLength(1);
    t = 4000;
    bar.advance(74 * 1024 * 1024);
    bar.finish();
    expect(plain(out.at(-1))).toBe(
      '\rupload 100% [####################]  100 MiB / 100 MiB  25 MiB/s  in 4s\n',
    );
  });
});
