import { statSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { status as Status } from '@grpc/grpc-js';
import { artifactsV1, timestampFromDate } from '@aether/proto';
import {
  RpcError,
  Violations,
  clientStream,
  serverStream,
  unary,
  type CallContext,
  type ResourceRef,
  type ServiceHandlers,
} from '@aether/rpc';
import { parseLabelSelector } from '@aether/rpc';
import { artifactName } from './artifact-errors';
import {
  ARTIFACT_NAME,
  IDEMPOTENCY_KEY,
  checkMetadata,
  policyTypeName,
  throwIfInvalid,
} from './artifact-metadata';
import type { ArtifactRecord } from './artifact-records';
import type { ArtifactMeta, ArtifactStore, IngestResult } from './artifact-store';
import { DIGEST_PATTERN } from './blob-writer';
import { mapSourcePath } from './safe-path';
import type { SpaceLimits } from './space';

const { ArtifactType, LineageDirection } = artifactsV1;

/** What the artifact service needs to know about a job (its `/work`, its output quota, its intent). */
export interface JobLookup {
  /** Undefined when no such job exists. */
  find(jobId: string): { workDir: string; maxOutputBytes: number; intentId: string } | undefined;
}

export interface ArtifactServiceOptions {
  store: ArtifactStore;
  jobs: JobLookup;
  /** Host directories CreateArtifact may import from by absolute path. */
  importRoots: readonly string[];
  limits: SpaceLimits;
}

/** How long after an upload's stream ends a cancel may still arrive and stop it (see uploadArtifact). */
export const UPLOAD_END_GRACE_MS = 50;
/** Largest chunk an upload message may carry. */
export const MAX_UPLOAD_CHUNK = 4 * 1024 * 1024;
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 50;
const MAX_LINEAGE_DEPTH = 64;
const MAX_LINEAGE_NODES = 10_000;
const DEFAULT_LINEAGE_NODES = 1000;

/** The id in `artifacts/{id}`; INVALID_ARGUMENT / INVALID_NAME otherwise. */
export function artifactIdOf(name: string, field = 'name'): string {
  const m = ARTIFACT_NAME.exec(name);
  if (!m)
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      'INVALID_NAME',
      `${field}: ${JSON.stringify(name.slice(0, 100))} is not an artifact name (artifacts/<26-character id>)`,
      { fieldViolations: [{ field, description: 'must be artifacts/<id>' }] },
    );
  return m[1]!;
}

/** An artifact as the API shows it. */
export function artifactToProto(a: ArtifactRecord, store: ArtifactStore): artifactsV1.Artifact {
  return {
    name: artifactName(a.id),
    id: a.id,
    digest: a.digest,
    sizeBytes: BigInt(a.sizeBytes),
    type: a.type,
    mediaType: a.mediaType,
    labels: a.labels,
    jobId: a.jobId,
    intentId: a.intentId,
    actor: a.actor,
    createTime: timestampFromDate(new Date(a.createTime)),
    derivedFrom: a.derivedFrom.map(artifactName),
    path: store.blobPath(a),
    filename: a.filename,
    description: a.description,
    verifyTime: timestampFromDate(new Date(a.verifyTime)),
  };
}

/**
 * ArtifactService: the transport of the artifact store. Requests are validated and mapped here (names,
 * provenance from the call's metadata, the caller's job and its `/work`); behaviour is in ArtifactStore.
 *
 * Policy sees `Aether::Artifact` resources: `"new"` with the declared `type` and `sizeBytes` for
 * CreateArtifact (the source file's size) and UploadArtifact (its `expected_size_bytes`; an upload that
 * declares none is judged at the largest size the store would accept, so a size bound in policy cannot be
 * slipped by leaving it out), and the stored artifact's id, type and size for every call on one artifact.
 */
export function artifactServiceHandlers(
  o: ArtifactServiceOptions,
): ServiceHandlers<typeof artifactsV1.ArtifactServiceService> {
  const { store } = o;
  const show = (a: ArtifactRecord): artifactsV1.Artifact => artifactToProto(a, store);
  const ingested = (r: IngestResult): { artifact: artifactsV1.Artifact; deduplicated: boolean } => ({
    artifact: show(r.artifact),
    deduplicated: r.deduplicated,
  });
  /** The largest content the store could accept now, for a policy that bounds sizes. */
  const upperBound = (): number =>
    Math.min(
      o.limits.maxArtifactBytes || Number.MAX_SAFE_INTEGER,
      o.limits.quotaBytes || Number.MAX_SAFE_INTEGER,
    );
  const byName = (req: { name: string }): ResourceRef => {
    const id = artifactIdOf(req.name);
    const a = store.get(id);
    return {
      type: 'artifact',
      id,
      attributes: a ? { type: policyTypeName(a.type), sizeBytes: a.sizeBytes } : {},
    };
  };
  const validateName = (req: { name: string }): void => void artifactIdOf(req.name);

  /** Job and intent of a new artifact: the metadata's, else the call's; the job must exist. */
  const provenance = (
    m: artifactsV1.ArtifactMetadata,
    ctx: CallContext,
  ): { jobId: string; intentId: string; job: ReturnType<JobLookup['find']> } => {
    const jobId = agree(m.jobId, ctx.jobId, 'metadata.job_id', 'x-aether-job-id');
    const intentIdGiven = agree(m.intentId, ctx.intentId, 'metadata.intent_id', 'x-aether-intent-id');
    const job = jobId ? o.jobs.find(jobId) : undefined;
    if (jobId && !job)
      throw new RpcError(Status.NOT_FOUND, 'JOB_NOT_FOUND', `jobs/${jobId} not found`, {
        metadata: { resource: `jobs/${jobId}` },
      });
    return { jobId, intentId: intentIdGiven || (job?.intentId ?? ''), job };
  };

  const storeMeta = (
    m: artifactsV1.ArtifactMetadata,
    ctx: CallContext,
    p: { jobId: string; intentId: string },
  ): ArtifactMeta => ({
    type: m.type,
    mediaType: m.mediaType,
    labels: m.labels,
    jobId: p.jobId,
    intentId: p.intentId,
    actor: ctx.principal.id,
    derivedFrom: m.derivedFrom.map((n) => artifactIdOf(n, 'metadata.derived_from')),
    filename: m.filename,
    description: m.description,
  });

  return {
    createArtifact: unary<artifactsV1.CreateArtifactRequest, artifactsV1.CreateArtifactResponse>({
      mutates: true,
      validate: (req) => {
        const v = new Violations();
        v.check(req.sourcePath !== '', 'source_path', 'must not be empty');
        v.check(Buffer.byteLength(req.sourcePath) <= 4096, 'source_path', 'at most 4096 bytes');
        checkMetadata(v, req.metadata ?? emptyMetadata(), 'metadata', 'names');
        checkIngestOptions(v, req.expectedDigest, req.idempotencyKey, '');
        throwIfInvalid(v);
      },
      resource: (req) => ({
        type: 'artifact',
        id: 'new',
        attributes: {
          type: policyTypeName(req.metadata?.type ?? ArtifactType.ARTIFACT_TYPE_UNSPECIFIED),
          sizeBytes: sourceSize(req, o) ?? upperBound(),
        },
      }),
      handle: async (req, ctx) => {
        const m = req.metadata ?? emptyMetadata();
        const p = provenance(m, ctx);
        const source = mapSourcePath(req.sourcePath, {
          jobWorkDir: p.job?.workDir,
          importRoots: o.importRoots,
        });
        const result = await store.importFile(source, storeMeta(m, ctx, p), {
          ...(req.expectedDigest ? { expectedDigest: req.expectedDigest } : {}),
          idempotencyKey: req.idempotencyKey,
          jobOutputLimitBytes: p.job?.maxOutputBytes ?? 0,
          signal: ctx.signal,
        });
        return ingested(result);
      },
    }),

    uploadArtifact: clientStream<artifactsV1.UploadArtifactRequest, artifactsV1.UploadArtifactResponse>({
      mutates: true,
      validate: (first) => {
        const v = new Violations();
        if (first.payload?.$case !== 'metadata') {
          v.add('metadata', 'the first message of an upload must carry the metadata');
        } else {
          const u = first.payload.value;
          checkMetadata(v, u.metadata ?? emptyMetadata(), 'metadata.metadata', 'names');
          checkIngestOptions(v, u.expectedDigest, u.idempotencyKey, 'metadata.');
          v.check(
            u.expectedSizeBytes === undefined ||
              (u.expectedSizeBytes >= 0n && u.expectedSizeBytes <= BigInt(Number.MAX_SAFE_INTEGER)),
            'metadata.expected_size_bytes',
            'must be between 0 and 2^53-1',
          );
        }
        throwIfInvalid(v);
      },
      resource: (first) => {
        const u = first.payload?.$case === 'metadata' ? first.payload.value : undefined;
        return {
          type: 'artifact',
          id: 'new',
          attributes: {
            type: policyTypeName(u?.metadata?.type ?? ArtifactType.ARTIFACT_TYPE_UNSPECIFIED),
            sizeBytes: u?.expectedSizeBytes !== undefined ? Number(u.expectedSizeBytes) : upperBound(),
          },
        };
      },
      handle: async (requests, ctx) => {
        const messages = requests[Symbol.asyncIterator]();
        const first = await nextOrAbort(messages, ctx);
        if (first.done || first.value.payload?.$case !== 'metadata')
          throw invalidField('metadata', 'the first message of an upload must carry the metadata');
        const u = first.value.payload.value;
        const m = u.metadata ?? emptyMetadata();
        const p = provenance(m, ctx);
        const upload = await store.beginUpload(storeMeta(m, ctx, p), {
          ...(u.expectedDigest ? { expectedDigest: u.expectedDigest } : {}),
          ...(u.expectedSizeBytes !== undefined ? { expectedSizeBytes: Number(u.expectedSizeBytes) } : {}),
          idempotencyKey: u.idempotencyKey,
          jobOutputLimitBytes: p.job?.maxOutputBytes ?? 0,
          signal: ctx.signal,
        });
        // A repeat of an earlier upload (same idempotency key and arguments) needs none of its bytes.
        if (upload.replay) return ingested(upload.replay);
        try {
          for (;;) {
            const next = await nextOrAbort(messages, ctx);
            if (next.done) break;
            const payload = next.value.payload;
            if (payload?.$case !== 'chunk')
              throw invalidField('metadata', 'only the first message of an upload may carry metadata');
            if (payload.value.length > MAX_UPLOAD_CHUNK)
              throw invalidField('chunk', `at most ${MAX_UPLOAD_CHUNK} bytes per message`);
            await upload.write(payload.value);
          }
          // The stream ended. But a grpc-js client's cancel reaches us as a half-close (Node's HTTP/2
          // flushes the stream's end) followed, milliseconds later, by the reset: so the content is
          // sealed while a short grace passes, and registered only if the call is still wanted then.
          if (ctx.signal.aborted || pastDeadline(ctx)) throw abortError(ctx);
          const grace = delay(UPLOAD_END_GRACE_MS).then(() => {
            if (ctx.signal.aborted || pastDeadline(ctx)) throw abortError(ctx);
          });
          return ingested(await upload.finish(grace));
        } catch (err) {
          await upload.abort();
          throw err;
        }
      },
    }),

    getArtifact: unary<artifactsV1.GetArtifactRequest, artifactsV1.GetArtifactResponse>({
      validate: validateName,
      resource: byName,
      handle: (req) => Promise.resolve({ artifact: show(store.require(artifactIdOf(req.name))) }),
    }),

    readArtifact: serverStream<artifactsV1.ReadArtifactRequest, artifactsV1.ReadArtifactResponse>({
      validate: (req) => {
        validateName(req);
        const v = new Violations();
        v.check(req.offset >= 0n, 'offset', 'must not be negative');
        v.check(req.length >= 0n, 'length', 'must not be negative');
        throwIfInvalid(v);
      },
      resource: byName,
      handle: async (req, _ctx, send) => {
        const a = store.require(artifactIdOf(req.name));
        if (req.offset > BigInt(a.sizeBytes))
          throw new RpcError(
            Status.OUT_OF_RANGE,
            'RANGE_NOT_SATISFIABLE',
            `offset ${req.offset} is beyond the end of ${artifactName(a.id)} (${a.sizeBytes} bytes)`,
            { metadata: { size_bytes: String(a.sizeBytes) } },
          );
        const offset = Number(req.offset);
        const length = req.length > BigInt(a.sizeBytes) ? a.sizeBytes : Number(req.length);
        let first = true;
        for await (const chunk of store.read(a, { offset, length })) {
          await send({
            artifact: first ? show(a) : undefined,
            data: chunk.data,
            offset: BigInt(chunk.offset),
          });
          first = false;
        }
        // Nothing to read (empty content, or a range at the very end): the metadata still comes.
        if (first) await send({ artifact: show(a), data: Buffer.alloc(0), offset: BigInt(offset) });
      },
    }),

    listArtifacts: unary<artifactsV1.ListArtifactsRequest, artifactsV1.ListArtifactsResponse>({
      validate: (req) => {
        const v = new Violations();
        v.check(req.pageSize >= 0, 'page_size', 'must not be negative');
        v.check(
          Number.isInteger(req.type) &&
            Number(req.type) >= 0 &&
            Number(req.type) <= Number(ArtifactType.ARTIFACT_TYPE_OTHER),
          'type',
          'is not an artifact type',
        );
        v.check(
          req.digest === '' || DIGEST_PATTERN.test(req.digest),
          'digest',
          'must be sha256:<64 lowercase hex digits>',
        );
        throwIfInvalid(v);
        if (req.pageToken !== '' && !/^[1-9]\d{0,15}$/.test(req.pageToken))
          throw new RpcError(
            Status.INVALID_ARGUMENT,
            'INVALID_PAGE_TOKEN',
            'page_token is not a token this server issued',
            { fieldViolations: [{ field: 'page_token', description: 'is not a token this server issued' }] },
          );
        parseLabelSelector(req.labelSelector);
      },
      handle: (req) => {
        const matches = parseLabelSelector(req.labelSelector);
        const { artifacts, nextBeforeSeq } = store.list({
          jobId: req.jobId,
          intentId: req.intentId,
          type: req.type,
          digest: req.digest,
          actor: req.actor,
          beforeSeq: req.pageToken ? Number(req.pageToken) : 0,
          accept: (a) => matches(a.labels),
          limit: req.pageSize === 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE),
        });
        return Promise.resolve({
          artifacts: artifacts.map(show),
          nextPageToken: nextBeforeSeq ? String(nextBeforeSeq) : '',
        });
      },
    }),

    verifyArtifact: unary<artifactsV1.VerifyArtifactRequest, artifactsV1.VerifyArtifactResponse>({
      validate: validateName,
      resource: byName,
      handle: async (req, ctx) => {
        const id = artifactIdOf(req.name);
        const r = await store.verify(id, ctx.signal);
        return {
          valid: r.valid,
          expectedDigest: r.artifact.digest,
          actualDigest: r.actualDigest,
          expectedSizeBytes: BigInt(r.artifact.sizeBytes),
          actualSizeBytes: BigInt(r.actualSizeBytes),
          artifact: show(r.artifact),
        };
      },
    }),

    deleteArtifact: unary<artifactsV1.DeleteArtifactRequest, artifactsV1.DeleteArtifactResponse>({
      mutates: true,
      validate: validateName,
      resource: byName,
      handle: async (req) => {
        await store.delete(artifactIdOf(req.name));
        return {};
      },
    }),

    getArtifactLineage: unary<artifactsV1.GetArtifactLineageRequest, artifactsV1.GetArtifactLineageResponse>({
      validate: (req) => {
        validateName(req);
        const v = new Violations();
        v.check(
          Number(req.direction) >= 0 &&
            Number(req.direction) <= Number(LineageDirection.LINEAGE_DIRECTION_BOTH),
          'direction',
          'is not a lineage direction',
        );
        v.check(
          req.maxDepth >= 0 && req.maxDepth <= MAX_LINEAGE_DEPTH,
          'max_depth',
          `must be between 0 and ${MAX_LINEAGE_DEPTH}`,
        );
        v.check(
          req.maxNodes >= 0 && req.maxNodes <= MAX_LINEAGE_NODES,
          'max_nodes',
          `must be between 0 and ${MAX_LINEAGE_NODES}`,
        );
        throwIfInvalid(v);
      },
      resource: byName,
      handle: (req) => {
        const id = artifactIdOf(req.name);
        const { graph, records } = store.lineage(id, {
          direction:
            req.direction === LineageDirection.LINEAGE_DIRECTION_ANCESTORS
              ? 'ancestors'
              : req.direction === LineageDirection.LINEAGE_DIRECTION_DESCENDANTS
                ? 'descendants'
                : 'both',
          maxDepth: req.maxDepth || 1,
          maxNodes: req.maxNodes || DEFAULT_LINEAGE_NODES,
        });
        return Promise.resolve({
          nodes: graph.nodes.map((n) => {
            const a = records.get(n.id);
            return {
              name: artifactName(n.id),
              artifact: a ? show(a) : undefined,
              deleted: !a,
              depth: n.depth,
            };
          }),
          edges: graph.edges.map((e) => ({ parent: artifactName(e.parent), child: artifactName(e.child) })),
          truncated: graph.truncated,
        });
      },
    }),
  };
}

function emptyMetadata(): artifactsV1.ArtifactMetadata {
  return artifactsV1.ArtifactMetadata.fromPartial({});
}

function checkIngestOptions(
  v: Violations,
  expectedDigest: string,
  idempotencyKey: string,
  prefix: string,
): void {
  v.check(
    expectedDigest === '' || DIGEST_PATTERN.test(expectedDigest),
    `${prefix}expected_digest`,
    'must be sha256:<64 lowercase hex digits>',
  );
  v.check(
    idempotencyKey === '' || IDEMPOTENCY_KEY.test(idempotencyKey),
    `${prefix}idempotency_key`,
    'must be 1-128 characters of [A-Za-z0-9._:-]',
  );
}

function invalidField(field: string, description: string): RpcError {
  return new RpcError(Status.INVALID_ARGUMENT, 'INVALID_FIELD', `${field}: ${description}`, {
    metadata: { field },
    fieldViolations: [{ field, description }],
  });
}

/** A request field and the call's metadata may both name a job or intent, but then the same one. */
function agree(field: string, fromCall: string | undefined, fieldName: string, header: string): string {
  if (field && fromCall && field !== fromCall)
    throw invalidField(fieldName, `${field} differs from the ${header} metadata (${fromCall})`);
  return field || fromCall || '';
}

/**
 * The size of the file CreateArtifact would import, for policy, when it can be seen before the call
 * (the job is named in the request); undefined otherwise. The handler checks the path properly.
 */
function sourceSize(req: artifactsV1.CreateArtifactRequest, o: ArtifactServiceOptions): number | undefined {
  try {
    const jobId = req.metadata?.jobId ?? '';
    const job = jobId ? o.jobs.find(jobId) : undefined;
    const { path } = mapSourcePath(req.sourcePath, { jobWorkDir: job?.workDir, importRoots: o.importRoots });
    const st = statSync(path, { throwIfNoEntry: false });
    return st?.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** The next message, or the call's end (cancelled, deadline) as an error, whichever comes first. */
function nextOrAbort<T>(messages: AsyncIterator<T>, ctx: CallContext): Promise<IteratorResult<T>> {
  if (ctx.signal.aborted) return Promise.reject(abortError(ctx));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(abortError(ctx));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    messages.next().then(
      (r) => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        ctx.signal.removeEventListener('abort', onAbort);
        // A broken stream is a cut call whose notice has not arrived yet.
        reject(
          ctx.signal.aborted
            ? abortError(ctx)
            : new RpcError(
                Status.CANCELLED,
                'CANCELLED',
                `the upload stream broke (${(err as Error).message}); nothing was registered`,
              ),
        );
      },
    );
  });
}

const pastDeadline = (ctx: CallContext): boolean =>
  ctx.deadline !== undefined && Date.now() >= ctx.deadline.getTime();

function abortError(ctx: CallContext): RpcError {
  return pastDeadline(ctx)
    ? new RpcError(
        Status.DEADLINE_EXCEEDED,
        'DEADLINE_EXCEEDED',
        'the upload did not finish before its deadline; nothing was registered',
      )
    : new RpcError(Status.CANCELLED, 'CANCELLED', 'the upload was cancelled; nothing was registered');
}
