/**
 * The server half of the RPC benchmark, forked by main.ts: serves the echo RPC on a Unix socket over one
 * transport, then reports its CPU time and stops when told to over the IPC channel.
 *
 * The gRPC transports run the real AetherServer pipeline (principal, correlation, policy hook, audit hook,
 * access log) with an allow-all policy, a no-op audit hook and a pino logger at level `warn`, so the
 * numbers show the transport and pipeline rather than Cedar evaluation or audit-file writes.
 */
import { createServer, type Http2Server, type ServerHttp2Stream } from 'node:http2';
import { dirname, join } from 'node:path';
import pino from 'pino';
import { AuditLog } from '@aether/audit';
import { PolicyStore } from '@aether/policy';
import { AetherServer, unary, type AuditHook, type PolicyHook } from '@aether/rpc';
import { createLogger } from '@aether/log';
import { eventsV1 } from '@aether/proto';
import type { ServerConfig } from '@aether/config';
import {
  ECHO_PATH,
  type ChildMessage,
  type ParentMessage,
  type TlsFiles,
  type TransportId,
} from './protocol';

const allowAll: PolicyHook = {
  decide: () => ({ effect: 'allow', policyIds: ['bench-allow-all'], reason: 'benchmark: allow every call' }),
};
const noAudit: AuditHook = { record: () => Promise.resolve() };

function send(message: ChildMessage): void {
  process.send?.(message);
}

interface Running {
  stop(): Promise<void>;
}

/**
 * What aetherd really runs per call: the shipped Cedar policy (deploy/policy), the hash-chained audit log
 * (reads are buffered, not fsync'ed, as in the daemon) and the per-call access log line at level info.
 */
async function governedHooks(
  dir: string,
): Promise<{ policy: PolicyHook; audit: AuditHook; close(): Promise<void> }> {
  const store = new PolicyStore(join(__dirname, '..', '..', '..', '..', 'deploy', 'policy'));
  store.load();
  const log = await AuditLog.open({ path: join(dir, 'audit.jsonl'), daemon: 'bench-server' });
  return {
    policy: store,
    // As the daemon does: only durable records hold the response back.
    audit: {
      record: async (rec, { durable }) => {
        const appended = log.append(rec, { durable });
        if (durable) await appended;
        else appended.catch(() => undefined);
      },
    },
    close: () => log.close(),
  };
}

async function startGrpc(
  transport: 'grpc-mtls-governed' | 'grpc-mtls' | 'grpc-plaintext',
  socketPath: string,
  tls: TlsFiles,
): Promise<Running> {
  const config: Pick<ServerConfig, 'socket' | 'tls' | 'shutdownGraceMs' | 'maxMessageBytes'> = {
    socket: { path: socketPath, mode: '0600', group: '' },
    tls: {
      mode: transport === 'grpc-plaintext' ? 'insecure-plaintext' : 'mtls',
      trustDomain: 'aether.local',
      ...tls,
    },
    shutdownGraceMs: 1_000,
    maxMessageBytes: 16 * 1024 * 1024,
  };
  const governed = transport === 'grpc-mtls-governed' ? await governedHooks(dirname(socketPath)) : undefined;
  const server = new AetherServer({
    name: 'bench-server',
    config,
    // `warn` keeps the per-call access log off for the transport rows; the governed row writes it (at
    // info, to /dev/null) as the daemon does.
    log: governed
      ? createLogger({ service: 'bench-server', level: 'info', destination: pino.destination('/dev/null') })
      : createLogger({ service: 'bench-server', level: 'warn' }),
    policy: governed?.policy ?? allowAll,
    audit: governed?.audit ?? noAudit,
  });
  server.addService(eventsV1.EventServiceService, {
    getEvent: unary<eventsV1.GetEventRequest, eventsV1.GetEventResponse>({
      handle: (request) => Promise.resolve({ event: eventsV1.Event.fromPartial({ name: request.name }) }),
    }),
  });
  await server.start();
  return { stop: async () => (await server.stop(), await governed?.close()) };
}

/** A bare HTTP/2 JSON endpoint: POST {"name": …} to ECHO_PATH, get {"event": {"name": …}} back. */
function startHttp2Json(socketPath: string): Promise<Running> {
  const server: Http2Server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    if (headers[':method'] !== 'POST' || headers[':path'] !== ECHO_PATH) {
      stream.respond({ ':status': 404 });
      stream.end();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      let name: unknown;
      try {
        name = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name?: unknown }).name;
      } catch {
        name = undefined;
      }
      if (typeof name !== 'string') {
        stream.respond({ ':status': 400, 'content-type': 'application/json' });
        stream.end('{"error":"name must be a string"}');
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ event: { name } }));
    });
    stream.on('error', () => stream.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve({
        stop: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Sessions the client left open would keep close() waiting; the parent closes its own first.
            setTimeout(done, 1_000).unref();
          }),
      });
    });
  });
}

function start(transport: TransportId, socketPath: string, tls: TlsFiles): Promise<Running> {
  return transport === 'http2-json' ? startHttp2Json(socketPath) : startGrpc(transport, socketPath, tls);
}

let running: Running | undefined;

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'start':
      start(message.transport, message.socketPath, message.tls).then(
        (r) => {
          running = r;
          send({ type: 'ready' });
        },
        (err: unknown) => send({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'cpu': {
      const usage = process.cpuUsage();
      send({ type: 'cpu', userMicros: usage.user, systemMicros: usage.system });
      break;
    }
    case 'stop':
      void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
      break;
  }
});

// The parent went away (crashed or killed): do not linger.
process.on('disconnect', () => process.exit(0));

if (!process.send) {
  console.error('tools/bench/rpc/server.js is started by tools/bench/rpc/main.js, not on its own');
  process.exit(2);
}
