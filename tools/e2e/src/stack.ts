import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { initDevPki, type DevPkiLayout } from '@aether/pki';
import { AetherClient } from '@aether/client';
import { removeCgroup } from '@aether/sandbox';

export const DAEMON_NAMES = ['aetherd', 'aurorad', 'cfcd'] as const;
type Daemon = (typeof DAEMON_NAMES)[number];

/** The repository root (this file lives in tools/e2e/src or tools/e2e/dist). */
export const repoRoot = resolve(__dirname, '..', '..', '..');

export interface StackOptions {
  /** Extra certificate names to issue besides the daemons and admin (e.g. 'stranger'). */
  extraIdentities?: string[];
  /** Group owning the sockets ('' keeps ours). */
  socketGroup?: string;
  /** Overrides of aetherd's `jobs` configuration (e.g. maxConcurrent, mountAllowlist). */
  jobs?: Record<string, unknown>;
  /** Overrides of aetherd's `artifacts` configuration (e.g. quotaBytes, importRoots). */
  artifacts?: Record<string, unknown>;
  /** Overrides of aetherd's `memory` configuration (e.g. maxEntryBytes). */
  memory?: Record<string, unknown>;
  /** Overrides of aetherd's `events` configuration (e.g. maxEvents, subscriberBuffer). */
  events?: Record<string, unknown>;
  /** Overrides of aurorad's `aurora` configuration (e.g. limits, playbookDirs, modelPlanner). */
  aurora?: Record<string, unknown>;
  /** Overrides of cfcd's `cfcd` configuration (e.g. `generation.endpoints`). */
  cfcd?: Record<string, unknown>;
}

/** A daemon running as a real process, with its JSON log lines collected. */
export class DaemonProcess {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: Daemon,
    readonly child: ChildProcess,
  ) {
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ raw: line });
        }
      }
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  /** Resolves with the first log line matching `pred`, waiting up to `timeoutMs`. */
  async waitForLog(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 10_000,
  ): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (Date.now() > until) {
        throw new Error(
          `${this.name}: no matching log line in ${timeoutMs}ms; got:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * A whole Aether stack in a temporary directory: a fresh PKI, one config file per daemon, real daemon
 * processes started from the built dist/ output, and a client configuration for the admin identity.
 */
export class Stack {
  readonly dir = mkdtempSync(join(tmpdir(), 'aether-e2e-'));
  pki!: DevPkiLayout;
  readonly daemons = new Map<Daemon, DaemonProcess>();

  constructor(private readonly options: StackOptions = {}) {
    chmodSync(this.dir, 0o755);
  }

  socket(d: Daemon): string {
    return join(this.dir, 'run', `${d}.sock`);
  }
  configPath(d: Daemon): string {
    return join(this.dir, `${d}.yaml`);
  }
  get policyDir(): string {
    return join(this.dir, 'policy');
  }
  /** aurorad's playbooks: a copy of the shipped ones (deploy/aurora/playbooks). */
  get playbookDir(): string {
    return join(this.dir, 'playbooks');
  }
  auditPath(d: Daemon): string {
    return join(this.dir, 'audit', `${d}.jsonl`);
  }

  config(d: Daemon): Record<string, unknown> {
    const tls = (name: string): Record<string, string> => ({
      caFile: this.pki.caCertPath,
      certFile: this.pki.identities[name]!.certPath,
      keyFile: this.pki.identities[name]!.keyPath,
    });
    const cfg: Record<string, unknown> = {
      socket: { path: this.socket(d), mode: '0660', group: this.options.socketGroup ?? '' },
      tls: { mode: 'mtls', ...tls(d) },
      stateDir: join(this.dir, 'state', d),
      policyDir: this.policyDir,
      tokens: {
        publicKeyFile: join(this.dir, 'run', 'token-signing.pub'),
        issuer: 'spiffe://aether.local/aetherd',
      },
      auditLog: this.auditPath(d),
      shutdownGraceMs: 2_000,
    };
    if (d !== 'aetherd') cfg['aetherd'] = { socket: this.socket('aetherd'), ...tls(d) };
    if (d === 'aurorad') {
      cfg['cfcd'] = { socket: this.socket('cfcd'), ...tls(d) };
      cfg['aurora'] = { playbookDirs: [this.playbookDir], ...this.options.aurora };
    }
    if (d === 'cfcd' && this.options.cfcd) cfg['cfcd'] = { ...this.options.cfcd };
    if (d === 'aetherd') {
      (cfg['tokens'] as Record<string, string>)['signingKeyFile'] = join(
        this.dir,
        'state',
        d,
        'tokens',
        'signing.key',
      );
      // Each stack has its own runtime root and cgroup parent, so that one aetherd's reconciliation
      // never touches another's jobs (the dev stack or a parallel test).
      cfg['jobs'] = {
        runtimeRoot: this.jobsRuntimeRoot,
        cgroupParent: this.jobsCgroupParent,
        ...this.options.jobs,
      };
      if (this.options.artifacts) cfg['artifacts'] = this.options.artifacts;
      if (this.options.memory) cfg['memory'] = this.options.memory;
      // For memory's semantic leg, when a test sets memory.embeddingModel.
      cfg['cfcd'] = { socket: this.socket('cfcd'), ...tls(d) };
      if (this.options.events) cfg['events'] = this.options.events;
    }
    return cfg;
  }

  async init(): Promise<this> {
    this.pki = await initDevPki(join(this.dir, 'pki'), {
      names: ['aetherd', 'aurorad', 'cfcd', 'admin', ...(this.options.extraIdentities ?? [])],
    });
    cpSync(join(repoRoot, 'deploy', 'policy'), this.policyDir, { recursive: true });
    cpSync(join(repoRoot, 'deploy', 'aurora', 'playbooks'), this.playbookDir, { recursive: true });
    for (const d of DAEMON_NAMES) writeFileSync(this.configPath(d), stringify(this.config(d)));
    const endpoint = (d: Daemon): Record<string, string> => ({
      socket: this.socket(d),
      caFile: this.pki.caCertPath,
      certFile: this.pki.identities['admin']!.certPath,
      keyFile: this.pki.identities['admin']!.keyPath,
    });
    writeFileSync(
      this.clientConfigPath,
      stringify({ aetherd: endpoint('aetherd'), aurorad: endpoint('aurorad'), cfcd: endpoint('cfcd') }),
    );
    return this;
  }

  get clientConfigPath(): string {
    return join(this.dir, 'client.yaml');
  }

  /** Starts a daemon process (not waiting for it to serve). */
  spawn(d: Daemon, args: string[] = ['--config', this.configPath(d)]): DaemonProcess {
    const child = spawn(
      process.execPath,
      [
        ...(process.env['AETHER_E2E_NODE_ARGS']?.split(' ').filter(Boolean) ?? []),
        join(repoRoot, 'apps', d, 'dist', 'main.js'),
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, AETHERD_CONFIG: '', AURORAD_CONFIG: '', CFCD_CONFIG: '' },
      },
    );
    return new DaemonProcess(d, child);
  }

  /** Starts a daemon and waits until it logs that it is listening. */
  async start(d: Daemon): Promise<DaemonProcess> {
    const p = this.spawn(d);
    this.daemons.set(d, p);
    await p.waitForLog((l) => l['msg'] === 'listening');
    return p;
  }

  async startAll(): Promise<this> {
    for (const d of DAEMON_NAMES) await this.start(d);
    return this;
  }

  /** A client acting as the admin identity (or another issued identity). */
  client(identity = 'admin'): AetherClient {
    const c = AetherClient.fromConfig(this.clientConfigPath);
    if (identity === 'admin') return c;
    const id = this.pki.identities[identity]!;
    for (const d of DAEMON_NAMES)
      c.config[d] = { ...c.config[d], certFile: id.certPath, keyFile: id.keyPath };
    return c;
  }

  async stop(d: Daemon): Promise<number | null> {
    const p = this.daemons.get(d);
    if (!p) return null;
    this.daemons.delete(d);
    if (p.child.exitCode !== null) return p.child.exitCode;
    p.child.kill('SIGTERM');
    return p.exited;
  }

  /** The runtime root and cgroup parent of this stack's jobs. */
  get jobsRuntimeRoot(): string {
    return join(this.dir, 'run', 'runc');
  }
  get jobsCgroupParent(): string {
    return `/aether-test-${basename(this.dir).replace(/[^A-Za-z0-9-]/g, '')}`;
  }

  /**
   * Stops the daemons, then removes what their jobs left (jobs outlive aetherd by design, so a test
   * that ends with jobs running must not leave them behind), then the directory.
   */
  async close(): Promise<void> {
    for (const d of [...this.daemons.keys()].reverse()) await this.stop(d);
    const runc = (args: string[]): string => {
      try {
        return execFileSync('runc', [`--root=${this.jobsRuntimeRoot}`, ...args], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        });
      } catch {
        return '';
      }
    };
    for (const c of (JSON.parse(runc(['list', '--format', 'json']) || 'null') ?? []) as { id: string }[])
      runc(['delete', '--force', c.id]);
    // A container caught half-created (runc init waiting for start) is in no runtime state: kill what
    // is left in the stack's cgroups, then remove them in every hierarchy.
    await removeCgroup(this.jobsCgroupParent, { killProcesses: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
