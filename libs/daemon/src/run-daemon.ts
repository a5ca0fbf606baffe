import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import type { z } from 'zod';
import { ConfigError, loadConfig, parseMetricsListen, type ServerConfig } from '@aether/config';
import { createLogger, type Logger } from '@aether/log';
import { AuditLog } from '@aether/audit';
import { formatPolicyErrors, PolicyLoadError, PolicyStore, type ReloadResult } from '@aether/policy';
import {
  AuditMetrics,
  HostMetrics,
  MetricsRegistry,
  PolicyMetrics,
  ProcessMetrics,
  RpcMetrics,
  startScrapeListener,
  type ScrapeListener,
} from '@aether/metrics';
import { metricsV1 } from '@aether/proto';
import { AetherServer, UnavailableError, type AuditHook } from '@aether/rpc';
import { prepareAuditCheckpoints, type AuditCheckpointFiles } from './audit-checkpoint';
import { fileTokenVerifier, GovernedPolicy } from './governed-policy';
import { metricsServiceHandlers } from './metrics-service';
import { notifyReady } from './sd-notify';

/** Exit codes, after sysexits(3), so systemd and scripts can tell a bad config from a crash. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 64, CONFIG: 78 } as const;

export interface DaemonContext<C> {
  config: C;
  log: Logger;
  /** The policy hook of this daemon's server; aetherd installs its in-process token verifier here. */
  policy: GovernedPolicy;
  /** The policy files in force, for explaining and reloading. */
  policyStore: PolicyStore;
  /** This daemon's audit log, for records that are not RPCs (e.g. a job's state changes). */
  audit: AuditLog;
  /** Where the audit log's signed checkpoints are written (undefined when disabled). */
  auditCheckpoints?: AuditCheckpointFiles;
  /**
   * This daemon's metrics (MetricsService, the scrape listener). The rpc, policy, audit, process and
   * host sections are registered already; a daemon adds its own, e.g.
   * `ctx.metrics.section('jobs', () => jobMetrics.snapshot())`.
   */
  metrics: MetricsRegistry;
}

/** What a daemon registered; `close` runs after the server has drained. */
export interface Registered {
  close?: () => Promise<void>;
}

export interface DaemonDefinition<S extends z.ZodType<ServerConfig>> {
  name: string;
  description: string;
  schema: S;
  defaults: () => z.infer<S>;
  /** e.g. AETHERD: AETHERD_SOCKET_PATH overrides socket.path. */
  envPrefix: string;
  /** Reported by GetMetrics; default: the version in the package.json nearest the program's main file. */
  version?: string;
  /** Extra flags beyond the common ones: flag → dotted config path. */
  extraFlags?: { flag: string; path: string; description: string }[];
  register: (server: AetherServer, ctx: DaemonContext<z.infer<S>>) => Promise<Registered>;
}

const COMMON_FLAGS: { flag: string; path: string; description: string }[] = [
  { flag: '--socket <path>', path: 'socket.path', description: 'Unix socket to listen on' },
  { flag: '--socket-mode <mode>', path: 'socket.mode', description: 'socket permissions, octal (e.g. 0660)' },
  {
    flag: '--socket-group <group>',
    path: 'socket.group',
    description: 'group owning the socket ("" keeps the daemon\'s group)',
  },
  { flag: '--ca <file>', path: 'tls.caFile', description: 'CA certificate clients must chain to' },
  {
    flag: '--cert <file>',
    path: 'tls.certFile',
    description: "this daemon's certificate (SPIFFE ID in a URI SAN)",
  },
  { flag: '--key <file>', path: 'tls.keyFile', description: "this daemon's private key" },
  { flag: '--trust-domain <domain>', path: 'tls.trustDomain', description: 'SPIFFE trust domain of callers' },
  { flag: '--state-dir <dir>', path: 'stateDir', description: 'directory for persistent state' },
  { flag: '--policy-dir <dir>', path: 'policyDir', description: 'directory of policy files' },
  { flag: '--audit-log <file>', path: 'auditLog', description: 'audit log file (JSON lines, hash-chained)' },
  { flag: '--log-level <level>', path: 'logLevel', description: 'trace|debug|info|warn|error|fatal|silent' },
  {
    flag: '--metrics-listen <address>',
    path: 'metrics.listen',
    description: 'serve GET /metrics on unix:/path or a loopback HOST:PORT (default: off)',
  },
];

const flagKey = (flag: string): string =>
  (flag.split(' ')[0] ?? '').replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * The life of a daemon: flags + environment + file → validated config → logger → policy and audit
 * hooks → server with its services → serve until SIGTERM/SIGINT → drain → exit.
 */
export async function runDaemon<S extends z.ZodType<ServerConfig>>(
  def: DaemonDefinition<S>,
  argv: string[] = process.argv,
): Promise<void> {
  const flags = [...COMMON_FLAGS, ...(def.extraFlags ?? [])];
  const program = new Command(def.name)
    .description(def.description)
    .addOption(
      new Option('-c, --config <file>', 'configuration file (YAML)')
        .env(`${def.envPrefix}_CONFIG`)
        .default(`/etc/aether/${def.name}.yaml`),
    )
    .option(
      '--insecure-plaintext-socket',
      'serve without TLS; only socket permissions protect the daemon (development only)',
    )
    .option('--check-config', 'validate the configuration, print it and exit')
    .addHelpText(
      'after',
      `\nPrecedence: flags > environment (${def.envPrefix}_<SETTING>, e.g. ${def.envPrefix}_SOCKET_PATH) > file > defaults.\n` +
        `Exit codes: 0 ok, 1 failure, 64 usage, 78 bad configuration.`,
    );
  for (const f of flags) program.option(f.flag, f.description);
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE));
  program.parse(argv);
  const opts = program.opts<Record<string, unknown>>();

  const flagValues: Record<string, unknown> = {};
  const flagNames: Record<string, string> = {};
  for (const f of flags) {
    const v = opts[flagKey(f.flag)];
    if (v !== undefined) {
      flagValues[f.path] = v;
      flagNames[f.path] = f.flag.split(' ')[0] ?? f.flag;
    }
  }
  if (opts['insecurePlaintextSocket']) {
    flagValues['tls.mode'] = 'insecure-plaintext';
    flagNames['tls.mode'] = '--insecure-plaintext-socket';
  }

  let config: z.infer<S>;
  try {
    config = loadConfig(def.schema, {
      defaults: def.defaults(),
      file: opts['config'] as string,
      fileRequired: opts['config'] !== `/etc/aether/${def.name}.yaml`,
      envPrefix: def.envPrefix,
      flags: flagValues,
      flagNames,
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${def.name}: ${err.message}\n`);
      process.exit(EXIT.CONFIG);
    }
    throw err;
  }
  if (opts['checkConfig']) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    process.exit(EXIT.OK);
  }

  const log = createLogger({ service: def.name, level: config.logLevel });
  try {
    const checkpoints = await prepareAuditCheckpoints(config, def.name);
    const audit = await AuditLog.open({
      path: config.auditLog,
      daemon: def.name,
      ...(checkpoints
        ? {
            checkpointKeyFile: checkpoints.keyFile,
            checkpointPath: checkpoints.path,
            checkpointEveryRecords: checkpoints.everyRecords,
            checkpointIntervalMs: checkpoints.intervalMs,
          }
        : {}),
      onWarning: (message) => log.warn({ auditLog: config.auditLog }, message),
    });
    const auditHook: AuditHook = {
      // Durable records (state changes, denials) are on disk before the response leaves; the others are
      // written within the log's flush delay, and the response does not wait for them.
      record: async (rec, { durable }) => {
        const appended = audit.append(rec, { durable });
        if (durable) await appended;
        else
          appended.catch((err: unknown) => log.error({ err, requestId: rec.requestId }, 'audit record lost'));
      },
      ensureWritable: () => {
        try {
          audit.ensureWritable();
        } catch (err) {
          throw new UnavailableError((err as Error).message, 'AUDIT_UNAVAILABLE');
        }
      },
    };
    const store = new PolicyStore(config.policyDir);
    try {
      const engine = store.load();
      log.info(
        { policyDir: config.policyDir, policySetHash: engine.hash, policies: engine.policyIds.length },
        'policy loaded',
      );
    } catch (err) {
      if (err instanceof PolicyLoadError)
        throw new Error(`policy in ${config.policyDir} is invalid:\n${formatPolicyErrors(err.errors)}`);
      throw err;
    }
    const report = (trigger: string, r: ReloadResult): void => {
      if (r.applied && !r.changed) return;
      if (r.applied) {
        if (r.changed)
          log.info({ trigger, policySetHash: r.hash, previous: r.previousHash }, 'policy reloaded');
      } else {
        log.error(
          { trigger, errors: r.errors, inForce: r.hash },
          `policy reload rejected; the previous policy stays in force:\n${formatPolicyErrors(r.errors)}`,
        );
      }
      audit
        .append(
          {
            actor: `spiffe://${config.tls.trustDomain}/${def.name}`,
            action: 'policy.reload',
            outcome: r.applied ? 'OK' : 'FAILED_PRECONDITION',
            ...(r.applied ? {} : { error: formatPolicyErrors(r.errors) }),
          },
          { durable: true },
        )
        .catch((err: unknown) => log.error({ err }, 'audit record of policy reload failed'));
    };
    const stopWatching = store.watch((r) => report('file change', r));
    const policy = new GovernedPolicy(
      store,
      fileTokenVerifier(config.tokens.publicKeyFile, config.tokens.issuer, def.name),
    );
    const server = new AetherServer({ name: def.name, config, log, policy, audit: auditHook });
    const metrics = new MetricsRegistry(def.name, def.version ?? programVersion());
    server.observe(new RpcMetrics(metrics)).observe(new PolicyMetrics(metrics, store));
    new AuditMetrics(metrics, audit);
    const processMetrics = new ProcessMetrics(metrics);
    new HostMetrics(metrics);
    server.addService(metricsV1.MetricsServiceService, metricsServiceHandlers(metrics));
    const registered = await def.register(server, {
      config,
      log,
      policy,
      policyStore: store,
      audit,
      ...(checkpoints ? { auditCheckpoints: checkpoints } : {}),
      metrics,
    });
    await server.start();
    let scrape: ScrapeListener | undefined;
    try {
      scrape = await startMetricsListener(config, metrics, log);
    } catch (err) {
      await server.stop();
      throw new Error(`cannot serve metrics on ${config.metrics.listen}: ${(err as Error).message}`);
    }
    // Under systemd (Type=notify): ready once the socket accepts calls, so dependents start after this.
    void notifyReady((message) => log.warn(message));
    process.on('SIGHUP', () => report('SIGHUP', store.reload()));
    server.stopOnSignals(() => {
      (scrape?.close() ?? Promise.resolve())
        .catch((err: unknown) => log.error({ err }, 'error while closing the metrics listener'))
        .then(() => (registered.close ?? (() => Promise.resolve()))())
        .catch((err: unknown) => log.error({ err }, 'error while closing'))
        .then(() => {
          stopWatching();
          store.close();
          processMetrics.close();
          return audit.close();
        })
        .catch((err: unknown) => log.error({ err }, 'error while closing the audit log'))
        .finally(() => process.exit(EXIT.OK));
    });
  } catch (err) {
    log.fatal(
      { err: { message: (err as Error).message, name: (err as Error).name } },
      `cannot start: ${(err as Error).message}`,
    );
    // Let pino flush before exiting.
    setImmediate(() => process.exit(EXIT.FAILURE));
  }
}

/** Starts the HTTP scrape listener when `metrics.listen` names one (the config loader validated it). */
async function startMetricsListener(
  config: ServerConfig,
  metrics: MetricsRegistry,
  log: Logger,
): Promise<ScrapeListener | undefined> {
  const listen = parseMetricsListen(config.metrics.listen);
  if ('error' in listen || listen.kind === 'off') return undefined;
  const listener = await startScrapeListener({
    listen,
    text: () => metrics.prometheusText(),
    socketGroup: config.socket.group,
    onError: (err) => log.error({ err }, 'metrics scrape failed'),
  });
  log.info({ metricsListen: listener.address }, `serving GET /metrics on ${listener.address}`);
  return listener;
}

/** The version in the package.json nearest the program's main file (apps/<daemon>/package.json). */
function programVersion(): string {
  const main = process.argv[1];
  let dir = main ? dirname(main) : process.cwd();
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
        if (typeof version === 'string') return version;
      } catch {
        // Not readable: keep looking upwards.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}
