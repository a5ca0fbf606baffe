import { status as Status } from '@grpc/grpc-js';
import type { MemoryConfig } from '@aether/config';
import { dateFromTimestamp, memoryV1, timestampFromDate } from '@aether/proto';
import {
  RpcError,
  Violations,
  unary,
  type CallContext,
  type ResourceRef,
  type ServiceHandlers,
} from '@aether/rpc';
import {
  entryNotFound,
  type MemoryStore,
  type NewEntry,
  type VersionContent,
  type VersionRecord,
} from './memory-store';
import {
  MAX_BATCH,
  checkAdd,
  checkCorrelation,
  checkEntry,
  checkKind,
  checkPageSize,
  checkTags,
  contentHash,
  contentOf,
  entryIdOf,
  invalidFields,
  mergeContent,
  throwIfInvalid,
  uniqueTags,
  updatePaths,
} from './memory-validation';
import { splitPassages, type SplitPassage } from './passages';
import { MAX_SEARCH_PAGE, decodePageToken, encodePageToken, requestHash, type MemorySearch } from './search';

const { EntryKind } = memoryV1;

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
/** A page of entries stops early rather than carry more text than this (messages are at most 16 MiB). */
const MAX_PAGE_TEXT_BYTES = 4 * 1024 * 1024;
const MAX_MARKER_BYTES = 16;

/** An entry version as the API shows it (built directly: a batch answers with a thousand of them). */
export function entryToProto(v: VersionRecord): memoryV1.Entry {
  const updateTime = timestampFromDate(new Date(v.updateTime));
  const passages: memoryV1.Passage[] = [];
  let start = 0;
  for (let index = 0; index < v.passageEnds.length; index++) {
    const end = v.passageEnds[index]!;
    passages.push({ index, charStart: BigInt(start), charEnd: BigInt(end) });
    start = end;
  }
  return {
    name: `entries/${v.entryId}`,
    id: v.entryId,
    version: BigInt(v.version),
    title: v.title,
    text: v.text,
    tags: v.tags,
    kind: v.kind,
    provenance: {
      actor: v.actor,
      intentId: v.intentId,
      jobId: v.jobId,
      artifact: v.artifact,
      sourceUri: v.sourceUri,
      createTime: updateTime,
    },
    passages,
    references: v.references,
    createTime: v.createTime === v.updateTime ? updateTime : timestampFromDate(new Date(v.createTime)),
    updateTime,
    deleted: v.deleted,
    textLength: BigInt(v.textLength),
  };
}

/** Versions are numbered from 1; a version field that is set must be one. */
function checkVersion(v: Violations, value: bigint | undefined, field: string): void {
  if (value !== undefined)
    v.check(value >= 1n && value < 2n ** 53n, field, 'must be a version number (1 or more)');
}

const msOf = (t: { seconds: bigint; nanos: number } | undefined): number | undefined =>
  t ? dateFromTimestamp(t).getTime() : undefined;

/**
 * Takes rows while they fit the page's text budget (always at least one), so that a page of large
 * entries stays well inside the message limit; reports whether rows were left out.
 */
function withinBudget<T extends { textBytes: number }>(
  rows: T[],
  limit: number,
): { page: T[]; more: boolean } {
  const page: T[] = [];
  let bytes = 0;
  for (const r of rows) {
    if (page.length === limit || (page.length > 0 && bytes + r.textBytes > MAX_PAGE_TEXT_BYTES))
      return { page, more: true };
    page.push(r);
    bytes += r.textBytes;
  }
  return { page, more: false };
}

/** MemoryService: the transport of the memory store. Validation and mapping here; behaviour in the store. */
export function memoryServiceHandlers(
  store: MemoryStore,
  search: MemorySearch,
  config: MemoryConfig,
): ServiceHandlers<typeof memoryV1.MemoryServiceService> {
  const split = (c: VersionContent): SplitPassage[] =>
    splitPassages(c.text, c.kind === EntryKind.ENTRY_KIND_DOCUMENT, config.passageLength);

  const prepare = (req: memoryV1.AddEntryRequest, ctx: CallContext): NewEntry => {
    const content = contentOf(req.entry!, ctx);
    return {
      content,
      passages: split(content),
      actor: ctx.principal.id,
      idempotencyKey: req.idempotencyKey,
      requestHash: req.idempotencyKey ? contentHash(content) : '',
    };
  };

  /** Policy sees an existing entry with its current tags (none when it does not exist). */
  const existing = (name: string): ResourceRef => {
    const id = entryIdOf(name);
    return { type: 'memory_entry', id, attributes: { tags: store.latest(id)?.tags ?? [] } };
  };

  return {
    addEntry: unary<memoryV1.AddEntryRequest, memoryV1.AddEntryResponse>({
      mutates: true,
      validate: (req) => {
        const v = new Violations();
        checkAdd(v, req, '', config);
        throwIfInvalid(v);
      },
      resource: (req) => ({
        type: 'memory_entry',
        id: 'new',
        attributes: { tags: uniqueTags(req.entry!.tags) },
      }),
      handle: async (req, ctx) => {
        const v = new Violations();
        checkCorrelation(v, req.entry!, 'entry.', ctx);
        throwIfInvalid(v);
        const [entry] = await store.addEntries([prepare(req, ctx)]);
        return { entry: entryToProto(entry!) };
      },
    }),

    batchAddEntries: unary<memoryV1.BatchAddEntriesRequest, memoryV1.BatchAddEntriesResponse>({
      mutates: true,
      validate: (req) => {
        if (req.requests.length === 0 || req.requests.length > MAX_BATCH)
          throw invalidFields([
            {
              field: 'requests',
              description: `must hold 1 to ${MAX_BATCH} entries (got ${req.requests.length})`,
            },
          ]);
        const v = new Violations();
        req.requests.forEach((r, i) => checkAdd(v, r, `requests[${i}].`, config));
        throwIfInvalid(v);
      },
      // One decision for the batch: a policy on tags sees every tag of the batch.
      resource: (req) => ({
        type: 'memory_entry',
        id: 'new',
        attributes: { tags: uniqueTags(req.requests.flatMap((r) => r.entry!.tags)) },
      }),
      handle: async (req, ctx) => {
        const v = new Violations();
        req.requests.forEach((r, i) => checkCorrelation(v, r.entry!, `requests[${i}].entry.`, ctx));
        throwIfInvalid(v);
        const entries = await store.addEntries(req.requests.map((r) => prepare(r, ctx)));
        return { entries: entries.map(entryToProto) };
      },
    }),

    updateEntry: unary<memoryV1.UpdateEntryRequest, memoryV1.UpdateEntryResponse>({
      mutates: true,
      validate: (req) => {
        if (!req.entry) throw invalidFields([{ field: 'entry', description: 'is required' }]);
        entryIdOf(req.entry.name, 'entry.name');
        const paths = updatePaths(req.updateMask);
        const v = new Violations();
        checkEntry(v, req.entry, 'entry.', config, paths);
        checkVersion(v, req.expectedVersion, 'expected_version');
        throwIfInvalid(v);
      },
      // Policy sees the tags the entry has and those it would get: either may be what a rule is about.
      resource: (req) => {
        const ref = existing(req.entry!.name);
        const tags = updatePaths(req.updateMask).has('tags') ? req.entry!.tags : [];
        return {
          ...ref,
          attributes: { tags: uniqueTags([...(ref.attributes!['tags'] as string[]), ...tags]) },
        };
      },
      handle: async (req, ctx) => {
        const id = entryIdOf(req.entry!.name, 'entry.name');
        const paths = updatePaths(req.updateMask);
        const v = new Violations();
        checkCorrelation(v, req.entry!, 'entry.', ctx);
        throwIfInvalid(v);
        const updated = await store.updateEntry(
          id,
          req.expectedVersion === undefined ? undefined : Number(req.expectedVersion),
          ctx.principal.id,
          (current) => mergeContent(current, req.entry!, paths, ctx),
          split,
        );
        return { entry: entryToProto(updated) };
      },
    }),

    getEntry: unary<memoryV1.GetEntryRequest, memoryV1.GetEntryResponse>({
      validate: (req) => {
        entryIdOf(req.name);
        const v = new Violations();
        checkVersion(v, req.version, 'version');
        throwIfInvalid(v);
      },
      resource: (req) => existing(req.name),
      handle: (req) => {
        const id = entryIdOf(req.name);
        if (req.version === undefined) {
          const current = store.current(id);
          if (!current) throw entryNotFound(id);
          return Promise.resolve({ entry: entryToProto(current) });
        }
        const version = store.version(id, Number(req.version));
        if (version) return Promise.resolve({ entry: entryToProto(version) });
        const latest = store.latest(id);
        if (!latest) throw entryNotFound(id);
        throw new RpcError(
          Status.NOT_FOUND,
          'VERSION_NOT_FOUND',
          `entries/${id} has no version ${req.version} (its latest is ${latest.version})`,
          { metadata: { entry: `entries/${id}`, latest_version: String(latest.version) } },
        );
      },
    }),

    listEntries: unary<memoryV1.ListEntriesRequest, memoryV1.ListEntriesResponse>({
      validate: (req) => {
        const v = new Violations();
        checkPageSize(v, req.pageSize);
        checkTags(v, req.tags, 'tags');
        checkKind(v, req.kind, 'kind');
        throwIfInvalid(v);
      },
      handle: (req) => {
        const limit = req.pageSize === 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
        const startMs = msOf(req.startTime);
        const endMs = msOf(req.endTime);
        const hash = requestHash([
          'list',
          req.tags,
          req.kind,
          req.actor,
          req.intentId,
          req.jobId,
          req.artifact,
          startMs,
          endMs,
        ]);
        const before = req.pageToken
          ? decodePageToken(req.pageToken, hash, ['s']).s
          : Number.MAX_SAFE_INTEGER;
        const seqs = store.seqRange(startMs, endMs);
        const rows = store.list(
          {
            tags: uniqueTags(req.tags),
            kind: req.kind,
            actor: req.actor,
            intentId: req.intentId,
            jobId: req.jobId,
            artifact: req.artifact,
            seqFrom: seqs.from,
            seqTo: seqs.to,
          },
          before,
          limit + 1,
        );
        const { page, more } = withinBudget(rows, limit);
        return Promise.resolve({
          entries: page.map(entryToProto),
          nextPageToken: more ? encodePageToken({ s: page[page.length - 1]!.seq }, hash) : '',
        });
      },
    }),

    listEntryVersions: unary<memoryV1.ListEntryVersionsRequest, memoryV1.ListEntryVersionsResponse>({
      validate: (req) => {
        entryIdOf(req.name);
        const v = new Violations();
        checkPageSize(v, req.pageSize);
        throwIfInvalid(v);
      },
      resource: (req) => existing(req.name),
      handle: (req) => {
        const id = entryIdOf(req.name);
        const latest = store.latest(id);
        if (!latest) throw entryNotFound(id);
        const limit = req.pageSize === 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
        const hash = requestHash(['versions', id]);
        const before = req.pageToken
          ? decodePageToken(req.pageToken, hash, ['v']).v
          : Number.MAX_SAFE_INTEGER;
        const { page, more } = withinBudget(store.versions(id, before, limit + 1), limit);
        return Promise.resolve({
          versions: page.map(entryToProto),
          nextPageToken: more ? encodePageToken({ v: page[page.length - 1]!.version }, hash) : '',
        });
      },
    }),

    deleteEntry: unary<memoryV1.DeleteEntryRequest, memoryV1.DeleteEntryResponse>({
      mutates: true,
      validate: (req) => {
        entryIdOf(req.name);
        const v = new Violations();
        checkVersion(v, req.expectedVersion, 'expected_version');
        throwIfInvalid(v);
      },
      resource: (req) => existing(req.name),
      handle: async (req, ctx) => {
        await store.deleteEntry(
          entryIdOf(req.name),
          req.expectedVersion === undefined ? undefined : Number(req.expectedVersion),
          req.purge,
          { actor: ctx.principal.id, intentId: ctx.intentId ?? '', jobId: ctx.jobId ?? '' },
        );
        return {};
      },
    }),

    search: unary<memoryV1.SearchRequest, memoryV1.SearchResponse>({
      validate: (req) => {
        search.checker.check(req.query);
        const v = new Violations();
        v.check(
          req.pageSize >= 0,
          'page_size',
          `must be between 0 and ${MAX_SEARCH_PAGE} (larger is capped)`,
        );
        checkTags(v, req.tags, 'tags');
        checkKind(v, req.kind, 'kind');
        v.check(
          req.snippetLength === 0 || (req.snippetLength >= 16 && req.snippetLength <= 2000),
          'snippet_length',
          'must be 0 (200) or between 16 and 2000',
        );
        for (const [field, marker] of [
          ['highlight_open', req.highlightOpen],
          ['highlight_close', req.highlightClose],
        ] as const)
          v.check(Buffer.byteLength(marker) <= MAX_MARKER_BYTES, field, `at most ${MAX_MARKER_BYTES} bytes`);
        const start = msOf(req.startTime);
        const end = msOf(req.endTime);
        v.check(
          start === undefined || end === undefined || start <= end,
          'end_time',
          'must not be before start_time',
        );
        throwIfInvalid(v);
      },
      handle: (req, ctx) => search.search(req, ctx.signal),
    }),
  };
}
