import { readFileSync } from 'node:fs';
import type { Http2SecureServer } from 'node:http2';
import { Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { ServerConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { descriptorSet, reflectionV1, reflectionV1alpha } from '@aether/proto';
import type { AuditHook, CallObserver, PolicyHook } from './hooks';
import { wrapService, type ServiceHandlers } from './pipeline';
import { ReflectionResponder } from './reflection';
import { applySocketPermissions, prepareSocketPath, removeSocket } from './socket';
import { channelOptions } from './channel-options';

export interface AetherServerOptions {
  /** Program name, e.g. `aetherd`, for logs. */
  name: string;
  config: Pick<ServerConfig, 'socket' | 'tls' | 'shutdownGraceMs' | 'maxMessageBytes'>;
  log: Logger;
  policy: PolicyHook;
  audit: AuditHook;
}

const HEALTH_SERVICE = 'grpc.health.v1.Health';
const REFLECTION_SERVICES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

/**
 * A gRPC server on a Unix socket: mTLS by default, health and reflection built in, every service
 * behind the one pipeline, graceful shutdown. One per daemon.
 */
export class AetherServer {
  private readonly server: Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly serviceNames: string[] = [];
  private readonly observers: CallObserver[] = [];
  private readonly stoppingListeners: (() => void)[] = [];
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: AetherServerOptions) {
    this.server = new Server({
      ...channelOptions(options.config.maxMessageBytes),
      // Clients on the same host may ping often to detect a restarted daemon quickly.
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    widenReceiveWindow(this.server, 'settings');
    this.health.addToServer(this.server);
    const responder = new ReflectionResponder(descriptorSet(), () => [
      ...this.serviceNames,
      HEALTH_SERVICE,
      ...REFLECTION_SERVICES,
    ]);
    const reflect = (
      call: ServerDuplexStream<reflectionV1.ServerReflectionRequest, reflectionV1.ServerReflectionResponse>,
    ): void => {
      call.on('data', (req: reflectionV1.ServerReflectionRequest) => call.write(responder.respond(req)));
      call.on('end', () => call.end());
      call.on('error', () => call.end());
    };
    this.server.addService(reflectionV1.ServerReflectionService, { serverReflectionInfo: reflect });
    this.server.addService(reflectionV1alpha.ServerReflectionService, { serverReflectionInfo: reflect });
  }

  /** Registers a service behind the pipeline; methods without a handler answer UNIMPLEMENTED. */
  addService<D extends ServiceDefinition>(definition: D, handlers: ServiceHandlers<D>): this {
    const first = Object.values(definition)[0];
    const serviceName = first ? /^\/(.+)\//.exec(first.path)?.[1] : undefined;
    if (!serviceName) throw new Error('empty service definition');
    this.server.addService(
      definition,
      wrapService(definition, handlers, {
        log: this.options.log,
        trustDomain: this.options.config.tls.trustDomain,
        plaintext: this.options.config.tls.mode === 'insecure-plaintext',
        policy: this.options.policy,
        audit: this.options.audit,
        inFlight: { enter: () => this.inFlight++, leave: () => this.leave() },
        observers: this.observers,
      }),
    );
    this.serviceNames.push(serviceName);
    this.health.setStatus(serviceName, 'NOT_SERVING');
    return this;
  }

  /**
   * Called when a graceful stop begins, before in-flight calls are drained: endless streams (event
   * subscriptions) end themselves here so that the drain does not wait the whole grace period for them.
   */
  onStopping(listener: () => void): this {
    this.stoppingListeners.push(listener);
    return this;
  }

  /** Adds an observer of every call's start and end (metrics, denial events). */
  observe(observer: CallObserver): this {
    this.observers.push(observer);
    return this;
  }

  /** Marks one service (or '' for the whole server) serving or not. */
  setServing(service: string, status: ServingStatus): void {
    this.health.setStatus(service, status);
  }

  get socketPath(): string {
    return this.options.config.socket.path;
  }

  /** Binds the socket with its permissions and starts serving; every registered service becomes SERVING. */
  async start(): Promise<void> {
    const { socket, tls } = this.options.config;
    const { log } = this.options;
    const { removedStale } = await prepareSocketPath(socket.path);
    if (removedStale) log.warn({ socket: socket.path }, 'removed a stale socket left by a previous run');
    let credentials: ServerCredentials;
    if (tls.mode === 'mtls') {
      credentials = ServerCredentials.createSsl(
        readFileSync(tls.caFile),
        [{ private_key: readFileSync(tls.keyFile), cert_chain: readFileSync(tls.certFile) }],
        true,
      );
    } else {
      log.warn(
        { socket: socket.path },
        'INSECURE: serving plaintext gRPC without client certificates; only the socket permissions protect this daemon. Use tls.mode=mtls outside development.',
      );
      credentials = ServerCredentials.createInsecure();
    }
    // Bind under a strict umask so the socket is never reachable by others, even for a moment.
    const previous = process.umask(0o177);
    try {
      await new Promise<number>((resolve, reject) =>
        this.server.bindAsync(`unix://${socket.path}`, credentials, (err, port) =>
          err ? reject(err) : resolve(port),
        ),
      );
    } finally {
      process.umask(previous);
    }
    widenReceiveWindow(this.server, 'sessions');
    try {
      await applySocketPermissions(socket.path, socket.mode, socket.group);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.logTlsFailures();
    this.started = true;
    this.health.setStatus('', 'SERVING');
    for (const s of this.serviceNames) this.health.setStatus(s, 'SERVING');
    log.info(
      {
        socket: socket.path,
        mode: socket.mode,
        group: socket.group || '(unchanged)',
        tls: tls.mode,
        services: this.serviceNames,
      },
      'listening',
    );
  }

  /**
   * Graceful stop: health goes NOT_SERVING at once, in-flight calls get up to shutdownGraceMs to finish,
   * then remaining calls are cancelled and the socket file is removed.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  /** SIGTERM and SIGINT stop the server gracefully, then call `onStopped`. */
  stopOnSignals(onStopped: () => void): void {
    const handler = (signal: NodeJS.Signals): void => {
      this.options.log.info({ signal }, 'stopping');
      this.stop().then(onStopped, (err: unknown) => {
        this.options.log.error({ err }, 'error while stopping');
        onStopped();
      });
    };
    process.once('SIGTERM', handler);
    process.once('SIGINT', handler);
  }

  private async drainAndClose(): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    for (const s of this.serviceNames) this.health.setStatus(s, 'NOT_SERVING');
    for (const listener of this.stoppingListeners) {
      try {
        listener();
      } catch (err) {
        this.options.log.error({ err }, 'stopping listener failed');
      }
    }
    const grace = this.options.config.shutdownGraceMs;
    if (this.inFlight > 0) {
      this.options.log.info({ inFlight: this.inFlight, graceMs: grace }, 'draining in-flight calls');
      const drained = new Promise<void>((resolve) => (this.drained = resolve));
      const timedOut = await Promise.race([
        drained.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), grace).unref()),
      ]);
      if (timedOut)
        this.options.log.warn({ inFlight: this.inFlight }, 'grace period over; cancelling remaining calls');
    }
    await this.close();
    this.options.log.info({ socket: this.socketPath }, 'stopped');
  }

  private async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1_000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.server.forceShutdown();
    if (this.started) await removeSocket(this.socketPath);
  }

  private leave(): void {
    this.inFlight--;
    if (this.inFlight === 0) this.drained?.();
  }

  /**
   * grpc-js does not surface failed TLS handshakes (a client with no certificate, one from another CA,
   * an expired one). Operators must see those, so listen on its HTTP/2 servers directly.
   */
  private logTlsFailures(): void {
    if (this.options.config.tls.mode !== 'mtls') return;
    const servers = (this.server as unknown as { http2Servers?: Map<Http2SecureServer, unknown> })
      .http2Servers;
    if (!(servers instanceof Map)) {
      this.options.log.warn(
        'cannot observe TLS handshakes on this grpc-js version; refused clients will not be logged',
      );
      return;
    }
    for (const h2 of servers.keys()) {
      h2.on('tlsClientError', (err: NodeJS.ErrnoException) => {
        this.options.log.warn(
          { err: { message: err.message, code: err.code }, socket: this.socketPath },
          `refused a client: TLS handshake failed (${err.code ?? err.message})`,
        );
      });
    }
  }
}

/** The HTTP/2 receive window of every connection and stream: enough for a 4 MiB message in flight. */
export const RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * grpc-js clients take `grpc-node.flow_control_window`, but its servers keep Node's 64 KiB HTTP/2
 * receive window (grpc/grpc-node#3058 adds the option), which caps a client stream over a Unix socket
 * at about 100 MB/s: the client waits for a WINDOW_UPDATE every 64 KiB. Until the option lands, widen
 * the window through the server's HTTP/2 settings (before binding: each stream's initial window) and
 * each new session (after binding: the connection window). Both touch grpc-js internals; if they are
 * not there (another grpc-js version), nothing is changed and uploads are just slower.
 */
function widenReceiveWindow(server: Server, phase: 'settings' | 'sessions'): void {
  const internals = server as unknown as {
    commonServerOptions?: { settings?: Record<string, unknown> };
    http2Servers?: Map<NodeJS.EventEmitter, unknown>;
  };
  if (phase === 'settings') {
    const common = internals.commonServerOptions;
    if (common) common.settings = { ...common.settings, initialWindowSize: RECEIVE_WINDOW_BYTES };
    return;
  }
  for (const http2Server of internals.http2Servers?.keys() ?? [])
    http2Server.on('session', (session: { setLocalWindowSize?: (n: number) => void }) => {
      try {
        session.setLocalWindowSize?.(RECEIVE_WINDOW_BYTES);
      } catch {
        // A session already closing: nothing to widen.
      }
    });
}
