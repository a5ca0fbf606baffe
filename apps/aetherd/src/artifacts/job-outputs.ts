import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import { artifactsV1 } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import type { JobArtifacts, OutputOutcome } from '../jobs/job-artifacts';
import type { JobRecord } from '../jobs/job-store';
import { ARTIFACT_NAME } from './artifact-metadata';
import type { ArtifactStore } from './artifact-store';
import { expandOutput } from './output-glob';

function artifactNotFound(name: string): RpcError {
  return new RpcError(Status.NOT_FOUND, 'ARTIFACT_NOT_FOUND', `input artifact ${name} not found`, {
    metadata: { resource: name },
  });
}

/** `MODEL` → ARTIFACT_TYPE_MODEL; empty → OTHER. */
function typeOf(declared: string): artifactsV1.ArtifactType {
  return declared === ''
    ? artifactsV1.ArtifactType.ARTIFACT_TYPE_OTHER
    : artifactsV1.artifactTypeFromJSON(`ARTIFACT_TYPE_${declared}`);
}

/**
 * The job runner's view of the artifact store: input artifacts are bound from their blobs, and a
 * succeeded job's declared outputs are imported from `<work>/outputs` with the job's provenance (job,
 * intent, the submitting actor) and its inputs as lineage. Each output uses an idempotency key derived
 * from the job and the file, so finishing a job again after a crash registers nothing twice.
 */
export function jobArtifacts(store: ArtifactStore): JobArtifacts {
  return {
    inputBlob(name) {
      const id = ARTIFACT_NAME.exec(name)?.[1];
      const a = id ? store.get(id) : undefined;
      if (!a) throw artifactNotFound(name);
      return store.blobPath(a);
    },

    async registerOutputs(job: JobRecord, workDir: string) {
      const outputsDir = join(workDir, 'outputs');
      const names: string[] = [];
      const outcomes: OutputOutcome[] = [];
      const derivedFrom = job.spec.inputArtifacts
        .map((n) => ARTIFACT_NAME.exec(n)?.[1] ?? '')
        .filter(Boolean);
      const limit = Number(job.spec.resources?.maxOutputBytes ?? 0n);
      const seen = new Set<string>();
      for (const output of job.spec.outputs) {
        const files = expandOutput(outputsDir, output.path).filter((f) => !seen.has(f));
        const present = files.filter((f) => lstatSync(join(outputsDir, f), { throwIfNoEntry: false }));
        if (present.length === 0) {
          if (!output.optional)
            outcomes.push({
              ok: false,
              message: `output ${output.path}: no such file in /work/outputs`,
            });
          continue;
        }
        for (const file of present) {
          seen.add(file);
          const shown = `/work/outputs/${file}`;
          try {
            const { artifact, deduplicated } = await store.importFile(
              { path: join(outputsDir, file), root: workDir },
              {
                type: typeOf(output.artifactType),
                mediaType: output.mediaType,
                labels: output.labels,
                jobId: job.id,
                intentId: job.intentId,
                actor: job.actor,
                derivedFrom,
              },
              {
                idempotencyKey: `job-output:${job.id}:${createHash('sha256').update(file).digest('hex').slice(0, 32)}`,
                ...(limit > 0 ? { jobOutputLimitBytes: limit } : {}),
              },
            );
            const name = `artifacts/${artifact.id}`;
            names.push(name);
            outcomes.push({
              ok: true,
              message: `${shown} registered as ${name} (${artifact.digest}, ${artifact.sizeBytes} bytes${deduplicated ? ', content already stored' : ''})`,
            });
          } catch (err) {
            const reason = err instanceof RpcError ? ` [${err.reason}]` : '';
            outcomes.push({ ok: false, message: `${shown}: ${(err as Error).message}${reason}` });
          }
        }
      }
      return { names, outcomes };
    },
  };
}
