import type Database from 'better-sqlite3';

/** Which way a lineage walk goes from the queried artifact. */
export type LineageDirection = 'ancestors' | 'descendants' | 'both';

export interface LineageQuery {
  direction: LineageDirection;
  /** Edges to follow, at least 1. */
  maxDepth: number;
  /** Nodes to return at most, the queried one included (at least 1). */
  maxNodes: number;
}

/** The graph around an artifact: ids (of records that may since have been deleted) and edges. */
export interface LineageGraph {
  /** The queried artifact first (depth 0), then the nearest nodes: ancestors negative, descendants positive. */
  nodes: { id: string; depth: number }[];
  /** Every "derived from" edge between two of the nodes. */
  edges: { parent: string; child: string }[];
  /** True when `maxNodes` cut the walk short. */
  truncated: boolean;
}

// Breadth first: without ORDER BY, SQLite's recursive CTE works through a FIFO queue, so rows come out
// in order of depth and the first row of an id carries its shortest distance. UNION drops repeated
// (id, depth) rows, so a diamond-shaped graph costs at most one row per node and depth; the LIMIT bounds
// the work even then (see `walk`).
const walkSql = (from: 'child_id' | 'parent_id', to: 'child_id' | 'parent_id'): string => `
  WITH RECURSIVE walk(id, depth) AS (
    SELECT @id, 0
    UNION
    SELECT e.${to}, w.depth + 1 FROM walk w JOIN lineage e ON e.${from} = w.id WHERE w.depth < @maxDepth
    LIMIT @rowCap
  )
  SELECT id, min(depth) AS depth FROM walk WHERE id <> @id GROUP BY id ORDER BY depth, id LIMIT @limit`;

const ANCESTORS = walkSql('child_id', 'parent_id');
const DESCENDANTS = walkSql('parent_id', 'child_id');
const EDGES = `
  SELECT parent_id AS parent, child_id AS child FROM lineage
  WHERE child_id IN (SELECT value FROM json_each(@ids)) AND parent_id IN (SELECT value FROM json_each(@ids))
  ORDER BY child_id, n`;

/**
 * Walks the lineage edges around `id` with recursive CTEs: ancestors (what it was derived from),
 * descendants (what was derived from it) or both, up to `maxDepth` edges away and `maxNodes` nodes,
 * nearest first. Edges outlive deleted records, so the walk goes through them.
 */
export function walkLineage(db: Database.Database, id: string, q: LineageQuery): LineageGraph {
  const budget = Math.max(0, q.maxNodes - 1);
  const walk = (sql: string, sign: number): { id: string; depth: number }[] => {
    // A row per node and depth at most: this many rows hold more than `budget` distinct nodes whenever
    // the graph has them, so the cap never hides a truncation.
    const rowCap = (budget + 1) * (q.maxDepth + 1) + 1;
    const rows = db.prepare(sql).all({ id, maxDepth: q.maxDepth, rowCap, limit: budget + 1 }) as {
      id: string;
      depth: number;
    }[];
    return rows.map((r) => ({ id: r.id, depth: sign * r.depth }));
  };
  const found = [
    ...(q.direction !== 'descendants' ? walk(ANCESTORS, -1) : []),
    ...(q.direction !== 'ancestors' ? walk(DESCENDANTS, 1) : []),
  ];
  found.sort((a, b) => Math.abs(a.depth) - Math.abs(b.depth) || a.depth - b.depth || cmp(a.id, b.id));
  const truncated = found.length > budget;
  const nodes = [{ id, depth: 0 }, ...found.slice(0, budget)];
  const edges = db.prepare(EDGES).all({ ids: JSON.stringify(nodes.map((n) => n.id)) }) as {
    parent: string;
    child: string;
  }[];
  return { nodes, edges, truncated };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
