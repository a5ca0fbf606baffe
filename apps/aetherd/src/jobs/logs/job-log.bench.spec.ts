import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobLog } from './job-log';

// Read throughput of 256 MiB logs. Speeds are logged, not asserted: they depend on the machine.

const MiB = 1024 * 1024;
const TS = '2026-11-21T06:05:22.949080358+00:00';

/** About 1 MiB of whole records: conmon's 8 KiB P records of a big write, or short F lines. */
function block(kind: 'P8K' | 'lines'): { bytes: Buffer; content: number } {
  const parts: Buffer[] = [];
  let size = 0;
  let content = 0;
  for (let i = 0; size < MiB - 9000; i++) {
    const len = kind === 'P8K' ? 8192 : 60 + (i % 80);
    const line = Buffer.concat([
      Buffer.from(`${TS} stdout ${kind === 'P8K' ? 'P' : 'F'} `),
      Buffer.alloc(len, 0x61 + (i % 26)),
      Buffer.from('\n'),
    ]);
    parts.push(line);
    size += line.length;
    content += kind === 'P8K' ? len : len + 1;
  }
  return { bytes: Buffer.concat(parts), content };
}

function rate(bytes: number, ms: number): string {
  return `${((bytes / ms) * 1e3) / 1e6}`.slice(0, 6) + ' MB/s';
}

describe('JobLog read throughput (256 MiB)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'job-log-bench-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const kind of ['P8K', 'lines'] as const) {
    it(`reads a finished log of ${kind} records`, async () => {
      const path = join(dir, 'ctr.log');
      const b = block(kind);
      const blocks = Math.ceil((256 * MiB) / b.bytes.length);
      const fd = openSync(path, 'w');
      for (let i = 0; i < blocks; i++) writeSync(fd, b.bytes);
      closeSync(fd);

      const log = JobLog.open(path, { maxBytes: Number.POSITIVE_INFINITY });
      let t0 = performance.now();
      await log.refresh();
      const scanMs = performance.now() - t0;
      expect(log.endOffset).toBe(blocks * b.content);

      t0 = performance.now();
      let got = 0;
      let chunks = 0;
      for await (const item of log.read()) {
        if ('data' in item) {
          got += item.data.length;
          chunks++;
        }
      }
      const readMs = performance.now() - t0;
      log.close();
      expect(got).toBe(blocks * b.content);
      console.log(
        `${kind}: ${(blocks * b.bytes.length) / MiB} MiB file, ${got} content bytes in ${chunks} chunks; ` +
          `scan ${scanMs.toFixed(0)} ms (${rate(blocks * b.bytes.length, scanMs)} file), ` +
          `read ${readMs.toFixed(0)} ms (${rate(got, readMs)} content)`,
      );
    });

    it(`follows ${kind} records while another process appends 256 MiB (no cap)`, async () => {
      const path = join(dir, 'ctr.log');
      const blockPath = join(dir, 'block');
      const b = block(kind);
      const fd = openSync(blockPath, 'w');
      writeSync(fd, b.bytes);
      closeSync(fd);
      const blocks = Math.ceil((256 * MiB) / b.bytes.length);
      let punches = 0;
      const log = JobLog.open(path, {
        // Uncapped: with a cap, a follower slower than the writer gets `skipped` instead of the bytes.
        maxBytes: Number.POSITIVE_INFINITY,
        onCheckpoint: () => punches++,
        onWarning: (msg, err) => console.warn(msg, err),
      });
      const t0 = performance.now();
      // The writer stands in for conmon: a separate process appending as fast as it can.
      const writer = spawn(
        process.execPath,
        [
          '-e',
          `const fs=require('fs');const b=fs.readFileSync(process.argv[1]);const fd=fs.openSync(process.argv[2],'a');` +
            `for(let i=0;i<${blocks};i++)fs.writeSync(fd,b);`,
          blockPath,
          path,
        ],
        { stdio: 'inherit' },
      );
      let writerMs = 0;
      const exited = new Promise<void>((resolve) =>
        writer.on('exit', () => {
          writerMs = performance.now() - t0;
          log.finish();
          resolve();
        }),
      );
      let got = 0;
      let skipped = 0;
      for await (const item of log.read({ follow: true })) {
        if ('data' in item) got += item.data.length;
        else skipped += item.skipped;
      }
      const ms = performance.now() - t0;
      await exited;
      log.close();
      expect(got + skipped).toBe(blocks * b.content);
      console.log(
        `${kind}, following: ${got} content bytes (${skipped} skipped) in ${ms.toFixed(0)} ms ` +
          `(${rate(got, ms)} content); the writer alone took ${writerMs.toFixed(0)} ms; ${punches} punches`,
      );
    });
  }
});
