import { status as Status } from '@grpc/grpc-js';
import { artifactsV1 } from '@aether/proto';
import { RpcError, type Violations } from '@aether/rpc';
import { checkLabels } from '@aether/rpc';

/** `artifacts/{id}` with a lowercase ULID. */
export const ARTIFACT_NAME = /^artifacts\/([0-9a-z]{26})$/;
export const ARTIFACT_ID = /^[0-9a-z]{26}$/;
export const JOB_ID = /^[0-9a-z]{26}$/;
/** Correlation ids (intents) as the metadata carries them. */
export const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
export const MAX_DERIVED_FROM = 256;
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;

/** The fields of an artifact's metadata that the API and the store check alike. */
export interface MetadataFields {
  type: number;
  mediaType: string;
  labels: Record<string, string>;
  jobId: string;
  intentId: string;
  /** Names (`artifacts/{id}`) or ids, as `derivedFromAre` says. */
  derivedFrom: readonly string[];
  filename: string;
  description: string;
}

/** Checks metadata against artifacts.proto's rules; `prefix` is the field path of the message. */
export function checkMetadata(
  v: Violations,
  m: MetadataFields,
  prefix: string,
  derivedFromAre: 'names' | 'ids',
): void {
  const f = (name: string): string => (prefix ? `${prefix}.${name}` : name);
  v.check(
    Number.isInteger(m.type) && m.type >= 0 && m.type <= Number(artifactsV1.ArtifactType.ARTIFACT_TYPE_OTHER),
    f('type'),
    'is not an artifact type',
  );
  v.check(m.mediaType.length <= 255, f('media_type'), 'at most 255 characters');
  v.check(
    m.mediaType === '' || MEDIA_TYPE.test(m.mediaType),
    f('media_type'),
    'must be a media type such as text/csv',
  );
  checkLabels(v, m.labels, f('labels'));
  v.check(m.jobId === '' || JOB_ID.test(m.jobId), f('job_id'), 'must be a job id (26 lowercase characters)');
  v.check(
    m.intentId === '' || CORRELATION_ID.test(m.intentId),
    f('intent_id'),
    'must be 1-128 characters of [A-Za-z0-9._:-]',
  );
  v.check(m.derivedFrom.length <= MAX_DERIVED_FROM, f('derived_from'), `at most ${MAX_DERIVED_FROM}`);
  const pattern = derivedFromAre === 'names' ? ARTIFACT_NAME : ARTIFACT_ID;
  m.derivedFrom.forEach((d, i) =>
    v.check(
      pattern.test(d),
      `${f('derived_from')}[${i}]`,
      `${JSON.stringify(d.slice(0, 100))} is not an artifact ${derivedFromAre === 'names' ? 'name (artifacts/<26-character id>)' : 'id'}`,
    ),
  );
  v.check(new Set(m.derivedFrom).size === m.derivedFrom.length, f('derived_from'), 'names an artifact twice');
  v.check(Buffer.byteLength(m.filename) <= 255, f('filename'), 'at most 255 bytes');
  v.check(!/[/\0]/.test(m.filename), f('filename'), 'must be a base name: no "/" or NUL');
  v.check(Buffer.byteLength(m.description) <= 4096, f('description'), 'at most 4096 bytes');
}

/** INVALID_ARGUMENT / INVALID_FIELD naming the first bad field (all of them in the BadRequest detail). */
export function throwIfInvalid(v: Violations): void {
  const all = v.all;
  if (all.length === 0) return;
  throw new RpcError(
    Status.INVALID_ARGUMENT,
    'INVALID_FIELD',
    all.map((x) => `${x.field}: ${x.description}`).join('; '),
    { metadata: { field: all[0]!.field }, fieldViolations: all },
  );
}

/** What policy calls an artifact type ("dataset", …, "other"; unspecified is "other"). */
export function policyTypeName(type: artifactsV1.ArtifactType): string {
  return type === artifactsV1.ArtifactType.ARTIFACT_TYPE_UNSPECIFIED
    ? 'other'
    : artifactsV1.artifactTypeToJSON(type).replace('ARTIFACT_TYPE_', '').toLowerCase();
}
