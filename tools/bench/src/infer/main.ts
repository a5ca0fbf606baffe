/**
 * Infer benchmark: latency and throughput of a small ONNX model through cfcd's Infer (gRPC, mTLS, the
 * pipeline with the shipped Cedar policy and the audit log, a worker thread per model) against a direct
 * onnxruntime-node call on the same model file and the same input, in one run.
 *
 *   node tools/bench/dist/infer/main.js [--json FILE] [--calls 5000] [--warmup 2000] [--blocks 5]
 *        [--duration 5] [--callers 16] [--width 64] [--batch 1] [--no-wait-idle] [--profile DIR]
 *
 * One tools/e2e `Stack` (temporary PKI, the shipped policy, mTLS sockets; aetherd and cfcd as real processes
 * from their built dist/, so build first; aurorad is not started). The model (model.ts: an MLP of `--width`
 * inputs, a hidden layer of `--width` with ReLU, `--width` outputs) is uploaded to aetherd as a MODEL
 * artifact and registered on cfcd, which fetches it, checks its digest and loads it; the benchmark loads
 * the same bytes from a file of its own. Three paths, each checked to answer the same numbers:
 *
 *  - direct: `InferenceSession.create(path)` in this process, then `session.run({ x: new Tensor(…) })`.
 *  - worker: the same in a worker thread of this process, spoken to as cfcd's SessionWorker speaks to its
 *    own (worker.ts): the cost of the thread hop without gRPC.
 *  - cfcd: `ModelRuntimeService/Infer` with the generated client as the admin identity, the input as packed
 *    little-endian `data`.
 *
 * and, sequentially only, a control: cfcd's `GetModel` of the same model, which takes the same way through
 * gRPC and the pipeline (mTLS, Cedar, audit, access log) and reads the same SQLite row but runs nothing, so
 * Infer − GetModel is what inference itself adds.
 *
 * `--warmup` calls of each, then `--calls` sequential calls of each in `--blocks` blocks, the paths taking
 * turns (the order rotating every block) so drift hits all alike; then a closed-loop run of `--duration`
 * seconds with `--callers` concurrent callers per path (cfcd: one connection; direct: one session, whose
 * runs onnxruntime-node executes one at a time on this thread). cfcd's side of each sequential call comes
 * from its access log (the call's arrival to its answer: policy decision and handler), from Infer's
 * `compute_time` (onnxruntime's `run` in cfcd's worker) and from cfcd's GetMetrics (the mean Cedar
 * decision). CPU time per call from /proc (cfcd, 10 ms ticks) and `process.cpuUsage` (this process); other
 * processes' CPU is the machine's busy time minus that of this process, cfcd and aetherd. `--profile DIR`:
 * cfcd runs with `--cpu-prof` and writes its profiles (main thread, model worker) into DIR when it stops.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { AetherClient } from '@aether/client';
import { Stack, repoRoot, type DaemonProcess } from '@aether/e2e';
import { artifactsV1, metricsV1, modelsV1, msFromDuration } from '@aether/proto';
import { clientStreamCall, createClient, unaryCall } from '@aether/rpc';
import { closedLoop, codeVersion, machineBusyMicros, machineInfo } from '../machine';
import { median, summarize, type LatencySummary } from '../stats';
import { mlpModel, seededValues } from './model';
import type { WorkerReply, WorkerRequest } from './protocol';

const { ArtifactType } = artifactsV1;
const { DataType, ModelFormat } = modelsV1;
const MODEL_ID = 'bench-mlp';
/** The issue's target: cfcd's latency ≤ TARGET_FACTOR × direct + TARGET_ADDED_MS (p50 and p99). */
const TARGET_FACTOR = 1.5;
const TARGET_ADDED_MS = 0.3;

/** The paths measured sequentially and under load. */
const PATHS = ['direct', 'worker', 'cfcd'] as const;
type PathId = (typeof PATHS)[number];
/** Measured sequentially only. */
const CONTROL = 'getmodel';
type SeqId = PathId | typeof CONTROL;
const SEQ_PATHS: readonly SeqId[] = [...PATHS, CONTROL];
const PATH_LABELS: Record<SeqId, string> = {
  direct: 'direct: onnxruntime-node `session.run` in the benchmark process',
  worker: "worker: the same session in a worker thread (cfcd's SessionWorker protocol, no gRPC)",
  cfcd: 'cfcd: `Infer` over gRPC mTLS (pipeline, Cedar policy, audit, access log, worker thread)',
  getmodel: 'control: cfcd `GetModel` of the same model (the same RPC path, no inference)',
};

interface Params {
  calls: number;
  warmup: number;
  blocks: number;
  durationMs: number;
  callers: number;
  width: number;
  batch: number;
  waitIdle: boolean;
  profileDir: string | undefined;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      calls: { type: 'string', default: '5000' },
      warmup: { type: 'string', default: '2000' },
      blocks: { type: 'string', default: '5' },
      duration: { type: 'string', default: '5' },
      callers: { type: 'string', default: '16' },
      width: { type: 'string', default: '64' },
      batch: { type: 'string', default: '1' },
      'no-wait-idle': { type: 'boolean', default: false },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/infer/main.js [--json FILE] [--calls 5000] [--warmup 2000] [--blocks 5]\n' +
        '         [--duration 5] [--callers 16] [--width 64] [--batch 1] [--no-wait-idle] [--profile DIR]',
    );
    process.exit(0);
  }
  const count = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const seconds = Number(values.duration);
  if (!(seconds > 0))
    throw new Error(`--duration must be a positive number of seconds, got ${values.duration}`);
  return {
    params: {
      calls: count('calls', values.calls, 1),
      warmup: count('warmup', values.warmup, 0),
      blocks: count('blocks', values.blocks, 1),
      durationMs: seconds * 1000,
      callers: count('callers', values.callers, 1),
      width: count('width', values.width, 1),
      batch: count('batch', values.batch, 1),
      waitIdle: !values['no-wait-idle'],
      profileDir: values.profile,
    },
    jsonFile: values.json,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Clocks and processes

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU time of a live process so far (utime + stime, USER_HZ 100), in ms; NaN once it is gone. */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

const selfCpuMs = (): number => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};

/**
 * Waits until the machine is idle (under 10 % of one CPU busy over a 1-second sample), at most `limitMs`;
 * returns the busy fraction of the last sample, so the report can say when it was not.
 */
async function waitForIdle(limitMs: number): Promise<number> {
  const until = Date.now() + limitMs;
  const sample = async (): Promise<number> => {
    const b0 = machineBusyMicros();
    await sleep(1_000);
    return (machineBusyMicros() - b0) / 1e6;
  };
  let busy = await sample();
  while (busy >= 0.1 && Date.now() < until) {
    process.stderr.write(`waiting for the machine to be idle (${Math.round(busy * 100)} % of a CPU busy)…\n`);
    busy = await sample();
  }
  return busy;
}

/** CPU of this process, cfcd and aetherd and of the whole machine over a window, in ms. */
class CpuWindow {
  private readonly self0 = selfCpuMs();
  private readonly cfcd0: number;
  private readonly aetherd0: number;
  private readonly busy0 = machineBusyMicros();
  private readonly t0 = performance.now();

  constructor(
    private readonly cfcdPid: number,
    private readonly aetherdPid: number,
  ) {
    this.cfcd0 = processCpuMs(cfcdPid);
    this.aetherd0 = processCpuMs(aetherdPid);
  }

  end(): { benchMs: number; cfcdMs: number; otherPercent: number } {
    const elapsed = performance.now() - this.t0;
    const benchMs = selfCpuMs() - this.self0;
    const cfcdMs = processCpuMs(this.cfcdPid) - this.cfcd0;
    const aetherdMs = processCpuMs(this.aetherdPid) - this.aetherd0;
    const busyMs = (machineBusyMicros() - this.busy0) / 1000;
    return {
      benchMs,
      cfcdMs,
      otherPercent: Math.max(0, (100 * (busyMs - benchMs - cfcdMs - aetherdMs)) / elapsed),
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The paths

interface Path {
  /** One call: an inference of the benchmark's input (the control: a GetModel); resolves with `y` (flat). */
  call(): Promise<Float32Array | undefined>;
  close(): Promise<void>;
}

class DirectPath implements Path {
  private constructor(
    private readonly session: InferenceSession,
    private readonly input: Float32Array,
    private readonly dims: number[],
  ) {}

  static async open(modelPath: string, input: Float32Array, dims: number[]): Promise<DirectPath> {
    // The options cfcd's worker uses: none.
    return new DirectPath(await InferenceSession.create(modelPath), input, dims);
  }

  async call(): Promise<Float32Array> {
    const out = await this.session.run({ x: new Tensor('float32', this.input, this.dims) });
    return out['y']!.data as Float32Array;
  }

  close(): Promise<void> {
    return this.session.release();
  }
}

class WorkerPath implements Path {
  private readonly pending = new Map<number, (r: WorkerReply) => void>();
  private nextId = 1;

  private constructor(
    private readonly worker: Worker,
    private readonly input: Float32Array,
    private readonly dims: number[],
  ) {
    worker.on('message', (r: WorkerReply) => {
      const resolve = this.pending.get(r.id);
      this.pending.delete(r.id);
      resolve?.(r);
    });
  }

  static async open(modelPath: string, input: Float32Array, dims: number[]): Promise<WorkerPath> {
    const worker = new Worker(join(__dirname, 'worker.js'), { workerData: { modelPath } });
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', () => resolve());
    });
    return new WorkerPath(worker, input, dims);
  }

  async call(): Promise<Float32Array> {
    const id = this.nextId++;
    // A copy per call, handed over: what cfcd's feedsFor does with the request's bytes.
    const data = Float32Array.from(this.input);
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.pending.set(id, resolve);
      const msg: WorkerRequest = {
        kind: 'run',
        id,
        feeds: { x: { type: 'float32', data, dims: this.dims } },
      };
      this.worker.postMessage(msg, [data.buffer]);
    });
    if (reply.kind !== 'result') throw new Error(`worker: ${reply.message ?? reply.kind}`);
    return reply.outputs['y']!.data;
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ kind: 'close' } satisfies WorkerRequest);
    await exited;
  }
}

class CfcdPath implements Path {
  /** Infer's `compute_time` of every call, in ms (onnxruntime's `run` in cfcd's worker). */
  readonly computeMs: number[] = [];
  private readonly request: modelsV1.InferRequest;

  constructor(
    private readonly client: AetherClient,
    input: Float32Array,
    dims: number[],
  ) {
    this.request = modelsV1.InferRequest.fromPartial({
      name: `models/${MODEL_ID}`,
      inputs: [
        {
          name: 'x',
          dtype: DataType.DATA_TYPE_FLOAT32,
          shape: dims.map(BigInt),
          data: Buffer.from(input.buffer, input.byteOffset, input.byteLength),
        },
      ],
    });
  }

  async call(): Promise<Float32Array> {
    const res = await this.client.call(this.client.models, 'infer', this.request);
    this.computeMs.push(res.computeTime ? msFromDuration(res.computeTime) : NaN);
    const y = res.outputs[0];
    if (y?.name !== 'y' || y.dtype !== DataType.DATA_TYPE_FLOAT32)
      throw new Error(`Infer answered ${JSON.stringify(res.outputs.map((o) => o.name))}`);
    // Copied: the bytes of a decoded message need not be aligned for a Float32Array.
    const copy = new Uint8Array(y.data);
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

class GetModelPath implements Path {
  constructor(private readonly client: AetherClient) {}

  async call(): Promise<undefined> {
    const { model } = await this.client.call(this.client.models, 'getModel', { name: `models/${MODEL_ID}` });
    if (model?.id !== MODEL_ID) throw new Error(`GetModel answered ${JSON.stringify(model)}`);
    return undefined;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Uploads the model to aetherd as a MODEL artifact and registers it on cfcd; returns the digest. */
async function registerModel(client: AetherClient, model: Uint8Array): Promise<string> {
  const res = await clientStreamCall(client.artifacts.uploadArtifact.bind(client.artifacts), [
    artifactsV1.UploadArtifactRequest.fromPartial({
      payload: {
        $case: 'metadata',
        value: { metadata: { type: ArtifactType.ARTIFACT_TYPE_MODEL, filename: 'mlp.onnx' } },
      },
    }),
    { payload: { $case: 'chunk', value: Buffer.from(model) } },
  ]);
  const artifact = res.artifact;
  if (!artifact) throw new Error('UploadArtifact answered without an artifact');
  const { model: registered } = await client.call(
    client.models,
    'registerModel',
    modelsV1.RegisterModelRequest.fromPartial({
      model: { format: ModelFormat.MODEL_FORMAT_ONNX, artifact: artifact.name },
      modelId: MODEL_ID,
    }),
  );
  if (!registered || registered.digest !== artifact.digest)
    throw new Error(`RegisterModel answered ${JSON.stringify(registered)}`);
  return registered.digest;
}

// ---------------------------------------------------------------------------------------------------------
// Measurement

async function sequential(path: Path, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await path.call();
    into.push(performance.now() - t0);
  }
}

interface ThroughputRun {
  callers: number;
  calls: number;
  elapsedMs: number;
  callsPerSec: number;
  latencyMs: LatencySummary;
  /** CPU per call, µs: this process (the caller, and for direct/worker onnxruntime too) and cfcd. */
  benchCpuMicrosPerCall: number;
  cfcdCpuMicrosPerCall: number;
  otherCpuPercent: number;
}

interface SequentialResult {
  id: SeqId;
  label: string;
  sequentialMs: LatencySummary;
  /** Each block's p50, in ms, in order. */
  blockP50Ms: number[];
}

interface PathResult extends SequentialResult {
  id: PathId;
  throughput: ThroughputRun;
}

/** cfcd's own view of the sequential calls. */
interface CfcdSide {
  /** Infer's compute_time: onnxruntime's `run` in cfcd's worker. */
  computeMs: LatencySummary;
  /** The access log's durationMs: arrival to answer (principal, policy, handler; not the audit record). */
  inferServerMs: LatencySummary;
  getModelServerMs: LatencySummary;
  /** Mean time of a Cedar decision in cfcd over the sequential calls (GetMetrics), ms. */
  policyMeanMs: number;
}

function serverMs(p: DaemonProcess | undefined, method: string, from: number, to: number): number[] {
  const out: number[] = [];
  for (const l of p?.lines ?? []) {
    const time = typeof l['time'] === 'string' ? Date.parse(l['time']) : Number(l['time']);
    if (l['msg'] !== 'rpc' || !String(l['rpc']).endsWith(`/${method}`) || !(time >= from && time <= to))
      continue;
    out.push(Number(l['durationMs']));
  }
  return out;
}

/** cfcd's count and summed time (s) of Cedar decisions so far. */
async function policyDecisions(
  metrics: metricsV1.MetricsServiceClient,
): Promise<{ count: number; sumSeconds: number }> {
  const res = await unaryCall(
    metrics.getMetrics.bind(metrics),
    metricsV1.GetMetricsRequest.fromPartial({ readMask: ['policy'] }),
  );
  const h = res.policy?.evaluationLatency;
  return { count: Number(h?.count ?? 0), sumSeconds: h?.sumSeconds ?? 0 };
}

const sameOutputs = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= 1e-5 * Math.max(1, Math.abs(v)));

// ---------------------------------------------------------------------------------------------------------
// Report

const us = (ms: number): string =>
  Number.isFinite(ms) ? Math.round(ms * 1000).toLocaleString('en-US') : '-';
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');
const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');

function markdown(head: string[], rows: string[][], leftColumns = 1): string {
  const align = head.map((_, i) => (i < leftColumns ? '---' : '--:'));
  return [head, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

interface Target {
  name: string;
  valueMs: number;
  limitMs: number;
  pass: boolean;
}

function targets(byId: Record<PathId, PathResult>): Target[] {
  const d = byId.direct.sequentialMs;
  const c = byId.cfcd.sequentialMs;
  const t = (name: string, direct: number, cfcd: number): Target => {
    const limitMs = TARGET_FACTOR * direct + TARGET_ADDED_MS;
    return { name, valueMs: cfcd, limitMs, pass: cfcd <= limitMs };
  };
  return [t('p50', d.p50, c.p50), t('p99', d.p99, c.p99)];
}

function report(
  results: PathResult[],
  control: SequentialResult,
  side: CfcdSide,
  list: Target[],
  params: Params,
  meta: {
    command: string;
    started: Date;
    tookS: number;
    idleBefore: number;
    seqOtherPercent: number;
    digest: string;
  },
): string {
  const info = machineInfo();
  const code = codeVersion(repoRoot, ['apps/cfcd', 'libs']);
  const byId = Object.fromEntries(results.map((r) => [r.id, r])) as Record<PathId, PathResult>;
  const { direct, worker, cfcd } = byId;
  const n = params.callers;
  const table = markdown(
    [
      'Path (µs)',
      'seq p50',
      'seq p99',
      'seq mean',
      `${n}× calls/s`,
      `${n}× p50`,
      `${n}× p99`,
      `bench CPU µs/call (${n}×)`,
      `cfcd CPU µs/call (${n}×)`,
    ],
    [
      ...results.map((r) => [
        r.label,
        us(r.sequentialMs.p50),
        us(r.sequentialMs.p99),
        us(r.sequentialMs.mean),
        int(r.throughput.callsPerSec),
        us(r.throughput.latencyMs.p50),
        us(r.throughput.latencyMs.p99),
        int(r.throughput.benchCpuMicrosPerCall),
        r.id === 'cfcd' ? int(r.throughput.cfcdCpuMicrosPerCall) : '-',
      ]),
      [
        control.label,
        us(control.sequentialMs.p50),
        us(control.sequentialMs.p99),
        us(control.sequentialMs.mean),
        '-',
        '-',
        '-',
        '-',
        '-',
      ],
    ],
  );
  const breakdown = markdown(
    ['Sequential, p50', 'µs'],
    [
      ['cfcd Infer, client call → answer', us(cfcd.sequentialMs.p50)],
      ['cfcd GetModel, client call → answer (the same RPC path, no inference)', us(control.sequentialMs.p50)],
      [
        'Infer − GetModel: what inference adds (tensors, worker hop, onnxruntime)',
        us(cfcd.sequentialMs.p50 - control.sequentialMs.p50),
      ],
      ['cfcd Infer, arrival → answer (access log: principal, Cedar, handler)', us(side.inferServerMs.p50)],
      ['cfcd GetModel, arrival → answer (access log)', us(side.getModelServerMs.p50)],
      [
        'Infer client − server: grpc-js both ends, mTLS, socket, audit record, access log',
        us(cfcd.sequentialMs.p50 - side.inferServerMs.p50),
      ],
      ["onnxruntime `run` in cfcd's worker (Infer `compute_time`)", us(side.computeMs.p50)],
      ['a Cedar decision in cfcd (GetMetrics, mean over the sequential calls)', us(side.policyMeanMs)],
      [
        'worker − direct: the thread hop alone, in this process',
        us(worker.sequentialMs.p50 - direct.sequentialMs.p50),
      ],
    ],
  );
  const blocks = [...results, control]
    .map((r) => `${r.id} ${r.blockP50Ms.map((v) => us(v)).join(', ')}`)
    .join('; ');
  return [
    `Infer benchmark: an MLP ${params.width}→${params.width} (ReLU)→${params.width}, input [${params.batch}, ${params.width}] float32, direct onnxruntime-node against cfcd's Infer`,
    '',
    `Machine: ${info.nproc} CPUs (${info.cpuModel}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${info.node}, ${info.platform}; load average at start ${info.loadAverageAtStart.join(' ')}`,
    `Date: ${meta.started.toISOString()} (took ${meta.tookS} s)`,
    `Command: ${meta.command}`,
    `Code: commit ${code.commit}${code.modified.length > 0 ? ` with uncommitted changes in ${code.modified.join(', ')}` : ''} (cfcd and aetherd run from apps/*/dist as built)`,
    `Model: ${meta.digest}; every path answered the same output for the input.`,
    `Runs: ${params.warmup} warm-up calls per path, then ${params.calls} sequential calls per path in ${params.blocks} blocks taking turns, then ${params.durationMs / 1000} s closed loops of ${n} callers per path. ` +
      `${Number.isFinite(meta.idleBefore) ? `${Math.round(meta.idleBefore * 100)} % of a CPU busy just before; ` : ''}other processes used ${f1(meta.seqOtherPercent)} % of a CPU during the sequential calls, ` +
      results.map((r) => `${f1(r.throughput.otherCpuPercent)} % during ${r.id} ${n}×`).join(', ') +
      '.',
    '',
    table,
    '',
    `Block p50s (µs): ${blocks}.`,
    '',
    breakdown,
    '',
    `Ratios: cfcd / direct p50 ${f2(cfcd.sequentialMs.p50 / direct.sequentialMs.p50)}×, p99 ${f2(cfcd.sequentialMs.p99 / direct.sequentialMs.p99)}×; ` +
      `added by cfcd at p50 ${us(cfcd.sequentialMs.p50 - direct.sequentialMs.p50)} µs, at p99 ${us(cfcd.sequentialMs.p99 - direct.sequentialMs.p99)} µs. ` +
      `Throughput with ${n} callers: cfcd ${f1((100 * cfcd.throughput.callsPerSec) / direct.throughput.callsPerSec)} % of direct.`,
    '',
    `Targets (cfcd ≤ ${TARGET_FACTOR} × direct + ${TARGET_ADDED_MS * 1000} µs, sequential):`,
    ...list.map(
      (t) =>
        `- ${t.pass ? 'PASS' : 'MISS'} cfcd Infer ${t.name}: ${us(t.valueMs)} µs (target ≤ ${us(t.limitMs)} µs = ${TARGET_FACTOR} × direct ${t.name} + ${TARGET_ADDED_MS * 1000} µs)`,
    ),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  const command = ['node', 'tools/bench/dist/infer/main.js', ...process.argv.slice(2)].join(' ');
  const started = new Date();
  const t0 = performance.now();
  const model = mlpModel({ width: params.width });
  const dims = [params.batch, params.width];
  const input = seededValues(5, params.batch * params.width);
  const dir = await mkdtemp(join(tmpdir(), 'aether-bench-infer-'));
  const modelPath = join(dir, 'mlp.onnx');
  await writeFile(modelPath, model);
  const localDigest = `sha256:${createHash('sha256').update(model).digest('hex')}`;

  const stack = await new Stack().init();
  const cleanup = (): void => {
    void stack.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  const client = stack.client();
  const metrics = createClient(metricsV1.MetricsServiceClient, client.config.cfcd);
  const paths: Partial<Record<SeqId, Path>> = {};
  try {
    const aetherd = await stack.start('aetherd');
    if (params.profileDir)
      process.env['AETHER_E2E_NODE_ARGS'] = `--cpu-prof --cpu-prof-dir=${params.profileDir}`;
    const cfcdProcess = await stack.start('cfcd');
    delete process.env['AETHER_E2E_NODE_ARGS'];
    const pids = [cfcdProcess.child.pid!, aetherd.child.pid!] as const;
    const digest = await registerModel(client, model);
    if (digest !== localDigest) throw new Error(`cfcd's model is ${digest}, the benchmark's ${localDigest}`);

    const directPath = await DirectPath.open(modelPath, input, dims);
    paths.direct = directPath;
    paths.worker = await WorkerPath.open(modelPath, input, dims);
    const cfcdPath = new CfcdPath(client, input, dims);
    paths.cfcd = cfcdPath;
    paths.getmodel = new GetModelPath(client);
    const all = paths as Record<SeqId, Path>;

    const reference = await directPath.call();
    for (const id of ['worker', 'cfcd'] as const) {
      const got = (await all[id].call())!;
      if (!sameOutputs(reference, got))
        throw new Error(
          `${id} answered ${Array.from(got.slice(0, 4)).join(', ')}…, direct ${Array.from(reference.slice(0, 4)).join(', ')}…`,
        );
    }

    process.stderr.write(`bench infer: ${params.warmup} warm-up calls per path…\n`);
    for (const id of SEQ_PATHS) await sequential(all[id], params.warmup, []);
    await closedLoop(() => all.cfcd.call(), params.callers, 500);
    const idleBefore = params.waitIdle ? await waitForIdle(20_000) : NaN;

    process.stderr.write(`bench infer: ${params.calls} sequential calls per path…\n`);
    const seq = Object.fromEntries(SEQ_PATHS.map((id) => [id, [] as number[]])) as Record<SeqId, number[]>;
    const blockP50 = Object.fromEntries(SEQ_PATHS.map((id) => [id, [] as number[]])) as Record<
      SeqId,
      number[]
    >;
    cfcdPath.computeMs.length = 0;
    const policy0 = await policyDecisions(metrics);
    const seqFrom = Date.now();
    const seqCpu = new CpuWindow(...pids);
    for (let b = 0; b < params.blocks; b++) {
      const n = Math.floor(params.calls / params.blocks) + (b < params.calls % params.blocks ? 1 : 0);
      const order = [...SEQ_PATHS.slice(b % SEQ_PATHS.length), ...SEQ_PATHS.slice(0, b % SEQ_PATHS.length)];
      for (const id of order) {
        const block: number[] = [];
        await sequential(all[id], n, block);
        seq[id].push(...block);
        blockP50[id].push(median(block));
      }
    }
    const seqOtherPercent = seqCpu.end().otherPercent;
    const seqTo = Date.now();
    const policy1 = await policyDecisions(metrics);
    // The access log lines of the last calls may still be on their way through the pipe.
    await sleep(300);
    const side: CfcdSide = {
      computeMs: summarize(cfcdPath.computeMs),
      inferServerMs: summarize(serverMs(cfcdProcess, 'Infer', seqFrom, seqTo)),
      getModelServerMs: summarize(serverMs(cfcdProcess, 'GetModel', seqFrom, seqTo)),
      policyMeanMs: ((policy1.sumSeconds - policy0.sumSeconds) * 1000) / (policy1.count - policy0.count),
    };

    const throughput = {} as Record<PathId, ThroughputRun>;
    for (const id of ['cfcd', 'direct', 'worker'] as const) {
      process.stderr.write(
        `bench infer: ${id}, ${params.callers} callers for ${params.durationMs / 1000} s…\n`,
      );
      await closedLoop(() => all[id].call(), params.callers, 300);
      const cpu = new CpuWindow(...pids);
      const { latencies, elapsedMs } = await closedLoop(
        () => all[id].call(),
        params.callers,
        params.durationMs,
      );
      const used = cpu.end();
      throughput[id] = {
        callers: params.callers,
        calls: latencies.length,
        elapsedMs,
        callsPerSec: latencies.length / (elapsedMs / 1000),
        latencyMs: summarize(latencies),
        benchCpuMicrosPerCall: (used.benchMs * 1000) / latencies.length,
        cfcdCpuMicrosPerCall: (used.cfcdMs * 1000) / latencies.length,
        otherCpuPercent: used.otherPercent,
      };
    }

    const sequentialResult = (id: SeqId): SequentialResult => ({
      id,
      label: PATH_LABELS[id],
      sequentialMs: summarize(seq[id]),
      blockP50Ms: blockP50[id],
    });
    const results: PathResult[] = PATHS.map((id) => ({
      ...sequentialResult(id),
      id,
      throughput: throughput[id],
    }));
    const control = sequentialResult(CONTROL);
    const list = targets(Object.fromEntries(results.map((r) => [r.id, r])) as Record<PathId, PathResult>);
    const tookS = Math.round((performance.now() - t0) / 1000);
    console.log(
      report(results, control, side, list, params, {
        command,
        started,
        tookS,
        idleBefore,
        seqOtherPercent,
        digest,
      }),
    );
    const noisy = [seqOtherPercent, ...results.map((r) => r.throughput.otherCpuPercent)].some((p) => p > 10);
    if (noisy)
      process.stderr.write(
        'bench infer: warning: other processes took over 10 % of a CPU during a measurement; the numbers are skewed\n',
      );
    if (jsonFile) {
      const json = {
        benchmark: 'infer',
        date: started.toISOString(),
        command,
        code: codeVersion(repoRoot, ['apps/cfcd', 'libs']),
        machine: { ...machineInfo(), memoryBytes: totalmem() },
        params,
        model: { digest, width: params.width, batch: params.batch },
        idleBefore,
        seqOtherPercent,
        results,
        control,
        cfcd: side,
        targets: list,
      };
      await writeFile(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`bench infer: wrote ${jsonFile}\n`);
    }
  } finally {
    process.off('SIGINT', cleanup);
    process.off('SIGTERM', cleanup);
    for (const p of Object.values(paths)) await p.close();
    metrics.close();
    client.close();
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench infer: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
