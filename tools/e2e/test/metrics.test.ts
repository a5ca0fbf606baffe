import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import parsePrometheusText from 'parse-prometheus-text-format';
import { stringify } from 'yaml';
import type { AetherClient } from '@aether/client';
import { artifactsV1, memoryV1, metricsV1 } from '@aether/proto';
import { clientStreamCall, createClient, unaryCall, type RpcError } from '@aether/rpc';
import { repoRoot, Stack } from '../src';
import { MiB, spec, submit, wait, waitForOutput } from './jobs-helpers';

type Families = ReturnType<typeof parsePrometheusText>;

const SERVICE = {
  jobs: '/aether.jobs.v1.JobService',
  artifacts: '/aether.artifacts.v1.ArtifactService',
  memory: '/aether.memory.v1.MemoryService',
  metrics: '/aether.metrics.v1.MetricsService',
};
const GET_JOB = `${SERVICE.jobs}/GetJob`;
const SUBMIT_JOB = `${SERVICE.jobs}/SubmitJob`;
const WAIT_JOB = `${SERVICE.jobs}/WaitJob`;
const UPLOAD = `${SERVICE.artifacts}/UploadArtifact`;
const DELETE_ARTIFACT = `${SERVICE.artifacts}/DeleteArtifact`;
const ADD_ENTRY = `${SERVICE.memory}/AddEntry`;
const SEARCH = `${SERVICE.memory}/Search`;
const GET_METRICS = `${SERVICE.metrics}/GetMetrics`;

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

const getMetrics = (c: AetherClient, readMask: string[] = []): Promise<metricsV1.GetMetricsResponse> =>
  c.call(c.metrics, 'getMetrics', { readMask });

const method = (m: metricsV1.GetMetricsResponse, path: string): metricsV1.MethodMetrics | undefined =>
  m.rpc?.methods.find((x) => x.method === path);

/** Calls of a method with a status code (0 when none). */
const calls = (m: metricsV1.GetMetricsResponse, path: string, code: string): number =>
  Number(method(m, path)?.requestsByCode[code] ?? 0n);

/** The value of one series of a parsed family, found by its labels. */
function valueOf(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric family ${name}`);
  const sample = family.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  if (sample?.value === undefined) throw new Error(`no ${name} series with ${JSON.stringify(labels)}`);
  return Number(sample.value);
}

/**
 * One series of a labeled histogram, parsed. parse-prometheus-text-format folds a histogram family into
 * one sample and keeps `_sum`/`_count` only without labels, so the series is selected by its label and
 * the label removed before parsing.
 */
function histogramSeries(text: string, name: string, label: string, value: string): Families[number] {
  const own = `${label}="${value}"`;
  const lines = text
    .split('\n')
    .filter(
      (l) =>
        l.startsWith(`# HELP ${name} `) ||
        l === `# TYPE ${name} histogram` ||
        (l.startsWith(`${name}_`) && l.includes(own)),
    )
    .map((l) => l.replace(`,${own}`, '').replace(`{${own},`, '{').replace(`{${own}}`, ''));
  const [family] = parsePrometheusText(`${lines.join('\n')}\n`);
  if (!family) throw new Error(`no ${name} series with ${own}`);
  return family;
}

function httpGet(
  target: { socketPath: string } | { host: string; port: number },
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

function uploadMessages(data: Buffer, filename: string): artifactsV1.UploadArtifactRequest[] {
  return [
    artifactsV1.UploadArtifactRequest.fromPartial({
      payload: { $case: 'metadata', value: { metadata: { filename } } },
    }),
    { payload: { $case: 'chunk', value: data } },
  ];
}

describe('metrics: GetMetrics, Prometheus text and the scrape listener, against a scripted workload', () => {
  let stack: Stack;
  let admin: AetherClient;
  const scrapeSocket = (): string => join(stack.dir, 'run', 'aetherd-metrics.sock');

  beforeAll(async () => {
    stack = await new Stack({ extraIdentities: ['stranger'] }).init();
    // aetherd scrapes on a Unix socket, aurorad on a loopback port of the kernel's choosing, cfcd not at all.
    writeFileSync(
      stack.configPath('aetherd'),
      stringify({ ...stack.config('aetherd'), metrics: { listen: `unix:${scrapeSocket()}` } }),
    );
    writeFileSync(
      stack.configPath('aurorad'),
      stringify({ ...stack.config('aurorad'), metrics: { listen: '127.0.0.1:0' } }),
    );
    await stack.startAll();
    admin = stack.client();
  });
  afterAll(async () => {
    admin?.close();
    await stack.close();
  });

  // The scripted workload and what GetMetrics said before and after it.
  let before: metricsV1.GetMetricsResponse;
  let after: metricsV1.GetMetricsResponse;
  const uploaded = [Buffer.alloc(3000, 1), Buffer.alloc(5000, 2)];

  it('counts a scripted workload exactly: RPCs by method and code, denials, jobs, artifacts, memory', async () => {
    before = await getMetrics(admin);
    // 3 jobs: two succeed, one fails.
    for (const argv of [['/bin/true'], ['/bin/false'], ['/bin/true']]) {
      const job = await submit(admin, spec(argv));
      await wait(admin, job.name);
    }
    // 4 denials of an identity no policy names, and 2 lookups of a job that does not exist.
    const stranger = stack.client('stranger');
    for (let i = 0; i < 4; i++) {
      const err = await failure(stranger.call(stranger.jobs, 'getJob', { name: `jobs/${'0'.repeat(26)}` }));
      expect(err.code).toBe(status.PERMISSION_DENIED);
    }
    stranger.close();
    for (let i = 0; i < 2; i++) {
      const err = await failure(admin.call(admin.jobs, 'getJob', { name: `jobs/${'1'.repeat(26)}` }));
      expect(err.code).toBe(status.NOT_FOUND);
    }
    // 2 artifacts uploaded, 1 deleted.
    const names: string[] = [];
    for (const [i, data] of uploaded.entries()) {
      const res = await clientStreamCall(
        admin.artifacts.uploadArtifact.bind(admin.artifacts),
        uploadMessages(data, `m${i}.bin`),
      );
      names.push(res.artifact!.name);
    }
    await admin.call(admin.artifacts, 'deleteArtifact', { name: names[0]! });
    // 1 memory entry, 2 searches.
    await admin.call(
      admin.memory,
      'addEntry',
      memoryV1.AddEntryRequest.fromPartial({ entry: { title: 'metrics', text: 'the scrape works' } }),
    );
    for (const query of ['scrape', 'works']) {
      const res = await admin.call(admin.memory, 'search', memoryV1.SearchRequest.fromPartial({ query }));
      expect(res.citations).toHaveLength(1);
    }
    after = await getMetrics(admin);

    const delta = (path: string, code: string): number =>
      calls(after, path, code) - calls(before, path, code);
    expect(after).toMatchObject({ daemon: 'aetherd', version: '0.1.0' });
    // RPCs, by method and status code.
    expect(delta(SUBMIT_JOB, 'OK')).toBe(3);
    expect(delta(WAIT_JOB, 'OK')).toBe(3);
    expect(delta(GET_JOB, 'PERMISSION_DENIED')).toBe(4);
    expect(delta(GET_JOB, 'NOT_FOUND')).toBe(2);
    expect(delta(UPLOAD, 'OK')).toBe(2);
    expect(delta(DELETE_ARTIFACT, 'OK')).toBe(1);
    expect(delta(ADD_ENTRY, 'OK')).toBe(1);
    expect(delta(SEARCH, 'OK')).toBe(2);
    const getJob = method(after, GET_JOB)!;
    expect(getJob).toMatchObject({
      requestsTotal: 6n,
      errorsTotal: 6n,
      requestsByCode: { PERMISSION_DENIED: 4n, NOT_FOUND: 2n },
      inFlight: 0n,
    });
    expect(getJob.latency!.count).toBe(6n);
    expect(getJob.latency!.buckets.at(-1)).toEqual({ upperBoundSeconds: Infinity, cumulativeCount: 6n });
    expect(getJob.latency!.p99Seconds).toBeLessThanOrEqual(getJob.latency!.maxSeconds);
    // The first GetMetrics has finished since; the second is in flight while it answers.
    expect(method(after, GET_METRICS)).toMatchObject({ requestsTotal: 1n, errorsTotal: 0n, inFlight: 1n });
    expect(after.rpc!.inFlight).toBe(1n);
    const sorted = after.rpc!.methods.map((m) => m.method);
    expect(sorted).toEqual([...sorted].sort());
    // Policy: the stranger's 4 calls were denied; every other call since `before` was allowed, the first
    // GetMetrics included (it finished after its own snapshot).
    const allowed = 3 + 3 + 2 + 2 + 1 + 1 + 2 + 1;
    expect(after.policy!.denyTotal - before.policy!.denyTotal).toBe(4n);
    expect(after.policy!.allowTotal - before.policy!.allowTotal).toBe(BigInt(allowed));
    expect(after.policy!.askTotal).toBe(0n);
    expect(after.policy!.errorTotal).toBe(0n);
    expect(after.policy!.evaluationLatency!.count - before.policy!.evaluationLatency!.count).toBe(
      BigInt(allowed + 4),
    );
    expect(after.policy!.policySetHash).toMatch(/^[0-9a-f]{16,}$/);
    expect(after.policy!.policyCount).toBeGreaterThan(10n);
    // Jobs: what ran, how it ended, what the queue and the sandbox start took.
    const jobs = after.jobs!;
    expect(jobs.submittedTotal - before.jobs!.submittedTotal).toBe(3n);
    expect(jobs.finishedTotalByState).toMatchObject({
      JOB_STATE_SUCCEEDED: 2n,
      JOB_STATE_FAILED: 1n,
      JOB_STATE_KILLED: 0n,
      JOB_STATE_CANCELLED: 0n,
    });
    expect(Object.keys(jobs.jobsByState)).toHaveLength(12);
    expect(jobs.jobsByState).toMatchObject({
      JOB_STATE_SUCCEEDED: 2n,
      JOB_STATE_FAILED: 1n,
      JOB_STATE_PENDING: 0n,
      JOB_STATE_RUNNING: 0n,
    });
    expect(jobs.queueDepth).toBe(0n);
    expect(jobs.cpuMillicoresAllocated).toBe(0n);
    expect(jobs.startLatency!.count).toBe(3n);
    expect(jobs.queueWait!.count).toBe(3n);
    expect(jobs.startLatency!.p50Seconds).toBeGreaterThan(0);
    expect(jobs.concurrencyLimit).toBeGreaterThan(0n);
    // Artifacts: 2 created, 1 deleted, 1 left.
    expect(after.artifacts).toMatchObject({
      artifacts: 1n,
      blobs: 1n,
      storedBytes: 5000n,
      logicalBytes: 5000n,
      createdTotal: 2n,
      deletedTotal: 1n,
      ingestedBytesTotal: 8000n,
      quotaBytes: 0n,
    });
    // Memory: one entry, its passage, two searches.
    expect(after.memory).toMatchObject({ entries: 1n, versions: 1n, passages: 1n, searchesTotal: 2n });
    expect(after.memory!.searchLatency!.count).toBe(2n);
    expect(after.memory!.databaseBytes).toBeGreaterThan(0n);
    // Audit: every call was recorded, in one chain, and nothing waits long.
    const audit = after.audit!;
    expect(audit.recordsTotal - before.audit!.recordsTotal).toBeGreaterThanOrEqual(BigInt(allowed + 4));
    expect(audit.lastSequence).toBeGreaterThanOrEqual(audit.recordsTotal);
    expect(audit.writeErrorsTotal).toBe(0n);
    expect(audit.commitLatency!.count).toBeGreaterThan(0n);
    expect(audit.lagSeconds).toBeLessThan(1);
    // The process and the host.
    expect(after.process!.runtimeVersion).toBe(process.version);
    expect(after.process!.openFds).toBeGreaterThan(5n);
    expect(after.host!.cpuCount).toBeGreaterThan(0n);
  });

  it('shows the same numbers in the Prometheus text, which a real parser reads', async () => {
    const typed = await getMetrics(admin);
    const res = await admin.call(admin.metrics, 'getPrometheusMetrics', {});
    expect(res.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheusText(res.text);
    expect(families.every((f) => f.name.startsWith('aether_'))).toBe(true);
    // Nothing but these two calls happened in between: every count matches, except the GetMetrics call
    // that finished (and was allowed) between the snapshot and the scrape.
    for (const m of typed.rpc!.methods) {
      const finished = m.method === GET_METRICS ? 1 : 0;
      for (const [code, n] of Object.entries(m.requestsByCode))
        expect([
          m.method,
          code,
          valueOf(families, 'aether_rpc_requests_total', { method: m.method, code }),
        ]).toEqual([m.method, code, Number(n) + (code === 'OK' ? finished : 0)]);
      expect(valueOf(families, 'aether_rpc_errors_total', { method: m.method })).toBe(Number(m.errorsTotal));
      if (finished) continue;
      const [latency] = histogramSeries(res.text, 'aether_rpc_latency_seconds', 'method', m.method).metrics;
      expect(latency?.count).toBe(String(m.latency!.count));
      expect(Number(latency?.sum)).toBeCloseTo(m.latency!.sumSeconds, 9);
      for (const b of m.latency!.buckets) {
        const le = b.upperBoundSeconds === Infinity ? '+Inf' : String(b.upperBoundSeconds);
        expect(latency?.buckets?.[le]).toBe(String(b.cumulativeCount));
      }
    }
    expect(valueOf(families, 'aether_policy_deny_total')).toBe(Number(typed.policy!.denyTotal));
    expect(valueOf(families, 'aether_policy_allow_total')).toBe(Number(typed.policy!.allowTotal) + 1);
    expect(valueOf(families, 'aether_policy_info', { policy_set_hash: typed.policy!.policySetHash })).toBe(1);
    const jobs = typed.jobs!;
    expect(valueOf(families, 'aether_jobs_submitted_total')).toBe(Number(jobs.submittedTotal));
    for (const [state, n] of Object.entries(jobs.jobsByState))
      expect(valueOf(families, 'aether_jobs', { state })).toBe(Number(n));
    for (const [state, n] of Object.entries(jobs.finishedTotalByState))
      expect(valueOf(families, 'aether_jobs_finished_total', { state })).toBe(Number(n));
    const start = families.find((f) => f.name === 'aether_jobs_start_latency_seconds')!;
    expect(start.type).toBe('HISTOGRAM');
    expect(start.metrics[0]!.count).toBe(String(jobs.startLatency!.count));
    expect(Number(start.metrics[0]!.sum)).toBeCloseTo(jobs.startLatency!.sumSeconds, 9);
    expect(valueOf(families, 'aether_jobs_start_latency_max_seconds')).toBe(jobs.startLatency!.maxSeconds);
    expect(valueOf(families, 'aether_artifacts')).toBe(Number(typed.artifacts!.artifacts));
    expect(valueOf(families, 'aether_artifacts_created_total')).toBe(Number(typed.artifacts!.createdTotal));
    expect(valueOf(families, 'aether_artifacts_deleted_total')).toBe(Number(typed.artifacts!.deletedTotal));
    expect(valueOf(families, 'aether_artifacts_stored_bytes')).toBe(Number(typed.artifacts!.storedBytes));
    expect(valueOf(families, 'aether_memory_entries')).toBe(Number(typed.memory!.entries));
    expect(valueOf(families, 'aether_memory_searches_total')).toBe(Number(typed.memory!.searchesTotal));
    expect(valueOf(families, 'aether_process_pid')).toBe(Number(typed.process!.pid));
    expect(valueOf(families, 'aether_host_info', { cgroup_version: typed.host!.cgroupVersion })).toBe(1);
    expect(valueOf(families, 'aether_build_info', { daemon: 'aetherd', version: typed.version })).toBe(1);
  });

  it('fills only the sections read_mask names, and refuses an unknown path with INVALID_FIELD', async () => {
    const some = await getMetrics(admin, ['jobs', 'process']);
    expect(
      Object.keys(some)
        .filter((k) => some[k as keyof typeof some] !== undefined)
        .sort(),
    ).toEqual(['daemon', 'jobs', 'process', 'time', 'version']);
    const err = await failure(getMetrics(admin, ['jobs', 'gpus']));
    expect(err).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_FIELD',
      metadata: { field: 'read_mask' },
    });
    expect(err.message).toContain('"gpus"');
  });

  it('is answered by aurorad and cfcd too: their own RPCs, policy, audit, process and host', async () => {
    for (const d of ['aurorad', 'cfcd'] as const) {
      const client = createClient(metricsV1.MetricsServiceClient, admin.config[d]);
      try {
        const first = await unaryCall(client.getMetrics.bind(client), { readMask: [] });
        const m = await unaryCall(client.getMetrics.bind(client), { readMask: [] });
        expect(m.daemon).toBe(d);
        expect(m.jobs).toBeUndefined();
        expect(m.artifacts).toBeUndefined();
        expect(m.memory).toBeUndefined();
        expect(m.events).toBeUndefined();
        expect(method(m, GET_METRICS)!.requestsTotal).toBe(method(first, GET_METRICS)!.requestsTotal + 1n);
        expect(m.policy!.allowTotal).toBeGreaterThanOrEqual(1n);
        // The first call's record is written, or waits (reads are written within 10 ms, unsynced).
        expect(m.audit!.recordsTotal + m.audit!.pendingRecords).toBeGreaterThanOrEqual(1n);
        expect(m.process!.pid).not.toBe(after.process!.pid);
        expect(m.host!.cgroupVersion).toBe(after.host!.cgroupVersion);
      } finally {
        client.close();
      }
    }
  });

  it('serves GET /metrics on the configured Unix socket (mode 0660) and loopback port, nowhere else', async () => {
    expect(statSync(scrapeSocket()).mode & 0o777).toBe(0o660);
    const viaSocket = await httpGet({ socketPath: scrapeSocket() }, '/metrics');
    expect(viaSocket.status).toBe(200);
    expect(viaSocket.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parsePrometheusText(viaSocket.body);
    expect(valueOf(families, 'aether_build_info', { daemon: 'aetherd', version: '0.1.0' })).toBe(1);
    expect(valueOf(families, 'aether_jobs_submitted_total')).toBe(3);
    expect((await httpGet({ socketPath: scrapeSocket() }, '/')).status).toBe(404);
    expect((await httpGet({ socketPath: scrapeSocket() }, '/metrics', 'POST')).status).toBe(405);

    const line = await stack.daemons
      .get('aurorad')!
      .waitForLog((l) => typeof l['metricsListen'] === 'string');
    const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(String(line['metricsListen']))?.[1]);
    expect(port).toBeGreaterThan(0);
    const viaPort = await httpGet({ host: '127.0.0.1', port }, '/metrics');
    expect(viaPort.status).toBe(200);
    expect(
      valueOf(parsePrometheusText(viaPort.body), 'aether_build_info', {
        daemon: 'aurorad',
        version: '0.1.0',
      }),
    ).toBe(1);
    expect(stack.daemons.get('cfcd')!.lines.some((l) => 'metricsListen' in l)).toBe(false);
  });

  it('sums what running jobs hold, and counts a killed job when it ends', async () => {
    const job = await submit(
      admin,
      spec(
        ['/bin/sh', '-c', 'echo ready; exec sleep 60'],
        {},
        { cpuMillicores: 500, memoryBytes: BigInt(64 * MiB) },
      ),
    );
    await waitForOutput(admin, job.name, 'ready');
    const running = (await getMetrics(admin, ['jobs'])).jobs!;
    expect(running.jobsByState['JOB_STATE_RUNNING']).toBe(1n);
    expect(running.cpuMillicoresAllocated).toBe(500n);
    expect(running.memoryBytesAllocated).toBe(BigInt(64 * MiB));
    expect(running.startLatency!.count).toBe(4n);
    await admin.call(admin.jobs, 'killJob', { name: job.name });
    await wait(admin, job.name);
    const ended = (await getMetrics(admin, ['jobs'])).jobs!;
    expect(ended).toMatchObject({ cpuMillicoresAllocated: 0n, memoryBytesAllocated: 0n, submittedTotal: 4n });
    expect(ended.jobsByState['JOB_STATE_RUNNING']).toBe(0n);
    expect(ended.finishedTotalByState['JOB_STATE_KILLED']).toBe(1n);
  });

  it('refuses to start with a scrape address beyond loopback, exit 78 and a clear message', () => {
    const file = join(stack.dir, 'cfcd-open-metrics.yaml');
    writeFileSync(file, stringify({ ...stack.config('cfcd'), metrics: { listen: '0.0.0.0:9100' } }));
    const r = spawnSync(
      process.execPath,
      [join(repoRoot, 'apps', 'cfcd', 'dist', 'main.js'), '--config', file],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('cfcd: invalid configuration');
    expect(r.stderr).toMatch(/metrics\.listen: .*"0\.0\.0\.0" is not loopback.*\(from file /);
  });

  it('closes the scrape listener and removes its socket when aetherd stops', async () => {
    expect(await stack.stop('aetherd')).toBe(0);
    expect(() => statSync(scrapeSocket())).toThrow(/ENOENT/);
  });
});
