import type { JobRecord } from './job-store';

/** One declared output's fate, recorded as OUTPUT_REGISTERED or OUTPUT_FAILED. */
export interface OutputOutcome {
  ok: boolean;
  message: string;
}

/** What the job runner needs from the artifact store: input blobs to bind, outputs to register. */
export interface JobArtifacts {
  /**
   * The host path of an input artifact's blob (read-only, content-addressed). Throws NOT_FOUND /
   * ARTIFACT_NOT_FOUND for an unknown artifact.
   */
  inputBlob(name: string): string;
  /**
   * Registers the files a succeeded job left in `<workDir>/outputs` as its spec declares, with the
   * job's provenance and its inputs as lineage. Idempotent per job and path, so a restart that
   * finishes the job again registers nothing twice.
   */
  registerOutputs(job: JobRecord, workDir: string): Promise<{ names: string[]; outcomes: OutputOutcome[] }>;
}
