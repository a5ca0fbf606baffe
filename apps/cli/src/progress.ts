import { formatBytes, formatDuration } from './units';

/** Where a progress bar draws: a terminal (stderr) with a width. */
export interface ProgressSink {
  write(text: string): void;
  columns?: number;
}

/**
 * A one-line transfer progress bar on a terminal, like curl's or rsync's:
 * `upload  42% [########·············]  420 MiB / 1 GiB  210 MiB/s  ETA 3.0s`. Redrawn at most 10
 * times a second; `done()` leaves the final line and a newline.
 */
export class ProgressBar {
  private done_ = 0;
  private lastDraw = 0;
  private readonly started: number;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly sink: ProgressSink,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** Adds transferred bytes and redraws when due. */
  advance(bytes: number): void {
    this.done_ += bytes;
    const t = this.now();
    if (t - this.lastDraw >= 100) {
      this.lastDraw = t;
      this.sink.write(`\r${this.line(t)}\x1b[K`);
    }
  }

  /** Draws the final state and ends the line. */
  finish(): void {
    this.sink.write(`\r${this.line(this.now(), true)}\x1b[K\n`);
  }

  /** The line as it would be drawn now (exposed for tests). */
  line(t: number, final = false): string {
    const elapsed = Math.max(1, t - this.started);
    const rate = (this.done_ / elapsed) * 1000;
    const fraction = this.total > 0 ? Math.min(1, this.done_ / this.total) : 1;
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const width = Math.max(10, Math.min(40, (this.sink.columns ?? 80) - 60));
    const filled = Math.round(fraction * width);
    const bar = `[${'#'.repeat(filled)}${'·'.repeat(width - filled)}]`;
    const eta =
      final || rate <= 0
        ? `in ${formatDuration(elapsed)}`
        : `ETA ${formatDuration(((this.total - this.done_) / rate) * 1000)}`;
    return `${this.label} ${pct} ${bar}  ${formatBytes(this.done_)} / ${formatBytes(this.total)}  ${formatBytes(Math.round(rate))}/s  ${eta}`;
  }
}

/** Progress is drawn for transfers of at least this size, when stderr is a terminal. */
export const PROGRESS_MIN_BYTES = 8 * 1024 * 1024;

/** A progress bar on stderr if it is a terminal and the transfer is big enough (or forced), else undefined. */
export function progressFor(
  label: string,
  total: number,
  mode: boolean | undefined,
): ProgressBar | undefined {
  const want = mode ?? (process.stderr.isTTY && total >= PROGRESS_MIN_BYTES);
  if (!want) return undefined;
  return new ProgressBar(label, total, {
    write: (s) => process.stderr.write(s),
    columns: process.stderr.columns ?? 80,
  });
}

/** A line kept at the bottom of a terminal, under the lines printed above it. */
export interface StatusLine {
  /** Prints `text` (to stdout) above the line. */
  print(text: string): void;
  /** Prints `text` to stderr above the line. */
  note(text: string): void;
  /** What the line shows has changed: redraw it at the next tick, or now. */
  changed(now?: boolean): void;
  /** Stops redrawing and clears the line. */
  stop(): void;
}

/**
 * Redraws `render(width)` in place on `out` at most ten times a second: when it changed, or on every tick
 * when `animated` (a spinner). `render` returns undefined to show nothing.
 */
export function statusLine(
  out: NodeJS.WriteStream,
  render: (width: number) => string | undefined,
  animated = false,
): StatusLine {
  let shown = false;
  let dirty = true;
  const clear = (): void => {
    if (shown) out.write('\r\x1b[K');
    shown = false;
  };
  const draw = (): void => {
    if (!dirty && !animated) return;
    dirty = false;
    const line = render(Math.max(20, (out.columns || 80) - 1));
    if (line === undefined) return;
    out.write(`\r${line}\x1b[K`);
    shown = true;
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  return {
    print: (text) => {
      if (!text) return;
      clear();
      out.write(text);
      dirty = true;
      draw();
    },
    note: (text) => {
      clear();
      process.stderr.write(text);
      dirty = true;
      draw();
    },
    changed: (now = false) => {
      dirty = true;
      if (now) {
        clear();
        draw();
      }
    },
    stop: () => {
      clearInterval(timer);
      clear();
    },
  };
}
