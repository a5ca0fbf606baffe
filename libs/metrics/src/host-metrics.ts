import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import type { metricsV1 } from '@aether/proto';
import { cgroupLayout, parseMeminfo } from '@aether/sandbox';
import type { MetricsRegistry } from './metrics-registry';

/** The `host` section: CPUs, memory (from /proc/meminfo), load averages and the cgroup layout. */
export class HostMetrics {
  /** The layout does not change while the daemon runs (it is chosen at boot). */
  private readonly cgroupVersion: string;

  constructor(
    metrics: MetricsRegistry,
    /** Prefix of /proc and /sys paths (tests point it at a fixture tree). */
    private readonly hostRoot = '',
  ) {
    this.cgroupVersion = cgroupLayout(hostRoot);
    metrics.section('host', () => this.snapshot());
  }

  snapshot(): metricsV1.HostMetrics {
    let meminfo: Record<string, number> = {};
    try {
      meminfo = parseMeminfo(readFileSync(`${this.hostRoot}/proc/meminfo`, 'utf8'));
    } catch {
      // Not Linux, or /proc not mounted: fall back below.
    }
    const [load1 = 0, load5 = 0, load15 = 0] = loadavg();
    return {
      cpuCount: BigInt(cpus().length),
      memoryTotalBytes: BigInt(meminfo['MemTotal'] ?? totalmem()),
      memoryAvailableBytes: BigInt(meminfo['MemAvailable'] ?? 0),
      loadAverage1m: load1,
      loadAverage5m: load5,
      loadAverage15m: load15,
      cgroupVersion: this.cgroupVersion,
    };
  }
}
