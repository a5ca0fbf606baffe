import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import type { memoryV1 } from '@aether/proto';
import type { ServiceHandlers } from '@aether/rpc';

/** Brings up the memory store (ARCHITECTURE §6) and returns its service handlers. */
export function startMemory(
  _config: AetherdConfig,
  _log: Logger,
): Promise<{ handlers: ServiceHandlers<typeof memoryV1.MemoryServiceService>; close: () => Promise<void> }> {
  return Promise.resolve({ handlers: {}, close: () => Promise.resolve() });
}
