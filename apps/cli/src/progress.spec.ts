import { ProgressBar, statusLine } from './progress';

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

describe('statusLine', () => {
  const terminal = () => {
    const out: string[] = [];
    return {
      out,
      stream: { write: (s: string) => out.push(s) > 0, columns: 30 } as unknown as NodeJS.WriteStream,
    };
  };

  it('prints lines above the status line, redrawing it below them, with the width it may use', () => {
    const { out, stream } = terminal();
    const widths: number[] = [];
    const line = statusLine(stream, (w) => {
      widths.push(w);
      return 'loss ▇▅▃';
    });
    line.print('step 1\n');
    expect(out.map(plain)).toEqual(['step 1\n', '\rloss ▇▅▃']);
    line.print('step 2\n');
    expect(out.slice(2).map(plain)).toEqual(['\r', 'step 2\n', '\rloss ▇▅▃']);
    expect(widths).toEqual([29, 29]);
    line.stop();
    expect(plain(out.at(-1))).toBe('\r');
  });

  it('shows nothing while render has nothing, and redraws at once when asked', () => {
    const { out, stream } = terminal();
    const shows: { text?: string } = {};
    const line = statusLine(stream, () => shows.text, true);
    line.print('head\n');
    expect(out).toEqual(['head\n']);
    shows.text = 'planning';
    line.changed(true);
    expect(out.slice(1).map(plain)).toEqual(['\rplanning']);
    line.stop();
  });
});
