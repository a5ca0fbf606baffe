/**
 * Events benchmark: publish-to-deliver latency and throughput of aetherd's EventService to 1 and to 100
 * subscribers, against a bare grpc-js server stream (same socket kind, mTLS, the same encoded messages,
 * no persistence, no pipeline).
 *
 *   node tools/bench/dist/events/main.js [--json FILE] [--targets aetherd,bare] [--runs batch,unary,latency,fanout]
 *        [--duration 5] [--warmup 1] [--batch 500] [--in-flight 4] [--unary-in-flight 64]
 *        [--subscribers 100] [--subscriber-processes 2] [--rate 1000] [--fanout-duration 10]
 *        [--fanout-warmup 2] [--paced-batch 1] [--max-lag 5000] [--shared-connections] [--profile DIR]
 *        [--no-wait-idle]
 *
 * aetherd runs as a real process from tools/e2e's Stack (fresh PKI, the shipped Cedar policy, the audit
 * log, mTLS socket; default events settings); the bare server (bare-server.ts) runs in a forked child
 * with the same PKI. This process is the publisher (as the admin identity); subscribers run in forked
 * children (subscriber.ts), each subscription on its own connection (as separate programs would have;
 * `--shared-connections`: one connection per subscriber process). Every event carries its publish
 * time in `data.t` (wall clock, sub-millisecond); each subscriber child's clock offset to this process
 * is measured over IPC before a run and subtracted.
 *
 * Runs, per target:
 *  - batch:  1 subscriber; BatchEmitEvents of `--batch` events, `--in-flight` calls at once, closed loop,
 *            held back while the subscriber is more than `--max-lag` events behind (so the figure is the
 *            rate the subscriber is sustainably delivered, not a rate that ends in gaps).
 *  - unary:  the same with single EmitEvent calls, `--unary-in-flight` at once (context).
 *  - latency: 1 subscriber; the publisher emits `--rate` events/s paced: every 10 ms a tick of rate/100
 *            events, as that many concurrent EmitEvent calls (`--paced-batch 1`) or as BatchEmitEvents of
 *            `--paced-batch` events each.
 *  - fanout: the same to `--subscribers` subscribers in `--subscriber-processes` children.
 * Each run: a warm-up, then the measured window; then the publisher stops and every subscription must
 * receive every event published (lost = published - received; gaps = gap messages).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { ClientEndpointConfig } from '@aether/config';
import { Stack } from '@aether/e2e';
import { eventsV1, metricsV1 } from '@aether/proto';
import { createClient, RpcError, unaryCall } from '@aether/rpc';
import { machineBusyMicros, machineInfo } from '../machine';
import {
  EVENT_PREFIX,
  EVENT_TYPE,
  Histogram,
  now,
  type FromBareServer,
  type FromSubscriber,
  type LatencyStats,
  type SubscriberTotals,
  type ToBareServer,
  type ToSubscriber,
} from './protocol';

const TICK_US = 10_000; // USER_HZ = 100
const TICK_MS = 10; // the paced publisher's tick

type TargetId = 'aetherd' | 'bare';
type RunId = 'batch' | 'unary' | 'latency' | 'fanout';
const TARGETS: readonly TargetId[] = ['aetherd', 'bare'];
const RUNS: readonly RunId[] = ['batch', 'unary', 'latency', 'fanout'];
const TARGET_LABELS: Record<TargetId, string> = {
  aetherd: 'aetherd (mTLS, pipeline, Cedar policy, audit log, SQLite)',
  bare: 'bare grpc-js stream (mTLS, in memory)',
};

interface Params {
  targets: TargetId[];
  runs: RunId[];
  warmupMs: number;
  durationMs: number;
  batch: number;
  inFlight: number;
  unaryInFlight: number;
  subscribers: number;
  subscriberProcesses: number;
  rate: number;
  fanoutDurationMs: number;
  fanoutWarmupMs: number;
  pacedBatch: number;
  maxLag: number;
  profileDir: string | undefined;
  waitIdle: boolean;
  sharedConnections: boolean;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      targets: { type: 'string', default: TARGETS.join(',') },
      runs: { type: 'string', default: RUNS.join(',') },
      warmup: { type: 'string', default: '1' },
      duration: { type: 'string', default: '5' },
      batch: { type: 'string', default: '500' },
      'in-flight': { type: 'string', default: '4' },
      'unary-in-flight': { type: 'string', default: '64' },
      subscribers: { type: 'string', default: '100' },
      'subscriber-processes': { type: 'string', default: '2' },
      rate: { type: 'string', default: '1000' },
      'fanout-duration': { type: 'string', default: '10' },
      'fanout-warmup': { type: 'string', default: '2' },
      'paced-batch': { type: 'string', default: '1' },
      'max-lag': { type: 'string', default: '5000' },
      profile: { type: 'string' },
      'no-wait-idle': { type: 'boolean', default: false },
      'shared-connections': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/events/main.js [--json FILE] [--targets aetherd,bare] [--runs batch,unary,latency,fanout]\n' +
        '         [--duration 5] [--warmup 1] [--batch 500] [--in-flight 4] [--unary-in-flight 64]\n' +
        '         [--subscribers 100] [--subscriber-processes 2] [--rate 1000] [--fanout-duration 10]\n' +
        '         [--fanout-warmup 2] [--paced-batch 1] [--max-lag 5000] [--shared-connections] [--profile DIR]\n' +
        '         [--no-wait-idle]',
    );
    process.exit(0);
  }
  const positive = (name: string, raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${raw}`);
    return n;
  };
  const int = (name: string, raw: string): number => Math.round(positive(name, raw));
  const list = <T extends string>(name: string, raw: string, known: readonly T[]): T[] => {
    const picked = raw.split(',').map((s) => {
      const k = known.find((x) => x === s.trim());
      if (!k) throw new Error(`--${name}: unknown ${JSON.stringify(s)}; known: ${known.join(', ')}`);
      return k;
    });
    return known.filter((k) => picked.includes(k));
  };
  const rate = positive('rate', values.rate);
  const pacedBatch = int('paced-batch', values['paced-batch']);
  if (((rate * TICK_MS) / 1000) % pacedBatch !== 0)
    throw new Error(
      `--paced-batch must divide the events per ${TICK_MS} ms tick (${(rate * TICK_MS) / 1000})`,
    );
  return {
    params: {
      targets: list('targets', values.targets, TARGETS),
      runs: list('runs', values.runs, RUNS),
      warmupMs: positive('warmup', values.warmup) * 1000,
      durationMs: positive('duration', values.duration) * 1000,
      batch: Math.min(1000, int('batch', values.batch)),
      inFlight: int('in-flight', values['in-flight']),
      unaryInFlight: int('unary-in-flight', values['unary-in-flight']),
      subscribers: int('subscribers', values.subscribers),
      subscriberProcesses: int('subscriber-processes', values['subscriber-processes']),
      rate,
      fanoutDurationMs: positive('fanout-duration', values['fanout-duration']) * 1000,
      fanoutWarmupMs: positive('fanout-warmup', values['fanout-warmup']) * 1000,
      pacedBatch,
      maxLag: int('max-lag', values['max-lag']),
      profileDir: values.profile,
      waitIdle: !values['no-wait-idle'],
      sharedConnections: values['shared-connections'],
    },
    jsonFile: values.json,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Children

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** CPU time of a process so far (user + system), in microseconds; NaN once it is gone. */
function cpuMicros(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return NaN;
  }
}

/** CPU time of every process on the machine so far (user + system, µs), with its name. */
function allProcesses(): Map<number, { name: string; micros: number }> {
  const out = new Map<number, { name: string; micros: number }>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const d of pids) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      out.set(Number(d), {
        name: stat.slice(open + 1, close),
        micros: (Number(fields[11]) + Number(fields[12])) * TICK_US,
      });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** The machine's CPU time by kind so far (µs, from the first line of /proc/stat). */
function machineTimes(): Record<'user' | 'system' | 'iowait' | 'irq' | 'softirq' | 'steal', number> {
  try {
    const f = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '')
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const t = (i: number): number => (f[i] ?? 0) * TICK_US;
    return { user: t(0) + t(1), system: t(2), iowait: t(4), irq: t(5), softirq: t(6), steal: t(7) };
  } catch {
    return { user: NaN, system: NaN, iowait: NaN, irq: NaN, softirq: NaN, steal: NaN };
  }
}

/**
 * Waits until the machine is idle (under 10 % of one CPU busy over two 1-second samples), at most
 * `limitMs`; returns the busy fraction of the last sample, so the report can say when it was not.
 */
async function waitForIdle(limitMs: number): Promise<number> {
  const until = Date.now() + limitMs;
  const sample = async (): Promise<number> => {
    const b0 = machineBusyMicros();
    await sleep(1_000);
    return (machineBusyMicros() - b0) / 1e6;
  };
  let busy = await sample();
  while (Date.now() < until) {
    if (busy < 0.1 && (busy = await sample()) < 0.1) return busy;
    process.stderr.write(`waiting for the machine to be idle (${Math.round(busy * 100)} % of a CPU busy)…\n`);
    busy = await sample();
  }
  return busy;
}

/** A forked child that answers requests over IPC. */
class Child<To extends { type: string }, From extends { type: string }> {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private readonly listeners = new Set<(m: From) => void>();

  constructor(script: string, profileDir: string | undefined) {
    this.child = fork(join(__dirname, script), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.on('message', (m: From) => {
      for (const l of this.listeners) l(m);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(message: To): void {
    if (this.child.connected) this.child.send(message);
  }

  on(listener: (m: From) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sends `message` and resolves with the first answer of type `answer` (rejects on 'error' or exit). */
  request<K extends From['type']>(
    message: To,
    answer: K,
    timeoutMs = 60_000,
  ): Promise<Extract<From, { type: K }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error(`no ${answer} from ${this.pid} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onExit = (): void => done(new Error(`child ${this.pid} exited before answering ${message.type}`));
      const off = this.on((m) => {
        if (m.type === answer) done(undefined, m as Extract<From, { type: K }>);
        else if (m.type === 'error') done(new Error(`child: ${(m as { message?: string }).message}`));
      });
      const done = (err?: Error, value?: Extract<From, { type: K }>): void => {
        clearTimeout(timer);
        off();
        this.child.off('exit', onExit);
        if (err) reject(err);
        else resolve(value!);
      };
      this.child.once('exit', onExit);
      this.send(message);
    });
  }

  async stop(message: To): Promise<void> {
    this.send(message);
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
  }
}

type SubscriberChild = Child<ToSubscriber, FromSubscriber>;
type BareChild = Child<ToBareServer, FromBareServer>;

/** This process's clock minus the child's, from the IPC round trip with the smallest delay. */
async function clockOffset(c: SubscriberChild): Promise<{ offsetMs: number; rttMs: number }> {
  let best = { offsetMs: 0, rttMs: Infinity };
  for (let i = 0; i < 20; i++) {
    const t0 = now();
    const m = await c.request({ type: 'clock', t0 }, 'clock');
    const t1 = now();
    if (t1 - t0 < best.rttMs) best = { offsetMs: m.child - (t0 + t1) / 2, rttMs: t1 - t0 };
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------
// The publisher

function emitRequest(t: number): eventsV1.EmitEventRequest {
  return {
    event: {
      name: '',
      sequence: 0n,
      type: EVENT_TYPE,
      source: '',
      subject: 'bench/tick',
      data: { t },
      intentId: '',
      jobId: '',
      time: undefined,
      actor: '',
      requestId: '',
    },
    idempotencyKey: '',
  };
}

class Publisher {
  /** Events sent (in calls started), and acknowledged (calls returned). */
  sent = 0;
  acked = 0;
  calls = 0;
  errors = 0;
  firstError: string | undefined;
  /** Emit call latency (the publisher's view: request to response), while `measuring`. */
  callLatency = new Histogram();
  measuring = false;
  private stopped = false;
  private readonly running: Promise<void>[] = [];
  private readonly emitEvent;
  private readonly batchEmitEvents;
  /** The slowest subscription's count, per subscriber child. */
  private readonly progress: number[];
  private progressWaiters: (() => void)[] = [];

  constructor(
    client: eventsV1.EventServiceClient,
    children: number,
    private readonly maxLag: number,
  ) {
    this.emitEvent = client.emitEvent.bind(client);
    this.batchEmitEvents = client.batchEmitEvents.bind(client);
    this.progress = new Array<number>(children).fill(0);
  }

  onProgress(child: number, minReceived: number): void {
    this.progress[child] = minReceived;
    const w = this.progressWaiters;
    this.progressWaiters = [];
    for (const f of w) f();
  }

  private async underLag(events: number): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const slowest = Math.min(...this.progress);
      if (this.sent + events - slowest <= this.maxLag) return;
      await new Promise<void>((r) => this.progressWaiters.push(r));
    }
  }

  private async emit(events: number): Promise<void> {
    const t = now();
    this.sent += events;
    this.calls++;
    try {
      if (events === 1) await unaryCall(this.emitEvent, emitRequest(t));
      else {
        const requests: eventsV1.EmitEventRequest[] = [];
        for (let i = 0; i < events; i++) requests.push(emitRequest(t));
        await unaryCall(this.batchEmitEvents, { requests });
      }
      this.acked += events;
      if (this.measuring) this.callLatency.add(now() - t);
    } catch (err) {
      this.errors++;
      this.firstError ??= RpcError.from(err).message;
      this.sent -= events;
    }
  }

  /** `inFlight` loops, each emitting `events` per call as soon as its previous call returns (lag allowing). */
  closedLoop(events: number, inFlight: number): void {
    for (let i = 0; i < inFlight; i++)
      this.running.push(
        (async () => {
          while (!this.stopped) {
            await this.underLag(events);
            if (this.stopped) break;
            await this.emit(events);
          }
        })(),
      );
  }

  /** `perTick` events every TICK_MS, as calls of `perCall` events each, all started at once. */
  paced(perTick: number, perCall: number): void {
    const inFlight = new Set<Promise<void>>();
    this.running.push(
      (async () => {
        const start = performance.now();
        let ticks = 0;
        while (!this.stopped) {
          const due = Math.floor((performance.now() - start) / TICK_MS) + 1;
          for (; ticks < due; ticks++)
            for (let n = 0; n < perTick; n += perCall) {
              const p = this.emit(perCall);
              inFlight.add(p);
              void p.finally(() => inFlight.delete(p));
            }
          await sleep(Math.max(0, start + ticks * TICK_MS - performance.now()));
        }
        await Promise.all(inFlight);
      })(),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onProgress(0, this.progress[0] ?? 0);
    await Promise.all(this.running);
  }
}

// ---------------------------------------------------------------------------------------------------------
// One run

interface CpuSnapshot {
  server: number;
  subscribers: number;
  publisher: number;
  machine: number;
  at: number;
}

interface RunResult {
  target: TargetId;
  run: RunId;
  subscribers: number;
  what: string;
  windowMs: number;
  /** Events received by all subscriptions in the window, per second. */
  deliveredPerSec: number;
  /** Events acknowledged to the publisher in the window, per second. */
  publishedPerSec: number;
  latency: LatencyStats;
  /** Emit calls: request to response, in the window. */
  callLatency: LatencyStats;
  negativeLatencies: number;
  published: number;
  received: { min: number; max: number; total: number };
  lost: number;
  gaps: number;
  gapSequences: number;
  outOfOrder: number;
  streamErrors: number;
  publishErrors: number;
  firstError?: string;
  /** CPU time in the window, in CPUs (1 = one core busy). */
  cpu: { server: number; subscribers: number; publisher: number; other: number };
  /** Other processes that used at least 0.02 CPUs in the window (kernel threads included). */
  otherProcesses: { pid: number; name: string; cpus: number }[];
  /** The whole machine's CPU time in the window by kind, in CPUs. */
  machineCpu: Record<'user' | 'system' | 'iowait' | 'irq' | 'softirq' | 'steal', number>;
  /** Server CPU per delivered event, in microseconds. */
  serverCpuUsPerDelivery: number;
  clock: { maxOffsetMs: number; maxRttMs: number };
  subscribeMs: number;
  /** Busy fraction of a CPU just before the run (NaN with --no-wait-idle). */
  idleBefore: number;
}

interface Target {
  id: TargetId;
  endpoint: ClientEndpointConfig;
  serverPid: number;
  /** The first sequence a new subscription should start at (aetherd); undefined: live only. */
  startSequence(): Promise<number | undefined>;
  /** Resolves once the server has `n` subscribers (bare server); aetherd subscriptions start at a sequence. */
  awaitSubscribers(n: number): Promise<void>;
}

async function oneRun(target: Target, run: RunId, params: Params): Promise<RunResult> {
  const fanout = run === 'fanout';
  const paced = run === 'latency' || fanout;
  const total = fanout ? params.subscribers : 1;
  const procs = fanout ? Math.min(params.subscriberProcesses, total) : 1;
  const counts = Array.from(
    { length: procs },
    (_, i) => Math.floor(total / procs) + (i < total % procs ? 1 : 0),
  );
  const what =
    run === 'batch'
      ? `BatchEmitEvents of ${params.batch}, ${params.inFlight} in flight`
      : run === 'unary'
        ? `EmitEvent, ${params.unaryInFlight} in flight`
        : `${params.rate.toLocaleString('en')} events/s paced: every ${TICK_MS} ms ${(params.rate * TICK_MS) / 1000} events as ${params.pacedBatch === 1 ? 'single EmitEvent calls' : `BatchEmitEvents of ${params.pacedBatch}`}`;
  const idleBefore = params.waitIdle ? await waitForIdle(300_000) : NaN;
  process.stderr.write(`${target.id} ${run}: ${total} subscriber(s); ${what}\n`);

  const children: SubscriberChild[] = counts.map(() => new Child('subscriber.js', params.profileDir));
  const client = createClient(eventsV1.EventServiceClient, target.endpoint);
  const publisher = new Publisher(client, procs, paced ? Number.MAX_SAFE_INTEGER : params.maxLag);
  try {
    children.forEach((c, i) =>
      c.on((m) => {
        if (m.type === 'progress') publisher.onProgress(i, m.minReceived);
      }),
    );
    const startSequence = await target.startSequence();
    const t0 = now();
    await Promise.all(
      children.map((c, i) =>
        c.request(
          {
            type: 'subscribe',
            spec: {
              endpoint: target.endpoint,
              count: counts[i]!,
              sharedConnection: params.sharedConnections,
              ...(startSequence !== undefined ? { startSequence } : {}),
            },
          },
          'subscribed',
        ),
      ),
    );
    await target.awaitSubscribers(total);
    const subscribeMs = now() - t0;
    const clocks: { offsetMs: number; rttMs: number }[] = [];
    for (const c of children) clocks.push(await clockOffset(c));
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
    );

    if (run === 'batch') publisher.closedLoop(params.batch, params.inFlight);
    else if (run === 'unary') publisher.closedLoop(1, params.unaryInFlight);
    else publisher.paced((params.rate * TICK_MS) / 1000, params.pacedBatch);

    await sleep(fanout ? params.fanoutWarmupMs : params.warmupMs);
    const snap = (): CpuSnapshot => {
      const self = process.cpuUsage();
      return {
        server: cpuMicros(target.serverPid),
        subscribers: children.reduce((s, c) => s + cpuMicros(c.pid), 0),
        publisher: self.user + self.system,
        machine: machineBusyMicros(),
        at: performance.now(),
      };
    };
    const cpu0 = snap();
    const procs0 = allProcesses();
    const kinds0 = machineTimes();
    const acked0 = publisher.acked;
    publisher.callLatency = new Histogram();
    publisher.measuring = true;
    children.forEach((c, i) => c.send({ type: 'measure', offsetMs: clocks[i]!.offsetMs }));
    await sleep(fanout ? params.fanoutDurationMs : params.durationMs);
    const measured = await Promise.all(children.map((c) => c.request({ type: 'stop-measure' }, 'measured')));
    publisher.measuring = false;
    const cpu1 = snap();
    const procs1 = allProcesses();
    const kinds1 = machineTimes();
    const acked1 = publisher.acked;
    await publisher.stop();

    // Every subscription must get every event published since it opened.
    const published = publisher.acked;
    let totals: SubscriberTotals[] = [];
    const until = performance.now() + 15_000;
    for (;;) {
      totals = (await Promise.all(children.map((c) => c.request({ type: 'totals' }, 'totals')))).map(
        (m) => m.totals,
      );
      const done = totals.every((t) => t.received.every((r) => r >= published) || t.errors > 0);
      if (done || performance.now() > until) break;
      await sleep(100);
    }
    const received = totals.flatMap((t) => t.received);

    const hist = new Histogram();
    for (const m of measured) hist.merge(m.latency);
    const windowMs = cpu1.at - cpu0.at;
    const elapsed = measured.reduce((s, m) => s + m.elapsedMs, 0) / measured.length;
    const cpus = (a: number, b: number): number => (b - a) / (windowMs * 1000);
    const serverCpu = cpus(cpu0.server, cpu1.server);
    const subscribersCpu = cpus(cpu0.subscribers, cpu1.subscribers);
    const publisherCpu = cpus(cpu0.publisher, cpu1.publisher);
    const delivered = measured.reduce((s, m) => s + m.received, 0);
    const ours = new Set([process.pid, target.serverPid, ...children.map((c) => c.pid)]);
    const otherProcesses = [...procs1]
      .filter(([pid]) => !ours.has(pid))
      .map(([pid, p]) => ({ pid, name: p.name, cpus: cpus(procs0.get(pid)?.micros ?? 0, p.micros) }))
      .filter((p) => p.cpus >= 0.02)
      .sort((a, b) => b.cpus - a.cpus)
      .slice(0, 5);
    const kinds = Object.fromEntries(
      Object.entries(kinds1).map(([k, v]) => [k, cpus(kinds0[k as keyof typeof kinds0], v)]),
    ) as RunResult['machineCpu'];
    const firstError = publisher.firstError ?? totals.find((t) => t.firstError)?.firstError;
    return {
      target: target.id,
      run,
      subscribers: total,
      what,
      windowMs,
      deliveredPerSec: delivered / (elapsed / 1000),
      publishedPerSec: (acked1 - acked0) / (windowMs / 1000),
      latency: hist.summary(),
      callLatency: publisher.callLatency.summary(),
      negativeLatencies: hist.negative,
      published,
      received: {
        min: Math.min(...received),
        max: Math.max(...received),
        total: received.reduce((a, b) => a + b, 0),
      },
      lost: received.reduce((s, r) => s + Math.max(0, published - r), 0),
      gaps: totals.reduce((s, t) => s + t.gaps, 0),
      gapSequences: totals.reduce((s, t) => s + t.gapSequences, 0),
      outOfOrder: totals.reduce((s, t) => s + t.outOfOrder, 0),
      streamErrors: totals.reduce((s, t) => s + t.errors, 0),
      publishErrors: publisher.errors,
      ...(firstError ? { firstError } : {}),
      cpu: {
        server: serverCpu,
        subscribers: subscribersCpu,
        publisher: publisherCpu,
        other: Math.max(0, cpus(cpu0.machine, cpu1.machine) - serverCpu - subscribersCpu - publisherCpu),
      },
      otherProcesses,
      machineCpu: kinds,
      serverCpuUsPerDelivery: ((cpu1.server - cpu0.server) / delivered) * (elapsed / windowMs),
      clock: {
        maxOffsetMs: Math.max(...clocks.map((c) => Math.abs(c.offsetMs))),
        maxRttMs: Math.max(...clocks.map((c) => c.rttMs)),
      },
      subscribeMs,
      idleBefore,
    };
  } finally {
    await publisher.stop();
    client.close();
    await Promise.all(children.map((c) => c.stop({ type: 'close' })));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Targets

interface MetricsCheck {
  available: boolean;
  note?: string;
  deliveredTotal?: number;
  gapsTotal?: number;
  emittedTotal?: number;
  /** What the subscribers counted over every aetherd run (events received, gap messages). */
  receivedBySubscribers: number;
  gapsBySubscribers: number;
}

async function eventMetrics(endpoint: ClientEndpointConfig): Promise<metricsV1.EventMetrics | string> {
  const c = createClient(metricsV1.MetricsServiceClient, endpoint);
  try {
    const res = await unaryCall(c.getMetrics.bind(c), { readMask: ['events'] }, { timeoutMs: 10_000 });
    return res.events ?? 'GetMetrics answered without an events section';
  } catch (err) {
    const e = RpcError.from(err);
    return `GetMetrics failed: ${e.message}`;
  } finally {
    c.close();
  }
}

async function runAetherd(stack: Stack, params: Params, results: RunResult[]): Promise<MetricsCheck> {
  const aetherd = await stack.start('aetherd');
  const endpoint = stack.client().config.aetherd;
  const events = createClient(eventsV1.EventServiceClient, endpoint);
  const target: Target = {
    id: 'aetherd',
    endpoint,
    serverPid: aetherd.child.pid!,
    startSequence: async () => {
      const res = await unaryCall(events.listEvents.bind(events), {
        pageSize: 1,
        pageToken: '',
        filter: eventsV1.EventFilter.fromPartial({ typePrefixes: [EVENT_PREFIX] }),
        startSequence: 0n,
        startTime: undefined,
        endTime: undefined,
      });
      return Number(res.headSequence) + 1;
    },
    // Subscriptions start at a sequence, so one that opens late catches up from the store; give them a
    // moment to be live before the clock starts.
    awaitSubscribers: () => sleep(500),
  };
  const mine = [];
  try {
    for (const run of params.runs) {
      const r = await oneRun(target, run, params);
      results.push(r);
      mine.push(r);
    }
    const check: MetricsCheck = {
      available: false,
      receivedBySubscribers: mine.reduce((s, r) => s + r.received.total, 0),
      gapsBySubscribers: mine.reduce((s, r) => s + r.gaps, 0),
    };
    const m = await eventMetrics(endpoint);
    if (typeof m === 'string') check.note = m;
    else {
      check.available = true;
      check.deliveredTotal = Number(m.deliveredTotal);
      check.gapsTotal = Number(m.gapsTotal);
      check.emittedTotal = Number(m.emittedTotal);
    }
    return check;
  } finally {
    events.close();
    await stack.stop('aetherd');
  }
}

async function runBare(stack: Stack, params: Params, results: RunResult[]): Promise<void> {
  const server: BareChild = new Child('bare-server.js', params.profileDir);
  const socketPath = join(stack.dir, 'run', 'bare.sock');
  const id = stack.pki.identities['aetherd']!;
  try {
    await server.request(
      {
        type: 'start',
        spec: {
          socketPath,
          caFile: stack.pki.caCertPath,
          certFile: id.certPath,
          keyFile: id.keyPath,
          subscriberBuffer: 10_000,
        },
      },
      'ready',
    );
    const target: Target = {
      id: 'bare',
      endpoint: { ...stack.client().config.aetherd, socket: socketPath },
      serverPid: server.pid,
      startSequence: () => Promise.resolve(undefined),
      awaitSubscribers: async (n) => {
        const until = performance.now() + 30_000;
        while ((await server.request({ type: 'subscribers' }, 'subscribers')).count < n) {
          if (performance.now() > until) throw new Error(`the bare server did not get ${n} subscribers`);
          await sleep(20);
        }
      },
    };
    for (const run of params.runs) results.push(await oneRun(target, run, params));
  } finally {
    await server.stop({ type: 'stop' });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : 'n/a');
const ms = (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a');
const f2 = (n: number): string => n.toFixed(2);
const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : 'n/a');

function report(results: RunResult[], params: Params, metrics: MetricsCheck | undefined): string {
  const m = machineInfo();
  const lines: string[] = [
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), Node ${m.node}, ${m.platform}; load average at start ${m.loadAverageAtStart.join(' ')}.`,
    '',
    `Targets: ${TARGETS.map((t) => `${t} = ${TARGET_LABELS[t]}`).join('; ')}.`,
    'Latency: publish (the publisher stamps data.t just before the call) to the subscriber decoding the event, ms.',
    'CPU columns: CPUs busy in the measured window (1.00 = one core).',
    `Subscriptions: ${params.sharedConnections ? 'one connection per subscriber process' : 'each on its own connection'}; batch, unary and latency runs: ${params.durationMs / 1000} s after ${params.warmupMs / 1000} s of warm-up (batch and unary: at most ${params.maxLag.toLocaleString('en')} events unreceived); fanout: ${params.fanoutDurationMs / 1000} s after ${params.fanoutWarmupMs / 1000} s.`,
    '',
    '| Target | Run | Subs | Publisher | Delivered events/s | Published events/s | p50 | p99 | max | Emit call p50 | Emit call p99 | Lost | Gaps | Server CPUs | Server µs/delivery | Subscriber CPUs | Publisher CPUs | Other CPUs |',
    '| ------ | --- | ---: | --------- | -----------------: | -----------------: | --: | --: | --: | ------------: | ------------: | ---: | ---: | ----------: | -----------------: | --------------: | -------------: | ---------: |',
  ];
  for (const r of results)
    lines.push(
      `| ${r.target} | ${r.run} | ${r.subscribers} | ${r.what} | ${int(r.deliveredPerSec)} | ${int(r.publishedPerSec)} | ${ms(r.latency.p50)} | ${ms(r.latency.p99)} | ${ms(r.latency.max)} | ${ms(r.callLatency.p50)} | ${ms(r.callLatency.p99)} | ${int(r.lost)} | ${int(r.gaps)} | ${f2(r.cpu.server)} | ${ms(r.serverCpuUsPerDelivery)} | ${f2(r.cpu.subscribers)} | ${f2(r.cpu.publisher)} | ${f2(r.cpu.other)} |`,
    );
  const find = (t: TargetId, run: RunId): RunResult | undefined =>
    results.find((r) => r.target === t && r.run === run);
  const pairs = params.runs.map((run) => ({ run, a: find('aetherd', run), b: find('bare', run) }));
  if (pairs.some((p) => p.a && p.b)) {
    lines.push(
      '',
      '| Run | aetherd / bare: delivered events/s | p50 latency | p99 latency |',
      '| --- | ---------------------------------: | ----------: | ----------: |',
    );
    for (const { run, a, b } of pairs)
      if (a && b)
        lines.push(
          `| ${run} | ${ratio(a.deliveredPerSec, b.deliveredPerSec)} | ${ratio(a.latency.p50, b.latency.p50)} | ${ratio(a.latency.p99, b.latency.p99)} |`,
        );
  }
  lines.push('');
  for (const r of results) {
    const notes = [
      `${int(r.published)} events published in all (warm-up included), each subscription received ${int(r.received.min)}–${int(r.received.max)}`,
      `${r.outOfOrder} out of order`,
      `${r.streamErrors} stream errors`,
      `${r.publishErrors} publish errors`,
      `clock offset to subscriber processes ≤ ${ms(r.clock.maxOffsetMs)} ms (IPC round trip ≤ ${ms(r.clock.maxRttMs)} ms)`,
      `${r.negativeLatencies} negative latencies`,
      `subscribing took ${int(r.subscribeMs)} ms`,
      `machine: ${f2(r.machineCpu.user)} CPUs user, ${f2(r.machineCpu.system)} system, ${f2(r.machineCpu.softirq)} softirq, ${f2(r.machineCpu.steal)} steal`,
      ...(r.otherProcesses.length > 0
        ? [`other processes: ${r.otherProcesses.map((p) => `${p.name} (${p.pid}) ${f2(p.cpus)}`).join(', ')}`]
        : []),
      ...(Number.isFinite(r.idleBefore)
        ? [`${Math.round(r.idleBefore * 100)} % of a CPU busy just before the run`]
        : []),
    ];
    lines.push(
      `- ${r.target} ${r.run}: ${notes.join('; ')}${r.firstError ? `; first error: ${r.firstError}` : ''}.`,
    );
  }
  if (metrics) {
    lines.push(
      '',
      metrics.available
        ? `aetherd GetMetrics events: emitted_total ${int(metrics.emittedTotal!)}, delivered_total ${int(metrics.deliveredTotal!)} (subscribers counted ${int(metrics.receivedBySubscribers)}), gaps_total ${int(metrics.gapsTotal!)} (subscribers counted ${int(metrics.gapsBySubscribers)}).`
        : `aetherd GetMetrics events: not available (${metrics.note}).`,
    );
  }
  lines.push('', 'Targets:', '');
  const pass = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
  const batch = find('aetherd', 'batch');
  if (batch)
    lines.push(
      `- ${pass(batch.deliveredPerSec >= 20_000)} aetherd delivered to one subscriber: ${int(batch.deliveredPerSec)} events/s (target ≥ 20,000/s; ${batch.what})`,
    );
  const unary = find('aetherd', 'unary');
  if (unary)
    lines.push(
      `- INFO aetherd single EmitEvent calls, ${params.unaryInFlight} in flight: ${int(unary.deliveredPerSec)} events/s delivered, ${int(unary.publishedPerSec)} published`,
    );
  const lat = find('aetherd', 'latency');
  if (lat)
    lines.push(
      `- INFO aetherd publish-to-deliver at ${int(params.rate)} events/s to one subscriber: p50 ${ms(lat.latency.p50)} ms, p99 ${ms(lat.latency.p99)} ms, max ${ms(lat.latency.max)} ms`,
    );
  const fan = find('aetherd', 'fanout');
  if (fan) {
    lines.push(
      `- ${pass(fan.latency.p99 <= 10)} aetherd p99 publish-to-deliver at ${int(params.rate)} events/s to ${fan.subscribers} subscribers: ${ms(fan.latency.p99)} ms (target ≤ 10 ms; p50 ${ms(fan.latency.p50)}, max ${ms(fan.latency.max)})`,
      `- ${pass(fan.lost === 0 && fan.gaps === 0)} aetherd nothing lost with ${fan.subscribers} subscribers: ${int(fan.lost)} lost, ${int(fan.gaps)} gaps (must be 0)`,
    );
    if (fan.publishedPerSec < params.rate * 0.98)
      lines.push(
        `- INFO the publisher reached only ${int(fan.publishedPerSec)} of ${int(params.rate)} events/s in the fan-out run`,
      );
  }
  for (const { run, a, b } of pairs)
    if (a && b)
      lines.push(
        `- INFO aetherd / bare, ${run}: throughput ${ratio(a.deliveredPerSec, b.deliveredPerSec)}, p50 ${ratio(a.latency.p50, b.latency.p50)}, p99 ${ratio(a.latency.p99, b.latency.p99)}`,
      );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  if (params.profileDir)
    process.env['AETHER_E2E_NODE_ARGS'] = `--cpu-prof --cpu-prof-dir=${params.profileDir}`;
  const started = performance.now();
  const results: RunResult[] = [];
  let metrics: MetricsCheck | undefined;
  const stack = await new Stack().init();
  const cleanup = (): void => {
    void stack.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  try {
    if (params.targets.includes('aetherd')) metrics = await runAetherd(stack, params, results);
    if (params.targets.includes('bare')) await runBare(stack, params, results);
  } finally {
    process.off('SIGINT', cleanup);
    process.off('SIGTERM', cleanup);
    await stack.close();
  }
  const text = report(results, params, metrics);
  process.stdout.write(`${text}\n\nTook ${Math.round((performance.now() - started) / 1000)} s.\n`);
  if (jsonFile)
    await writeFile(jsonFile, JSON.stringify({ machine: machineInfo(), params, results, metrics }, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`events bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
