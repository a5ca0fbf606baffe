import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { timestampFromDate, type metricsV1 } from '@aether/proto';
import type { MetricsRegistry } from './metrics-registry';

export interface EventLoopDelayOptions {
  /** Sampling resolution of `monitorEventLoopDelay`, in ms. Default 10. */
  resolutionMs?: number;
  /** Length of the rolling window, in ms. Default 60,000. */
  windowMs?: number;
}

/**
 * Event loop delay over a rolling window, never reset by reading it. Two `monitorEventLoopDelay`
 * histograms run side by side and are reset in turn, one every `windowMs`, each after `2 × windowMs` of
 * recording; the one reset longer ago answers, so what is reported covers the last one to two windows
 * (with the defaults: the last 1–2 minutes; since start during the first minute). A delay seen hours
 * ago does not stay in the numbers forever, and two readers never disturb each other.
 */
export class EventLoopDelay {
  private readonly monitors: [IntervalHistogram, IntervalHistogram];
  private readonly resetAt: [number, number];
  private next: 0 | 1 = 1;
  private readonly timer: NodeJS.Timeout;

  constructor(options: EventLoopDelayOptions = {}) {
    const resolution = options.resolutionMs ?? 10;
    this.monitors = [monitorEventLoopDelay({ resolution }), monitorEventLoopDelay({ resolution })];
    for (const m of this.monitors) m.enable();
    const now = performance.now();
    this.resetAt = [now, now];
    this.timer = setInterval(() => {
      this.monitors[this.next].reset();
      this.resetAt[this.next] = performance.now();
      this.next = this.next === 0 ? 1 : 0;
    }, options.windowMs ?? 60_000);
    this.timer.unref();
  }

  /** Median, 99th percentile and maximum delay in seconds (0 before the first sample). */
  read(): { p50: number; p99: number; max: number } {
    const older = this.resetAt[0] <= this.resetAt[1] ? this.monitors[0] : this.monitors[1];
    if (older.count === 0) return { p50: 0, p99: 0, max: 0 };
    return { p50: older.percentile(50) / 1e9, p99: older.percentile(99) / 1e9, max: older.max / 1e9 };
  }

  close(): void {
    clearInterval(this.timer);
    for (const m of this.monitors) m.disable();
  }
}

/** Open file descriptors of this process (`/proc/self/fd`, less the one reading it); 0 where unknown. */
export function openFileDescriptors(): number {
  try {
    return Math.max(0, readdirSync('/proc/self/fd').length - 1);
  } catch {
    return 0;
  }
}

/** The `process` section: this daemon's pid, age, CPU time, memory, descriptors and event loop delay. */
export class ProcessMetrics {
  private readonly loop: EventLoopDelay;

  constructor(metrics: MetricsRegistry, options: EventLoopDelayOptions = {}) {
    this.loop = new EventLoopDelay(options);
    metrics.section('process', () => this.snapshot());
  }

  snapshot(): metricsV1.ProcessMetrics {
    const cpu = process.cpuUsage();
    const memory = process.memoryUsage();
    const loop = this.loop.read();
    const up = process.uptime();
    const upSeconds = Math.floor(up);
    return {
      pid: BigInt(process.pid),
      startTime: timestampFromDate(new Date(performance.timeOrigin)),
      uptime: {
        seconds: BigInt(upSeconds),
        nanos: Math.min(999_999_999, Math.floor((up - upSeconds) * 1e9)),
      },
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
      rssBytes: BigInt(memory.rss),
      heapUsedBytes: BigInt(memory.heapUsed),
      heapTotalBytes: BigInt(memory.heapTotal),
      openFds: BigInt(openFileDescriptors()),
      eventLoopLagP50Seconds: loop.p50,
      eventLoopLagP99Seconds: loop.p99,
      eventLoopLagMaxSeconds: loop.max,
      runtimeVersion: process.version,
    };
  }

  close(): void {
    this.loop.close();
  }
}
