/**
 * RPC transport benchmark: unary latency and throughput of an echo-sized call between two processes over
 * a Unix socket, for gRPC with mTLS through AetherServer's pipeline, the same server in plaintext, and a
 * bare node:http2 JSON endpoint. The server runs in a forked child (server.ts), the clients here.
 *
 *   node tools/bench/dist/rpc/main.js [--json FILE] [--rounds 3] [--calls 2000] [--duration 3] [--warmup 1]
 *                                     [--callers 1,64] [--transports grpc-mtls,grpc-plaintext,http2-json]
 *
 * Every round measures every transport (in rotated order, each with a fresh server child); the table shows
 * the median over the rounds. Prints one markdown table and the issue's targets (PASS/MISS); `--json FILE`
 * also writes every round's results.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ClientEndpointConfig } from '@aether/config';
import { initDevPki } from '@aether/pki';
import { eventsV1 } from '@aether/proto';
import { createClient, unaryCall } from '@aether/rpc';
import { median, summarize, type LatencySummary } from '../stats';
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
import { closedLoop, machineBusyMicros, machineInfo } from '../machine';

interface Params {
  rounds: number;
  calls: number;
  durationMs: number;
  warmupMs: number;
  callers: number[];
  transports: TransportId[];
}

/** One closed-loop run of one transport in one round. */
interface ThroughputRun {
  callers: number;
  calls: number;
  elapsedMs: number;
  callsPerSec: number;
  latencyMs: LatencySummary;
  /** CPU time (user + system) per completed call, in microseconds. */
  serverCpuMicrosPerCall: number;
  clientCpuMicrosPerCall: number;
  /** The part of the CPU time per call spent in the kernel (system time), in microseconds. */
  serverSystemMicrosPerCall: number;
  clientSystemMicrosPerCall: number;
  /** CPU time used by everything else on the machine during the run, in percent of one CPU (noise). */
  otherCpuPercent: number;
}

interface RoundResult {
  round: number;
  sequentialMs: LatencySummary;
  runs: ThroughputRun[];
}

/** Medians over the rounds. */
interface RunMedians {
  callers: number;
  callsPerSec: number;
  callsPerSecMin: number;
  callsPerSecMax: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuMicrosPerCall: number;
  clientCpuMicrosPerCall: number;
}

interface TransportResult {
  id: TransportId;
  label: string;
  sequentialP50Ms: number;
  sequentialP99Ms: number;
  runs: RunMedians[];
  rounds: RoundResult[];
}

interface Target {
  name: string;
  value: number;
  unit: '%' | 'ms' | 'µs';
  target: string;
  pass: boolean;
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
      rounds: { type: 'string', default: '3' },
      calls: { type: 'string', default: '2000' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      callers: { type: 'string', default: '1,64' },
      transports: { type: 'string', default: TRANSPORTS.join(',') },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/rpc/main.js [--json FILE] [--rounds N] [--calls N] [--duration SECONDS]\n' +
        `         [--warmup SECONDS] [--callers 1,64] [--transports ${TRANSPORTS.join(',')}]`,
    );
    process.exit(0);
  }
  const positive = (name: string, raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0)
      throw new Error(`--${name} must be a positive number, got ${JSON.stringify(raw)}`);
    return n;
  };
  const callers = values.callers.split(',').map((c) => Math.round(positive('callers', c.trim())));
  const transports = values.transports.split(',').map((t) => {
    const id = TRANSPORTS.find((known) => known === t.trim());
    if (!id) throw new Error(`unknown transport ${JSON.stringify(t)}; known: ${TRANSPORTS.join(', ')}`);
    return id;
  });
  return {
    params: {
      rounds: Math.round(positive('rounds', values.rounds)),
      calls: Math.round(positive('calls', values.calls)),
      durationMs: positive('duration', values.duration) * 1000,
      warmupMs: positive('warmup', values.warmup) * 1000,
      callers: [...new Set(callers)].sort((a, b) => a - b),
      transports: TRANSPORTS.filter((t) => transports.includes(t)),
    },
    jsonFile: values.json,
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

  /** The child's CPU time so far, in microseconds. */
  async cpuUsage(): Promise<NodeJS.CpuUsage> {
    const m = await this.request({ type: 'cpu' }, 'cpu');
    return m.type === 'cpu' ? { user: m.userMicros, system: m.systemMicros } : { user: NaN, system: NaN };
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

/** The real client path: createClient (channel options, TLS, server-identity check) and unaryCall. */
async function grpcClient(
  transport: 'grpc-mtls-governed' | 'grpc-mtls' | 'grpc-plaintext',
  socketPath: string,
  tls: TlsFiles,
): Promise<Client> {
  const endpoint: ClientEndpointConfig = {
    socket: socketPath,
    serverId: 'spiffe://aether.local/aetherd',
    mode: transport === 'grpc-plaintext' ? 'insecure-plaintext' : 'mtls',
    ...tls,
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

/** One HTTP/2 session over the Unix socket; each call is a POST with a JSON body. */
async function http2JsonClient(socketPath: string): Promise<Client> {
  const session: ClientHttp2Session = h2connect('http://localhost', {
    createConnection: () => netConnect(socketPath),
  });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => undefined); // each request reports its own failure
  const body = JSON.stringify({ name: ECHO_NAME });
  const call: Call = () =>
    new Promise<void>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': ECHO_PATH,
        'content-type': 'application/json',
      });
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

async function benchTransport(
  transport: TransportId,
  round: number,
  dir: string,
  serverTls: TlsFiles,
  clientTls: TlsFiles,
  params: Params,
): Promise<RoundResult> {
  const socketPath = join(dir, `${transport}-${round}.sock`);
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
      const server0 = await server.cpuUsage();
      const client0 = process.cpuUsage();
      const busy0 = machineBusyMicros();
      const { latencies, elapsedMs } = await closedLoop(client.call, callers, params.durationMs);
      const busy1 = machineBusyMicros();
      const clientUsed = process.cpuUsage(client0);
      const server1 = await server.cpuUsage();
      const serverUsed = { user: server1.user - server0.user, system: server1.system - server0.system };
      const calls = latencies.length;
      const ours = serverUsed.user + serverUsed.system + clientUsed.user + clientUsed.system;
      runs.push({
        callers,
        calls,
        elapsedMs,
        callsPerSec: calls / (elapsedMs / 1000),
        latencyMs: summarize(latencies),
        serverCpuMicrosPerCall: (serverUsed.user + serverUsed.system) / calls,
        clientCpuMicrosPerCall: (clientUsed.user + clientUsed.system) / calls,
        serverSystemMicrosPerCall: serverUsed.system / calls,
        clientSystemMicrosPerCall: clientUsed.system / calls,
        otherCpuPercent: Math.max(0, (100 * (busy1 - busy0 - ours)) / (elapsedMs * 1000)),
      });
    }
    return { round, sequentialMs, runs };
  } finally {
    client?.close();
    await server.stop();
  }
}

function aggregate(id: TransportId, rounds: RoundResult[], params: Params): TransportResult {
  const runs = params.callers.map((callers): RunMedians => {
    const all = rounds.flatMap((r) => r.runs.filter((run) => run.callers === callers));
    const rates = all.map((run) => run.callsPerSec);
    return {
      callers,
      callsPerSec: median(rates),
      callsPerSecMin: Math.min(...rates),
      callsPerSecMax: Math.max(...rates),
      p50Ms: median(all.map((run) => run.latencyMs.p50)),
      p99Ms: median(all.map((run) => run.latencyMs.p99)),
      serverCpuMicrosPerCall: median(all.map((run) => run.serverCpuMicrosPerCall)),
      clientCpuMicrosPerCall: median(all.map((run) => run.clientCpuMicrosPerCall)),
    };
  });
  return {
    id,
    label: TRANSPORT_LABELS[id],
    sequentialP50Ms: median(rounds.map((r) => r.sequentialMs.p50)),
    sequentialP99Ms: median(rounds.map((r) => r.sequentialMs.p99)),
    runs,
    rounds,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Report

const ms = (v: number): string => v.toFixed(3);
const int = (v: number): string => Math.round(v).toLocaleString('en-US');
const pct = (v: number): string => `${v.toFixed(1)} %`;

function table(results: TransportResult[], params: Params): string {
  const maxCallers = params.callers[params.callers.length - 1] ?? 1;
  const head = ['Transport', 'seq p50 ms', 'seq p99 ms'];
  for (const c of params.callers) head.push(`${c}× calls/s`, `${c}× p50 ms`, `${c}× p99 ms`);
  head.push(`server CPU µs/call (${maxCallers}×)`, `client CPU µs/call (${maxCallers}×)`);
  const rows = results.map((r) => {
    const cells = [r.label, ms(r.sequentialP50Ms), ms(r.sequentialP99Ms)];
    for (const run of r.runs) cells.push(int(run.callsPerSec), ms(run.p50Ms), ms(run.p99Ms));
    const last = r.runs[r.runs.length - 1];
    cells.push(last ? int(last.serverCpuMicrosPerCall) : '-', last ? int(last.clientCpuMicrosPerCall) : '-');
    return cells;
  });
  const align = head.map((_, i) => (i === 0 ? '---' : '--:'));
  return [head, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function ranges(results: TransportResult[]): string {
  return results
    .map(
      (r) =>
        `${r.label}: ${r.runs.map((run) => `${run.callers}× ${int(run.callsPerSecMin)}–${int(run.callsPerSecMax)}`).join(', ')}`,
    )
    .join('; ');
}

function targets(results: TransportResult[], params: Params): Target[] {
  const byId = new Map(results.map((r) => [r.id, r]));
  const rate = (id: TransportId, callers: number): number =>
    byId.get(id)?.runs.find((run) => run.callers === callers)?.callsPerSec ?? NaN;
  const plural = (n: number): string => `${n} caller${n === 1 ? '' : 's'}`;
  const out: Target[] = [];
  if (byId.has('grpc-mtls') && byId.has('grpc-plaintext')) {
    for (const callers of params.callers) {
      const value = (100 * rate('grpc-mtls', callers)) / rate('grpc-plaintext', callers);
      out.push({
        name: `throughput gRPC mTLS / gRPC plaintext, ${plural(callers)}`,
        value,
        unit: '%',
        target: '≥ 70 %',
        pass: value >= 70,
      });
    }
  }
  if (byId.has('grpc-mtls-governed') && byId.has('grpc-mtls')) {
    const p50 = (id: TransportId): number => byId.get(id)?.sequentialP50Ms ?? NaN;
    const added = (p50('grpc-mtls-governed') - p50('grpc-mtls')) * 1000;
    out.push({
      name: 'added cost per RPC of Cedar policy + audit + access log (sequential p50)',
      value: added,
      unit: 'µs',
      target: 'reported (no target)',
      pass: true,
    });
    for (const callers of params.callers) {
      const value = (100 * rate('grpc-mtls-governed', callers)) / rate('grpc-mtls', callers);
      out.push({
        name: `throughput governed / ungoverned gRPC mTLS, ${plural(callers)}`,
        value,
        unit: '%',
        target: 'reported (no target)',
        pass: true,
      });
    }
  }
  if (byId.has('grpc-plaintext') && byId.has('http2-json')) {
    for (const callers of params.callers) {
      const value = (100 * rate('grpc-plaintext', callers)) / rate('http2-json', callers);
      out.push({
        name: `throughput gRPC plaintext / bare http2, ${plural(callers)}`,
        value,
        unit: '%',
        target: '≥ 50 %',
        pass: value >= 50,
      });
    }
  }
  const maxCallers = params.callers[params.callers.length - 1] ?? 1;
  for (const r of results) {
    const value = r.runs.find((run) => run.callers === maxCallers)?.p99Ms ?? NaN;
    out.push({
      name: `p99 at ${plural(maxCallers)}, ${r.label}`,
      value,
      unit: 'ms',
      target: '< 5 ms',
      pass: value < 5,
    });
  }
  return out;
}

function targetLines(list: Target[]): string {
  return list
    .map(
      (t) =>
        `- ${t.target.startsWith('reported') ? 'INFO' : t.pass ? 'PASS' : 'MISS'} ${t.name}: ${
          t.unit === '%' ? pct(t.value) : t.unit === 'µs' ? `${Math.round(t.value)} µs` : `${ms(t.value)} ms`
        }${t.target.startsWith('reported') ? '' : ` (target ${t.target})`}`,
    )
    .join('\n');
}

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  const info = machineInfo();
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

    const rounds = new Map<TransportId, RoundResult[]>(params.transports.map((t) => [t, []]));
    for (let round = 1; round <= params.rounds; round++) {
      // Rotate the order so no transport always runs first (coldest) or last.
      const shift = (round - 1) % params.transports.length;
      const order = [...params.transports.slice(shift), ...params.transports.slice(0, shift)];
      for (const transport of order) {
        process.stderr.write(`bench rpc: round ${round}/${params.rounds}: ${TRANSPORT_LABELS[transport]}…\n`);
        rounds
          .get(transport)
          ?.push(await benchTransport(transport, round, dir, serverTls, clientTls, params));
      }
    }
    const results = params.transports.map((t) => aggregate(t, rounds.get(t) ?? [], params));
    const list = targets(results, params);
    const allRuns = results.flatMap((r) => r.rounds.flatMap((round) => round.runs));
    const otherCpu = allRuns.map((run) => run.otherCpuPercent);
    const maxCallers = params.callers[params.callers.length - 1] ?? 1;
    const mtlsMax = results.find((r) => r.id === 'grpc-mtls')?.runs.find((r) => r.callers === maxCallers);
    const finished = new Date();

    const report = [
      `RPC transport benchmark: echo-sized unary call (EventService.GetEvent, ${ECHO_NAME.length}-byte string in and out) between two processes over a Unix socket`,
      '',
      `Machine: ${info.nproc} CPUs (${info.cpuModel}), Node ${info.node}, ${info.platform}; load average at start ${info.loadAverageAtStart.join(' ')}`,
      `Date: ${started.toISOString()} (took ${Math.round((finished.getTime() - started.getTime()) / 1000)} s)`,
      `Command: ${command}`,
      `Each of ${params.rounds} rounds, per transport (fresh server child): ${params.warmupMs / 1000} s warm-up, ${params.calls} sequential calls (seq), ` +
        `then ${params.durationMs / 1000} s closed-loop runs with ${params.callers.join(' and ')} concurrent callers on one connection. Table: medians over the rounds.`,
      'gRPC rows run the full AetherServer pipeline (principal from the certificate or socket, correlation ids, policy hook, audit hook, access log)',
      'with an allow-all policy hook, a no-op audit hook and a pino logger at level warn (so the per-call access log line is not written).',
      '',
      table(results, params),
      '',
      `Throughput range over the rounds (calls/s): ${ranges(results)}.`,
      `Other processes used ${pct(median(otherCpu))} of one CPU (median; max ${pct(Math.max(...otherCpu))}) during the measured runs.`,
      '',
      'Targets:',
      targetLines(list),
      ...(mtlsMax
        ? [
            '',
            `Note: with ${maxCallers} callers in a closed loop, mean latency = callers / throughput (Little's law): gRPC mTLS at ${int(mtlsMax.callsPerSec)} calls/s`,
            `gives ≈ ${ms((maxCallers / mtlsMax.callsPerSec) * 1000)} ms per call; p99 < 5 ms at ${maxCallers} callers needs well over ${int((maxCallers / 5) * 1000)} calls/s.`,
          ]
        : []),
    ].join('\n');
    console.log(report);
    if (median(otherCpu) > 10) {
      process.stderr.write(
        `bench rpc: warning: other processes took ${pct(median(otherCpu))} of a CPU during the runs; the numbers are skewed\n`,
      );
    }

    if (jsonFile) {
      const json = {
        benchmark: 'rpc',
        date: started.toISOString(),
        command,
        machine: info,
        params,
        results,
        targets: list,
      };
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
