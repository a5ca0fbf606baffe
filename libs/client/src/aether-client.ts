import { loadClientConfig, type ClientConfig } from '@aether/config';
import {
  artifactsV1,
  eventsV1,
  governanceV1,
  healthV1,
  intentsV1,
  jobsV1,
  memoryV1,
  metricsV1,
  modelsV1,
} from '@aether/proto';
import type { CallOptions, ClientUnaryCall, Metadata, ServiceError } from '@grpc/grpc-js';
import { createClient, RpcError, unaryCall, type CallOpts } from '@aether/rpc';

/** The callback form every generated unary method has (the last of its overloads). */
type UnaryFn<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;
type RequestOf<F> = F extends UnaryFn<infer Req, unknown> ? Req : never;
type ResponseOf<F> = F extends UnaryFn<never, infer Res> ? Res : never;
/** The names of a generated client's unary methods, so `call` infers request and response types. */
type UnaryMethodName<C> = {
  [K in keyof C & string]: C[K] extends UnaryFn<never, unknown> ? K : never;
}[keyof C & string];

export const DAEMONS = ['aetherd', 'aurorad', 'cfcd'] as const;
export type DaemonName = (typeof DAEMONS)[number];

export interface HealthReport {
  daemon: DaemonName;
  socket: string;
  /** SERVING, NOT_SERVING, UNKNOWN, or UNREACHABLE when no answer came. */
  status: string;
  error?: string;
  latencyMs: number;
}

/**
 * Typed access to every Aether API for TypeScript programs. Clients are created on first use and share
 * the transport settings of libs/rpc (mTLS, expected server identity, message limits).
 *
 *   const aether = AetherClient.fromConfig();
 *   const res = await aether.call(aether.jobs, 'getJob', { name: 'jobs/…' });
 */
export class AetherClient {
  private readonly clients = new Map<string, { close(): void }>();

  constructor(readonly config: ClientConfig) {}

  /** Reads `$AETHER_CONFIG` or `~/.aether/config.yaml` (or the given file). */
  static fromConfig(file?: string): AetherClient {
    return new AetherClient(file ? loadClientConfig(file) : loadClientConfig());
  }

  private get<C extends { close(): void }>(key: string, make: () => C): C {
    let c = this.clients.get(key) as C | undefined;
    if (!c) {
      c = make();
      this.clients.set(key, c);
    }
    return c;
  }

  get jobs(): jobsV1.JobServiceClient {
    return this.get('jobs', () => createClient(jobsV1.JobServiceClient, this.config.aetherd));
  }
  get artifacts(): artifactsV1.ArtifactServiceClient {
    return this.get('artifacts', () => createClient(artifactsV1.ArtifactServiceClient, this.config.aetherd));
  }
  get memory(): memoryV1.MemoryServiceClient {
    return this.get('memory', () => createClient(memoryV1.MemoryServiceClient, this.config.aetherd));
  }
  get events(): eventsV1.EventServiceClient {
    return this.get('events', () => createClient(eventsV1.EventServiceClient, this.config.aetherd));
  }
  get metrics(): metricsV1.MetricsServiceClient {
    return this.get('metrics', () => createClient(metricsV1.MetricsServiceClient, this.config.aetherd));
  }
  get tokens(): governanceV1.TokenServiceClient {
    return this.get('tokens', () => createClient(governanceV1.TokenServiceClient, this.config.aetherd));
  }
  get policy(): governanceV1.PolicyServiceClient {
    return this.get('policy', () => createClient(governanceV1.PolicyServiceClient, this.config.aetherd));
  }
  get audit(): governanceV1.AuditServiceClient {
    return this.get('audit', () => createClient(governanceV1.AuditServiceClient, this.config.aetherd));
  }
  get intents(): intentsV1.IntentServiceClient {
    return this.get('intents', () => createClient(intentsV1.IntentServiceClient, this.config.aurorad));
  }
  get models(): modelsV1.ModelRuntimeServiceClient {
    return this.get('models', () => createClient(modelsV1.ModelRuntimeServiceClient, this.config.cfcd));
  }
  healthOf(daemon: DaemonName): healthV1.HealthClient {
    return this.get(`health:${daemon}`, () => createClient(healthV1.HealthClient, this.config[daemon]));
  }

  /** Calls a unary method by name on one of the clients above; failures reject with an RpcError. */
  call<C, K extends UnaryMethodName<C>>(
    client: C,
    method: K,
    request: RequestOf<C[K]>,
    opts?: CallOpts,
  ): Promise<ResponseOf<C[K]>> {
    const fn = (client[method] as (...a: unknown[]) => ClientUnaryCall).bind(client);
    return unaryCall(fn as never, request, opts);
  }

  /** Asks one daemon whether it is serving; never throws. */
  async health(daemon: DaemonName, opts: CallOpts = { timeoutMs: 3_000 }): Promise<HealthReport> {
    const started = performance.now();
    const socket = this.config[daemon].socket;
    try {
      const client = this.healthOf(daemon);
      const res = await unaryCall(client.check.bind(client), { service: '' }, opts);
      return {
        daemon,
        socket,
        status: healthV1.healthCheckResponse_ServingStatusToJSON(res.status),
        latencyMs: performance.now() - started,
      };
    } catch (err) {
      return {
        daemon,
        socket,
        status: 'UNREACHABLE',
        error: RpcError.from(err).message,
        latencyMs: performance.now() - started,
      };
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
