import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { type AetherClient, RpcError } from '@aether/client';
import { jobsV1, metricsV1 } from '@aether/proto';
import { arg, exitOnClosedPipe, withClient } from '../command-support';
import { errorText, withAetherErrors } from '../errors';
import {
  type CpuSample,
  CpuTracker,
  jobCpuSample,
  parseInterval,
  processCpuSample,
  TOP_STATES,
  type TopSnapshot,
  topScreen,
} from '../top-format';

/** How many running, starting and pending jobs one refresh reads at most. */
const JOBS_PER_REFRESH = 500;
/** One refresh gives up on a call after this long (and shows why). */
const CALL_TIMEOUT_MS = 5_000;
/** The key of the daemon's own CPU in the tracker (job names all start with `jobs/`). */
const DAEMON_KEY = 'daemon';

/** q, Q, Ctrl-C and Ctrl-D end a live view (raw mode delivers Ctrl-C as a byte, not SIGINT). */
const QUIT_KEYS = ['q', 'Q', '\u0003', '\u0004'];

const ANSI = {
  enterAltScreen: '\x1b[?1049h',
  leaveAltScreen: '\x1b[?1049l',
  hideCursor: '\x1b[?25l',
  showCursor: '\x1b[?25h',
  home: '\x1b[H',
  clearToLineEnd: '\x1b[K',
  clearBelow: '\x1b[J',
};

/** Reads the metrics and the active jobs at once. A failed metrics call is shown, not thrown. */
async function readSnapshot(c: AetherClient): Promise<{ snapshot: TopSnapshot; jobsFailure?: RpcError }> {
  const [metrics, jobs] = await Promise.allSettled([
    c.call(
      c.metrics,
      'getMetrics',
      metricsV1.GetMetricsRequest.fromPartial({ readMask: ['jobs', 'process', 'host'] }),
      { timeoutMs: CALL_TIMEOUT_MS },
    ),
    c.call(
      c.jobs,
      'listJobs',
      jobsV1.ListJobsRequest.fromPartial({ states: TOP_STATES, pageSize: JOBS_PER_REFRESH }),
      { timeoutMs: CALL_TIMEOUT_MS },
    ),
  ]);
  const snapshot: TopSnapshot = {
    atMs: Date.now(),
    jobs: jobs.status === 'fulfilled' ? jobs.value.jobs : [],
    moreJobs: jobs.status === 'fulfilled' && jobs.value.nextPageToken !== '',
    ...(metrics.status === 'fulfilled'
      ? { metrics: metrics.value }
      : { metricsError: errorText(metrics.reason) }),
    ...(jobs.status === 'rejected' ? { jobsError: errorText(jobs.reason) } : {}),
  };
  return jobs.status === 'rejected' ? { snapshot, jobsFailure: RpcError.from(jobs.reason) } : { snapshot };
}

/** The screen of a snapshot, with CPU% against the previous one the tracker saw. */
function render(tracker: CpuTracker, s: TopSnapshot, layout: Parameters<typeof topScreen>[3]): string {
  const samples = new Map<string, CpuSample | undefined>(
    s.jobs.map((j) => [j.name, jobCpuSample(j, s.atMs)]),
  );
  samples.set(DAEMON_KEY, processCpuSample(s.metrics, s.atMs));
  const cpu = tracker.update(samples);
  return topScreen(s, cpu, cpu.get(DAEMON_KEY), layout);
}

/**
 * Redraws every `intervalMs` on the alternate screen until q, Ctrl-C or SIGTERM. Keys are read in raw
 * mode only when stdin is a terminal; the terminal is put back however this ends.
 */
async function liveTop(c: AetherClient, intervalMs: number): Promise<void> {
  const out = process.stdout;
  const input = process.stdin;
  const tracker = new CpuTracker();
  const quit = new AbortController();
  let wake = new AbortController();
  const refreshNow = (): void => wake.abort();
  const onKey = (b: Buffer): void => {
    const k = b.toString('utf8');
    if (QUIT_KEYS.some((q) => k.includes(q))) quit.abort();
    else refreshNow();
  };
  const onSignal = (): void => quit.abort();
  const restore = (): void => {
    if (input.isTTY) input.setRawMode(false);
    out.write(ANSI.showCursor + ANSI.leaveAltScreen);
  };
  process.on('exit', restore);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  out.on('resize', refreshNow);
  out.write(ANSI.enterAltScreen + ANSI.hideCursor);
  if (input.isTTY) {
    input.setRawMode(true);
    input.on('data', onKey);
    input.resume();
  }
  try {
    while (!quit.signal.aborted) {
      const { snapshot } = await readSnapshot(c);
      if (quit.signal.aborted) break;
      const screen = render(tracker, snapshot, {
        ...(out.columns ? { width: out.columns } : {}),
        ...(out.rows ? { height: out.rows } : {}),
        intervalMs,
      });
      out.write(
        ANSI.home +
          screen.trimEnd().split('\n').join(`${ANSI.clearToLineEnd}\n`) +
          ANSI.clearToLineEnd +
          ANSI.clearBelow,
      );
      wake = new AbortController();
      await sleep(intervalMs, undefined, { signal: AbortSignal.any([quit.signal, wake.signal]) }).catch(
        () => undefined,
      );
    }
  } finally {
    input.off('data', onKey);
    input.pause();
    out.off('resize', refreshNow);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', restore);
    restore();
  }
}

export function topCommand(): Command {
  return withAetherErrors(new Command('top'))
    .description('a live view of aetherd: host, its process, and the running and queued jobs by CPU')
    .option(
      '--interval <seconds>',
      'seconds between refreshes, e.g. 2 or 0.5 (default 2)',
      arg(parseInterval),
      2_000,
    )
    .option('--once', 'print one snapshot and exit (also what happens when stdout is not a terminal)')
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      `
The header shows the host's load and memory, aetherd's own CPU% and memory, and jobs by state and the
queue. The table lists RUNNING, then STARTING and PENDING jobs: CPU% (100 = one core, measured between
two refreshes, so blank on the first), current memory, processes, and age since submission.

On a terminal the screen refreshes until q or Ctrl-C (any other key refreshes at once). With --once,
or when stdout is not a terminal, one snapshot is printed without escape codes.

Examples:
  $ aether top
  $ aether top --interval 0.5
  $ aether top --once | grep RUNNING`,
    )
    .action(async (opts: { interval: number; once?: boolean }, cmd: Command) => {
      await withClient(cmd, async (c) => {
        if (opts.once || !process.stdout.isTTY) {
          exitOnClosedPipe();
          const { snapshot, jobsFailure } = await readSnapshot(c);
          if (jobsFailure !== undefined) throw jobsFailure;
          process.stdout.write(render(new CpuTracker(), snapshot, {}));
          return;
        }
        await liveTop(c, opts.interval);
      });
    });
}
