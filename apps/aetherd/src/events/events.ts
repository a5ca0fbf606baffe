import { join } from 'node:path';
import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import type { ServiceHandlers } from '@aether/rpc';
import { EventHub } from './event-hub';
import { eventServiceDefinition, eventServiceHandlers } from './event-service';
import { EventStore } from './event-store';

/**
 * Brings up the event stream (ARCHITECTURE §8): the store under `<stateDir>/events`, retention, and the
 * EventService. The hub's `sink` is where aetherd's components report their own events; it opens first
 * so that what they do while starting (a job found ended during a restart) is recorded too.
 */
export function startEvents(
  config: AetherdConfig,
  log: Logger,
): {
  hub: EventHub;
  definition: typeof eventServiceDefinition;
  handlers: ServiceHandlers<typeof eventServiceDefinition>;
  close: () => Promise<void>;
} {
  const dir = config.events.dir || join(config.stateDir, 'events');
  const eventsLog = log.child({ component: 'events' });
  const store = EventStore.open(dir);
  const hub = new EventHub(store, config.events, eventsLog, `spiffe://${config.tls.trustDomain}/aetherd`);
  eventsLog.info(
    {
      dir,
      head: store.head,
      oldest: store.oldest,
      maxEvents: config.events.maxEvents,
      maxAgeSeconds: config.events.maxAgeSeconds,
    },
    'events: ready',
  );
  return {
    hub,
    definition: eventServiceDefinition,
    handlers: eventServiceHandlers(hub, config.events),
    close: () => hub.close(),
  };
}
