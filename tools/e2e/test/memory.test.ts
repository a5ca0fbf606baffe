import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { AetherClient } from '@aether/client';
import { memoryV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import { Stack } from '../src';

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

const add = async (c: AetherClient, entry: Partial<memoryV1.Entry>): Promise<memoryV1.Entry> =>
  (await c.call(c.memory, 'addEntry', memoryV1.AddEntryRequest.fromPartial({ entry }))).entry!;

const search = (c: AetherClient, req: Partial<memoryV1.SearchRequest>): Promise<memoryV1.SearchResponse> =>
  c.call(c.memory, 'search', memoryV1.SearchRequest.fromPartial(req));

const get = async (c: AetherClient, name: string, version?: bigint): Promise<memoryV1.Entry> =>
  (
    await c.call(
      c.memory,
      'getEntry',
      memoryV1.GetEntryRequest.fromPartial({ name, ...(version !== undefined ? { version } : {}) }),
    )
  ).entry!;

/** A forbid rule on a tag, to show that policy sees an entry's tags (the union, for a batch). */
const SECRET_POLICY = `
@id("test-no-secret-memory")
@reason("entries tagged secret may not be written")
forbid (principal, action in Aether::Action::"memory.write", resource is Aether::MemoryEntry)
when { resource has tags && resource.tags.contains("secret") };
`;

describe('memory: entries, search and durability through aetherd', () => {
  let stack: Stack;
  let admin: AetherClient;

  beforeAll(async () => {
    stack = await new Stack({
      extraIdentities: ['stranger'],
      memory: { maxEntryBytes: 4096, passageLength: 200 },
    }).init();
    writeFileSync(join(stack.policyDir, 'test-memory.cedar'), SECRET_POLICY);
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
  });

  it('adds, gets, updates, lists versions, deletes and purges an entry', async () => {
    const e = await add(admin, {
      title: 'Runbook',
      text: 'restart the ingest worker when the queue stalls',
      tags: ['ops'],
      provenance: { sourceUri: 'https://wiki.example/runbook' } as memoryV1.Provenance,
    });
    expect(e).toMatchObject({ version: 1n, title: 'Runbook', tags: ['ops'], textLength: 47n });
    expect(e.provenance).toMatchObject({
      actor: 'spiffe://aether.local/admin',
      sourceUri: 'https://wiki.example/runbook',
    });
    expect(await get(admin, e.name)).toEqual(e);

    const v2 = (
      await admin.call(
        admin.memory,
        'updateEntry',
        memoryV1.UpdateEntryRequest.fromPartial({
          entry: { name: e.name, text: 'restart the ingest worker and page the on-call engineer' },
          updateMask: ['text'],
          expectedVersion: 1n,
        }),
      )
    ).entry!;
    expect(v2).toMatchObject({ version: 2n, title: 'Runbook' });
    expect((await get(admin, e.name, 1n)).text).toBe('restart the ingest worker when the queue stalls');
    expect((await search(admin, { query: 'stalls' })).citations).toEqual([]);
    expect((await search(admin, { query: 'engineer' })).citations.map((c) => c.version)).toEqual([2n]);

    await admin.call(admin.memory, 'deleteEntry', memoryV1.DeleteEntryRequest.fromPartial({ name: e.name }));
    expect((await search(admin, { query: 'engineer' })).citations).toEqual([]);
    const listed = await admin.call(
      admin.memory,
      'listEntries',
      memoryV1.ListEntriesRequest.fromPartial({ tags: ['ops'] }),
    );
    expect(listed.entries.map((x) => x.name)).not.toContain(e.name);
    const versions = await admin.call(
      admin.memory,
      'listEntryVersions',
      memoryV1.ListEntryVersionsRequest.fromPartial({ name: e.name }),
    );
    expect(versions.versions.map((v) => [v.version, v.deleted])).toEqual([
      [3n, true],
      [2n, false],
      [1n, false],
    ]);
    const gone = await failure(get(admin, e.name));
    expect([gone.code, gone.reason]).toEqual([status.NOT_FOUND, 'ENTRY_NOT_FOUND']);

    await admin.call(
      admin.memory,
      'deleteEntry',
      memoryV1.DeleteEntryRequest.fromPartial({ name: e.name, purge: true }),
    );
    expect((await failure(get(admin, e.name, 1n))).reason).toBe('ENTRY_NOT_FOUND');
  });

  it('searches with filters and cites exact code point spans', async () => {
    const text = '😀 launch checklist for 東京 región: verify the rollback plan 👩‍💻';
    const a = await add(admin, { text, tags: ['launch', 'tokyo'] });
    await add(admin, { text: 'launch checklist for the berlin region', tags: ['launch'] });
    const all = await search(admin, { query: 'launch checklist' });
    expect(all.totalCandidates).toBe(2n);
    const tokyo = await search(admin, {
      query: 'rollback',
      tags: ['launch', 'tokyo'],
      highlightOpen: '<',
      highlightClose: '>',
    });
    expect(tokyo.citations).toHaveLength(1);
    const c = tokyo.citations[0]!;
    expect(c).toMatchObject({ entry: a.name, version: 1n, passageIndex: 0 });
    expect(Array.from(text).slice(Number(c.charStart), Number(c.charEnd)).join('')).toBe(c.snippetText);
    expect(c.snippet).toContain('<rollback>');
    const h = c.highlights[0]!;
    expect(Array.from(text).slice(Number(h.charStart), Number(h.charEnd)).join('')).toBe('rollback');
    expect(c.provenance!.actor).toBe('spiffe://aether.local/admin');
    expect((await search(admin, { query: 'region', tags: ['tokyo'] })).citations[0]!.snippet).toContain(
      '[región]',
    );
    expect(
      (await search(admin, { query: 'launch', actor: 'spiffe://aether.local/nobody' })).citations,
    ).toEqual([]);
  });

  it('refuses a malformed query with INVALID_ARGUMENT / INVALID_QUERY and says where', async () => {
    for (const [query, position] of [
      ['"unterminated', '0'],
      ['AND', '0'],
      ['foo(', '3'],
      ['NEAR(', '4'],
    ] as const) {
      const err = await failure(search(admin, { query }));
      expect([err.code, err.reason, err.metadata['position']]).toEqual([
        status.INVALID_ARGUMENT,
        'INVALID_QUERY',
        position,
      ]);
      expect(err.message).toMatch(/^query: /);
    }
  });

  it('refuses an oversized entry with RESOURCE_EXHAUSTED / ENTRY_TOO_LARGE and NUL with INVALID_ARGUMENT', async () => {
    const big = await failure(add(admin, { text: 'x'.repeat(5000) }));
    expect([big.code, big.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'ENTRY_TOO_LARGE']);
    const nul = await failure(add(admin, { text: 'a\0b' }));
    expect([nul.code, nul.reason, nul.metadata['field']]).toEqual([
      status.INVALID_ARGUMENT,
      'INVALID_FIELD',
      'entry.text',
    ]);
  });

  it('adds a batch all or nothing', async () => {
    const res = await admin.call(
      admin.memory,
      'batchAddEntries',
      memoryV1.BatchAddEntriesRequest.fromPartial({
        requests: Array.from({ length: 50 }, (_, i) => ({
          entry: { text: `batch capybara ${i}`, tags: ['batch'] },
        })),
      }),
    );
    expect(res.entries.map((e) => e.text)).toEqual(
      Array.from({ length: 50 }, (_, i) => `batch capybara ${i}`),
    );
    expect((await search(admin, { query: 'capybara' })).totalCandidates).toBe(50n);
  });

  it('applies policy: per identity, per action and on an entry’s tags', async () => {
    const stranger = stack.client('stranger');
    const aurorad = stack.client('aurorad');
    const cfcd = stack.client('cfcd');
    try {
      const denied = await failure(add(stranger, { text: 'hello' }));
      expect([denied.code, denied.reason]).toEqual([status.PERMISSION_DENIED, 'POLICY_DENIED']);
      // aurorad reads and writes memory but may not delete; cfcd may only write.
      const e = await add(aurorad, { text: 'aurorad wrote this heron note' });
      expect(e.provenance!.actor).toBe('spiffe://aether.local/aurorad');
      expect((await search(aurorad, { query: 'heron' })).citations).toHaveLength(1);
      const del = await failure(
        aurorad.call(
          aurorad.memory,
          'deleteEntry',
          memoryV1.DeleteEntryRequest.fromPartial({ name: e.name }),
        ),
      );
      expect(del.code).toBe(status.PERMISSION_DENIED);
      await cfcd.call(
        cfcd.memory,
        'batchAddEntries',
        memoryV1.BatchAddEntriesRequest.fromPartial({ requests: [{ entry: { text: 'cfcd run summary' } }] }),
      );
      expect((await failure(search(cfcd, { query: 'heron' }))).code).toBe(status.PERMISSION_DENIED);
      // The forbid rule on the tag: a single entry, and a batch where only one element carries it.
      const secret = await failure(add(admin, { text: 'classified', tags: ['secret'] }));
      expect([secret.code, secret.reason]).toEqual([status.PERMISSION_DENIED, 'POLICY_DENIED']);
      expect(secret.message).toContain('test-no-secret-memory');
      const batch = await failure(
        admin.call(
          admin.memory,
          'batchAddEntries',
          memoryV1.BatchAddEntriesRequest.fromPartial({
            requests: [{ entry: { text: 'fine' } }, { entry: { text: 'classified', tags: ['secret'] } }],
          }),
        ),
      );
      expect(batch.code).toBe(status.PERMISSION_DENIED);
    } finally {
      stranger.close();
      aurorad.close();
      cfcd.close();
    }
  });

  it('loses no acknowledged write when aetherd is killed with SIGKILL', async () => {
    const acked: { name: string; token: string }[] = [];
    let stop = false;
    // Four writers add entries as fast as they can; aetherd is killed while they do.
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const token = `durable${w}x${i}`;
        try {
          const e = await add(admin, { text: `acknowledged ${token}`, tags: ['durability'] });
          acked.push({ name: e.name, token });
        } catch {
          return; // the connection died with aetherd: this write was not acknowledged
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    while (acked.length < 100) await new Promise((r) => setTimeout(r, 5));
    const aetherd = stack.daemons.get('aetherd')!;
    aetherd.child.kill('SIGKILL');
    await aetherd.exited;
    stop = true;
    await Promise.all(writers);
    expect(acked.length).toBeGreaterThanOrEqual(100);

    stack.daemons.delete('aetherd');
    await stack.start('aetherd');
    admin.close();
    admin = stack.client();
    for (const { name, token } of acked) {
      expect((await get(admin, name)).text).toBe(`acknowledged ${token}`);
    }
    const res = await search(admin, { query: acked[acked.length - 1]!.token, tags: ['durability'] });
    expect(res.citations.map((c) => c.entry)).toEqual([acked[acked.length - 1]!.name]);
    const count = await search(admin, { query: 'acknowledged', tags: ['durability'], pageSize: 1 });
    expect(Number(count.totalCandidates)).toBeGreaterThanOrEqual(acked.length);
  }, 60_000);
});
