import { memoryV1 } from '@aether/proto';
import { unaryCall } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { ScriptedModelServer, Stack } from '../src';

// Concept vectors: words of one concept share a dimension, so "feline" is near "kitten" though the two
// words share no letters (the point of a semantic leg).
const CONCEPTS = [
  ['cat', 'kitten', 'feline'],
  ['dog', 'puppy', 'canine'],
  ['car', 'sedan', 'vehicle'],
];
const embed = (text: string): number[] => {
  const words = text.toLowerCase().split(/\W+/);
  return [...CONCEPTS.map((c) => words.filter((w) => c.includes(w)).length), 0.01];
};

/**
 * Memory's semantic leg for real: aetherd asks cfcd's Embed (as its own identity, allowed by
 * `aetherd-embed`) for the query's and the candidates' vectors; cfcd forwards to an OpenAI-compatible
 * endpoint, here a local server written for the test (llama.cpp, vLLM and Ollama cannot run here).
 */
describe('memory: semantic ranking through cfcd embeddings', () => {
  let model: ScriptedModelServer;
  let stack: Stack;
  let admin: AetherClient;
  const names: Record<string, string> = {};

  const search = (query: string, semantic: boolean): Promise<memoryV1.SearchResponse> =>
    unaryCall(
      admin.memory.search.bind(admin.memory),
      memoryV1.SearchRequest.fromPartial({ query, semantic, pageSize: 10 }),
    );

  beforeAll(async () => {
    model = await ScriptedModelServer.start();
    model.embed = embed;
    stack = await new Stack({
      memory: { embeddingModel: 'embed' },
      cfcd: {
        generation: { endpoints: { embed: { baseUrl: model.baseUrl, model: 'e5', kind: 'embedding' } } },
      },
    }).init();
    await stack.start('aetherd');
    await stack.start('cfcd');
    admin = stack.client();
    for (const [key, text] of [
      ['puppy', 'field notes: the puppy barks'],
      ['sedan', 'field notes: the sedan parks'],
      ['kitten', 'field notes: the kitten sleeps all day long in the warm sun by the kitchen window'],
    ] as const) {
      const { entry } = await unaryCall(
        admin.memory.addEntry.bind(admin.memory),
        memoryV1.AddEntryRequest.fromPartial({ entry: { text } }),
      );
      names[key] = entry!.name;
    }
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await stack?.close();
    await model?.close();
  });

  it('fuses the embedding ranking with FTS: the entry nearest in meaning moves up', async () => {
    const fts = await search('notes OR feline', false);
    expect(fts.semanticApplied).toBe(false);
    // FTS alone: the long kitten entry ranks last (only "notes" matches, diluted by its length).
    expect(fts.citations.map((c) => c.entry).at(-1)).toBe(names['kitten']);

    const fused = await search('notes OR feline', true);
    expect(fused.semanticApplied).toBe(true);
    const order = fused.citations.map((c) => c.entry);
    expect(order).toHaveLength(3);
    expect(order.indexOf(names['kitten']!)).toBeLessThan(2);
    // aetherd embedded the query and the three passages through cfcd.
    const embedded = model.received.filter((r) => r.path === '/v1/embeddings');
    expect(embedded.length).toBeGreaterThanOrEqual(2);
    expect(embedded.flatMap((r) => r.body['input'] as string[])).toEqual(
      expect.arrayContaining(['notes OR feline', 'field notes: the puppy barks']),
    );
    // The passages' vectors are kept: a second search embeds only the query.
    const before = model.received.length;
    await search('notes OR feline', true);
    expect(model.received.length - before).toBe(1);
  });

  it('answers with FTS alone, and says so, when cfcd cannot embed', async () => {
    await stack.stop('cfcd');
    const res = await search('notes OR feline', true);
    expect(res.semanticApplied).toBe(false);
    expect(res.citations.map((c) => c.entry)).toEqual(
      (await search('notes OR feline', false)).citations.map((c) => c.entry),
    );
  });
});
