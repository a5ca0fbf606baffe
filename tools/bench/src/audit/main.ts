/**
 * Audit log benchmark: durable records/s of `@aether/audit`'s AuditLog with one awaited append at a time
 * (one write + fdatasync per record) and with many concurrent appenders (group commit: one write +
 * fdatasync per batch), against a baseline of raw `fs.writeSync` + `fs.fdatasyncSync` per line; then the
 * speed of `verifyAuditLog` over a log of ~1M records (across rotated files, from the page cache).
 *
 *   node tools/bench/dist/audit/main.js [--rounds 5] [--duration 2] [--concurrency 64,256]
 *                                       [--verify-records 1000000] [--dir DIR] [--json FILE]
 *
 * Every round runs every mode on a fresh log in a new directory under DIR (default: the system temp
 * directory; fdatasync speed is that of DIR's file system). The table shows, per mode, the median over the
 * rounds during which other processes used at most 10 % of a CPU ("quiet rounds"; all rounds if none was),
 * and the range over all rounds.
 */
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { AuditLog, verifyAuditLog, type AuditEntry } from '@aether/audit';
import { median, summarize } from '../stats';
import { machineBusyMicros, machineInfo } from '../machine';

interface Params {
  rounds: number;
  durationMs: number;
  concurrency: number[];
  verifyRecords: number;
  dir: string;
  jsonFile: string | undefined;
}

type ModeId = 'raw' | 'raw-async' | 'sequential' | `group-${number}` | 'buffered';

interface Run {
  mode: ModeId;
  records: number;
  elapsedMs: number;
  perSec: number;
  fdatasyncs: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU used by everything else on the machine during the run, in percent of one CPU. */
  otherCpuPercent: number;
}

interface VerifyRun {
  records: number;
  files: number;
  bytes: number;
  elapsedMs: number;
  perSec: number;
  otherCpuPercent: number;
}

const fdatasyncAsync = promisify(fdatasync);

const AUDIT_TARGETS = { sequential: 5_000, group: 50_000, verify: 200_000 };

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      duration: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '64,256' },
      'verify-records': { type: 'string', default: '1000000' },
      dir: { type: 'string', default: tmpdir() },
      json: { type: 'string' },
    },
  });
  const positive = (name: string, v: string): number => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
    return n;
  };
  return {
    rounds: Math.round(positive('rounds', values.rounds)),
    durationMs: positive('duration', values.duration) * 1000,
    concurrency: values.concurrency.split(',').map((c) => Math.round(positive('concurrency', c))),
    verifyRecords: Math.round(positive('verify-records', values['verify-records'])),
    dir: values.dir,
    jsonFile: values.json,
  };
}

/** A typical record of an RPC: a job submission with its resource attributes and decision. */
function entry(i: number): AuditEntry {
  return {
    actor: 'spiffe://aether.local/aurorad',
    action: 'jobs.SubmitJob',
    requestId: `0f3c9a1e-5b7d-4e2a-9c1f-${(100_000_000_000 + i).toString(16).padStart(12, '0')}`,
    intentId: `intent-${i % 97}`,
    jobId: `jobs/${i}`,
    resource: {
      type: 'job',
      id: `jobs/${i}`,
      attributes: {
        network: 'none',
        mounts: [],
        devices: [],
        cpus: 2,
        memoryMiB: 2048,
        pids: 256,
        runtimeS: 600,
      },
    },
    decision: {
      effect: 'allow',
      policyIds: ['aurorad-submit-no-network'],
      reason: 'aurorad may submit jobs with no network and bounded resources',
      policySetHash: '3f1d0c2b9a8e7f6d5c4b3a29181716151413121110f0e0d0c0b0a09080706050',
    },
    tokenId: 'tok-7c1e',
    outcome: 'OK',
  };
}

/** Measures `fn`, returning its result with elapsed ms and the CPU other processes used meanwhile. */
async function measured<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; elapsedMs: number; otherCpuPercent: number }> {
  const busy0 = machineBusyMicros();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const other = machineBusyMicros() - busy0 - (cpu.user + cpu.system);
  return { value, elapsedMs, otherCpuPercent: Math.max(0, (100 * other) / (elapsedMs * 1000)) };
}

function fileSystemOf(dir: string): string {
  try {
    const real = realpathSync(dir);
    let best = { mount: '', desc: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [dev, mount, type] = line.split(' ');
      if (!dev || !mount || !type) continue;
      if (
        (real === mount || real.startsWith(mount.endsWith('/') ? mount : mount + '/')) &&
        mount.length >= best.mount.length
      )
        best = { mount, desc: `${type} on ${dev} (mounted at ${mount})` };
    }
    return best.desc;
  } catch {
    return 'unknown';
  }
}

/**
 * Raw baselines, one line at a time: `writeSync` + `fdatasyncSync` (blocks the event loop: the disk's
 * limit), or `writeSync` + an awaited `fs.fdatasync` on libuv's thread pool (what a server that keeps its
 * event loop free can reach).
 */
async function runRaw(dir: string, durationMs: number, line: Buffer, async: boolean): Promise<Run> {
  const path = join(dir, async ? 'raw-async.jsonl' : 'raw.jsonl');
  const fd = openSync(path, 'a', 0o640);
  const lat: number[] = [];
  const m = await measured(async () => {
    const end = performance.now() + durationMs;
    let t = performance.now();
    while (t < end) {
      writeSync(fd, line);
      if (async) await fdatasyncAsync(fd);
      else fdatasyncSync(fd);
      const t2 = performance.now();
      lat.push(t2 - t);
      t = t2;
    }
  });
  closeSync(fd);
  const s = summarize(lat);
  return {
    mode: async ? 'raw-async' : 'raw',
    records: lat.length,
    elapsedMs: m.elapsedMs,
    perSec: (lat.length * 1000) / m.elapsedMs,
    fdatasyncs: lat.length,
    p50Ms: s.p50,
    p99Ms: s.p99,
    otherCpuPercent: m.otherCpuPercent,
  };
}

/** `appenders` concurrent loops, each awaiting one append at a time, for `durationMs`. */
async function runLog(
  dir: string,
  mode: ModeId,
  appenders: number,
  durable: boolean,
  durationMs: number,
): Promise<Run> {
  const log = await AuditLog.open({ path: join(dir, `${mode}.jsonl`), daemon: 'bench' });
  const lat: number[] = [];
  let i = 0;
  const syncs0 = log.stats.fdatasyncs;
  const m = await measured(async () => {
    const end = performance.now() + durationMs;
    await Promise.all(
      Array.from({ length: appenders }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await log.append(entry(i++), { durable });
          lat.push(performance.now() - t);
        }
      }),
    );
  });
  const fdatasyncs = log.stats.fdatasyncs - syncs0;
  await log.close();
  const s = summarize(lat);
  return {
    mode,
    records: lat.length,
    elapsedMs: m.elapsedMs,
    perSec: (lat.length * 1000) / m.elapsedMs,
    fdatasyncs,
    p50Ms: s.p50,
    p99Ms: s.p99,
    otherCpuPercent: m.otherCpuPercent,
  };
}

/** Writes `n` records (non-durable, 1,000 at a time) with the real writer; returns its wall time. */
async function buildLog(path: string, n: number): Promise<number> {
  const log = await AuditLog.open({ path, daemon: 'bench' });
  const t0 = performance.now();
  for (let done = 0; done < n;) {
    const k = Math.min(1000, n - done);
    const batch: Promise<unknown>[] = [];
    for (let j = 0; j < k; j++) batch.push(log.append(entry(done + j), { durable: false }));
    await Promise.all(batch);
    done += k;
  }
  await log.close();
  return performance.now() - t0;
}

const LABELS: Record<string, string> = {
  raw: 'baseline: raw `writeSync` + `fdatasyncSync` per line (blocks the event loop)',
  'raw-async': 'baseline: raw `writeSync` + awaited async `fs.fdatasync` per line',
  sequential: 'AuditLog durable, 1 appender (one write + fdatasync per record)',
  buffered: 'AuditLog non-durable, 256 appenders (no fdatasync; context)',
};
const label = (mode: string): string =>
  LABELS[mode] ?? `AuditLog durable, ${mode.slice(6)} concurrent appenders (group commit)`;

/** Other processes may use at most this much of a CPU during a run for it to count as quiet. */
const QUIET_OTHER_CPU_PERCENT = 10;

/** The runs during which the machine was otherwise quiet, or all of them if none was. */
function quiet<T extends { otherCpuPercent: number }>(runs: T[]): T[] {
  const q = runs.filter((r) => r.otherCpuPercent <= QUIET_OTHER_CPU_PERCENT);
  return q.length > 0 ? q : runs;
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmt = (n: number, d = 3): string => n.toFixed(d);
const pct = (n: number): string => `${Math.round(n)} %`;

async function main(): Promise<void> {
  const p = parseParams();
  const machine = { ...machineInfo(), fileSystem: fileSystemOf(p.dir), date: new Date().toISOString() };
  process.stderr.write(`bench audit: ${JSON.stringify(machine)}\n`);

  const modes: { mode: ModeId; appenders: number; durable: boolean }[] = [
    { mode: 'sequential', appenders: 1, durable: true },
    ...p.concurrency.map((c) => ({ mode: `group-${c}` as ModeId, appenders: c, durable: true })),
    { mode: 'buffered', appenders: 256, durable: false },
  ];
  // A line of the size the log writes, for the raw baseline.
  const sampleDir = mkdtempSync(join(p.dir, 'aether-bench-audit-'));
  const sampleLog = await AuditLog.open({ path: join(sampleDir, 's.jsonl'), daemon: 'bench' });
  await sampleLog.append(entry(1), { durable: false });
  await sampleLog.close();
  const line = Buffer.from(readFileSync(join(sampleDir, 's.jsonl'), 'utf8'));
  rmSync(sampleDir, { recursive: true });
  process.stderr.write(`bench audit: record line ${line.length} bytes\n`);

  // Warm-up (JIT, file system), discarded.
  {
    const dir = mkdtempSync(join(p.dir, 'aether-bench-audit-'));
    await runLog(dir, 'group-64', 64, true, 1000);
    await runLog(dir, 'sequential', 1, true, 500);
    rmSync(dir, { recursive: true });
  }

  const rounds: Run[][] = [];
  for (let r = 0; r < p.rounds; r++) {
    const dir = mkdtempSync(join(p.dir, 'aether-bench-audit-'));
    const runs: Run[] = [
      await runRaw(dir, p.durationMs, line, false),
      await runRaw(dir, p.durationMs, line, true),
    ];
    for (const m of modes) runs.push(await runLog(dir, m.mode, m.appenders, m.durable, p.durationMs));
    rmSync(dir, { recursive: true });
    for (const run of runs)
      process.stderr.write(
        `round ${r + 1} ${run.mode}: ${fmtInt(run.perSec)}/s, ${run.fdatasyncs} fdatasyncs, other CPU ${pct(run.otherCpuPercent)}\n`,
      );
    rounds.push(runs);
  }

  // verify over ~1M records
  const vdir = mkdtempSync(join(p.dir, 'aether-bench-audit-verify-'));
  const vpath = join(vdir, 'big.jsonl');
  const buildMs = await buildLog(vpath, p.verifyRecords);
  process.stderr.write(
    `bench audit: wrote ${fmtInt(p.verifyRecords)} records in ${fmt(buildMs / 1000, 1)} s\n`,
  );
  const verifyRuns: VerifyRun[] = [];
  for (let r = 0; r < p.rounds; r++) {
    const m = await measured(() => verifyAuditLog(vpath));
    if (!m.value.ok || m.value.records !== p.verifyRecords)
      throw new Error(`verify failed: ${JSON.stringify(m.value.firstBad)} (${m.value.records} records)`);
    let bytes = 0;
    for (const f of m.value.files) bytes += readFileSync(f).length;
    verifyRuns.push({
      records: m.value.records,
      files: m.value.files.length,
      bytes,
      elapsedMs: m.elapsedMs,
      perSec: (m.value.records * 1000) / m.elapsedMs,
      otherCpuPercent: m.otherCpuPercent,
    });
    process.stderr.write(`verify round ${r + 1}: ${fmtInt(verifyRuns[r]?.perSec ?? 0)} records/s\n`);
  }
  rmSync(vdir, { recursive: true });

  // Report
  const allModes: ModeId[] = ['raw', 'raw-async', ...modes.map((m) => m.mode)];
  const out: string[] = [];
  out.push(
    '| Mode | records/s (median) | range over rounds | quiet rounds | records per fdatasync | p50 ms | p99 ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const med: Record<string, number> = {};
  const range = (xs: number[]): string => `${fmtInt(Math.min(...xs))}–${fmtInt(Math.max(...xs))}`;
  for (const mode of allModes) {
    const all = rounds.map((rs) => rs.find((x) => x.mode === mode) as Run);
    const runs = quiet(all);
    const rate = median(runs.map((x) => x.perSec));
    med[mode] = rate;
    const perSync =
      mode === 'buffered' ? NaN : median(runs.map((x) => (x.fdatasyncs ? x.records / x.fdatasyncs : NaN)));
    out.push(
      `| ${label(mode)} | ${fmtInt(rate)} | ${range(all.map((x) => x.perSec))} | ${runs.length}/${all.length} | ${Number.isNaN(perSync) ? '–' : fmt(perSync, 1)} | ${fmt(median(runs.map((x) => x.p50Ms)))} | ${fmt(median(runs.map((x) => x.p99Ms)))} |`,
    );
  }
  const vQuiet = quiet(verifyRuns);
  const vRate = median(vQuiet.map((v) => v.perSec));
  const v0 = verifyRuns[0] as VerifyRun;
  out.push(
    `| \`verifyAuditLog\`: ${fmtInt(v0.records)} records, ${v0.files} files, ${fmt(v0.bytes / 2 ** 20, 0)} MiB (page cache) | ${fmtInt(vRate)} | ${range(verifyRuns.map((v) => v.perSec))} | ${vQuiet.length}/${verifyRuns.length} | – | – | – |`,
  );
  const otherCpu = [
    ...rounds.flat().map((x) => x.otherCpuPercent),
    ...verifyRuns.map((v) => v.otherCpuPercent),
  ];
  out.push('');
  out.push(
    `Other processes used ${pct(median(otherCpu))} of one CPU (median; max ${pct(Math.max(...otherCpu))}) during the measured runs; medians are over the quiet rounds (≤ ${QUIET_OTHER_CPU_PERCENT} % of a CPU used by others). Record line: ${line.length} bytes.`,
  );
  out.push('');
  const bestGroup = Math.max(...p.concurrency.map((c) => med[`group-${c}`] ?? 0));
  const check = (ok: boolean, what: string, value: string, target: string): string =>
    `- ${ok ? 'PASS' : 'MISS'} ${what}: ${value} (target ${target})`;
  out.push(
    check(
      (med['sequential'] ?? 0) >= AUDIT_TARGETS.sequential,
      'durable records/s with per-record fdatasync (1 appender)',
      fmtInt(med['sequential'] ?? 0),
      `≥ ${fmtInt(AUDIT_TARGETS.sequential)}/s`,
    ),
    check(
      bestGroup >= AUDIT_TARGETS.group,
      `durable records/s with group commit (best of ${p.concurrency.join('/')} appenders)`,
      fmtInt(bestGroup),
      `≥ ${fmtInt(AUDIT_TARGETS.group)}/s`,
    ),
    check(
      vRate >= AUDIT_TARGETS.verify,
      'verify records/s',
      fmtInt(vRate),
      `≥ ${fmtInt(AUDIT_TARGETS.verify)}/s`,
    ),
  );
  process.stdout.write(`${out.join('\n')}\n`);
  if (median(otherCpu) > 10)
    process.stderr.write(
      `bench audit: warning: other processes took ${pct(median(otherCpu))} of a CPU during the runs; the numbers are skewed\n`,
    );
  if (p.jsonFile)
    await writeFile(
      p.jsonFile,
      JSON.stringify({ machine, params: p, lineBytes: line.length, buildMs, rounds, verifyRuns }, null, 2),
    );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench audit: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
