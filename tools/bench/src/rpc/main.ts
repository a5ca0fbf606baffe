/**
 * RPC transport benchmark: unary latency and throughput of an echo-sized call between two processes over
 * a Unix socket, for gRPC with mTLS through AetherServer's pipeline, the same server in plaintext, and a
 * bare node:http2 JSON endpoint. The server runs in a forked child (server.ts), the clients here.
 *
 *   node tools/bench/dist/rpc/main.js [--json FILE] [--calls 3000] [--duration 5] [--warmup 2] [--callers 1,64]
 *
 * Prints one markdown table and the targets of the issue (PASS/MISS); `--json FILE` also writes the results.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ClientEndpointConfig } from '@aether/config';
import { initDevPki } from '@aether/pki';
import { eventsV1 } from '@aether/proto';
import { createClient, unaryCall } from '@aether/rpc';
import { summarize, type LatencySummary } from '../stats';
import {
  ECHO_NAME,
  ECHO_PATH,
  TRANSPORT_LABELS,
  TRANSPORTS,
  type ChildMessage,
  type ParentMessage,
  type TlsFiles,
  type TransportId,
} from './protocol';

interface Params {
  calls: number;
  durationMs: number;
  warmupMs: number;
  callers: number[];
}

interface ThroughputRun {
  callers: number;
  calls: number;
  elapsedMs: number;
  callsPerSec: number;
  latencyMs: LatencySummary;
  /** CPU time (user + system) per completed call, in microseconds. */
  serverCpuMicrosPerCall: number;
  clientCpuMicrosPerCall: number;
}

interface TransportResult {
  id: TransportId;
  label: string;
  sequentialMs: LatencySummary;
  runs: ThroughputRun[];
}

interface Target {
  name: string;
  value: number;
  unit: '%' | 'ms';
  target: string;
  pass: boolean;
}

interface Machine {
  nproc: number;
  cpuModel: string;
  node: string;
  platform: string;
  loadAverageAtStart: number[];
}

type Call = () => Promise<void>;

interface Client {
  call: Call;
  close(): void;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      calls: { type: 'string', default: '3000' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      callers: { type: 'string', default: '1,64' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/rpc/main.js [--json FILE] [--calls N] [--duration SECONDS] [--warmup SECONDS] [--callers 1,64]',
    );
    process.exit(0);
  }
  const positive = (name: string, raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(raw)}`);
    return n;
  };
  const callers = values.callers.split(',').map((c) => Math.round(positive('callers', c.trim())));
  return {
    params: {
      calls: Math.round(positive('calls', values.calls)),
      durationMs: positive('duration', values.duration) * 1000,
      warmupMs: positive('warmup', values.warmup) * 1000,
      callers: [...new Set(callers)].sort((a, b) => a - b),
    },
    jsonFile: values.json,
  };
}

function machine(): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    // Not Linux: keep os.cpus().
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The server child

class ServerChild {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  private constructor() {
    this.child = fork(join(__dirname, 'server.js'), [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    // The server's own log lines (level warn) go to our stderr, keeping stdout for the results.
    this.child.stdout?.pipe(process.stderr);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  static async start(transport: TransportId, socketPath: string, tls: TlsFiles): Promise<ServerChild> {
    const server = new ServerChild();
    await server.request({ type: 'start', transport, socketPath, tls }, 'ready');
    return server;
  }

  /** The child's CPU time so far (user + system), in microseconds. */
  async cpuMicros(): Promise<number> {
    const m = await this.request({ type: 'cpu' }, 'cpu');
    return m.type === 'cpu' ? m.userMicros + m.systemMicros : NaN;
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.send({ type: 'stop' } satisfies ParentMessage);
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
  }

  private request(message: ParentMessage, answer: ChildMessage['type']): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
      };
      const onMessage = (m: ChildMessage): void => {
        if (m.type === answer) {
          cleanup();
          resolve(m);
        } else if (m.type === 'error') {
          cleanup();
          reject(new Error(`server child: ${m.message}`));
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        cleanup();
        reject(new Error(`server child exited (${signal ?? code}) before answering ${message.type}`));
      };
      this.child.on('message', onMessage);
      this.child.on('exit', onExit);
      this.child.send(message);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Clients

async function grpcClient(transport: 'grpc-mtls' | 'grpc-plaintext', socketPath: string, admin: TlsFiles): Promise<Client> {
  const endpoint: ClientEndpointConfig = {
    socket: socketPath,
    serverId: 'spiffe://aether.local/aetherd',
    mode: transport === 'grpc-mtls' ? 'mtls' : 'insecure-plaintext',
    ...admin,
  };
  const client = createClient(eventsV1.EventServiceClient, endpoint);
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  const getEvent = client.getEvent.bind(client);
  const request: eventsV1.GetEventRequest = { name: ECHO_NAME };
  return {
    call: async () => {
      const res = await unaryCall(getEvent, request);
      if (res.event?.name !== ECHO_NAME) throw new Error('gRPC echo returned a different name');
    },
    close: () => client.close(),
  };
}

async function http2JsonClient(socketPath: string): Promise<Client> {
  const session: ClientHttp2Session = h2connect('http://localhost', { createConnection: () => netConnect(socketPath) });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => undefined); // each request reports its own failure
  const body = JSON.stringify({ name: ECHO_NAME });
  const call: Call = () =>
    new Promise<void>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': ECHO_PATH, 'content-type': 'application/json' });
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (headers) => (status = Number(headers[':status'])));
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (status !== 200) return reject(new Error(`http2 echo answered ${status}`));
        try {
          const res = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { event?: { name?: unknown } };
          if (res.event?.name !== ECHO_NAME) return reject(new Error('http2 echo returned a different name'));
        } catch (err) {
          return reject(err instanceof Error ? err : new Error(String(err)));
        }
        resolve();
      });
      req.on('error', reject);
      req.end(body);
    });
  return { call, close: () => session.close() };
}

// ---------------------------------------------------------------------------------------------------------
// Measurement

async function sequential(call: Call, n: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    latencies.push(performance.now() - t0);
  }
  return latencies;
}

/** `callers` loops, each calling again as soon as its previous call returns, until `durationMs` is over. */
async function closedLoop(
  call: Call,
  callers: number,
  durationMs: number,
): Promise<{ latencies: number[]; elapsedMs: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + durationMs;
  const caller = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await call();
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  return { latencies, elapsedMs: performance.now() - start };
}

function clientCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function benchTransport(
  transport: TransportId,
  dir: string,
  serverTls: TlsFiles,
  clientTls: TlsFiles,
  params: Params,
): Promise<TransportResult> {
  const socketPath = join(dir, `${transport}.sock`);
  const server = await ServerChild.start(transport, socketPath, serverTls);
  let client: Client | undefined;
  try {
    client =
      transport === 'http2-json'
        ? await http2JsonClient(socketPath)
        : await grpcClient(transport, socketPath, clientTls);
    const maxCallers = params.callers[params.callers.length - 1] ?? 1;
    await closedLoop(client.call, 1, params.warmupMs / 2);
    await closedLoop(client.call, maxCallers, params.warmupMs / 2);

    const sequentialMs = summarize(await sequential(client.call, params.calls));
    const runs: ThroughputRun[] = [];
    for (const callers of params.callers) {
      const server0 = await server.cpuMicros();
      const client0 = clientCpuMicros();
      const { latencies, elapsedMs } = await closedLoop(client.call, callers, params.durationMs);
      const client1 = clientCpuMicros();
      const server1 = await server.cpuMicros();
      const calls = latencies.length;
      runs.push({
        callers,
        calls,
        elapsedMs,
        callsPerSec: calls / (elapsedMs / 1000),
        latencyMs: summarize(latencies),
        serverCpuMicrosPerCall: (server1 - server0) / calls,
        clientCpuMicrosPerCall: (client1 - client0) / calls,
      });
    }
    return { id: transport, label: TRANSPORT_LABELS[transport], sequentialMs, runs };
  } finally {
    client?.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

const ms = (v: number): string => v.toFixed(3);
const int = (v: number): string => Math.round(v).toLocaleString('en-US');
const pct = (v: number): string => `${v.toFixed(1)} %`;

function table(results: TransportResult[], params: Params): string {
  const head = ['Transport', 'seq p50 ms', 'seq p99 ms'];
  for (const c of params.callers) head.push(`${c}× calls/s`, `${c}× p50 ms`, `${c}× p99 ms`);
  const maxCallers = params.callers[params.callers.length - 1] ?? 1;
  head.push(`server CPU µs/call (${maxCallers}×)`, `client CPU µs/call (${maxCallers}×)`);
  const rows = results.map((r) => {
    const cells = [r.label, ms(r.sequentialMs.p50), ms(r.sequentialMs.p99)];
    for (const run of r.runs) cells.push(int(run.callsPerSec), ms(run.latencyMs.p50), ms(run.latencyMs.p99));
    const last = r.runs[r.runs.length - 1];
    cells.push(last ? int(last.serverCpuMicrosPerCall) : '-', last ? int(last.clientCpuMicrosPerCall) : '-');
    return cells;
  });
  const align = head.map((_, i) => (i === 0 ? '---' : '--:'));
  return [head, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function targets(results: TransportResult[], params: Params): Target[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const rate = (id: TransportId, callers: number): number =>
    byId.get(id)?.runs.find((run) => run.callers === callers)?.callsPerSec ?? NaN;
  const out: Target[] = [];
  for (const callers of params.callers) {
    const mtlsVsPlain = (100 * rate('grpc-mtls', callers)) / rate('grpc-plaintext', callers);
    out.push({
      name: `throughput gRPC mTLS / gRPC plaintext, ${callers} caller${callers === 1 ? '' : 's'}`,
      value: mtlsVsPlain,
      unit: '%',
      target: '≥ 70 %',
      pass: mtlsVsPlain >= 70,
    });
  }
  for (const callers of params.callers) {
    const plainVsH2 = (100 * rate('grpc-plaintext', callers)) / rate('http2-json', callers);
    out.push({
      name: `throughput gRPC plaintext / bare http2, ${callers} caller${callers === 1 ? '' : 's'}`,
      value: plainVsH2,
      unit: '%',
      target: '≥ 50 %',
      pass: plainVsH2 >= 50,
    });
  }
  const maxCallers = params.callers[params.callers.length - 1] ?? 1;
  for (const r of results) {
    const p99 = r.runs.find((run) => run.callers === maxCallers)?.latencyMs.p99 ?? NaN;
    out.push({
      name: `p99 at ${maxCallers} callers, ${r.label}`,
      value: p99,
      unit: 'ms',
      target: '< 5 ms',
      pass: p99 < 5,
    });
  }
  return out;
}

function targetLines(list: Target[]): string {
  return list
    .map((t) => `- ${t.pass ? 'PASS' : 'MISS'} ${t.name}: ${t.unit === '%' ? pct(t.value) : `${ms(t.value)} ms`} (target ${t.target})`)
    .join('\n');
}

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  const info = machine();
  const command = ['node', 'tools/bench/dist/rpc/main.js', ...process.argv.slice(2)].join(' ');
  const started = new Date();
  const dir = await mkdtemp(join(tmpdir(), 'aether-bench-rpc-'));
  try {
    const pki = await initDevPki(join(dir, 'pki'), { names: ['aetherd', 'admin'] });
    const files = (name: string): TlsFiles => {
      const id = pki.identities[name];
      if (!id) throw new Error(`dev PKI has no ${name} identity`);
      return { caFile: pki.caCertPath, certFile: id.certPath, keyFile: id.keyPath };
    };
    const serverTls = files('aetherd');
    const clientTls = files('admin');

    const results: TransportResult[] = [];
    for (const transport of TRANSPORTS) {
      process.stderr.write(`bench rpc: ${TRANSPORT_LABELS[transport]}…\n`);
      results.push(await benchTransport(transport, dir, serverTls, clientTls, params));
    }
    const list = targets(results, params);
    const maxCallers = params.callers[params.callers.length - 1] ?? 1;
    const mtlsMax = results.find((r) => r.id === 'grpc-mtls')?.runs.find((r) => r.callers === maxCallers);

    const report = [
      `RPC transport benchmark — echo-sized unary call (EventService.GetEvent, ${ECHO_NAME.length}-byte string in and out) between two processes over a Unix socket`,
      '',
      `Machine: ${info.nproc} CPUs (${info.cpuModel}), Node ${info.node}, ${info.platform}, load average at start ${info.loadAverageAtStart.join(' ')}; ${started.toISOString()}`,
      `Command: ${command}`,
      `Per transport: ${params.warmupMs / 1000} s warm-up, ${params.calls} sequential calls (seq), then ${params.durationMs / 1000} s closed-loop runs with ${params.callers.join(' and ')} concurrent callers on one connection.`,
      'gRPC rows run the full AetherServer pipeline (principal from the certificate or socket, correlation ids, policy hook, audit hook, access log)',
      'with an allow-all policy hook, a no-op audit hook and a pino logger at level warn (so the per-call access log line is not written).',
      '',
      table(results, params),
      '',
      'Targets:',
      targetLines(list),
      ...(mtlsMax
        ? [
            '',
            `Note: with ${maxCallers} callers in a closed loop, latency ≈ callers / throughput (Little's law): gRPC mTLS at ${int(mtlsMax.callsPerSec)} calls/s`,
            `means a mean of ≈ ${ms((maxCallers / mtlsMax.callsPerSec) * 1000)} ms per call; p99 < 5 ms at ${maxCallers} callers needs more than ${int((maxCallers / 5) * 1000)} calls/s.`,
          ]
        : []),
    ].join('\n');
    console.log(report);

    if (jsonFile) {
      const json = { benchmark: 'rpc', date: started.toISOString(), command, machine: info, params, results, targets: list };
      await writeFile(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`bench rpc: wrote ${jsonFile}\n`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error('bench rpc failed:', err);
  process.exit(1);
});
