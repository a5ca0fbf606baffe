/**
 * Artifact ingest benchmark: a file of `--mib` MiB (default 1024) registered through aetherd, by path
 * (CreateArtifact: aetherd reads the file under an import root, hashes it and writes the blob in two
 * phases) and by upload (UploadArtifact: the client streams 1 MiB chunks over the mTLS socket), against
 * `sha256sum` of the same file in the same run — the target is ≥ 0.8 × sha256sum's throughput
 * by path. Node's own SHA-256 (OpenSSL) and `cp` of the file are measured as context.
 *
 *   node tools/bench/dist/artifacts/main.js [--json FILE] [--quick] [--mib 1024] [--runs 3]
 *
 * The file is random bytes on the same filesystem as the store and is in the page cache for every
 * contender (it was just written, and the machine has far more memory than the file), so the figures
 * compare CPU and write paths, not a cold disk read. Each aetherd run registers the content fresh:
 * the artifact is deleted (and with it its blob) before the next run, so no run is a deduplicated
 * no-op. Every run's digest is checked against sha256sum's.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { clientStreamCall, type AetherClient } from '@aether/client';
import { Stack } from '@aether/e2e';
import { artifactsV1 } from '@aether/proto';
import { machineInfo } from '../machine';
import { median } from '../stats';

const MiB = 1024 * 1024;
const MB = 1e6;

interface Params {
  mib: number;
  runs: number;
  jsonFile: string | undefined;
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      mib: { type: 'string' },
      runs: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: node tools/bench/dist/artifacts/main.js [--json FILE] [--quick] [--mib 1024] [--runs 3]\n',
    );
    process.exit(0);
  }
  return {
    mib: Number(values.mib ?? (values.quick ? 128 : 1024)),
    runs: Number(values.runs ?? (values.quick ? 2 : 3)),
    jsonFile: values.json,
  };
}

/** Seconds taken by `fn`, timed on this process's monotonic clock. */
async function timed<T>(fn: () => Promise<T> | T): Promise<{ seconds: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - t0) / 1000, value };
}

function makeFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4 * MiB);
  // Random content (no dedupe or compression shortcut anywhere); a cheap PRNG stream, not crypto.
  let x = 0x9e3779b9;
  for (let written = 0; written < bytes; written += block.length) {
    for (let i = 0; i < block.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      block.writeUInt32LE(x >>> 0, i);
    }
    writeSync(fd, block, 0, Math.min(block.length, bytes - written));
  }
  closeSync(fd);
  execFileSync('sync');
}

function sha256sum(path: string): string {
  const out = execFileSync('sha256sum', [path], { encoding: 'utf8' });
  return `sha256:${out.split(' ')[0]}`;
}

function nodeSha256(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(4 * MiB);
  let n: number;
  while ((n = readSync(fd, buf)) > 0) h.update(buf.subarray(0, n));
  closeSync(fd);
  return `sha256:${h.digest('hex')}`;
}

async function* uploadMessages(
  path: string,
  size: number,
): AsyncGenerator<artifactsV1.UploadArtifactRequest> {
  yield artifactsV1.UploadArtifactRequest.fromPartial({
    payload: {
      $case: 'metadata',
      value: {
        metadata: { type: artifactsV1.ArtifactType.ARTIFACT_TYPE_DATASET, filename: 'bench.bin' },
        expectedSizeBytes: BigInt(size),
      },
    },
  });
  for await (const chunk of createReadStream(path, { highWaterMark: MiB }))
    yield { payload: { $case: 'chunk', value: chunk as Buffer } };
}

async function removeArtifact(c: AetherClient, name: string): Promise<void> {
  await c.call(c.artifacts, 'deleteArtifact', { name });
}

async function main(): Promise<void> {
  const p = parseParams();
  const bytes = p.mib * MiB;
  const dir = mkdtempSync(join(tmpdir(), 'aether-bench-artifacts-'));
  const importRoot = join(dir, 'import');
  const file = join(importRoot, 'bench.bin');
  const stack = await new Stack({ artifacts: { importRoots: [importRoot], reserveFreeBytes: 0 } }).init();
  try {
    execFileSync('mkdir', ['-p', importRoot]);
    process.stderr.write(`bench artifacts: writing a ${p.mib} MiB file\n`);
    makeFile(file, bytes);
    await stack.start('aetherd');
    const c = stack.client();
    const rows: Record<string, number[]> = {
      sha256sum: [],
      nodeSha256: [],
      cp: [],
      byPath: [],
      byUpload: [],
    };
    let digest = '';
    for (let run = 0; run < p.runs; run++) {
      process.stderr.write(`bench artifacts: run ${run + 1}/${p.runs}\n`);
      const s = await timed(() => sha256sum(file));
      digest = s.value;
      rows['sha256sum']!.push(s.seconds);
      const n = await timed(() => nodeSha256(file));
      if (n.value !== digest) throw new Error(`node sha256 ${n.value} != sha256sum ${digest}`);
      rows['nodeSha256']!.push(n.seconds);
      const cp = await timed(() => {
        const r = spawnSync('sh', ['-c', `cp "$1" "$2" && sync "$2"`, 'cp', file, join(dir, 'copy.bin')]);
        if (r.status !== 0) throw new Error(`cp failed: ${r.stderr.toString()}`);
      });
      rmSync(join(dir, 'copy.bin'), { force: true });
      rows['cp']!.push(cp.seconds);

      const byPath = await timed(() =>
        c.call(
          c.artifacts,
          'createArtifact',
          artifactsV1.CreateArtifactRequest.fromPartial({
            sourcePath: file,
            metadata: { type: artifactsV1.ArtifactType.ARTIFACT_TYPE_DATASET },
          }),
          { timeoutMs: 600_000 },
        ),
      );
      const a = byPath.value.artifact!;
      if (a.digest !== digest || byPath.value.deduplicated)
        throw new Error(
          `by path: digest ${a.digest} (dedup ${byPath.value.deduplicated}), expected fresh ${digest}`,
        );
      rows['byPath']!.push(byPath.seconds);
      await removeArtifact(c, a.name);

      const up = await timed(() =>
        clientStreamCall(c.artifacts.uploadArtifact.bind(c.artifacts), uploadMessages(file, bytes), {
          timeoutMs: 600_000,
        }),
      );
      const u = up.value.artifact!;
      if (u.digest !== digest || up.value.deduplicated)
        throw new Error(
          `upload: digest ${u.digest} (dedup ${up.value.deduplicated}), expected fresh ${digest}`,
        );
      rows['byUpload']!.push(up.seconds);
      await removeArtifact(c, u.name);
    }
    c.close();

    const mbps = (secs: number[]): number => bytes / MB / median(secs);
    const result = Object.fromEntries(
      Object.entries(rows).map(([k, v]) => [k, { medianSeconds: median(v), mbPerSecond: mbps(v), runs: v }]),
    );
    const ratio = (k: string): number => mbps(rows[k]!) / mbps(rows['sha256sum']!);
    const line = (label: string, k: string): string =>
      `| ${label} | ${median(rows[k]!).toFixed(2)} s | ${mbps(rows[k]!).toFixed(0)} MB/s | ${ratio(k).toFixed(2)}× |`;
    process.stdout.write(
      [
        `Artifact ingest of a ${p.mib} MiB file, median of ${p.runs} runs (${machineInfo().cpuModel}, ${machineInfo().nproc} CPUs)`,
        '',
        '| | time | throughput | vs sha256sum |',
        '|---|---|---|---|',
        line('`sha256sum` (coreutils)', 'sha256sum'),
        line('Node `crypto` SHA-256 (OpenSSL), read + hash only', 'nodeSha256'),
        line('`cp` + `sync` (copy only, no hash)', 'cp'),
        line('aetherd CreateArtifact by path (copy + hash + fsync + rename)', 'byPath'),
        line('aetherd UploadArtifact over mTLS (stream + hash + fsync + rename)', 'byUpload'),
        '',
        `by path / sha256sum = ${ratio('byPath').toFixed(2)} (target ≥ 0.80): ${ratio('byPath') >= 0.8 ? 'met' : 'NOT met'}`,
        '',
      ].join('\n'),
    );
    if (p.jsonFile) {
      await writeFile(
        p.jsonFile,
        `${JSON.stringify({ machine: machineInfo(), params: p, digest, result }, null, 2)}\n`,
      );
      process.stderr.write(`bench artifacts: wrote ${p.jsonFile}\n`);
    }
  } finally {
    await stack.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench artifacts: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
