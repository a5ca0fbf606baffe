import type { metricsV1 } from '@aether/proto';
import type { ArtifactStore } from './artifact-store';

/**
 * The `artifacts` section: records, blobs and bytes from the store's database (one query), the
 * configured quota, and what was created, deleted and ingested since aetherd started.
 */
export function artifactMetrics(store: ArtifactStore, quotaBytes: number): metricsV1.ArtifactMetrics {
  const t = store.totals();
  const c = store.counters;
  return {
    artifacts: BigInt(t.artifacts),
    blobs: BigInt(t.blobs),
    storedBytes: BigInt(t.storedBytes),
    logicalBytes: BigInt(t.logicalBytes),
    quotaBytes: BigInt(quotaBytes),
    createdTotal: BigInt(c.created),
    deletedTotal: BigInt(c.deleted),
    ingestedBytesTotal: BigInt(c.ingestedBytes),
  };
}
