import { SessionWorker } from './session-worker';

interface Entry {
  loading: Promise<SessionWorker>;
  worker?: SessionWorker;
  inFlight: number;
  /** Removed from the cache: the worker closes when the last request on it finishes. */
  retired: boolean;
  drained?: () => void;
}

export type LoadState = 'loading' | 'ready' | 'failed' | 'unloaded';

/**
 * The loaded models: at most `max` session workers, least recently used out first. A model is loaded on
 * first use (concurrent first uses share one load); one that leaves the cache (evicted, unloaded) closes
 * once the requests already running on it finish.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly failures = new Map<string, string>();

  constructor(
    private readonly max: number,
    private readonly start: (path: string) => Promise<SessionWorker> = (p) => SessionWorker.start(p),
  ) {}

  state(id: string): LoadState {
    const e = this.entries.get(id);
    if (e) return e.worker ? 'ready' : 'loading';
    return this.failures.has(id) ? 'failed' : 'unloaded';
  }

  loadError(id: string): string {
    return this.failures.get(id) ?? '';
  }

  /** Runs `fn` on the model's session, loading it from `path` first if needed. */
  async use<T>(id: string, path: string, fn: (w: SessionWorker) => Promise<T>): Promise<T> {
    let entry = this.entries.get(id);
    if (entry) {
      // Most recently used last.
      this.entries.delete(id);
      this.entries.set(id, entry);
    } else {
      const e: Entry = { loading: this.start(path), inFlight: 0, retired: false };
      e.loading.then(
        (w) => {
          e.worker = w;
          this.failures.delete(id);
        },
        (err: unknown) => {
          if (this.entries.get(id) === e) this.entries.delete(id);
          this.failures.set(id, err instanceof Error ? err.message : String(err));
        },
      );
      this.entries.set(id, e);
      entry = e;
      this.evict();
    }
    entry.inFlight++;
    try {
      return await fn(await entry.loading);
    } finally {
      entry.inFlight--;
      if (entry.retired && entry.inFlight === 0) entry.drained?.();
    }
  }

  /** Takes the model out of the cache; resolves once its in-flight requests finished and it closed. */
  async unload(id: string): Promise<void> {
    const entry = this.entries.get(id);
    this.failures.delete(id);
    if (!entry) return;
    this.entries.delete(id);
    await this.retire(entry);
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => this.retire(e)));
  }

  private evict(): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.max) break;
      this.entries.delete(id);
      void this.retire(e);
    }
  }

  private async retire(e: Entry): Promise<void> {
    e.retired = true;
    if (e.inFlight > 0) await new Promise<void>((resolve) => (e.drained = resolve));
    const worker = await e.loading.catch(() => undefined);
    await worker?.close();
  }
}
