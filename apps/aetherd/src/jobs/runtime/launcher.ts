import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** How a program run to its end ended. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Set when it did not exit 0 (or could not start): the error's message. */
  error?: string;
}

/** What a detached monitor (conmon) reported on its sync pipe (fd 3) before it was let go. */
export interface MonitorResult {
  /** The first line it wrote on fd 3, or undefined when fd 3 closed without one. */
  syncLine?: string;
  /** The start of its stderr (at most 4 KiB). */
  stderr: string;
  /** Set when it could not be started at all. */
  spawnError?: string;
}

export interface ExecOptions {
  timeoutMs: number;
  maxBuffer: number;
}

/** Starts processes for the job runner: runtime commands run to their end, and detached monitors. */
export interface Launcher {
  exec(file: string, args: string[], opts: ExecOptions): Promise<ExecResult>;
  /** Starts `file` detached, with fd 3 a pipe; resolves with its first line on fd 3 (or fd 3's end). */
  monitor(file: string, args: string[], env: Record<string, string>): Promise<MonitorResult>;
  close(): void;
}

/** Starts the processes from this process (fork + exec here). */
export const inProcessLauncher: Launcher = {
  exec: (file, args, opts) =>
    new Promise((resolve) => {
      execFile(file, args, { timeout: opts.timeoutMs, maxBuffer: opts.maxBuffer }, (err, stdout, stderr) =>
        resolve({ stdout, stderr, ...(err ? { error: err.message } : {}) }),
      );
    }),
  monitor: (file, args, env) =>
    new Promise((resolve) => {
      const child = spawn(file, args, {
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        env,
        detached: true,
      });
      const sync = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
      let text = '';
      let stderr = '';
      let settled = false;
      const finish = (r: MonitorResult): void => {
        if (settled) return;
        settled = true;
        sync.destroy();
        child.stderr?.destroy();
        child.unref();
        resolve(r);
      };
      child.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString();
      });
      sync.on('data', (d: Buffer) => {
        text += d.toString();
        const nl = text.indexOf('\n');
        if (nl >= 0) finish({ syncLine: text.slice(0, nl), stderr });
      });
      // fd 3 closed without a line: give stderr a moment too (the daemonized monitor may hold it open),
      // so the caller can say why.
      sync.on('end', () => {
        if (!child.stderr || child.stderr.readableEnded) return finish({ stderr });
        const t = setTimeout(() => finish({ stderr }), 100);
        child.stderr.once('end', () => {
          clearTimeout(t);
          finish({ stderr });
        });
      });
      child.on('error', (err) => finish({ stderr, spawnError: err.message }));
    }),
  close: () => undefined,
};

type Request =
  | { id: number; op: 'exec'; file: string; args: string[]; opts: ExecOptions }
  | { id: number; op: 'monitor'; file: string; args: string[]; env: Record<string, string> };
type Reply = { id: number; result: ExecResult | MonitorResult };

/**
 * Starts processes from a small helper process instead of this one. Node forks the whole calling
 * process to start a child, and forking costs about 5 ms per 100 MB of resident memory (page tables):
 * from aetherd, at 150-200 MB, each runc or conmon start blocked the event loop for 8-13 ms, several
 * times per job. The helper (`launcher-child.js`, about 40 MB) forks in about 1 ms and never blocks
 * aetherd. It is restarted if it dies; requests in flight then fail like a runtime error.
 */
export class ChildLauncher implements Launcher {
  private child: ChildProcess | undefined;
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: Reply['result']) => void; fail: (e: Error) => void }
  >();
  private closed = false;

  constructor(private readonly script = join(__dirname, 'launcher-child.js')) {}

  exec(file: string, args: string[], opts: ExecOptions): Promise<ExecResult> {
    return this.ask({ id: 0, op: 'exec', file, args, opts }) as Promise<ExecResult>;
  }

  monitor(file: string, args: string[], env: Record<string, string>): Promise<MonitorResult> {
    return this.ask({ id: 0, op: 'monitor', file, args, env });
  }

  close(): void {
    this.closed = true;
    this.child?.disconnect();
    this.child = undefined;
  }

  private ask(req: Request): Promise<Reply['result']> {
    if (this.closed) return Promise.reject(new Error('the process launcher is closed'));
    const child = this.ensure();
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, fail: reject });
      child.send({ ...req, id }, (err) => {
        if (!err) return;
        this.pending.delete(id);
        reject(err);
      });
    });
  }

  private ensure(): ChildProcess {
    if (this.child?.connected) return this.child;
    const child = spawn(process.execPath, ['--max-old-space-size=64', this.script], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      p.resolve(m.result);
    });
    const gone = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.fail(new Error(`the process launcher ${why}`));
      }
    };
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
    child.on('error', (err) => gone(`failed: ${err.message}`));
    // Not a reason to keep aetherd running.
    child.unref();
    (child as unknown as { channel?: { unref(): void } }).channel?.unref();
    this.child = child;
    return child;
  }
}
