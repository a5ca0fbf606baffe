import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';

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

/** The machine a benchmark ran on, as its report names it. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  node: string;
  platform: string;
  loadAverageAtStart: number[];
}

export function machineInfo(): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    // Not Linux: keep os.cpus().
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** The commit the daemons were built from, and which files under `paths` differed from it. */
export function codeVersion(repoRoot: string, paths: string[]): { commit: string; modified: string[] } {
  const git = (args: string[]): string => {
    try {
      return execFileSync('git', args, {
        cwd: repoRoot,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trimEnd();
    } catch {
      return '';
    }
  };
  const modified = git(['status', '--porcelain', '--', ...paths])
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.slice(3));
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', modified };
}

/** `callers` loops, each calling again as soon as its previous call returns, until `durationMs` is over. */
export async function closedLoop(
  call: () => Promise<unknown>,
  callers: number,
  durationMs: number,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + durationMs;
  const caller = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await call();
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  return { latencies, elapsedMs: performance.now() - start };
}
