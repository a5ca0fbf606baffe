import { join } from 'node:path';
import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { artifactsV1 } from '@aether/proto';
import type { ServiceHandlers } from '@aether/rpc';
import { artifactServiceHandlers, type JobLookup } from './artifact-service';
import { ArtifactStore } from './artifact-store';
import type { EventSink } from '../events/event-hub';

export type { JobLookup } from './artifact-service';
export {
  ArtifactStore,
  Upload,
  type ArtifactMeta,
  type ArtifactRecord,
  type IngestOptions,
  type IngestResult,
  type SourceFile,
  type VerifyResult,
} from './artifact-store';

/**
 * Brings up the artifact store (ARCHITECTURE §6): opens (and reconciles) it under `config.artifacts.dir`
 * (default `<stateDir>/artifacts`) and returns its service handlers and the store itself, which the job
 * runner uses for input and output artifacts.
 */
export async function startArtifacts(
  config: AetherdConfig,
  log: Logger,
  jobs: JobLookup,
  events?: EventSink,
): Promise<{
  handlers: ServiceHandlers<typeof artifactsV1.ArtifactServiceService>;
  store: ArtifactStore;
  close: () => Promise<void>;
}> {
  const c = config.artifacts;
  const limits = {
    maxArtifactBytes: c.maxArtifactBytes,
    quotaBytes: c.quotaBytes,
    reserveFreeBytes: c.reserveFreeBytes,
  };
  const store = await ArtifactStore.open({
    dir: c.dir || join(config.stateDir, 'artifacts'),
    limits,
    log: log.child({ component: 'artifacts' }),
    ...(events
      ? {
          onChange: ({ kind, artifact: a, deduplicated }) =>
            events({
              type: `artifact.${kind}`,
              subject: `artifacts/${a.id}`,
              ...(a.jobId ? { jobId: a.jobId } : {}),
              ...(a.intentId ? { intentId: a.intentId } : {}),
              data: {
                digest: a.digest,
                size_bytes: a.sizeBytes,
                type: artifactsV1.artifactTypeToJSON(a.type),
                actor: a.actor,
                ...(deduplicated !== undefined ? { deduplicated } : {}),
              },
            }),
        }
      : {}),
  });
  return {
    handlers: artifactServiceHandlers({ store, jobs, importRoots: c.importRoots, limits }),
    store,
    close: () => store.close(),
  };
}
