import { CfcdEmbeddingLeg, SEMANTIC_CANDIDATES, type EmbedClient } from './cfcd-embeddings';

// The leg's ranking and caching on their own; the same leg against a real cfcd is in
// tools/e2e/test/memory-semantic.test.ts.
function recording(vector: (text: string) => number[]): EmbedClient & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    embed: (texts) => {
      calls.push(texts);
      return Promise.resolve(texts.map((t) => Float32Array.from(vector(t))));
    },
  };
}

const signal = new AbortController().signal;

describe('CfcdEmbeddingLeg', () => {
  const texts: Record<number, string> = { 1: 'east', 2: 'north', 3: 'north-east', 4: 'west' };
  const compass = (t: string): number[] => {
    const v = [0, 0];
    if (t.includes('east')) v[0] = 1;
    if (t.includes('west')) v[0] = -1;
    if (t.includes('north')) v[1] = 1;
    return v;
  };

  it('ranks the candidates by cosine similarity to the query, best first', async () => {
    const leg = new CfcdEmbeddingLeg('models/e', recording(compass), (r) => texts[r]);
    expect(await leg.rank('east', [1, 2, 3, 4], signal)).toEqual([1, 3, 2, 4]);
    expect(await leg.rank('north', [1, 2, 3, 4], signal)).toEqual([2, 3, 1, 4]);
  });

  it('embeds each passage once, and leaves out candidates whose text is gone', async () => {
    const client = recording(compass);
    const leg = new CfcdEmbeddingLeg('models/e', client, (r) => texts[r]);
    await leg.rank('east', [1, 2, 9], signal);
    expect(client.calls).toEqual([['east'], ['east', 'north']]);
    expect(await leg.rank('west', [1, 2, 3, 9], signal)).toEqual([2, 3, 1]);
    expect(client.calls.slice(2)).toEqual([['west'], ['north-east']]);
  });

  it('embeds the top candidates only, in batches of 64', async () => {
    const client = recording(() => [1, 0]);
    const leg = new CfcdEmbeddingLeg('models/e', client, (r) => `passage ${r}`);
    const ranked = await leg.rank(
      'q',
      Array.from({ length: 1000 }, (_, i) => i),
      signal,
    );
    expect(ranked).toHaveLength(SEMANTIC_CANDIDATES);
    expect(client.calls.slice(1).map((c) => c.length)).toEqual([64, 64, 64, 64]);
  });

  it('rejects when the model answers the wrong number of vectors (the search then uses FTS alone)', async () => {
    const client: EmbedClient = { embed: () => Promise.resolve([Float32Array.from([1])]) };
    const leg = new CfcdEmbeddingLeg('models/e', client, (r) => texts[r]);
    await expect(leg.rank('east', [1, 2], signal)).rejects.toThrow(/1 embeddings for 2 texts/);
  });
});
