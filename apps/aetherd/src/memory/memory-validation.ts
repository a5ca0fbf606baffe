import { createHash } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import type { MemoryConfig } from '@aether/config';
import { memoryV1 } from '@aether/proto';
import { ResourceExhaustedError, RpcError, Violations, type CallContext } from '@aether/rpc';
import { invalidFields } from '@aether/rpc';
import { hasLoneSurrogate } from './code-points';
import type { VersionContent } from './memory-store';

/** Shared with the other services (see common/invalid-fields). */
export { invalidFields };

const { EntryKind } = memoryV1;

const NAME = /^entries\/([0-9a-z]{26})$/;
const TAG = /^[a-z0-9._:/-]{1,64}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const ARTIFACT = /^artifacts\/[A-Za-z0-9._:-]{1,128}$/;
const URI_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\S*$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

export const MAX_TITLE_BYTES = 1024;
export const MAX_TAGS = 64;
export const MAX_REFERENCES = 256;
export const MAX_REFERENCE_BYTES = 512;
export const MAX_SOURCE_URI_BYTES = 2048;
export const MAX_BATCH = 1000;

/** The paths UpdateEntry's `update_mask` may name. */
export const UPDATABLE_PATHS = [
  'title',
  'text',
  'tags',
  'kind',
  'references',
  'provenance.intent_id',
  'provenance.job_id',
  'provenance.artifact',
  'provenance.source_uri',
] as const;
export type UpdatablePath = (typeof UPDATABLE_PATHS)[number];

/** INVALID_ARGUMENT / INVALID_FIELD for every violation at once; metadata `field` names the first. */
export function throwIfInvalid(v: Violations): void {
  if (v.all.length > 0) throw invalidFields(v.all);
}

/** The id in `entries/{id}`; INVALID_ARGUMENT / INVALID_NAME otherwise. */
export function entryIdOf(name: string, field = 'name'): string {
  const m = NAME.exec(name);
  if (!m)
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      'INVALID_NAME',
      `${field}: ${JSON.stringify(name.slice(0, 100))} is not an entry name (entries/<26-character id>)`,
      { metadata: { field }, fieldViolations: [{ field, description: 'must be entries/<id>' }] },
    );
  return m[1]!;
}

/** Tags without duplicates, in the order given. */
export function uniqueTags(tags: readonly string[]): string[] {
  return [...new Set(tags)];
}

const bytes = (s: string): number => Buffer.byteLength(s);

/** Checks one tag list (entry tags or a filter), field paths `<field>[i]`. */
export function checkTags(v: Violations, tags: readonly string[], field: string): void {
  const unique = uniqueTags(tags);
  v.check(unique.length <= MAX_TAGS, field, `at most ${MAX_TAGS} tags (got ${unique.length})`);
  tags.forEach((t, i) => v.check(TAG.test(t), `${field}[${i}]`, 'must be 1-64 characters of [a-z0-9._:/-]'));
}

const KINDS: readonly number[] = [
  EntryKind.ENTRY_KIND_UNSPECIFIED,
  EntryKind.ENTRY_KIND_NOTE,
  EntryKind.ENTRY_KIND_DOCUMENT,
];

export function checkKind(v: Violations, kind: memoryV1.EntryKind, field: string): void {
  v.check(KINDS.includes(kind), field, 'must be ENTRY_KIND_NOTE, ENTRY_KIND_DOCUMENT or unspecified');
}

/**
 * Checks an entry's writable fields (all of them, or those in `only`), field paths under `prefix`
 * (`entry.` or `requests[3].entry.`). The text's size is checked first and alone: above the limit it is
 * RESOURCE_EXHAUSTED / ENTRY_TOO_LARGE without scanning it.
 */
export function checkEntry(
  v: Violations,
  entry: memoryV1.Entry,
  prefix: string,
  config: Pick<MemoryConfig, 'maxEntryBytes'>,
  only?: ReadonlySet<UpdatablePath>,
): void {
  const has = (p: UpdatablePath): boolean => only === undefined || only.has(p);
  if (has('text')) {
    const size = bytes(entry.text);
    if (size > config.maxEntryBytes)
      throw new ResourceExhaustedError(
        `${prefix}text: ${size} bytes is above the limit of ${config.maxEntryBytes} bytes per entry`,
        'ENTRY_TOO_LARGE',
        { field: `${prefix}text`, limit_bytes: String(config.maxEntryBytes), size_bytes: String(size) },
      );
    v.check(entry.text !== '', `${prefix}text`, 'must not be empty');
    v.check(!entry.text.includes('\0'), `${prefix}text`, 'must not contain NUL');
    v.check(!hasLoneSurrogate(entry.text), `${prefix}text`, 'must be valid Unicode (a lone surrogate)');
  }
  if (has('title')) {
    v.check(bytes(entry.title) <= MAX_TITLE_BYTES, `${prefix}title`, `at most ${MAX_TITLE_BYTES} bytes`);
    v.check(!entry.title.includes('\0'), `${prefix}title`, 'must not contain NUL');
    v.check(!hasLoneSurrogate(entry.title), `${prefix}title`, 'must be valid Unicode (a lone surrogate)');
  }
  if (has('tags')) checkTags(v, entry.tags, `${prefix}tags`);
  if (has('kind')) checkKind(v, entry.kind, `${prefix}kind`);
  if (has('references')) {
    v.check(
      entry.references.length <= MAX_REFERENCES,
      `${prefix}references`,
      `at most ${MAX_REFERENCES} (got ${entry.references.length})`,
    );
    entry.references.forEach((r, i) =>
      v.check(
        bytes(r) <= MAX_REFERENCE_BYTES,
        `${prefix}references[${i}]`,
        `at most ${MAX_REFERENCE_BYTES} bytes`,
      ),
    );
  }
  const p = entry.provenance;
  if (!p) return;
  if (has('provenance.intent_id') && p.intentId !== '')
    v.check(
      ID.test(p.intentId),
      `${prefix}provenance.intent_id`,
      'must be 1-128 characters of [A-Za-z0-9._:-]',
    );
  if (has('provenance.job_id') && p.jobId !== '')
    v.check(ID.test(p.jobId), `${prefix}provenance.job_id`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
  if (has('provenance.artifact') && p.artifact !== '')
    v.check(ARTIFACT.test(p.artifact), `${prefix}provenance.artifact`, 'must be artifacts/<id>');
  if (has('provenance.source_uri') && p.sourceUri !== '') {
    v.check(
      bytes(p.sourceUri) <= MAX_SOURCE_URI_BYTES,
      `${prefix}provenance.source_uri`,
      `at most ${MAX_SOURCE_URI_BYTES} bytes`,
    );
    v.check(
      URI_SCHEME.test(p.sourceUri),
      `${prefix}provenance.source_uri`,
      'must be an absolute URI without spaces (https://…, file:///…)',
    );
  }
}

/** Checks an AddEntry request (or one element of a batch, `prefix` = `requests[i].`). */
export function checkAdd(
  v: Violations,
  req: memoryV1.AddEntryRequest,
  prefix: string,
  config: Pick<MemoryConfig, 'maxEntryBytes'>,
  ctx?: Pick<CallContext, 'intentId' | 'jobId'>,
): void {
  if (!req.entry) {
    v.add(`${prefix}entry`, 'is required');
    return;
  }
  if (req.idempotencyKey !== '')
    v.check(
      IDEMPOTENCY_KEY.test(req.idempotencyKey),
      `${prefix}idempotency_key`,
      'must be 1-128 characters of [A-Za-z0-9._:-]',
    );
  checkEntry(v, req.entry, `${prefix}entry.`, config);
  if (ctx) checkCorrelation(v, req.entry, `${prefix}entry.`, ctx);
}

/** A provenance intent or job that contradicts the request's metadata is refused, as SubmitJob does. */
export function checkCorrelation(
  v: Violations,
  entry: memoryV1.Entry,
  prefix: string,
  ctx: Pick<CallContext, 'intentId' | 'jobId'>,
): void {
  const p = entry.provenance;
  if (p?.intentId && ctx.intentId && p.intentId !== ctx.intentId)
    v.add(
      `${prefix}provenance.intent_id`,
      `${p.intentId} differs from the x-aether-intent-id metadata (${ctx.intentId})`,
    );
  if (p?.jobId && ctx.jobId && p.jobId !== ctx.jobId)
    v.add(
      `${prefix}provenance.job_id`,
      `${p.jobId} differs from the x-aether-job-id metadata (${ctx.jobId})`,
    );
}

/** The update mask's paths, checked; empty means every updatable path. */
export function updatePaths(mask: readonly string[] | undefined): Set<UpdatablePath> {
  const paths = mask ?? [];
  if (paths.length === 0) return new Set(UPDATABLE_PATHS);
  const v = new Violations();
  for (const p of paths)
    v.check(
      (UPDATABLE_PATHS as readonly string[]).includes(p),
      'update_mask',
      `${JSON.stringify(p)} is not an updatable path (${UPDATABLE_PATHS.join(', ')})`,
    );
  throwIfInvalid(v);
  return new Set(paths as UpdatablePath[]);
}

/** A written version's content: defaults applied (kind note, intent and job from the metadata). */
export function contentOf(
  entry: memoryV1.Entry,
  ctx: Pick<CallContext, 'intentId' | 'jobId'>,
): VersionContent {
  const p = entry.provenance;
  return {
    title: entry.title,
    text: entry.text,
    tags: uniqueTags(entry.tags),
    kind:
      entry.kind === EntryKind.ENTRY_KIND_DOCUMENT
        ? EntryKind.ENTRY_KIND_DOCUMENT
        : EntryKind.ENTRY_KIND_NOTE,
    references: [...entry.references],
    intentId: p?.intentId || ctx.intentId || '',
    jobId: p?.jobId || ctx.jobId || '',
    artifact: p?.artifact ?? '',
    sourceUri: p?.sourceUri ?? '',
  };
}

/** The current version's content with the paths in the mask replaced from the request. */
export function mergeContent(
  current: VersionContent,
  entry: memoryV1.Entry,
  paths: ReadonlySet<UpdatablePath>,
  ctx: Pick<CallContext, 'intentId' | 'jobId'>,
): VersionContent {
  const next = contentOf(entry, ctx);
  const pick = <K extends keyof VersionContent>(path: UpdatablePath, key: K): VersionContent[K] =>
    paths.has(path) ? next[key] : current[key];
  return {
    title: pick('title', 'title'),
    text: pick('text', 'text'),
    tags: pick('tags', 'tags'),
    kind: pick('kind', 'kind'),
    references: pick('references', 'references'),
    intentId: pick('provenance.intent_id', 'intentId'),
    jobId: pick('provenance.job_id', 'jobId'),
    artifact: pick('provenance.artifact', 'artifact'),
    sourceUri: pick('provenance.source_uri', 'sourceUri'),
  };
}

/** What makes two AddEntry requests "the same content" for an idempotency key. */
export function contentHash(c: VersionContent): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        c.title,
        c.text,
        c.tags,
        c.kind,
        c.references,
        c.intentId,
        c.jobId,
        c.artifact,
        c.sourceUri,
      ]),
    )
    .digest('hex');
}

/** `page_size` within [0, …] (capped, not refused, above the maximum), as every List. */
export function checkPageSize(v: Violations, pageSize: number): void {
  v.check(pageSize >= 0, 'page_size', 'must not be negative');
}
