/**
 * Memory benchmark: aetherd's memory store at 100k and 1M passages, through its gRPC API.
 *
 *   node tools/bench/dist/memory/main.js [--quick] [--sizes 100000,1000000] [--runs 100] [--batch 1000]
 *        [--in-flight 4] [--json FILE]
 *
 * For each size: a fresh aetherd (tools/e2e's Stack: real process, fresh PKI, shipped policy, mTLS socket);
 * a deterministic synthetic corpus (corpus.ts: one note of 50-70 Zipf-distributed words per passage, one
 * of ten tags each, planted rare and medium terms) generated before the clock starts; ingest with
 * BatchAddEntries (`--batch` entries per call, `--in-flight` calls at once); then, per query class, `--runs`
 * sequential Search calls (page size 10, the default) against the same FTS5 ranking query run on the same
 * database file by the `sqlite3` command-line shell (timed with `.timer on`, 1 ms resolution) and in
 * process with better-sqlite3 (the SQLite aetherd embeds; microsecond timing). The SQL is the statement
 * aetherd's store runs to rank a page (memory-store.ts `rankPage`), with the MATCH expression aetherd
 * builds (search.ts `matchExpression`, filter-tokens.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { AetherClient } from '@aether/client';
import { Stack } from '@aether/e2e';
import { memoryV1 } from '@aether/proto';
import { machineBusyMicros, machineInfo } from '../machine';
import { percentile } from '../stats';
import { Corpus, PLANTED } from './corpus';

const ADMIN = 'spiffe://aether.local/admin';
const CAP = 10_000;
const TICK_US = 10_000; // USER_HZ = 100

interface Params {
  quick: boolean;
  sizes: number[];
  runs: number;
  batch: number;
  inFlight: number;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      sizes: { type: 'string' },
      runs: { type: 'string' },
      batch: { type: 'string', default: '1000' },
      'in-flight': { type: 'string', default: '4' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/memory/main.js [--quick] [--sizes 100000,1000000] [--runs 100]\n' +
        '         [--batch 1000] [--in-flight 4] [--json FILE]',
    );
    process.exit(0);
  }
  const positive = (name: string, raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${raw}`);
    return n;
  };
  const quick = values.quick;
  return {
    params: {
      quick,
      sizes: (values.sizes ?? (quick ? '20000' : '100000,1000000'))
        .split(',')
        .map((s) => positive('sizes', s)),
      runs: values.runs !== undefined ? positive('runs', values.runs) : quick ? 20 : 100,
      batch: Math.min(1000, positive('batch', values.batch)),
      inFlight: positive('in-flight', values['in-flight']),
    },
    jsonFile: values.json,
  };
}

// ---- the queries --------------------------------------------------------------------------------------

/** aetherd's filter tokens (apps/aetherd/src/memory/filter-tokens.ts), for the SQL baselines. */
function filterToken(prefix: 'zt' | 'za' | 'zk', value: string): string {
  return prefix === 'zk'
    ? `zk${value}`
    : prefix + createHash('sha256').update(value).digest('hex').slice(0, 20);
}

interface QueryClass {
  name: string;
  what: string;
  /** Whether the class's rarest term matches at most 10,000 rows (the tighter latency target). */
  rareTerm: boolean;
  requests: Partial<memoryV1.SearchRequest>[];
  /** The MATCH expression aetherd builds for each request. */
  matches: string[];
  /** The rarest term's own MATCH expression, to count its rows. */
  rarest: string;
}

function queryClasses(corpus: Corpus): QueryClass[] {
  const w = (r: number): string => corpus.wordOfRank(r);
  const tag = PLANTED.tags[3]!;
  const tagToken = filterToken('zt', tag);
  const everyRow = [filterToken('za', ADMIN), filterToken('zk', String(memoryV1.EntryKind.ENTRY_KIND_NOTE))];
  const classes: QueryClass[] = [
    {
      name: 'rare',
      what: `a planted term in ${PLANTED.rareHits} passages (20 different)`,
      rareTerm: true,
      requests: PLANTED.rare.map((q) => ({ query: q })),
      matches: PLANTED.rare.map((q) => `(${q})`),
      rarest: `(${PLANTED.rare[0]})`,
    },
    {
      name: 'medium',
      what: `a planted term in every ${corpus.mediumPeriod}th passage (10 different)`,
      rareTerm: true,
      requests: PLANTED.medium.map((q) => ({ query: q })),
      matches: PLANTED.medium.map((q) => `(${q})`),
      rarest: `(${PLANTED.medium[0]})`,
    },
    {
      name: 'common',
      what: 'one of the 5 most frequent words',
      rareTerm: false,
      requests: [0, 1, 2, 3, 4].map((r) => ({ query: w(r) })),
      matches: [0, 1, 2, 3, 4].map((r) => `(${w(r)})`),
      rarest: `(${w(4)})`,
    },
    {
      name: 'phrase',
      what: 'a phrase of two of the 6 most frequent words',
      rareTerm: false,
      requests: [
        [1, 2],
        [0, 3],
        [2, 5],
      ].map(([a, b]) => ({ query: `"${w(a!)} ${w(b!)}"` })),
      matches: [
        [1, 2],
        [0, 3],
        [2, 5],
      ].map(([a, b]) => `("${w(a!)} ${w(b!)}")`),
      rarest: `(${w(5)})`,
    },
    {
      name: 'filtered',
      what: `a medium term with the tag filter ${tag} (10 % of entries)`,
      rareTerm: true,
      requests: PLANTED.medium.map((q) => ({ query: q, tags: [tag] })),
      matches: PLANTED.medium.map((q) => `(${q}) AND meta : (${tagToken})`),
      rarest: `(${PLANTED.medium[0]})`,
    },
    {
      name: 'filtered, every row',
      what: 'a medium term with actor and kind filters that every entry matches',
      rareTerm: true,
      requests: PLANTED.medium.map((q) => ({
        query: q,
        actor: ADMIN,
        kind: memoryV1.EntryKind.ENTRY_KIND_NOTE,
      })),
      matches: PLANTED.medium.map((q) => `(${q}) AND meta : (${everyRow.join(' AND ')})`),
      rarest: `(${PLANTED.medium[0]})`,
    },
  ];
  return classes;
}

/** aetherd's ranking statement (memory-store.ts, `rankPage`), first page of 10. */
const RANK_SQL = `SELECT rowid, score, count(*) OVER () FROM (
  SELECT rowid, -bm25(passages, 2.0, 1.0, 0.0) AS score FROM passages
  WHERE passages MATCH ? ORDER BY rowid DESC LIMIT ${CAP}
) ORDER BY score DESC, rowid DESC LIMIT 10`;

// ---- measuring ------------------------------------------------------------------------------------------

interface Latency {
  p50: number;
  p95: number;
  mean: number;
}

function latency(samples: number[]): Latency {
  const sorted = Float64Array.from(samples).sort();
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

/** CPU time of a process so far (user + system), in microseconds. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function ingest(
  c: AetherClient,
  corpus: Corpus,
  params: Params,
  pid: number,
): Promise<{ seconds: number; perSecond: number; cpuUsPerEntry: number; otherCpu: number }> {
  const n = corpus.options.passages;
  process.stderr.write(`generating ${n} passages…\n`);
  const texts = [...corpus.passages(0, n)];
  const batches = Math.ceil(n / params.batch);
  let next = 0;
  const cpu0 = cpuMicros(pid);
  const busy0 = machineBusyMicros();
  const self0 = process.cpuUsage();
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < batches) {
      const b = next++;
      const requests = texts
        .slice(b * params.batch, Math.min(n, (b + 1) * params.batch))
        .map((t) => ({ entry: { text: t.text, tags: [t.tag] } }));
      await c.call(c.memory, 'batchAddEntries', memoryV1.BatchAddEntriesRequest.fromPartial({ requests }), {
        timeoutMs: 300_000,
      });
      if (b % 100 === 99)
        process.stderr.write(`  ${((b + 1) * params.batch).toLocaleString('en')} entries\n`);
    }
  };
  await Promise.all(Array.from({ length: params.inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  const aetherdCpu = cpuMicros(pid) - cpu0;
  const self = process.cpuUsage(self0);
  const other = machineBusyMicros() - busy0 - aetherdCpu - self.user - self.system;
  return {
    seconds,
    perSecond: n / seconds,
    cpuUsPerEntry: aetherdCpu / n,
    otherCpu: Math.max(0, other) / (seconds * 1e6),
  };
}

async function searchLatency(
  c: AetherClient,
  qc: QueryClass,
  runs: number,
  pid: number,
): Promise<Latency & { hits: number; otherCpu: number }> {
  const samples: number[] = [];
  let hits = 0;
  const busy0 = machineBusyMicros();
  const cpu0 = cpuMicros(pid);
  const self0 = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < runs + 5; i++) {
    const req = memoryV1.SearchRequest.fromPartial(qc.requests[i % qc.requests.length]!);
    const t = performance.now();
    const res = await c.call(c.memory, 'search', req);
    const ms = performance.now() - t;
    if (i >= 5) samples.push(ms); // the first five warm up
    hits = Math.max(hits, Number(res.totalCandidates));
  }
  const self = process.cpuUsage(self0);
  const other = machineBusyMicros() - busy0 - (cpuMicros(pid) - cpu0) - self.user - self.system;
  return {
    ...latency(samples),
    hits,
    otherCpu: Math.max(0, other) / ((performance.now() - started) * 1000),
  };
}

function inProcessLatency(db: Database.Database, qc: QueryClass, runs: number): Latency {
  const stmt = db.prepare(RANK_SQL).raw();
  const samples: number[] = [];
  for (let i = 0; i < runs + 5; i++) {
    const match = qc.matches[i % qc.matches.length]!;
    const t = performance.now();
    stmt.all(match);
    if (i >= 5) samples.push(performance.now() - t);
  }
  return latency(samples);
}

/** The same statement in the sqlite3 shell: `.timer on` per run (1 ms resolution), and the mean from the wall time. */
function cliLatency(
  dbPath: string,
  qc: QueryClass,
  runs: number,
): (Latency & { version: string }) | undefined {
  let version: string;
  try {
    version = execFileSync('sqlite3', ['--version'], { encoding: 'utf8' }).split(' ')[0]!;
  } catch {
    return undefined;
  }
  const statement = (match: string): string =>
    RANK_SQL.replace('?', `'${match.replace(/'/g, "''")}'`).replace(/\n/g, ' ');
  const script = (n: number, timer: boolean): string =>
    ['.output /dev/null', timer ? '.timer on' : '']
      .concat(Array.from({ length: n }, (_, i) => `${statement(qc.matches[i % qc.matches.length]!)};`))
      .join('\n');
  const run = (input: string): { ms: number; out: string } => {
    const t = performance.now();
    const r = spawnSync('sqlite3', ['-readonly', dbPath], {
      input,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
    return { ms: performance.now() - t, out: r.stdout };
  };
  run(script(5, false)); // warm the page cache
  const timed = run(script(runs, true));
  const samples = [...timed.out.matchAll(/Run Time: real (\d+\.\d+)/g)].map((m) => Number(m[1]) * 1000);
  const startup = run(script(0, false)).ms;
  const wall = run(script(runs, false)).ms;
  return { ...latency(samples), mean: Math.max(0, wall - startup) / runs, version };
}

// ---- the run --------------------------------------------------------------------------------------------

/**
 * Waits until the machine is idle (under 10 % of one CPU busy over two 2-second samples), at most
 * `limitMs`; returns the busy fraction of the last sample, so the report can say when it was not.
 */
async function waitForIdle(limitMs: number): Promise<number> {
  const until = Date.now() + limitMs;
  const sample = async (): Promise<number> => {
    const b0 = machineBusyMicros();
    await new Promise((r) => setTimeout(r, 2_000));
    return (machineBusyMicros() - b0) / 2e6;
  };
  let busy = await sample();
  while (Date.now() < until) {
    if (busy < 0.1 && (busy = await sample()) < 0.1) return busy;
    process.stderr.write(`waiting for the machine to be idle (${Math.round(busy * 100)} % of a CPU busy)…\n`);
    busy = await sample();
  }
  return busy;
}

interface SizeResult {
  passages: number;
  ingest: Awaited<ReturnType<typeof ingest>>;
  dbMb: number;
  rssMb: number;
  classes: {
    name: string;
    what: string;
    rareTerm: boolean;
    rarestTermRows: number;
    matchingRows: number;
    candidates: number;
    aetherd: Latency & { otherCpu: number };
    inProcess: Latency;
    cli?: Latency & { version: string };
  }[];
}

async function runSize(passages: number, params: Params): Promise<SizeResult> {
  const stack = await new Stack().init();
  try {
    const aetherd = await stack.start('aetherd');
    const pid = aetherd.child.pid!;
    const c = stack.client();
    try {
      const corpus = new Corpus({ passages, vocabulary: 100_000, exponent: 1.0, seed: 42 });
      await waitForIdle(300_000);
      const ing = await ingest(c, corpus, params, pid);
      process.stderr.write(`ingested ${passages} passages in ${ing.seconds.toFixed(1)} s\n`);
      const dbPath = join(stack.dir, 'state', 'aetherd', 'memory', 'memory.db');
      const size = (p: string): number => {
        try {
          return statSync(p).size;
        } catch {
          return 0;
        }
      };
      const db = new Database(dbPath, { readonly: true });
      db.pragma('cache_size = -32768');
      const classes: SizeResult['classes'] = [];
      for (const qc of queryClasses(corpus)) {
        await waitForIdle(120_000);
        process.stderr.write(`  ${qc.name}…\n`);
        const count = (m: string): number =>
          db.prepare('SELECT count(*) FROM passages WHERE passages MATCH ?').pluck().get(m) as number;
        const a = await searchLatency(c, qc, params.runs, pid);
        classes.push({
          name: qc.name,
          what: qc.what,
          rareTerm: qc.rareTerm,
          rarestTermRows: count(qc.rarest),
          matchingRows: count(qc.matches[0]!),
          candidates: a.hits,
          aetherd: a,
          inProcess: inProcessLatency(db, qc, params.runs),
          ...(() => {
            const cli = cliLatency(dbPath, qc, params.runs);
            return cli ? { cli } : {};
          })(),
        });
      }
      db.close();
      return {
        passages,
        ingest: ing,
        dbMb: (size(dbPath) + size(`${dbPath}-wal`)) / 1e6,
        rssMb: rssMb(pid),
        classes,
      };
    } finally {
      c.close();
    }
  } finally {
    await stack.close();
  }
}

const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1));
const int = (n: number): string => Math.round(n).toLocaleString('en');

function report(results: SizeResult[], params: Params): string {
  const lines: string[] = [];
  const m = machineInfo();
  lines.push(
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), Node ${m.node}, ${m.platform}; batches of ${params.batch}, ${params.inFlight} in flight; ${params.runs} searches per class.`,
    '',
    '| Passages | Ingest s | Entries/s | aetherd CPU µs/entry | Other processes (CPUs) | DB + WAL MB | aetherd RSS MB |',
    '| -------: | -------: | --------: | -------------------: | ---------------------: | ----------: | -------------: |',
  );
  for (const r of results)
    lines.push(
      `| ${int(r.passages)} | ${f1(r.ingest.seconds)} | ${int(r.ingest.perSecond)} | ${int(r.ingest.cpuUsPerEntry)} | ${f2(r.ingest.otherCpu)} | ${int(r.dbMb)} | ${int(r.rssMb)} |`,
    );
  for (const r of results) {
    lines.push(
      '',
      `Search at ${int(r.passages)} passages (ms; aetherd = Search over mTLS with policy and audit, page of 10 citations):`,
      '',
      '| Query | Rows matching | Candidates ranked | aetherd p50 | aetherd p95 | in-process SQL p50 | in-process p95 | sqlite3 shell p50 | sqlite3 p95 | sqlite3 mean | aetherd p50 / in-process p50 |',
      '| ----- | ------------: | ----------------: | ----------: | ----------: | -----------------: | -------------: | ----------------: | ----------: | -----------: | ---------------------------: |',
    );
    for (const q of r.classes)
      lines.push(
        `| ${q.name}: ${q.what} | ${int(q.matchingRows)} | ${int(q.candidates)} | ${f2(q.aetherd.p50)} | ${f2(q.aetherd.p95)} | ${f2(q.inProcess.p50)} | ${f2(q.inProcess.p95)} | ${q.cli ? f2(q.cli.p50) : 'n/a'} | ${q.cli ? f2(q.cli.p95) : 'n/a'} | ${q.cli ? f2(q.cli.mean) : 'n/a'} | ${(q.aetherd.p50 / q.inProcess.p50).toFixed(2)}× |`,
      );
  }
  for (const r of results)
    lines.push(
      '',
      `Other processes during the Search runs at ${int(r.passages)}: at most ${f2(Math.max(...r.classes.map((q) => q.aetherd.otherCpu)))} CPUs.`,
    );
  lines.push('', 'Targets:', '');
  for (const r of results)
    lines.push(
      `- ${r.ingest.perSecond >= 20_000 ? 'PASS' : 'MISS'} ingest at ${int(r.passages)}: ${int(r.ingest.perSecond)} entries/s (target ≥ 20,000/s batched)`,
    );
  const largest = results[results.length - 1];
  if (largest)
    for (const q of largest.classes) {
      if (q.rareTerm && q.rarestTermRows <= 10_000) {
        lines.push(
          `- ${q.aetherd.p50 <= 5 ? 'PASS' : 'MISS'} ${q.name} at ${int(largest.passages)} (rarest term ${int(q.rarestTermRows)} rows): p50 ${f2(q.aetherd.p50)} ms (target ≤ 5 ms)`,
          `- ${q.aetherd.p95 <= 50 ? 'PASS' : 'MISS'} ${q.name} at ${int(largest.passages)}: p95 ${f2(q.aetherd.p95)} ms (target ≤ 50 ms)`,
        );
      }
      lines.push(
        `- ${q.aetherd.p95 <= 150 ? 'PASS' : 'MISS'} ${q.name} at ${int(largest.passages)}: p95 ${f2(q.aetherd.p95)} ms (target ≤ 150 ms for any query)`,
      );
    }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  const started = performance.now();
  const results: SizeResult[] = [];
  for (const size of params.sizes) results.push(await runSize(size, params));
  const text = report(results, params);
  process.stdout.write(`${text}\n\nTook ${Math.round((performance.now() - started) / 1000)} s.\n`);
  if (jsonFile)
    await writeFile(jsonFile, JSON.stringify({ machine: machineInfo(), params, results }, null, 2));
}

main().catch((err: unknown) => {
  process.stderr.write(`memory bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
