import { join } from 'node:path';
import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { modelsV1, type memoryV1 } from '@aether/proto';
import { createClient, type ServiceHandlers } from '@aether/rpc';
import { CfcdEmbeddingLeg, cfcdEmbedClient } from './cfcd-embeddings';
import type { EventSink } from '../events/event-hub';
import { MemoryStore, type MemoryChange } from './memory-store';
import { memoryServiceHandlers } from './memory-service';
import { MemorySearch, type EmbeddingLeg } from './search';

/**
 * Brings up the memory store (ARCHITECTURE §6) and returns its service handlers. With
 * `memory.embeddingModel` set, `semantic` searches add a second ranking by cfcd's embeddings of that
 * model (reached at `cfcd.*`), fused with FTS by reciprocal rank; without it, or while cfcd cannot
 * answer, they are FTS alone and say so (`semantic_applied: false`).
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
  let leg: EmbeddingLeg | undefined;
  let cfcd: modelsV1.ModelRuntimeServiceClient | undefined;
  const model = config.memory.embeddingModel;
  if (model) {
    const name = model.startsWith('models/') ? model : `models/${model}`;
    cfcd = createClient(modelsV1.ModelRuntimeServiceClient, config.cfcd);
    leg = new CfcdEmbeddingLeg(name, cfcdEmbedClient(cfcd, name), (rowid) => store.passageText(rowid));
    memoryLog.info(
      { embeddingModel: name, cfcd: config.cfcd.socket },
      'memory: semantic ranking through cfcd',
    );
  }
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
      cfcd?.close();
      search.close();
      store.close();
      return Promise.resolve();
    },
  });
}
