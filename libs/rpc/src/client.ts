import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import {
  credentials,
  Metadata,
  type CallOptions,
  type Client,
  type ClientOptions,
  type ClientReadableStream,
  type ClientWritableStream,
  type ClientUnaryCall,
  type ChannelCredentials,
  type ServiceError,
} from '@grpc/grpc-js';
import type { ClientEndpointConfig } from '@aether/config';
import { spiffeIdsFromSubjectAltName } from '@aether/pki';
import { channelOptions } from './channel-options';
import { AUTHORIZATION_KEY, INTENT_ID_KEY, JOB_ID_KEY, REQUEST_ID_KEY } from './correlation';
import { RpcError } from './errors';

export type ClientConstructor<C extends Client> = new (
  address: string,
  credentials: ChannelCredentials,
  options?: Partial<ClientOptions>,
) => C;

export interface ClientFactoryOptions {
  maxMessageBytes?: number;
  /** Extra channel options, e.g. for benchmarks. */
  channel?: Partial<ClientOptions>;
}

/** The server name TLS uses (SNI, DNS SAN check in other languages): the last path segment of the SPIFFE ID. */
export function serverNameOf(serverId: string): string {
  return serverId.split('/').pop() || 'localhost';
}

/** mTLS credentials that accept the server only if its certificate carries the expected SPIFFE ID. */
export function clientCredentials(endpoint: ClientEndpointConfig): ChannelCredentials {
  if (endpoint.mode === 'insecure-plaintext') return credentials.createInsecure();
  let ca: Buffer, key: Buffer, cert: Buffer;
  try {
    ca = readFileSync(endpoint.caFile);
    key = readFileSync(endpoint.keyFile);
    cert = readFileSync(endpoint.certFile);
  } catch (err) {
    throw new Error(`cannot read client TLS files: ${(err as Error).message}`, { cause: err });
  }
  return credentials.createSsl(ca, key, cert, {
    checkServerIdentity: (_host: string, peer: PeerCertificate) => {
      const ids = spiffeIdsFromSubjectAltName(peer.subjectaltname).map(String);
      return ids.includes(endpoint.serverId)
        ? undefined
        : new Error(`server identity ${ids.join(',') || '(none)'} is not the expected ${endpoint.serverId}`);
    },
  });
}

/**
 * The one way Aether programs reach a daemon: the CLI, the SDK and daemons calling each other all build
 * their clients here, so channel options, keepalive, TLS and the server-identity check are in one place.
 */
export function createClient<C extends Client>(
  ctor: ClientConstructor<C>,
  endpoint: ClientEndpointConfig,
  options: ClientFactoryOptions = {},
): C {
  return new ctor(`unix://${endpoint.socket}`, clientCredentials(endpoint), {
    ...channelOptions(options.maxMessageBytes ?? 16 * 1024 * 1024),
    'grpc.ssl_target_name_override': serverNameOf(endpoint.serverId),
    'grpc.default_authority': serverNameOf(endpoint.serverId),
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    ...options.channel,
  });
}

/** Per-call options: correlation ids, a capability token, a deadline. */
export interface CallOpts {
  requestId?: string;
  intentId?: string;
  jobId?: string;
  /** A capability token, sent as `authorization: Bearer …`. */
  token?: string;
  /** Milliseconds from now. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export function callMetadata(opts: CallOpts = {}): Metadata {
  const md = new Metadata();
  if (opts.requestId) md.set(REQUEST_ID_KEY, opts.requestId);
  if (opts.intentId) md.set(INTENT_ID_KEY, opts.intentId);
  if (opts.jobId) md.set(JOB_ID_KEY, opts.jobId);
  if (opts.token) md.set(AUTHORIZATION_KEY, `Bearer ${opts.token}`);
  return md;
}

function callOptions(opts: CallOpts): Partial<CallOptions> {
  return opts.timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + opts.timeoutMs) };
}

type UnaryFn<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls a generated unary method and returns a promise; failures reject with an RpcError. */
export function unaryCall<Req, Res>(
  method: UnaryFn<Req, Res>,
  request: Req,
  opts: CallOpts = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = method(request, callMetadata(opts), callOptions(opts), (err, res) =>
      err ? reject(RpcError.from(err)) : resolve(res),
    );
    opts.signal?.addEventListener('abort', () => call.cancel(), { once: true });
  });
}

type ServerStreamFn<Req, Res> = (
  request: Req,
  metadata?: Metadata,
  options?: Partial<CallOptions>,
) => ClientReadableStream<Res>;

/** Iterates a server stream; a failure is thrown from the loop as an RpcError. Breaking out cancels the call. */
export async function* serverStreamCall<Req, Res>(
  method: ServerStreamFn<Req, Res>,
  request: Req,
  opts: CallOpts = {},
): AsyncGenerator<Res> {
  const stream = method(request, callMetadata(opts), callOptions(opts));
  opts.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
  try {
    for await (const message of stream) yield message as Res;
  } catch (err) {
    throw RpcError.from(err);
  } finally {
    stream.cancel();
  }
}

/** How many messages of a client stream may wait in the call's buffer before writing pauses. */
const CLIENT_STREAM_QUEUED_MESSAGES = 8;

type ClientStreamFn<Req, Res> = (
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientWritableStream<Req>;

/**
 * Calls a client-streaming method: writes every message of `messages` in order (waiting whenever the
 * transport's buffer is full), half-closes, and returns the response; failures reject with an
 * RpcError. If `messages` throws, or `opts.signal` aborts, the call is cancelled.
 */
export async function clientStreamCall<Req, Res>(
  method: ClientStreamFn<Req, Res>,
  messages: AsyncIterable<Req> | Iterable<Req>,
  opts: CallOpts = {},
): Promise<Res> {
  let settled = false;
  let call: ClientWritableStream<Req> | undefined;
  const response = new Promise<Res>((resolve, reject) => {
    call = method(callMetadata(opts), callOptions(opts), (err, res) => {
      settled = true;
      if (err) reject(RpcError.from(err));
      else resolve(res);
    });
  });
  const stream = call!;
  opts.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
  try {
    for await (const message of messages) {
      if (settled) break; // the server answered early (an error): stop sending
      // Keep a few messages queued rather than one: waiting for 'drain' after every large message would
      // leave the connection idle while the server handles each one.
      if (!stream.write(message) && stream.writableLength >= CLIENT_STREAM_QUEUED_MESSAGES)
        await new Promise<void>((resolve) => {
          const done = (): void => {
            stream.removeListener('drain', done);
            stream.removeListener('close', done);
            resolve();
          };
          stream.once('drain', done);
          stream.once('close', done);
          // then(done, done), not finally(done): a rejection is the caller's to see, through `response`.
          response.then(done, done);
        });
    }
    stream.end();
  } catch (err) {
    stream.cancel();
    void response.catch(() => undefined);
    throw err;
  }
  return response;
}
