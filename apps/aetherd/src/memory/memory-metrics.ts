import { statSync } from 'node:fs';
import { LATENCY_BUCKETS, type LatencyRecorder, type MetricsRegistry } from '@aether/metrics';
import type { metricsV1 } from '@aether/proto';
import type { MemoryStore } from './memory-store';
import type { MemorySearch } from './search';

/** The `memory` section: entries, versions and passages, the database's size on disk, and searches. */
export class MemoryMetrics {
  private searches = 0;
  private readonly searchLatency: LatencyRecorder;

  constructor(
    metrics: MetricsRegistry,
    private readonly store: MemoryStore,
    search: MemorySearch,
  ) {
    this.searchLatency = metrics.latency('memory_search_latency', 'Time per search', LATENCY_BUCKETS.query);
    search.onSearch((seconds) => {
      this.searches++;
      this.searchLatency.observe(seconds);
    });
    metrics.section('memory', () => this.snapshot());
  }

  async snapshot(): Promise<metricsV1.MemoryMetrics> {
    const counts = this.store.counts();
    return {
      entries: BigInt(counts.entries),
      versions: BigInt(counts.versions),
      passages: BigInt(counts.passages),
      databaseBytes: BigInt(fileSize(this.store.path) + fileSize(`${this.store.path}-wal`)),
      searchesTotal: BigInt(this.searches),
      searchLatency: await this.searchLatency.snapshot(),
    };
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
