import type { Logger } from '@aether/log';
import { eventsV1 } from '@aether/proto';

/** Sends a batch of events to aetherd (BatchEmitEvents). */
export type EmitBatch = (requests: eventsV1.EmitEventRequest[]) => Promise<void>;

/**
 * aurorad's `intent.*` events for aetherd's stream, sent in batches a moment after they happen. They are
 * for subscribers (the intent's own history is the record), so they must never sit on an intent's
 * critical path: sent at once, the RUNNING event reached aetherd just ahead of the step's SubmitJob and
 * delayed it by its commit.
 */
export class IntentEventBatcher {
  private queue: eventsV1.EmitEventRequest[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly emit: EmitBatch,
    private readonly log: Logger,
    private readonly delayMs = 100,
  ) {}

  push(event: Partial<eventsV1.Event>): void {
    this.queue.push(eventsV1.EmitEventRequest.fromPartial({ event }));
    if (this.queue.length >= 1000) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.delayMs);
      this.timer.unref();
    }
  }

  /** Sends what is queued (in order, after any batch still in flight). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return this.sending;
    this.sending = this.sending.then(() =>
      this.emit(batch).catch((err: unknown) =>
        this.log.debug({ events: batch.length, err: (err as Error).message }, 'intent events not emitted'),
      ),
    );
    return this.sending;
  }
}
