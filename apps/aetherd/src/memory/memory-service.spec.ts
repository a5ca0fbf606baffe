import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { defaultAetherdConfig, type MemoryConfig } from '@aether/config';
import { createLogger } from '@aether/log';
import { memoryV1, timestampFromDate } from '@aether/proto';
import type { CallContext, RpcError, ServiceHandlers, UnaryMethod } from '@aether/rpc';
import { codePointLength, sliceCodePoints } from './code-points';
import { startMemory } from './memory';
import { memoryServiceHandlers } from './memory-service';
import { MemoryStore } from './memory-store';
import { MemorySearch, type EmbeddingLeg } from './search';

type Handlers = ServiceHandlers<typeof memoryV1.MemoryServiceService>;
const { EntryKind } = memoryV1;
const ADMIN = 'spiffe://aether.local/admin';
const ALICE = 'spiffe://aether.local/users/alice';

function context(actor = ADMIN, correlation: { intentId?: string; jobId?: string } = {}): CallContext {
  return {
    requestId: 'test',
    ...correlation,
    principal: {
      id: actor,
      trustDomain: 'aether.local',
      name: actor.split('/').slice(3).join('/'),
      authenticatedBy: 'certificate',
    },
    action: 'memory.Test',
    signal: new AbortController().signal,
    log: createLogger({ service: 'test', level: 'silent' }),
    metadata: new Metadata(),
    decision: { effect: 'allow', policyIds: [], reason: 'test' },
  };
}

/** A running memory capability in a temporary directory, called the way the pipeline calls it. */
class Memory {
  constructor(
    readonly dir: string,
    readonly handlers: Handlers,
    readonly close: () => Promise<void>,
  ) {}

  static async start(
    memory: Partial<MemoryConfig> = {},
    dir = mkdtempSync(join(tmpdir(), 'aether-memory-')),
  ): Promise<Memory> {
    const config = defaultAetherdConfig();
    const { handlers, close } = await startMemory(
      { ...config, stateDir: dir, memory: { ...config.memory, ...memory } },
      createLogger({ service: 'test', level: 'silent' }),
    );
    return new Memory(dir, handlers, close);
  }

  /** validate → resource → handle, as the pipeline runs a unary method. */
  async call<Req, Res>(method: keyof Handlers, request: Req, ctx = context()): Promise<Res> {
    const m = this.handlers[method] as UnaryMethod<Req, Res>;
    m.validate?.(request);
    m.resource?.(request, { principal: ctx.principal });
    return m.handle(request, ctx);
  }

  async add(entry: Partial<memoryV1.Entry>, ctx = context(), idempotencyKey = ''): Promise<memoryV1.Entry> {
    const res = await this.call<memoryV1.AddEntryRequest, memoryV1.AddEntryResponse>(
      'addEntry',
      memoryV1.AddEntryRequest.fromPartial({ entry, idempotencyKey }),
      ctx,
    );
    return res.entry!;
  }

  search(req: Partial<memoryV1.SearchRequest>, ctx = context()): Promise<memoryV1.SearchResponse> {
    return this.call('search', memoryV1.SearchRequest.fromPartial(req), ctx);
  }

  get(name: string, version?: bigint): Promise<memoryV1.Entry> {
    return this.call<memoryV1.GetEntryRequest, memoryV1.GetEntryResponse>(
      'getEntry',
      memoryV1.GetEntryRequest.fromPartial({ name, ...(version !== undefined ? { version } : {}) }),
    ).then((r) => r.entry!);
  }

  list(req: Partial<memoryV1.ListEntriesRequest> = {}): Promise<memoryV1.ListEntriesResponse> {
    return this.call('listEntries', memoryV1.ListEntriesRequest.fromPartial(req));
  }

  async dispose(): Promise<void> {
    await this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function failure(p: Promise<unknown> | (() => Promise<unknown>)): Promise<RpcError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err as RpcError;
  }
  throw new Error('expected the call to fail');
}

/** Every citation's offsets slice the stored text to its snippet, and each highlight to a match. */
async function expectExactCitations(m: Memory, res: memoryV1.SearchResponse, term?: string): Promise<void> {
  expect(res.citations.length).toBeGreaterThan(0);
  for (const c of res.citations) {
    const entry = await m.get(c.entry, c.version);
    const start = Number(c.charStart);
    const end = Number(c.charEnd);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(end).toBeLessThanOrEqual(codePointLength(entry.text));
    expect(Array.from(entry.text).slice(start, end).join('')).toBe(c.snippetText);
    expect(c.highlights.length).toBeGreaterThan(0);
    for (const h of c.highlights) {
      expect(Number(h.charStart)).toBeGreaterThanOrEqual(start);
      expect(Number(h.charEnd)).toBeLessThanOrEqual(end);
      if (term) expect(sliceCodePoints(entry.text, Number(h.charStart), Number(h.charEnd))).toBe(term);
    }
    expect(c.snippet.replace(/[[\]]/g, '')).toBe(c.snippetText.replace(/[[\]]/g, ''));
    if (term) expect(c.snippet).toContain(`[${term}]`);
  }
}

describe('memory: entries', () => {
  let m: Memory;
  beforeAll(async () => (m = await Memory.start({ maxEntryBytes: 4096, passageLength: 100 })));
  afterAll(() => m.dispose());

  it('adds a note as version 1 with provenance from the caller and the metadata', async () => {
    const e = await m.add(
      {
        title: 'Runbook',
        text: 'restart the ingest worker when the queue stalls',
        tags: ['ops', 'runbook', 'ops'],
        references: ['jobs/01jc7v0m4k3h2g1f0e9d8c7b6a'],
        provenance: memoryV1.Provenance.fromPartial({
          sourceUri: 'https://wiki.example/runbook',
          artifact: 'artifacts/abc',
          actor: 'ignored',
        }),
      },
      context(ALICE, { intentId: 'intent-1', jobId: 'job-1' }),
    );
    expect(e.name).toMatch(/^entries\/[0-9a-z]{26}$/);
    expect(e.id).toBe(e.name.slice('entries/'.length));
    expect(e.version).toBe(1n);
    expect(e.kind).toBe(EntryKind.ENTRY_KIND_NOTE);
    expect(e.tags).toEqual(['ops', 'runbook']);
    expect(e.textLength).toBe(47n);
    expect(e.passages).toEqual([{ index: 0, charStart: 0n, charEnd: 47n }]);
    expect(e.provenance).toMatchObject({
      actor: ALICE,
      intentId: 'intent-1',
      jobId: 'job-1',
      artifact: 'artifacts/abc',
      sourceUri: 'https://wiki.example/runbook',
    });
    expect(e.createTime).toEqual(e.updateTime);
    expect(await m.get(e.name)).toEqual(e);
  });

  it('splits a document into passages that partition its text', async () => {
    const text = Array.from({ length: 8 }, (_, i) => `Paragraph ${i} ${'word '.repeat(10)}`).join('\n\n');
    const e = await m.add({ text, kind: EntryKind.ENTRY_KIND_DOCUMENT });
    expect(e.passages.length).toBeGreaterThan(1);
    expect(e.passages[0]!.charStart).toBe(0n);
    expect(e.passages[e.passages.length - 1]!.charEnd).toBe(BigInt(codePointLength(text)));
    e.passages.forEach((p, i) => {
      expect(p.index).toBe(i);
      if (i > 0) expect(p.charStart).toBe(e.passages[i - 1]!.charEnd);
    });
  });

  it('keeps every version on update; only the current one is searchable', async () => {
    const v1 = await m.add({ title: 'Versioned', text: 'alpha release notes', tags: ['rel'] });
    const upd = await m.call<memoryV1.UpdateEntryRequest, memoryV1.UpdateEntryResponse>(
      'updateEntry',
      memoryV1.UpdateEntryRequest.fromPartial({
        entry: { name: v1.name, text: 'bravo release notes' },
        updateMask: ['text'],
        expectedVersion: 1n,
      }),
      context(ALICE),
    );
    const v2 = upd.entry!;
    expect(v2).toMatchObject({ version: 2n, title: 'Versioned', tags: ['rel'], text: 'bravo release notes' });
    expect(v2.provenance!.actor).toBe(ALICE);
    expect(v2.createTime).toEqual(v1.createTime);
    expect((await m.get(v1.name, 1n)).text).toBe('alpha release notes');
    expect((await m.get(v1.name)).version).toBe(2n);
    expect((await m.search({ query: 'alpha' })).citations).toEqual([]);
    const hits = await m.search({ query: 'bravo' });
    expect(hits.citations.map((c) => [c.entry, c.version])).toEqual([[v1.name, 2n]]);

    const stale = await failure(
      m.call(
        'updateEntry',
        memoryV1.UpdateEntryRequest.fromPartial({
          entry: { name: v1.name, title: 'x' },
          updateMask: ['title'],
          expectedVersion: 1n,
        }),
      ),
    );
    expect([stale.codeName, stale.reason]).toEqual(['ABORTED', 'VERSION_CONFLICT']);
    const badMask = await failure(
      m.call(
        'updateEntry',
        memoryV1.UpdateEntryRequest.fromPartial({
          entry: { name: v1.name },
          updateMask: ['provenance.actor'],
        }),
      ),
    );
    expect([badMask.codeName, badMask.reason, badMask.metadata['field']]).toEqual([
      'INVALID_ARGUMENT',
      'INVALID_FIELD',
      'update_mask',
    ]);
    const versions = await m.call<memoryV1.ListEntryVersionsRequest, memoryV1.ListEntryVersionsResponse>(
      'listEntryVersions',
      memoryV1.ListEntryVersionsRequest.fromPartial({ name: v1.name, pageSize: 1 }),
    );
    expect(versions.versions.map((v) => v.version)).toEqual([2n]);
    const rest = await m.call<memoryV1.ListEntryVersionsRequest, memoryV1.ListEntryVersionsResponse>(
      'listEntryVersions',
      memoryV1.ListEntryVersionsRequest.fromPartial({ name: v1.name, pageToken: versions.nextPageToken }),
    );
    expect(rest.versions.map((v) => v.version)).toEqual([1n]);
    expect(rest.nextPageToken).toBe('');
    const missing = await failure(m.get(v1.name, 7n));
    expect([missing.codeName, missing.reason]).toEqual(['NOT_FOUND', 'VERSION_NOT_FOUND']);
  });

  it('records a tombstone on delete: the entry leaves List and Search at once, old versions stay readable', async () => {
    const e = await m.add({ title: 'Doomed', text: 'zebra crossing procedure', tags: ['doomed'] });
    expect((await m.search({ query: 'zebra' })).citations).toHaveLength(1);
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: e.name }));
    expect((await m.search({ query: 'zebra' })).citations).toEqual([]);
    expect((await m.list({ tags: ['doomed'] })).entries).toEqual([]);
    const gone = await failure(m.get(e.name));
    expect([gone.codeName, gone.reason]).toEqual(['NOT_FOUND', 'ENTRY_NOT_FOUND']);
    expect((await m.get(e.name, 1n)).text).toBe('zebra crossing procedure');
    const tomb = await m.get(e.name, 2n);
    expect(tomb).toMatchObject({ deleted: true, text: '', title: 'Doomed', tags: ['doomed'], passages: [] });
    const again = await failure(
      m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: e.name })),
    );
    expect(again.reason).toBe('ENTRY_NOT_FOUND');
    const upd = await failure(
      m.call(
        'updateEntry',
        memoryV1.UpdateEntryRequest.fromPartial({ entry: { name: e.name, text: 'x' }, updateMask: ['text'] }),
      ),
    );
    expect(upd.reason).toBe('ENTRY_NOT_FOUND');

    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: e.name, purge: true }));
    expect((await failure(m.get(e.name, 1n))).reason).toBe('ENTRY_NOT_FOUND');
    const versions = await failure(
      m.call('listEntryVersions', memoryV1.ListEntryVersionsRequest.fromPartial({ name: e.name })),
    );
    expect(versions.reason).toBe('ENTRY_NOT_FOUND');
  });

  it('purges a live entry with every version at once', async () => {
    const e = await m.add({ text: 'yak shaving notes' });
    await m.call(
      'updateEntry',
      memoryV1.UpdateEntryRequest.fromPartial({
        entry: { name: e.name, text: 'yak shaving notes two' },
        updateMask: ['text'],
      }),
    );
    await m.call(
      'deleteEntry',
      memoryV1.DeleteEntryRequest.fromPartial({ name: e.name, purge: true, expectedVersion: 2n }),
    );
    expect((await m.search({ query: 'yak' })).citations).toEqual([]);
    expect((await failure(m.get(e.name, 2n))).reason).toBe('ENTRY_NOT_FOUND');
  });

  it('returns the first entry for a repeated idempotency key and refuses the key with other content', async () => {
    const a = await m.add({ text: 'idempotent note' }, context(), 'key-1');
    const b = await m.add({ text: 'idempotent note' }, context(), 'key-1');
    expect(b.name).toBe(a.name);
    const reused = await failure(m.add({ text: 'other note' }, context(), 'key-1'));
    expect([reused.codeName, reused.reason]).toEqual(['ALREADY_EXISTS', 'IDEMPOTENCY_KEY_REUSED']);
    const other = await m.add({ text: 'idempotent note' }, context(ALICE), 'key-1');
    expect(other.name).not.toBe(a.name);
  });

  it('refuses bad input with field paths, oversized text with ENTRY_TOO_LARGE and bad names with INVALID_NAME', async () => {
    const cases: [Partial<memoryV1.Entry>, string][] = [
      [{ text: '' }, 'entry.text'],
      [{ text: 'a\0b' }, 'entry.text'],
      [{ text: 'x', title: 't\0' }, 'entry.title'],
      [{ text: 'x', tags: ['Upper'] }, 'entry.tags[0]'],
      [{ text: 'x', kind: 9 as memoryV1.EntryKind }, 'entry.kind'],
      [
        { text: 'x', provenance: { sourceUri: 'no scheme' } as memoryV1.Provenance },
        'entry.provenance.source_uri',
      ],
      [{ text: 'x', references: ['r'.repeat(513)] }, 'entry.references[0]'],
    ];
    for (const [entry, field] of cases) {
      const err = await failure(m.add(entry));
      expect([err.codeName, err.reason, err.metadata['field']]).toEqual([
        'INVALID_ARGUMENT',
        'INVALID_FIELD',
        field,
      ]);
    }
    const big = await failure(m.add({ text: 'é'.repeat(2049) }));
    expect([big.codeName, big.reason]).toEqual(['RESOURCE_EXHAUSTED', 'ENTRY_TOO_LARGE']);
    const name = await failure(m.get('entries/NOT-AN-ID'));
    expect([name.codeName, name.reason]).toEqual(['INVALID_ARGUMENT', 'INVALID_NAME']);
    const mismatch = await failure(
      m.add(
        { text: 'x', provenance: { intentId: 'b' } as memoryV1.Provenance },
        context(ADMIN, { intentId: 'a' }),
      ),
    );
    expect(mismatch.metadata['field']).toBe('entry.provenance.intent_id');
  });

  it('adds a batch in one transaction, all or nothing', async () => {
    const res = await m.call<memoryV1.BatchAddEntriesRequest, memoryV1.BatchAddEntriesResponse>(
      'batchAddEntries',
      memoryV1.BatchAddEntriesRequest.fromPartial({
        requests: [
          { entry: { text: 'batch one quokka' } },
          { entry: { text: 'batch two quokka' }, idempotencyKey: 'b2' },
        ],
      }),
    );
    expect(res.entries.map((e) => e.text)).toEqual(['batch one quokka', 'batch two quokka']);
    expect((await m.search({ query: 'quokka' })).totalCandidates).toBe(2n);

    const bad = await failure(
      m.call(
        'batchAddEntries',
        memoryV1.BatchAddEntriesRequest.fromPartial({
          requests: [{ entry: { text: 'ok' } }, { entry: { text: '' } }],
        }),
      ),
    );
    expect(bad.metadata['field']).toBe('requests[1].entry.text');
    // The second element reuses a key with other content: the first element is not added either.
    const reused = await failure(
      m.call(
        'batchAddEntries',
        memoryV1.BatchAddEntriesRequest.fromPartial({
          requests: [
            { entry: { text: 'lonely wombat' } },
            { entry: { text: 'different' }, idempotencyKey: 'b2' },
          ],
        }),
      ),
    );
    expect(reused.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await m.search({ query: 'wombat' })).citations).toEqual([]);
    for (const n of [0, 1001]) {
      const size = await failure(
        m.call(
          'batchAddEntries',
          memoryV1.BatchAddEntriesRequest.fromPartial({
            requests: Array.from({ length: n }, () => ({ entry: { text: 'x' } })),
          }),
        ),
      );
      expect([size.reason, size.metadata['field']]).toEqual(['INVALID_FIELD', 'requests']);
    }
  });

  it('commits concurrent writes together without letting one failure fail the others', async () => {
    await m.add({ text: 'group seed' }, context(), 'group-key');
    const results = await Promise.allSettled([
      m.add({ text: 'group alpha platypus' }),
      m.add({ text: 'not the seed' }, context(), 'group-key'),
      m.add({ text: 'group beta platypus' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await m.search({ query: 'platypus' })).totalCandidates).toBe(2n);
  });
});

describe('memory: search', () => {
  let m: Memory;
  beforeAll(async () => (m = await Memory.start({ passageLength: 100, candidateCap: 100 })));
  afterAll(() => m.dispose());

  it('cites ASCII text with exact code point offsets and highlighted matches', async () => {
    await m.add({ title: 'Fox', text: 'The quick brown fox jumps over the lazy dog.' });
    const res = await m.search({ query: 'fox' });
    await expectExactCitations(m, res, 'fox');
    expect(res.citations[0]).toMatchObject({ charStart: 0n, charEnd: 44n, title: 'Fox', passageIndex: 0 });
    expect(res.citations[0]!.highlights).toEqual([{ charStart: 16n, charEnd: 19n }]);
    expect(res.citations[0]!.score).toBeGreaterThan(0);
  });

  it('cites text with emoji, ZWJ sequences, CJK and combining marks in code points, not UTF-16 units', async () => {
    const text = '😀😀 👩‍💻 coder 東京 タワー café cafe\u0301 naïve 😀 marker 👍🏽 done';
    const e = await m.add({ text });
    for (const [query, term] of [
      ['coder', 'coder'],
      ['東京', '東京'],
      ['marker', 'marker'],
      ['done', 'done'],
      ['naive', 'naïve'],
    ] as const) {
      const res = await m.search({ query });
      await expectExactCitations(m, res, term);
      expect(res.citations[0]!.entry).toBe(e.name);
    }
    const res = await m.search({ query: 'marker' });
    const h = res.citations[0]!.highlights[0]!;
    expect(Number(h.charStart)).toBe(Array.from(text.slice(0, text.indexOf('marker'))).length);
    expect(Number(h.charStart)).not.toBe(text.indexOf('marker')); // the UTF-16 index differs
  });

  it('cites a match deep in a long document with absolute offsets and a window of about snippet_length', async () => {
    const paragraphs = Array.from(
      { length: 30 },
      (_, i) => `Section ${i} 😀 ${'lorem ipsum dolor '.repeat(4)}`,
    );
    paragraphs[22] += ' the unicorn appears here 東京';
    const text = paragraphs.join('\n\n');
    const e = await m.add({ text, kind: EntryKind.ENTRY_KIND_DOCUMENT, title: 'Long' });
    const res = await m.search({
      query: 'unicorn',
      snippetLength: 40,
      highlightOpen: '<b>',
      highlightClose: '</b>',
    });
    const c = res.citations[0]!;
    expect(c.entry).toBe(e.name);
    expect(c.passageIndex).toBeGreaterThan(0);
    const passage = e.passages[c.passageIndex]!;
    expect(c.charStart).toBeGreaterThanOrEqual(passage.charStart);
    expect(c.charEnd).toBeLessThanOrEqual(passage.charEnd);
    expect(Number(c.charEnd - c.charStart)).toBeLessThanOrEqual(48);
    expect(sliceCodePoints(text, Number(c.charStart), Number(c.charEnd))).toBe(c.snippetText);
    expect(c.snippet).toContain('<b>unicorn</b>');
    expect(sliceCodePoints(text, Number(c.highlights[0]!.charStart), Number(c.highlights[0]!.charEnd))).toBe(
      'unicorn',
    );
  });

  it('supports phrases, prefixes, boolean operators, NEAR and column filters', async () => {
    await m.add({ title: 'Grammar', text: 'red apple and green pear, then a yellow banana far later' });
    const n = async (query: string): Promise<number> => (await m.search({ query })).citations.length;
    expect(await n('"red apple"')).toBe(1);
    expect(await n('"apple red"')).toBe(0);
    expect(await n('banan*')).toBe(1);
    expect(await n('apple NOT pear')).toBe(0);
    expect(await n('apple OR kiwi')).toBe(1);
    expect(await n('NEAR(red pear, 3)')).toBe(1);
    expect(await n('NEAR(red banana, 3)')).toBe(0);
    expect(await n('title:grammar')).toBe(1);
    expect(await n('text:grammar')).toBe(0);
    const phrase = await m.search({ query: '"green pear"' });
    expect(phrase.citations[0]!.snippet).toContain('[green pear]');
  });

  it('refuses a malformed query with INVALID_QUERY, never INTERNAL', async () => {
    for (const query of ['"unterminated', 'AND', 'foo(', 'NEAR(', '']) {
      const err = await failure(m.search({ query }));
      expect([err.codeName, err.reason]).toEqual(['INVALID_ARGUMENT', 'INVALID_QUERY']);
    }
  });

  it('filters by tags, actor, intent, job, kind and time inside the match', async () => {
    const before = new Date(Date.now() - 1);
    const a = await m.add(
      { text: 'filtered otter one', tags: ['x', 'y'] },
      context(ALICE, { intentId: 'i1', jobId: 'j1' }),
    );
    const b = await m.add(
      { text: 'filtered otter two', tags: ['x'], kind: EntryKind.ENTRY_KIND_DOCUMENT },
      context(ADMIN, { intentId: 'i2' }),
    );
    await new Promise((r) => setTimeout(r, 5));
    const middle = new Date();
    await new Promise((r) => setTimeout(r, 5));
    const c = await m.add({ text: 'filtered otter three', tags: ['y'] });
    const names = async (req: Partial<memoryV1.SearchRequest>): Promise<string[]> =>
      (await m.search({ query: 'otter', ...req })).citations.map((x) => x.entry).sort();
    expect(await names({})).toEqual([a.name, b.name, c.name].sort());
    expect(await names({ tags: ['x'] })).toEqual([a.name, b.name].sort());
    expect(await names({ tags: ['x', 'y'] })).toEqual([a.name]);
    expect(await names({ actor: ALICE })).toEqual([a.name]);
    expect(await names({ intentId: 'i2' })).toEqual([b.name]);
    expect(await names({ jobId: 'j1' })).toEqual([a.name]);
    expect(await names({ kind: EntryKind.ENTRY_KIND_DOCUMENT })).toEqual([b.name]);
    expect(await names({ kind: EntryKind.ENTRY_KIND_NOTE })).toEqual([a.name, c.name].sort());
    expect(await names({ startTime: timestampFromDate(middle) })).toEqual([c.name]);
    expect(await names({ startTime: timestampFromDate(before), endTime: timestampFromDate(middle) })).toEqual(
      [a.name, b.name].sort(),
    );
    expect(await names({ startTime: timestampFromDate(new Date(Date.now() + 60_000)) })).toEqual([]);
    expect(await names({ tags: ['nope'] })).toEqual([]);
  });

  it('maps a time range to versions across gaps left by purged versions', async () => {
    const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
    const one = await m.add({ text: 'timed ibis one' });
    await tick();
    const t2 = new Date();
    const two = await m.add({ text: 'timed ibis two' });
    await m.call(
      'updateEntry',
      memoryV1.UpdateEntryRequest.fromPartial({
        entry: { name: two.name, title: 't' },
        updateMask: ['title'],
      }),
    );
    await tick();
    const t3 = new Date();
    const three = await m.add({ text: 'timed ibis three' });
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: two.name, purge: true }));
    const names = async (start?: Date, end?: Date): Promise<string[]> =>
      (
        await m.search({
          query: 'ibis',
          ...(start ? { startTime: timestampFromDate(start) } : {}),
          ...(end ? { endTime: timestampFromDate(end) } : {}),
        })
      ).citations
        .map((c) => c.entry)
        .sort();
    expect(await names(t2)).toEqual([three.name]);
    expect(await names(undefined, t3)).toEqual([one.name]);
    expect(await names(t2, t3)).toEqual([]);
    expect(await names(t3)).toEqual([three.name]);
  });

  it('pages through results with tokens bound to the request', async () => {
    for (let i = 0; i < 7; i++) await m.add({ text: `pageable lemur number ${i} ${'lemur '.repeat(i)}` });
    const seen: string[] = [];
    let pageToken = '';
    do {
      const res = await m.search({ query: 'lemur', pageSize: 3, pageToken });
      expect(res.totalCandidates).toBe(7n);
      seen.push(...res.citations.map((c) => c.entry));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    const first = await m.search({ query: 'lemur', pageSize: 3 });
    const scores = first.citations.map((c) => c.score);
    expect([...scores].sort((x, y) => y - x)).toEqual(scores);
    const other = await failure(m.search({ query: 'otter', pageToken: first.nextPageToken }));
    expect([other.codeName, other.reason]).toEqual(['INVALID_ARGUMENT', 'INVALID_PAGE_TOKEN']);
    expect((await failure(m.search({ query: 'lemur', pageToken: 'garbage' }))).reason).toBe(
      'INVALID_PAGE_TOKEN',
    );
  });

  it('ranks at most candidate_cap passages of a very common term and says it truncated', async () => {
    await m.call(
      'batchAddEntries',
      memoryV1.BatchAddEntriesRequest.fromPartial({
        requests: Array.from({ length: 150 }, (_, i) => ({ entry: { text: `common gnu ${i}` } })),
      }),
    );
    const res = await m.search({ query: 'gnu' });
    expect(res.totalCandidates).toBe(100n);
    expect(res.truncated).toBe(true);
    // The candidates are the newest: entry 149 is among them, entry 0 is not.
    const all: string[] = [];
    let pageToken = '';
    do {
      const page = await m.search({ query: 'gnu', pageSize: 100, pageToken });
      all.push(...page.citations.map((c) => c.snippetText));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(all).toHaveLength(100);
    expect(all).toContain('common gnu 149');
    expect(all).not.toContain('common gnu 0');
    const few = await m.search({ query: '"gnu 149"' });
    expect([few.totalCandidates, few.truncated]).toEqual([1n, false]);
  });

  it('answers semantic searches with FTS alone when no embedding leg is configured', async () => {
    const plain = await m.search({ query: 'otter' });
    const semantic = await m.search({ query: 'otter', semantic: true });
    expect(semantic.semanticApplied).toBe(false);
    expect(semantic.citations).toEqual(plain.citations);
  });

  it('lists current versions, most recently updated first, with filters and pages', async () => {
    const page1 = await m.list({ pageSize: 2, tags: ['x'] });
    expect(page1.entries.map((e) => e.text)).toEqual(['filtered otter two', 'filtered otter one']);
    expect(page1.nextPageToken).toBe('');
    const all = await m.list({ pageSize: 1000 });
    const times = all.entries.map((e) => Number(e.updateTime!.seconds) * 1e9 + e.updateTime!.nanos);
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    const p = await m.list({ pageSize: 5 });
    const q = await m.list({ pageSize: 5, pageToken: p.nextPageToken });
    expect(q.entries[0]!.name).toBe(all.entries[5]!.name);
    expect((await m.list({ actor: ALICE })).entries.map((e) => e.text)).toEqual(['filtered otter one']);
    expect((await m.list({ kind: EntryKind.ENTRY_KIND_DOCUMENT, intentId: 'i2' })).entries).toHaveLength(1);
  });
});

describe('memory: the semantic leg', () => {
  /** Handlers over a store whose searches have `leg` as their second ranking. */
  async function withLeg(leg: EmbeddingLeg, run: (m: Memory) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'aether-memory-'));
    const config = defaultAetherdConfig().memory;
    const store = MemoryStore.open(dir, { quotaBytes: 0 });
    const search = new MemorySearch(store, {
      candidateCap: config.candidateCap,
      leg,
      log: createLogger({ service: 'test', level: 'silent' }),
    });
    const close = (): Promise<void> => {
      search.close();
      store.close();
      return Promise.resolve();
    };
    const m = new Memory(dir, memoryServiceHandlers(store, search, config), close);
    try {
      await run(m);
    } finally {
      await m.dispose();
    }
  }

  it('fuses the leg’s ranking with the FTS ranking by reciprocal rank when asked for', async () => {
    // A leg that ranks the FTS candidates in reverse: fused, the two ends tie and the middle wins.
    const leg: EmbeddingLeg = {
      model: 'test',
      rank: (_q, candidates) => Promise.resolve([...candidates].reverse()),
    };
    await withLeg(leg, async (m) => {
      await m.add({ text: 'semantic mole' });
      await m.add({ text: 'semantic mole mole' });
      await m.add({ text: 'semantic mole mole mole' });
      const fts = await m.search({ query: 'mole' });
      const fused = await m.search({ query: 'mole', semantic: true });
      expect(fts.semanticApplied).toBe(false);
      expect(fused.semanticApplied).toBe(true);
      expect(fused.totalCandidates).toBe(3n);
      const order = fts.citations.map((c) => c.entry);
      expect(fused.citations.map((c) => c.entry)).toEqual([order[0], order[2], order[1]]);
      expect(fused.citations[0]!.score).toBeCloseTo(1 / 61 + 1 / 63);
      expect(fused.citations[2]!.score).toBeCloseTo(2 / 62);
    });
  });

  it('answers with FTS alone when the leg fails', async () => {
    const leg: EmbeddingLeg = { model: 'test', rank: () => Promise.reject(new Error('cfcd unavailable')) };
    await withLeg(leg, async (m) => {
      await m.add({ text: 'fallback vole' });
      const res = await m.search({ query: 'vole', semantic: true });
      expect(res.semanticApplied).toBe(false);
      expect(res.citations).toHaveLength(1);
    });
  });
});

describe('memory: filter counts', () => {
  it('stay exact through adds, updates, deletes, purges and rolled-back writes', async () => {
    const m = await Memory.start({ passageLength: 100 });
    const doc = Array.from({ length: 6 }, (_, i) => `part ${i} ${'filler words here '.repeat(5)}`).join(
      '\n\n',
    );
    const a = await m.add({ text: 'alpha counted', tags: ['x', 'y'] }, context(ALICE, { intentId: 'i1' }));
    const b = await m.add({ text: doc, kind: EntryKind.ENTRY_KIND_DOCUMENT, tags: ['x'] });
    const c = await m.add({ text: 'gamma counted', tags: ['z'] }, context(ADMIN, { jobId: 'j1' }));
    await m.add({ text: 'delta counted' }, context(), 'k');
    await m.call(
      'updateEntry',
      memoryV1.UpdateEntryRequest.fromPartial({
        entry: { name: a.name, tags: ['y', 'w'], text: doc },
        updateMask: ['tags', 'text'],
      }),
    );
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: b.name }));
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: c.name, purge: true }));
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: b.name, purge: true }));
    await failure(
      m.call(
        'batchAddEntries',
        memoryV1.BatchAddEntriesRequest.fromPartial({
          requests: [
            { entry: { text: 'rolled back', tags: ['x'] } },
            { entry: { text: 'other' }, idempotencyKey: 'k' },
          ],
        }),
      ),
    );
    const db = new Database(join(m.dir, 'memory', 'memory.db'), { readonly: true });
    const counts = db.prepare('SELECT token, passages FROM filter_counts').all() as {
      token: string;
      passages: number;
    }[];
    const actual = (token: string): number =>
      db
        .prepare(`SELECT count(*) FROM passages WHERE ${token ? 'passages MATCH ?' : '1 = 1'}`)
        .pluck()
        .get(...(token ? [`meta : ${token}`] : [])) as number;
    expect(counts.length).toBeGreaterThan(5);
    for (const { token, passages } of counts) expect([token, passages]).toEqual([token, actual(token)]);
    db.close();
    await m.dispose();
  });

  it('leave out a filter every passage carries, and still filter once one does not', async () => {
    const m = await Memory.start();
    await m.add({ text: 'shared heron' });
    await m.add({ text: 'shared heron again' });
    const byAdmin = await m.search({ query: 'heron', actor: ADMIN, kind: EntryKind.ENTRY_KIND_NOTE });
    expect(byAdmin.totalCandidates).toBe(2n);
    expect((await m.search({ query: 'heron', actor: ALICE })).totalCandidates).toBe(0n);
    await m.add({ text: 'heron by alice' }, context(ALICE));
    expect((await m.search({ query: 'heron', actor: ADMIN })).totalCandidates).toBe(2n);
    expect((await m.search({ query: 'heron', actor: ALICE })).totalCandidates).toBe(1n);
    expect((await m.search({ query: 'heron', kind: EntryKind.ENTRY_KIND_DOCUMENT })).totalCandidates).toBe(
      0n,
    );
    await m.dispose();
  });
});

describe('memory: durability and quota', () => {
  it('keeps entries, versions and the index across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aether-memory-'));
    const first = await Memory.start({}, dir);
    const e = await first.add({ text: 'persistent narwhal', tags: ['keep'] });
    await first.close();
    const second = await Memory.start({}, dir);
    expect((await second.get(e.name)).text).toBe('persistent narwhal');
    const res = await second.search({ query: 'narwhal', tags: ['keep'] });
    expect(res.citations.map((c) => c.entry)).toEqual([e.name]);
    const later = await second.add({ text: 'later narwhal' });
    expect(later.updateTime!.seconds).toBeGreaterThanOrEqual(e.updateTime!.seconds);
    await second.dispose();
  });

  it('refuses text beyond the quota with STORE_QUOTA_EXCEEDED and gives it back on purge', async () => {
    const m = await Memory.start({ quotaBytes: 100 });
    const e = await m.add({ text: 'x'.repeat(60) });
    const over = await failure(m.add({ text: 'y'.repeat(60) }));
    expect([over.codeName, over.reason]).toEqual(['RESOURCE_EXHAUSTED', 'STORE_QUOTA_EXCEEDED']);
    await m.call('deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: e.name, purge: true }));
    await m.add({ text: 'y'.repeat(60) });
    await m.dispose();
  });
});
