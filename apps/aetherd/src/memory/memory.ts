import { join } from 'node:path';
import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import type { memoryV1 } from '@aether/proto';
import type { ServiceHandlers } from '@aether/rpc';
import type { EventSink } from '../events/event-hub';
import { MemoryStore, type MemoryChange } from './memory-store';
import { memoryServiceHandlers } from './memory-service';
import { MemorySearch, type EmbeddingLeg } from './search';

/**
 * Brings up the memory store (ARCHITECTURE §6) and returns its service handlers. Semantic ranking needs
 * an {@link EmbeddingLeg}; cfcd serves no embeddings yet, so none is set and `semantic` searches are FTS
 * alone (`semantic_applied: false`), even when `memory.embeddingModel` names a model.
 */
export function startMemory(
  config: AetherdConfig,
  log: Logger,
  events?: EventSink,
): Promise<{
  handlers: ServiceHandlers<typeof memoryV1.MemoryServiceService>;
  store: MemoryStore;
  search: MemorySearch;
  close: () => Promise<void>;
}> {
  const dir = config.memory.dir || join(config.stateDir, 'memory');
  const memoryLog = log.child({ component: 'memory' });
  const store = MemoryStore.open(dir, {
    quotaBytes: config.memory.quotaBytes,
    ...(events
      ? {
          onChange: (c: MemoryChange) =>
            events({
              type: `memory.entry_${c.kind}`,
              subject: `entries/${c.entryId}`,
              ...(c.jobId ? { jobId: c.jobId } : {}),
              ...(c.intentId ? { intentId: c.intentId } : {}),
              data: { version: c.version, actor: c.actor, ...(c.purged ? { purged: true } : {}) },
            }),
        }
      : {}),
  });
  const leg: EmbeddingLeg | undefined = undefined;
  if (config.memory.embeddingModel)
    memoryLog.warn(
      { embeddingModel: config.memory.embeddingModel },
      'memory: semantic ranking is configured but cfcd serves no embeddings yet; searches use FTS5 alone',
    );
  const search = new MemorySearch(store, {
    candidateCap: config.memory.candidateCap,
    log: memoryLog,
    ...(leg ? { leg } : {}),
  });
  memoryLog.info(
    { dir, candidateCap: config.memory.candidateCap, passageLength: config.memory.passageLength },
    'memory: ready',
  );
  return Promise.resolve({
    handlers: memoryServiceHandlers(store, search, config.memory),
    store,
    search,
    close: () => {
      search.close();
      store.close();
      return Promise.resolve();
    },
  });
}
