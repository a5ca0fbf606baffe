import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import type { artifactsV1 } from '@aether/proto';
import type { ServiceHandlers } from '@aether/rpc';

/** What the artifact store needs to know about a job (its `/work`, its output quota). */
export interface JobLookup {
  /** Undefined when no such job exists. */
  find(jobId: string): { workDir: string; maxOutputBytes: number; intentId: string } | undefined;
}

/** Brings up the artifact store (ARCHITECTURE §6) and returns its service handlers. */
export function startArtifacts(
  _config: AetherdConfig,
  _log: Logger,
  _jobs: JobLookup,
): Promise<{
  handlers: ServiceHandlers<typeof artifactsV1.ArtifactServiceService>;
  close: () => Promise<void>;
}> {
  return Promise.resolve({ handlers: {}, close: () => Promise.resolve() });
}
