/**
 * Policy decision benchmark: decisions/s and latency of `PolicyEngine.decide` in process, with the
 * shipped default policy (deploy/policy) grown to 50 and to 500 policies, and the raw Cedar call
 * pre-parsed (`statefulIsAuthorized`) against stateless (`isAuthorized`, which parses the schema and the
 * policies on every call).
 *
 *   node tools/bench/dist/policy/main.js [--json FILE] [--rounds 3] [--duration 3] [--warmup 1]
 *                                        [--sizes 50,500] [--policy-dir deploy/policy]
 *
 * Configurations, for each size: the extra policies are per-user permits and forbids with conditions
 * (what a deployment adds), decided by the engine as shipped (policy slicing on) and with slicing off
 * (every request against the whole set); and, for the largest size, a worst case where every extra
 * policy is a forbid on aurorad's jobs.SubmitJob, so a third of the mix meets all of them.
 *
 * Every round runs every configuration: a warm-up, then a closed loop of sequential `decide` calls over a
 * fixed mix of 12 queries for `--duration` seconds, each call timed on its own; then the raw Cedar calls
 * for one query against the whole set. Tables show medians over the rounds, then the issue's targets
 * (PASS/MISS); `--json FILE` also writes every round's results.
 *
 * Importing `@aether/policy` turns off V8's JS-to-Wasm call inlining for the process (see
 * libs/policy/src/cedar.ts): with it, Node 20 aborts in a deoptimization about every other run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { PolicyEngine, type PolicyQuery, type PolicyResource } from '@aether/policy';
import { median, summarize, type LatencySummary } from '../stats';
import { machineBusyMicros, machineInfo } from '../machine';

interface Params {
  rounds: number;
  durationMs: number;
  warmupMs: number;
  sizes: number[];
  policyDir: string;
}

/** What extra policies a configuration adds, and how the engine decides. */
interface Config {
  size: number;
  extra: 'per-user' | 'same-slice';
  slicing: boolean;
}

interface SizeResult {
  config: Config;
  policies: number;
  /** Building the engine from the directory: read, parse, validate, pre-parse (ms). */
  loadMs: number;
  decisions: number;
  decisionsPerSec: number;
  /** Decisions per second of this process's CPU time (user + system): the per-core rate. */
  decisionsPerCpuSec: number;
  latencyMs: LatencySummary;
  /** The raw Cedar call for one query (aurorad submits a job), pre-parsed and stateless, in µs. */
  preparsedMicros: number;
  statelessMicros: number;
  /** CPU time used by everything else on the machine during the decide loop, in percent of one CPU. */
  othersCpuPercent: number;
  effects: Record<string, number>;
}

const GiB = 1024 ** 3;

function main(): void {
  const { params, jsonFile } = parseParams();
  const startedAt = new Date();
  const m = machineInfo();
  process.stderr.write(
    `policy bench: ${m.nproc} CPUs (${m.cpuModel}), Node ${m.node}, load average ${m.loadAverageAtStart.join(' ')}\n`,
  );
  const schemaText = readSchema(params.policyDir);
  const largest = Math.max(...params.sizes);
  const configs: Config[] = params.sizes.flatMap((size) => [
    { size, extra: 'per-user' as const, slicing: true },
    { size, extra: 'per-user' as const, slicing: false },
    ...(size === largest ? [{ size, extra: 'same-slice' as const, slicing: true }] : []),
  ]);
  const rounds: SizeResult[][] = [];
  for (let round = 0; round < params.rounds; round++) {
    const results: SizeResult[] = [];
    for (const config of configs) {
      const r = measureSize(params, config, schemaText);
      process.stderr.write(
        `round ${round + 1} ${label(config)}: ${Math.round(r.decisionsPerSec)} decisions/s, p50 ${r.latencyMs.p50.toFixed(3)} ms, ` +
          `p99 ${r.latencyMs.p99.toFixed(3)} ms, pre-parsed ${r.preparsedMicros.toFixed(0)} µs vs stateless ` +
          `${r.statelessMicros.toFixed(0)} µs, others ${r.othersCpuPercent.toFixed(0)} % CPU\n`,
      );
      results.push(r);
    }
    rounds.push(results);
  }
  const rows = configs.map((_, i) => rounds.map((r) => r[i] as SizeResult));
  printTable(rows, params);
  if (jsonFile) {
    writeFileSync(jsonFile, JSON.stringify({ startedAt, machine: m, params, rounds }, null, 2));
  }
}

function label(c: Config): string {
  const extra = c.extra === 'per-user' ? 'per-user extras' : 'extras all on one request kind';
  return `${c.size} policies, ${extra}, ${c.slicing ? 'sliced (as shipped)' : 'whole set'}`;
}

/** Builds an engine of `size` policies (the shipped ones plus generated ones) and measures it. */
function measureSize(params: Params, config: Config, schemaText: string): SizeResult {
  const { size } = config;
  const dir = mkdtempSync(join(tmpdir(), 'aether-policy-bench-'));
  try {
    const shipped = readdirSync(params.policyDir).filter(
      (f) => f.endsWith('.cedar') || f.endsWith('.cedarschema'),
    );
    let shippedCount = 0;
    for (const f of shipped) {
      const text = readFileSync(join(params.policyDir, f), 'utf8');
      writeFileSync(join(dir, f), text);
      if (f.endsWith('.cedar')) shippedCount += (text.match(/^\s*(permit|forbid)\s*\(/gm) ?? []).length;
    }
    const extra = Math.max(0, size - shippedCount);
    writeFileSync(
      join(dir, 'zz-generated.cedar'),
      config.extra === 'per-user' ? generatedPolicies(extra) : sameSlicePolicies(extra),
    );

    const loadStart = performance.now();
    const engine = PolicyEngine.fromDirectory(dir, { slicing: config.slicing });
    const loadMs = performance.now() - loadStart;
    const queries = queryMix();

    // Warm-up, then the timed closed loop.
    let i = 0;
    const warmEnd = performance.now() + params.warmupMs;
    while (performance.now() < warmEnd) engine.decide(queries[i++ % queries.length] as PolicyQuery);

    const samples: number[] = [];
    const effects: Record<string, number> = {};
    const cpu0 = process.cpuUsage();
    const busy0 = machineBusyMicros();
    const t0 = performance.now();
    const end = t0 + params.durationMs;
    let now = t0;
    i = 0;
    while (now < end) {
      const q = queries[i++ % queries.length] as PolicyQuery;
      const s = performance.now();
      const d = engine.decide(q);
      now = performance.now();
      samples.push(now - s);
      effects[d.effect] = (effects[d.effect] ?? 0) + 1;
    }
    const elapsedMs = now - t0;
    const cpu = process.cpuUsage(cpu0);
    const ownMicros = cpu.user + cpu.system;
    const othersMicros = machineBusyMicros() - busy0 - ownMicros;

    const raw = rawCedar(engine, schemaText, queries[0] as PolicyQuery);
    return {
      config,
      policies: engine.policies.length,
      loadMs,
      decisions: samples.length,
      decisionsPerSec: samples.length / (elapsedMs / 1000),
      decisionsPerCpuSec: samples.length / (ownMicros / 1e6),
      latencyMs: summarize(samples),
      preparsedMicros: raw.preparsedMicros,
      statelessMicros: raw.statelessMicros,
      othersCpuPercent: Math.max(0, (othersMicros / (elapsedMs * 1000)) * 100),
      effects,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same Cedar request, pre-parsed and stateless: the cost of the call itself without the engine's
 * query mapping. The request is the one the engine builds for aurorad submitting a sandboxed job.
 */
function rawCedar(
  engine: PolicyEngine,
  schemaText: string,
  query: PolicyQuery,
): { preparsedMicros: number; statelessMicros: number } {
  const staticPolicies: Record<string, string> = {};
  for (const p of engine.policies) staticPolicies[p.id] = p.text;
  const id = `bench-${engine.hash}-${process.hrtime.bigint()}`;
  cedar.preparseSchema(id, schemaText);
  cedar.preparsePolicySet(id, { staticPolicies });
  const a = query.resource.attributes ?? {};
  const request = {
    principal: { type: 'Aether::Identity', id: query.principal.id },
    action: { type: 'Aether::Action', id: query.action },
    resource: { type: 'Aether::Job', id: 'new' },
    context: {
      requestId: query.context.requestId,
      action: query.action,
      api: 'jobs',
      actionNames: [query.action, 'jobs.write', 'jobs.*', '*'],
    },
    entities: [
      {
        uid: { type: 'Aether::Identity', id: query.principal.id },
        attrs: {
          spiffeId: query.principal.id,
          name: query.principal.name,
          trustDomain: query.principal.trustDomain,
          authenticatedBy: query.principal.authenticatedBy,
        },
        parents: [{ type: 'Aether::Group', id: 'aurorad' }],
      },
      {
        uid: { type: 'Aether::Job', id: 'new' },
        attrs: {
          network: a['network'] as string,
          readOnlyMounts: [],
          writableMounts: [],
          devices: [],
          gpuCount: 0,
          otherDeviceCount: 0,
          cpuMillicores: a['cpuMillicores'] as number,
          memoryBytes: Number(a['memoryBytes']),
          pidsMax: a['pidsMax'] as number,
          timeoutSeconds: a['timeoutSeconds'] as number,
          profile: '',
        },
        parents: [],
      },
    ],
    validateRequest: true,
  };
  const stateful = (): void => {
    const r = cedar.statefulIsAuthorized({ ...request, preparsedSchemaName: id, preparsedPolicySetId: id });
    if (r.type !== 'success' || r.response.decision !== 'allow')
      throw new Error(`unexpected: ${JSON.stringify(r)}`);
  };
  const stateless = (): void => {
    const r = cedar.isAuthorized({ ...request, schema: schemaText, policies: { staticPolicies } });
    if (r.type !== 'success' || r.response.decision !== 'allow')
      throw new Error(`unexpected: ${JSON.stringify(r)}`);
  };
  return { preparsedMicros: timeMicros(stateful, 300), statelessMicros: timeMicros(stateless, 300) };
}

/** Mean µs per call over at least `minMs` ms, after a few warm-up calls. */
function timeMicros(fn: () => void, minMs: number): number {
  for (let i = 0; i < 5; i++) fn();
  let n = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < minMs || n < 10) {
    fn();
    n++;
    now = performance.now();
  }
  return ((now - t0) * 1000) / n;
}

/** A fixed mix of queries as the daemons ask them: allows, an ask, forbids, default denies, a token. */
function queryMix(): PolicyQuery[] {
  const principal = (path: string): PolicyQuery['principal'] => ({
    id: `spiffe://aether.local/${path}`,
    trustDomain: 'aether.local',
    name: path,
    authenticatedBy: 'certificate',
  });
  const job = (overrides: Record<string, unknown> = {}): PolicyResource => ({
    type: 'job',
    id: '',
    attributes: {
      network: 'none',
      mounts: [],
      devices: [],
      cpuMillicores: 1000,
      memoryBytes: 1n << 30n,
      pidsMax: 256,
      timeoutSeconds: 600,
      profile: '',
      ...overrides,
    },
  });
  const service = (action: string): PolicyResource => ({ type: 'service', id: action.split('.')[0] ?? '' });
  const q = (path: string, action: string, resource = service(action), context = {}): PolicyQuery => ({
    principal: principal(path),
    action,
    resource,
    context: { requestId: 'bench-request', ...context },
  });
  return [
    q('aurorad', 'jobs.SubmitJob', job()),
    q('aurorad', 'jobs.GetJob', { type: 'job', id: 'job-1' }),
    q('aurorad', 'jobs.SubmitJob', job({ timeoutSeconds: 7200 })),
    q('aurorad', 'jobs.SubmitJob', job({ memoryBytes: 64 * GiB })),
    q(
      'cfcd',
      'jobs.SubmitJob',
      job({ devices: ['nvidia.com/gpu=0'], cpuMillicores: 8000, memoryBytes: 32 * GiB }),
    ),
    q('aurorad', 'memory.Search', { type: 'memory_entry', id: '', attributes: { tags: ['notes'] } }),
    q('cfcd', 'artifacts.CreateArtifact', {
      type: 'artifact',
      id: '',
      attributes: { type: 'model', sizeBytes: 5 * GiB },
    }),
    q('users/u7', 'memory.GetEntry', {
      type: 'memory_entry',
      id: 'm-7',
      attributes: { tags: ['project-7'] },
    }),
    q('users/u3', 'intents.SubmitIntent'),
    q('stranger', 'jobs.ListJobs'),
    q('admin', 'governance.MintToken'),
    q('aurorad', 'jobs.SubmitJob', job(), {
      intentId: 'intent-1',
      token: {
        id: 'tok-1',
        subject: 'aurorad',
        intentId: 'intent-1',
        actions: ['jobs.*'],
        constraints: { network: 'none', maxCpuMillicores: 2000 },
      },
    }),
  ];
}

/**
 * `count` policies of the kinds a real deployment adds: per-user permits with conditions on the resource
 * (memory by tag, jobs within a budget, artifact reads by type), per-user forbids, per-team intent rules.
 */
function generatedPolicies(count: number): string {
  const out: string[] = ['// Generated by tools/bench/policy: per-user and per-team policies.'];
  for (let k = 0; k < count; k++) {
    const user = Math.floor(k / 5);
    const who = `Aether::Identity::"spiffe://aether.local/users/u${user}"`;
    switch (k % 5) {
      case 0:
        out.push(
          `@id("gen-u${user}-memory-read")\npermit (principal == ${who}, action in Aether::Action::"memory.read", resource is Aether::MemoryEntry)\n` +
            `when { resource has tags && resource.tags.contains("project-${user}") };`,
        );
        break;
      case 1:
        out.push(
          `@id("gen-u${user}-jobs")\npermit (principal == ${who}, action == Aether::Action::"jobs.SubmitJob", resource is Aether::Job)\n` +
            `when { resource has network && resource.network == "none" && resource has cpuMillicores && ` +
            `resource.cpuMillicores <= ${500 + (user % 8) * 250} && resource has memoryBytes && resource.memoryBytes <= ${(1 + (user % 4)) * GiB} };`,
        );
        break;
      case 2:
        out.push(
          `@id("gen-u${user}-artifacts-read")\npermit (principal == ${who}, action in Aether::Action::"artifacts.read", resource)\n` +
            `when { if resource is Aether::Artifact && resource has type then ["dataset", "report"].contains(resource.type) else true };`,
        );
        break;
      case 3:
        out.push(
          `@id("gen-u${user}-artifact-size")\n@reason("u${user} may not write artifacts over ${1 + (user % 10)} GiB")\n` +
            `forbid (principal == ${who}, action in Aether::Action::"artifacts.write", resource is Aether::Artifact)\n` +
            `when { resource has sizeBytes && resource.sizeBytes > ${(1 + (user % 10)) * GiB} };`,
        );
        break;
      default:
        out.push(
          `@id("gen-team-${user}-intents")\npermit (principal in Aether::Group::"users", action in Aether::Action::"intents.read", resource)\n` +
            `when { context has intentId && context.intentId like "team-${user}-*" };`,
        );
    }
  }
  return `${out.join('\n\n')}\n`;
}

/** `count` forbids that all apply to aurorad submitting a job (none fires): the slice cannot shrink. */
function sameSlicePolicies(count: number): string {
  const out: string[] = [
    "// Generated by tools/bench/policy: every policy in aurorad's jobs.SubmitJob slice.",
  ];
  for (let k = 0; k < count; k++) {
    out.push(
      `@id("gen-aurorad-job-${k}")\n@reason("job ${k} is blocked")\n` +
        `forbid (principal in Aether::Group::"aurorad", action == Aether::Action::"jobs.SubmitJob", resource is Aether::Job)\n` +
        `when { resource has cpuMillicores && resource.cpuMillicores == ${100_000 + k} && resource has profile && resource.profile == "p${k}" };`,
    );
  }
  return `${out.join('\n\n')}\n`;
}

function printTable(rows: SizeResult[][], params: Params): void {
  const fmt = (n: number, digits = 0): string =>
    n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const med = (rs: SizeResult[], f: (r: SizeResult) => number): number => median(rs.map(f));
  const decide = [
    '| Policies | Extra policies | Engine | load ms | decisions/s | decisions per CPU-s | p50 ms | p99 ms | max ms |',
    '| -------: | -------------- | ------ | ------: | ----------: | ------------------: | -----: | -----: | -----: |',
  ];
  const raw = [
    '| Policies | Cedar pre-parsed µs/call | Cedar stateless µs/call | stateless / pre-parsed |',
    '| -------: | -----------------------: | ----------------------: | ---------------------: |',
  ];
  const verdicts: string[] = [];
  for (const rs of rows) {
    const first = rs[0] as SizeResult;
    const { config } = first;
    const perSec = med(rs, (r) => r.decisionsPerSec);
    const perCpu = med(rs, (r) => r.decisionsPerCpuSec);
    const p99 = med(rs, (r) => r.latencyMs.p99);
    const extra = config.extra === 'per-user' ? 'per-user' : 'all on one request kind';
    const engine = config.slicing ? 'sliced (as shipped)' : 'whole set';
    decide.push(
      `| ${first.policies} | ${extra} | ${engine} | ${fmt(med(rs, (r) => r.loadMs))} | ${fmt(perSec)} | ${fmt(perCpu)} | ` +
        `${fmt(
          med(rs, (r) => r.latencyMs.p50),
          3,
        )} | ${fmt(p99, 3)} | ${fmt(
          med(rs, (r) => r.latencyMs.max),
          3,
        )} |`,
    );
    if (config.slicing && config.extra === 'per-user') {
      const pre = med(rs, (r) => r.preparsedMicros);
      const stateless = med(rs, (r) => r.statelessMicros);
      raw.push(`| ${first.policies} | ${fmt(pre)} | ${fmt(stateless)} | ${fmt(stateless / pre, 1)}× |`);
    }
    const what = `${first.policies} policies, ${extra}, ${engine}`;
    verdicts.push(
      `- ${perCpu >= 5000 ? 'PASS' : 'MISS'} ${what}: ${fmt(perCpu)} decisions per CPU-second (target ≥ 5,000/s per core)`,
      `- ${p99 <= 1 ? 'PASS' : 'MISS'} ${what}: p99 ${fmt(p99, 3)} ms (target ≤ 1 ms)`,
    );
  }
  const others = rows.map((rs) => median(rs.map((r) => r.othersCpuPercent)).toFixed(0));
  const mix = rows[0]?.[0]?.effects ?? {};
  process.stdout.write(
    `${decide.join('\n')}\n\n${raw.join('\n')}\n\nTargets of the issue:\n\n${verdicts.join('\n')}\n\n` +
      `Medians over ${params.rounds} rounds of ${params.durationMs / 1000} s each. Other processes' CPU during the ` +
      `decide loops (median per row, % of one CPU): ${others.join(', ')}.\n` +
      `Effects in the mix (first row, first round): ${JSON.stringify(mix)}\n`,
  );
}

function readSchema(dir: string): string {
  const file = readdirSync(dir).find((f) => f.endsWith('.cedarschema'));
  if (!file) throw new Error(`no *.cedarschema in ${dir}`);
  return readFileSync(join(dir, file), 'utf8');
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      sizes: { type: 'string', default: '50,500' },
      'policy-dir': { type: 'string', default: 'deploy/policy' },
      json: { type: 'string' },
    },
  });
  const positive = (name: string, v: string): number => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${v}`);
    return n;
  };
  return {
    params: {
      rounds: Math.round(positive('rounds', values.rounds)),
      durationMs: positive('duration', values.duration) * 1000,
      warmupMs: positive('warmup', values.warmup) * 1000,
      sizes: values.sizes.split(',').map((s) => Math.round(positive('sizes', s))),
      policyDir: resolve(values['policy-dir']),
    },
    jsonFile: values.json,
  };
}

main();
