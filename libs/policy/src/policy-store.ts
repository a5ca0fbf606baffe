import { watch, type FSWatcher } from 'node:fs';
import { PolicyLoadError } from './errors';
import { PolicyEngine, type PolicyEngineOptions } from './policy-engine';
import { ENGINE_ERROR, policySetHash, readPolicyDir } from './policy-set-compiler';
import type { Decision, PolicyFileError, PolicyQuery } from './types';

/** The outcome of a reload: the new set is in force, or it was rejected and the old one stays. */
export type ReloadResult =
  | {
      applied: true;
      /** Hash of the set now in force. */
      hash: string;
      /** False when the files had not changed (the engine in force was kept). */
      changed: boolean;
      /** Hash of the set before the reload; undefined on the first load. */
      previousHash?: string;
    }
  | {
      applied: false;
      /** Why the new files were rejected, each with file, line and column. */
      errors: PolicyFileError[];
      /** Hash of the rejected files. */
      rejectedHash: string;
      /** Hash of the set still in force; undefined when none was ever loaded. */
      hash?: string;
    };

export interface PolicyStoreOptions {
  /** Quiet time after the last file event before a watch reloads (default 100 ms). */
  debounceMs?: number;
  /** Delay before a watch whose directory went away tries again (default 1000 ms). */
  rewatchMs?: number;
  /** Options for every engine the store builds. */
  engine?: PolicyEngineOptions;
}

/**
 * The policy set in force for one directory. `decide` delegates to the current engine, so the store can be
 * passed to the RPC pipeline as its policy hook; `reload` (on SIGHUP) and `watch` (on file change) swap in
 * a new engine atomically, and a set that does not load leaves the old one in force.
 *
 * ```ts
 * const policy = new PolicyStore('/etc/aether/policy');
 * policy.load();                                  // throws PolicyLoadError on a bad set
 * process.on('SIGHUP', () => report(policy.reload()));
 * const stop = policy.watch((r) => report(r));
 * ```
 */
export class PolicyStore {
  private engine: PolicyEngine | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rewatchTimer: NodeJS.Timeout | undefined;
  private readonly debounceMs: number;
  private readonly rewatchMs: number;
  private readonly engineOptions: PolicyEngineOptions;
  private readonly listeners: ((result: ReloadResult) => void)[] = [];
  private loadedAt: Date | undefined;

  constructor(
    /** The policy directory: `*.cedar` files and one `*.cedarschema`. */
    readonly dir: string,
    options: PolicyStoreOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 100;
    this.rewatchMs = options.rewatchMs ?? 1000;
    this.engineOptions = options.engine ?? {};
  }

  /** Loads the directory and puts it in force. Throws {@link PolicyLoadError} when it does not load. */
  load(): PolicyEngine {
    this.engine = PolicyEngine.fromDirectory(this.dir, this.engineOptions);
    this.loadedAt = new Date();
    return this.engine;
  }

  /**
   * Loads the directory again. A set that loads replaces the one in force (atomically: a decision uses
   * either the old or the new set, never a mix); one that does not is rejected with its errors and the
   * old set stays in force. Unchanged files keep the engine in force.
   */
  reload(): ReloadResult {
    const result = this.reloadOnce();
    if (!result.applied || result.changed) {
      for (const listener of this.listeners) listener(result);
    }
    return result;
  }

  /**
   * Calls `listener` after every reload that put a new set in force or was rejected, whatever asked for
   * it (SIGHUP, a file change, the ReloadPolicy RPC). Listeners must not throw.
   */
  onReload(listener: (result: ReloadResult) => void): void {
    this.listeners.push(listener);
  }

  /** When the set in force was loaded; undefined before the first load. */
  get loadTime(): Date | undefined {
    return this.loadedAt;
  }

  private reloadOnce(): ReloadResult {
    const previous = this.engine;
    const previousHash = previous ? { previousHash: previous.hash } : {};
    let next: PolicyEngine;
    try {
      const files = readPolicyDir(this.dir);
      if (previous && policySetHash(files) === previous.hash) {
        return { applied: true, hash: previous.hash, changed: false, ...previousHash };
      }
      next = PolicyEngine.fromSources(files, this.dir, this.engineOptions);
    } catch (err) {
      if (err instanceof PolicyLoadError) return this.rejected([...err.errors], err.hash);
      const message = `cannot read the policy directory: ${err instanceof Error ? err.message : String(err)}`;
      return this.rejected([{ file: this.dir, line: 1, column: 1, message }], '');
    }
    this.engine = next;
    this.loadedAt = new Date();
    return { applied: true, hash: next.hash, changed: true, ...previousHash };
  }

  /** The engine in force. Throws when nothing was loaded yet. */
  get current(): PolicyEngine {
    if (!this.engine) throw new Error(`no policy set loaded from ${this.dir}`);
    return this.engine;
  }

  /** Hash of the set in force, if any. */
  get hash(): string | undefined {
    return this.engine?.hash;
  }

  /** Decides with the set in force; denies (`engine-error`) when none was loaded. Never throws. */
  decide(query: PolicyQuery): Decision {
    const engine = this.engine;
    if (!engine) {
      return {
        effect: 'deny',
        policyIds: [ENGINE_ERROR],
        reason: `no policy set loaded from ${this.dir}`,
      };
    }
    return engine.decide(query);
  }

  /**
   * Reloads whenever a file in the directory changes, after `debounceMs` of quiet, and reports each reload
   * that changed the set in force or was rejected (an unchanged one is not reported). Watches the directory, not single files, so editors that save by
   * writing a new file and renaming it over the old one are seen. If the directory goes away, retries every
   * `rewatchMs`. Returns a function that stops watching.
   */
  watch(onReload: (result: ReloadResult) => void = () => {}): () => void {
    this.unwatch();
    const schedule = (): void => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        const result = this.reload();
        if (!result.applied || result.changed) onReload(result);
      }, this.debounceMs);
      this.timer.unref();
    };
    const start = (): void => {
      this.rewatchTimer = undefined;
      try {
        const watcher = watch(this.dir, { persistent: false }, schedule);
        watcher.on('error', () => {
          watcher.close();
          if (this.watcher === watcher) {
            this.watcher = undefined;
            retry();
          }
        });
        this.watcher = watcher;
      } catch {
        retry();
        return;
      }
      // Changes between the last load and the watch starting (or while the directory was gone).
      schedule();
    };
    const retry = (): void => {
      this.rewatchTimer = setTimeout(start, this.rewatchMs);
      this.rewatchTimer.unref();
    };
    this.watcher = undefined;
    start();
    return () => this.unwatch();
  }

  /** Stops watching (no-op when not watching). */
  close(): void {
    this.unwatch();
  }

  private unwatch(): void {
    clearTimeout(this.timer);
    clearTimeout(this.rewatchTimer);
    this.timer = undefined;
    this.rewatchTimer = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    w?.close();
  }

  private rejected(errors: PolicyFileError[], rejectedHash: string): ReloadResult {
    return {
      applied: false,
      errors,
      rejectedHash,
      ...(this.engine ? { hash: this.engine.hash } : {}),
    };
  }
}
