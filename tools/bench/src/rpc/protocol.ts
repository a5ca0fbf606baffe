/** What the benchmark's parent (client) and its forked server child tell each other over the IPC channel. */

export type TransportId = 'grpc-mtls-governed' | 'grpc-mtls' | 'grpc-plaintext' | 'http2-json';

export const TRANSPORTS: readonly TransportId[] = [
  'grpc-mtls-governed',
  'grpc-mtls',
  'grpc-plaintext',
  'http2-json',
];

export const TRANSPORT_LABELS: Readonly<Record<TransportId, string>> = {
  'grpc-mtls-governed': 'gRPC mTLS + pipeline + Cedar policy + audit log + access log (as aetherd runs)',
  'grpc-mtls': 'gRPC mTLS + pipeline (AetherServer)',
  'grpc-plaintext': 'gRPC plaintext + pipeline (AetherServer)',
  'http2-json': 'bare node:http2 JSON',
};

/** The echo RPC: EventService.GetEvent, answered with an event whose name is the requested one. */
export const ECHO_PATH = '/aether.events.v1.EventService/GetEvent';

/** A 100-byte `events/…` name: the string carried in the request and echoed back in the response. */
export const ECHO_NAME = `events/${'0'.repeat(93)}`;

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export type ParentMessage =
  | { type: 'start'; transport: TransportId; socketPath: string; tls: TlsFiles }
  | { type: 'cpu' }
  | { type: 'stop' };

export type ChildMessage =
  | { type: 'ready' }
  | { type: 'cpu'; userMicros: number; systemMicros: number }
  | { type: 'error'; message: string };
