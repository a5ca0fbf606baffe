import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@aether/log';
import { ArtifactStore } from './artifact-store';

const ACTOR = 'spiffe://aether.local/admin';

describe('artifact lineage (recursive CTE over derived-from edges)', () => {
  let dir: string;
  let store: ArtifactStore;
  /** Registers an artifact derived from `parents` (by label) and remembers it under `label`. */
  const ids = new Map<string, string>();
  const make = async (label: string, ...parents: string[]): Promise<void> => {
    const u = await store.beginUpload({
      actor: ACTOR,
      filename: label,
      derivedFrom: parents.map((p) => ids.get(p)!),
    });
    await u.write(Buffer.from(label));
    ids.set(label, (await u.finish()).artifact.id);
  };
  const label = (id: string): string => [...ids].find(([, v]) => v === id)?.[0] ?? id;
  const walk = (
    of: string,
    direction: 'ancestors' | 'descendants' | 'both',
    maxDepth = 64,
    maxNodes = 1000,
  ): { nodes: string[]; edges: string[]; truncated: boolean; deleted: string[] } => {
    const { graph, records } = store.lineage(ids.get(of)!, { direction, maxDepth, maxNodes });
    // Nearest first: the queried artifact, then by distance.
    expect(graph.nodes[0]).toEqual({ id: ids.get(of), depth: 0 });
    const distances = graph.nodes.map((n) => Math.abs(n.depth));
    expect(distances).toEqual([...distances].sort((a, b) => a - b));
    return {
      nodes: graph.nodes.map((n) => `${label(n.id)}@${n.depth}`).sort(),
      edges: graph.edges.map((e) => `${label(e.parent)}>${label(e.child)}`).sort(),
      truncated: graph.truncated,
      deleted: graph.nodes.filter((n) => !records.has(n.id)).map((n) => label(n.id)),
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'artifact-lineage-'));
    store = await ArtifactStore.open({
      dir,
      limits: { maxArtifactBytes: 0, quotaBytes: 0, reserveFreeBytes: 0 },
      log: createLogger({ service: 'test', level: 'silent' }),
    });
    //   raw ──► clean ──► model ──► report
    //   vocab ─────────────┘  └──► eval (also from clean: a diamond)
    await make('raw');
    await make('vocab');
    await make('clean', 'raw');
    await make('model', 'clean', 'vocab');
    await make('report', 'model');
    await make('eval', 'model', 'clean');
  });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('walks ancestors with negative depths, each node once at its shortest distance', () => {
    expect(walk('eval', 'ancestors')).toEqual({
      nodes: ['clean@-1', 'eval@0', 'model@-1', 'raw@-2', 'vocab@-2'],
      edges: ['clean>eval', 'clean>model', 'model>eval', 'raw>clean', 'vocab>model'],
      truncated: false,
      deleted: [],
    });
  });

  it('walks descendants and both ways, limited by depth', () => {
    expect(walk('clean', 'descendants').nodes).toEqual(['clean@0', 'eval@1', 'model@1', 'report@2']);
    expect(walk('clean', 'descendants', 1).nodes).toEqual(['clean@0', 'eval@1', 'model@1']);
    const both = walk('model', 'both', 1);
    expect(both.nodes).toEqual(['clean@-1', 'eval@1', 'model@0', 'report@1', 'vocab@-1']);
    expect(both.edges).toEqual(['clean>eval', 'clean>model', 'model>eval', 'model>report', 'vocab>model']);
  });

  it('stops at max_nodes, nearest first, and says it was truncated', () => {
    const cut = walk('model', 'both', 64, 3);
    expect(cut.truncated).toBe(true);
    expect(cut.nodes).toHaveLength(3);
    expect(cut.nodes).toContain('model@0');
    for (const n of cut.nodes) expect(Math.abs(Number(n.split('@')[1]))).toBeLessThanOrEqual(1);
    expect(walk('raw', 'ancestors', 64, 1)).toMatchObject({ nodes: ['raw@0'], truncated: false });
    expect(walk('clean', 'ancestors', 64, 1)).toMatchObject({ nodes: ['clean@0'], truncated: true });
  });

  it('keeps edges through a deleted artifact and reports it as deleted', async () => {
    await store.delete(ids.get('clean')!);
    const up = walk('eval', 'ancestors');
    expect(up.nodes).toContain('clean@-1');
    expect(up.nodes).toContain('raw@-2');
    expect(up.deleted).toEqual(['clean']);
    expect(store.get(ids.get('model')!)!.derivedFrom).toEqual([ids.get('clean'), ids.get('vocab')]);
  });
});
