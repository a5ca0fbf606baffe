import { modelsV1 } from '@aether/proto';
import { unaryCall } from '@aether/rpc';
import type { EmbeddingLeg } from './search';

/** The FTS candidates the leg embeds and ranks, best first by FTS (the rest keep their FTS rank only). */
export const SEMANTIC_CANDIDATES = 256;
/** Texts per Embed call. */
const BATCH = 64;
/** Passage vectors kept in memory (a passage's rowid never changes its text: a new version is new rows). */
const CACHE_SIZE = 50_000;
/** Longest text sent to the model, in characters (passages are `memory.passageLength` long). */
const MAX_TEXT = 8_000;

export interface EmbedClient {
  embed(texts: string[], signal: AbortSignal): Promise<Float32Array[]>;
}

/** cfcd's Embed as an {@link EmbedClient}. */
export function cfcdEmbedClient(client: modelsV1.ModelRuntimeServiceClient, model: string): EmbedClient {
  return {
    embed: async (texts, signal) => {
      const res = await unaryCall(
        client.embed.bind(client),
        modelsV1.EmbedRequest.fromPartial({ name: model, texts }),
        { signal, timeoutMs: 30_000 },
      );
      return res.embeddings.map((e) => Float32Array.from(e.values));
    },
  };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/**
 * Memory's semantic leg through cfcd: the query and the top FTS candidates' passages are embedded (the
 * passages once each, then from an in-memory cache) and the candidates ranked by cosine similarity to the
 * query. Any failure (cfcd down, the model unknown) rejects, and the search answers with FTS alone.
 */
export class CfcdEmbeddingLeg implements EmbeddingLeg {
  private readonly cache = new Map<number, Float32Array>();

  constructor(
    readonly model: string,
    private readonly client: EmbedClient,
    private readonly passageText: (rowid: number) => string | undefined,
  ) {}

  async rank(query: string, candidates: readonly number[], signal: AbortSignal): Promise<number[]> {
    const top = candidates.slice(0, SEMANTIC_CANDIDATES);
    const missing: { rowid: number; text: string }[] = [];
    for (const rowid of top) {
      if (this.cache.has(rowid)) continue;
      const text = this.passageText(rowid);
      if (text !== undefined) missing.push({ rowid, text: text.slice(0, MAX_TEXT) });
    }
    const [q] = await this.client.embed([query.slice(0, MAX_TEXT)], signal);
    if (!q) throw new Error(`${this.model} returned no embedding for the query`);
    for (let i = 0; i < missing.length; i += BATCH) {
      const batch = missing.slice(i, i + BATCH);
      const vectors = await this.client.embed(
        batch.map((m) => m.text),
        signal,
      );
      if (vectors.length !== batch.length)
        throw new Error(`${this.model} returned ${vectors.length} embeddings for ${batch.length} texts`);
      batch.forEach((m, j) => this.remember(m.rowid, vectors[j]!));
    }
    return top
      .flatMap((rowid) => {
        const v = this.cache.get(rowid);
        return v ? [{ rowid, score: cosine(q, v) }] : [];
      })
      .sort((a, b) => b.score - a.score)
      .map((c) => c.rowid);
  }

  private remember(rowid: number, v: Float32Array): void {
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(rowid, v);
  }
}
