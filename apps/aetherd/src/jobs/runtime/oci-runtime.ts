import { readFileSync } from 'node:fs';
import { inProcessLauncher, type Launcher } from './launcher';

/** The runtime (or the monitor) refused or failed; `message` is its own words, cleaned of log syntax. */
export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }
}

export interface ContainerState {
  id: string;
  /** `creating`, `created`, `running`, `paused` or `stopped` (runtimes may add others). */
  status: string;
  pid: number;
}

export interface MonitorPaths {
  bundleDir: string;
  /** k8s-file log written by the monitor. */
  logPath: string;
  /** Directory where the monitor writes `<id>` holding the exit status. */
  exitDir: string;
  /** The monitor's own per-job files (`exit`, `oom`). */
  persistDir: string;
  /** Attach sockets (unused by aetherd but required by conmon). */
  socketDir: string;
  /** Where the runtime writes the container's host pid. */
  pidFile: string;
  /** Where conmon writes its own (daemonized) pid. */
  monitorPidFile: string;
}

/**
 * The OCI runtime CLI (runc or crun) and conmon, Podman's per-container monitor. conmon runs
 * `<runtime> create`, holds the container's stdio, writes its log and records its exit status, and it
 * daemonizes: it is not aetherd's child, so aetherd can stop, crash or be upgraded while jobs run.
 */
export class OciRuntime {
  constructor(
    readonly runtimePath: string,
    readonly conmonPath: string,
    /** The runtime's `--root`. */
    readonly root: string,
    /** Who forks: this process by default; aetherd passes a ChildLauncher (see there why). */
    private readonly launcher: Launcher = inProcessLauncher,
  ) {}

  /**
   * Creates the container under a new conmon and returns once the runtime has created it (the process
   * is set up but waits for `start`). Throws RuntimeError with the runtime's message when creation
   * fails (e.g. the binary does not exist).
   */
  async createMonitored(
    id: string,
    paths: MonitorPaths,
    logSizeMax = -1,
  ): Promise<{ pid: number; monitorPid: number }> {
    const args = [
      '--api-version',
      '1',
      '--cid',
      id,
      '--cuuid',
      id,
      '--name',
      id,
      '--runtime',
      this.runtimePath,
      '--bundle',
      paths.bundleDir,
      '--container-pidfile',
      paths.pidFile,
      '--conmon-pidfile',
      paths.monitorPidFile,
      '--log-path',
      `k8s-file:${paths.logPath}`,
      '--log-size-max',
      String(logSizeMax),
      '--exit-dir',
      paths.exitDir,
      '--persist-dir',
      paths.persistDir,
      '--socket-dir-path',
      paths.socketDir,
      '--runtime-arg',
      `--root=${this.root}`,
      '--syslog',
      '--log-level',
      'warn',
    ];
    // fd 3 is conmon's sync pipe (_OCI_SYNCPIPE): it reports the container pid, or the runtime's error.
    const r = await this.launcher.monitor(this.conmonPath, args, {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      _OCI_SYNCPIPE: '3',
    });
    if (r.spawnError !== undefined) throw new RuntimeError(`cannot run conmon: ${r.spawnError}`, 'conmon');
    if (r.syncLine === undefined)
      throw new RuntimeError(
        `conmon exited without reporting the container: ${r.stderr.trim() || 'no message'}`,
        'conmon',
      );
    let result: { data: number; message?: string };
    try {
      result = JSON.parse(r.syncLine) as { data: number; message?: string };
    } catch {
      throw new RuntimeError(`conmon sent an unreadable status: ${r.syncLine}`, 'conmon');
    }
    if (result.data < 0) {
      throw new RuntimeError(
        cleanRuntimeMessage(result.message ?? 'the runtime failed to create the container'),
        'create',
      );
    }
    const monitorPid = Number(readFileSync(paths.monitorPidFile, 'utf8').trim());
    return { pid: result.data, monitorPid };
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  /** Sends a signal to the container's init, or to every process in it. */
  async kill(id: string, signal: string, all: boolean): Promise<void> {
    await this.run(all ? ['kill', '--all', id, signal] : ['kill', id, signal]);
  }

  /** Removes the container (and its cgroup). `force` kills it first if it still runs. */
  async delete(id: string, force: boolean): Promise<void> {
    await this.run(force ? ['delete', '--force', id] : ['delete', id]);
  }

  async state(id: string): Promise<ContainerState | undefined> {
    try {
      const out = await this.run(['state', id]);
      const s = JSON.parse(out) as { id: string; status: string; pid: number };
      return { id: s.id, status: s.status, pid: s.pid };
    } catch (err) {
      if (err instanceof RuntimeError && /does not exist|not exist/.test(err.message)) return undefined;
      throw err;
    }
  }

  async list(): Promise<ContainerState[]> {
    const out = await this.run(['list', '--format', 'json']);
    const parsed = JSON.parse(out || 'null') as { id: string; status: string; pid: number }[] | null;
    return (parsed ?? []).map((s) => ({ id: s.id, status: s.status, pid: s.pid }));
  }

  private async run(args: string[]): Promise<string> {
    const r = await this.launcher.exec(this.runtimePath, [`--root=${this.root}`, ...args], {
      timeoutMs: 30_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    if (r.error !== undefined)
      throw new RuntimeError(cleanRuntimeMessage(r.stderr || r.error), args[0] ?? '');
    return r.stdout;
  }
}

/**
 * runc logs in logfmt (`time="…" level=error msg="runc create failed: …"`): keep the message, unquoted,
 * so a user reads the runtime's words and not its log syntax.
 */
export function cleanRuntimeMessage(text: string): string {
  const msgs: string[] = [];
  const re = /msg="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    msgs.push((m[1] ?? '').replace(/\\(["\\])/g, '$1'));
  }
  const out = msgs.length > 0 ? msgs.join('; ') : text;
  return out.trim().slice(0, 2000);
}
